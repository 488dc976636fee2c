"""Mode-collapse remedies on D's side: packing (PacGAN), minibatch standard deviation, LinearMaxout,
unrolled look-ahead (Metz et al.), PacGAN's initialisation."""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import pytest
import torch
from tiny_fit import quiet_trainer

import gan_lab.module
import gan_lab.unrolled
from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.losses import OBJECTIVES
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator, member
from gan_lab.nets.dcgan import DCGANDiscriminator
from gan_lab.nets.layers import LinearMaxout, MinibatchStdDev, maxout, minibatch_stddev, pack, unpack
from gan_lab.settings import Paired, Remedies
from gan_lab.unrolled import check_optimizer, lookahead, lookahead_parameters, update_step

PENALTIES = ["wgan_gp", "one_sided_gp", "dragan", "r1", "r2"]


def fit(module, batches, batch_size=12, data=None, callbacks=()):
    trainer = quiet_trainer(batches, callbacks)
    trainer.fit(module, data or ToyMixtureDataModule("ring8", batch_size=batch_size))
    return trainer


def toy(members=2, pack_m=1, **d_kw):
    G = ToyGenerator(members=members, hidden=8, layers=2)
    D = ToyDiscriminator(members=members, hidden=8, layers=2, in_dim=2 * pack_m, **d_kw)
    return G, D


def assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


# --------------------------------------------------------------------------------------------------
# Packing
# --------------------------------------------------------------------------------------------------


def test_pack_concatenates_consecutive_samples_along_features_and_channels():
    x = torch.randn(3, 12, 2)  # (E, N, d)
    p = pack(x, 4, batch_dim=1)
    assert p.shape == (3, 3, 8)
    for j in range(3):
        torch.testing.assert_close(
            p[:, j], torch.cat([x[:, 4 * j + i] for i in range(4)], -1), rtol=0, atol=0
        )
    img = torch.randn(6, 3, 5, 5)  # (N, C, H, W)
    q = pack(img, 3, batch_dim=0)
    assert q.shape == (2, 9, 5, 5)
    for j in range(2):
        for i in range(3):
            assert torch.equal(q[j, 3 * i : 3 * i + 3], img[3 * j + i])
    assert torch.equal(unpack(q, 3, 0), img) and torch.equal(unpack(p, 4, 1), x)
    assert pack(x, 1, 1) is x
    with pytest.raises(ConfigError, match="packs of 5"):
        pack(x, 5, 1)


def test_a_packed_image_discriminator_reads_m_times_the_channels():
    D = DCGANDiscriminator(in_channels=2 * 3, ndf=4)
    assert D(pack(torch.randn(8, 3, 32, 32), 2, 0)).shape == (4,)


def test_pack_1_is_the_plain_run_bit_for_bit(monkeypatch):
    """m = 1 through the packing code equals a run with no packing code at all (``pack_batch``
    replaced by the identity): D, every penalty and the data see the same tensors."""
    packed = GANModule(*toy(), objective="hinge", regularizers=["wgan_gp"], seed=3, remedies=Remedies(pack=1))
    fit(packed, 4)
    calls = []

    def identity(self, x):
        calls.append(x.shape)
        return x

    monkeypatch.setattr(GANModule, "pack_batch", identity)
    plain = GANModule(*toy(), objective="hinge", regularizers=["wgan_gp"], seed=3)
    fit(plain, 4)
    assert calls  # the plain run went through the replaced packing
    assert_same_weights(plain, packed)


@pytest.mark.parametrize("m", [2, 3])
def test_the_packed_D_sees_m_distinct_samples_per_pack(m):
    """D's inputs in a step: N/m packs of real samples that unpack to exactly the step's real batch
    (each sample once), and N/m packs of N distinct fakes from N noise vectors (m × the packs)."""
    batch, members = 6, 2
    module = GANModule(*toy(members, m), objective="non_saturating", remedies=Remedies(pack=m))
    seen, reals, noise = [], [], []
    module.D.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    draw = module.sample_noise
    module.sample_noise = lambda n: noise.append(draw(n)) or noise[-1]

    class RecordReal(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
            reals.append(b.clone())

    fit(module, 1, batch_size=batch, callbacks=[RecordReal()])
    (real,) = reals
    assert real.shape == (members, batch * m, 2)  # batch_size packs of m samples
    d_real, d_fake = seen[0], seen[1]  # Dmain: D(real), D(fake)
    assert d_real.shape == d_fake.shape == (members, batch, 2 * m)
    assert torch.equal(unpack(d_real, m, 1), real)
    fakes = unpack(d_fake, m, 1)  # (E, N, 2)
    assert noise[0].shape == (members, batch * m, 2)
    for e in range(members):
        assert torch.unique(fakes[e], dim=0).shape[0] == batch * m  # no fake reused across packs
        assert torch.unique(real[e], dim=0).shape[0] == batch * m


def test_packed_D_with_the_wrong_input_size_is_refused():
    module = GANModule(*toy(2, 1), remedies=Remedies(pack=2))
    dm = ToyMixtureDataModule("ring8", batch_size=4)
    with pytest.raises(
        ConfigError, match=r"with pack=2 the discriminator reads packs of 2 samples .* set its in_dim"
    ):
        module.check_data(dm)
    GANModule(*toy(2, 2), remedies=Remedies(pack=2)).check_data(dm)  # in_dim 4: fine
    with pytest.raises(
        ConfigError, match=r"the data module packs 2 samples per pack but the model's pack is 4"
    ):
        GANModule(*toy(2, 4), remedies=Remedies(pack=4)).check_data(
            ToyMixtureDataModule("ring8", batch_size=4, pack=2)
        )


@pytest.mark.parametrize(
    ("remedies", "kwargs", "match"),
    [
        ({"pack": 0}, {}, "remedies.pack must be an integer >= 1"),
        ({"unrolled_steps": -1}, {}, "remedies.unrolled_steps must be an integer >= 0"),
        ({"pack": 2}, {"paired": Paired()}, "remedies.pack=2 is not supported in a paired"),
        ({"unrolled_steps": 1}, {"gradient_clip_val": 1.0}, "the look-ahead does not clip D's gradient"),
    ],
)
def test_bad_remedy_settings_are_refused(remedies, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GANModule(*toy(), remedies=Remedies(**remedies), **kwargs)


# --------------------------------------------------------------------------------------------------
# Minibatch standard deviation and LinearMaxout, by hand
# --------------------------------------------------------------------------------------------------


def test_minibatch_stddev_by_hand_for_images_and_the_toy_ensemble():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)  # N = 4, groups of 2
    y = minibatch_stddev(x, group_size=2, batch_dim=0)
    assert y.shape == (4, 3, 3, 3)
    assert torch.equal(y[:, :2], x)
    for n in range(4):
        group = [i for i in range(4) if i % 2 == n % 2]  # ProGAN's reshape(G, N/G): n mod N/G
        values = []
        for c in range(2):
            for h in range(3):
                for w in range(3):
                    v = [x[i, c, h, w].item() for i in group]
                    mean = sum(v) / len(v)
                    values.append((sum((a - mean) ** 2 for a in v) / len(v) + 1e-8) ** 0.5)
        expected = sum(values) / len(values)
        torch.testing.assert_close(y[n, 2], torch.full((3, 3), expected, dtype=torch.float64))
    t = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)  # (E, B, C): whole batch per member
    z = MinibatchStdDev(group_size=None, batch_dim=1)(t)
    assert z.shape == (2, 5, 4)
    for e in range(2):
        expected = ((t[e] - t[e].mean(0)).square().mean(0) + 1e-8).sqrt().mean()
        torch.testing.assert_close(z[e, :, 3], expected.expand(5))
    with pytest.raises(ConfigError, match="groups of 4"):
        minibatch_stddev(torch.zeros(6, 2), 4, 0)


def test_linear_maxout_by_hand():
    layer = LinearMaxout(members=2, in_features=3, out_features=2, pieces=3)
    layer.reset_parameters([torch.Generator().manual_seed(s) for s in (0, 1)])
    x = torch.randn(2, 4, 3)
    y = layer(x)
    W, b = layer.linear.weight, layer.linear.bias  # (E, 3, 6), (E, 1, 6)
    for e in range(2):
        for n in range(4):
            for i in range(2):
                pieces = [(x[e, n] @ W[e, :, i * 3 + j] + b[e, 0, i * 3 + j]).item() for j in range(3)]
                assert y[e, n, i].item() == pytest.approx(max(pieces), abs=1e-6)
    assert torch.equal(maxout(torch.tensor([[0.0, -1.0, 2.0, 3.0]]), 2), torch.tensor([[0.0, 3.0]]))


def test_maxout_D_input_gradient_is_per_sample():
    D = ToyDiscriminator(members=2, hidden=6, layers=2, activation="maxout", pieces=5)
    x = torch.randn(2, 7, 2, requires_grad=True)
    (batch_grad,) = torch.autograd.grad(D(x).sum(), x)
    for n in range(7):
        xn = x[:, n : n + 1].detach().requires_grad_(True)
        (own,) = torch.autograd.grad(D(xn).sum(), xn)
        torch.testing.assert_close(batch_grad[:, n : n + 1], own)


@pytest.mark.parametrize("penalty", [None, *PENALTIES])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_the_maxout_D_trains_under_every_objective_and_penalty(objective, penalty):
    module = GANModule(
        *toy(2, activation="maxout"), objective=objective, regularizers=[penalty] if penalty else []
    )
    before = copy.deepcopy(module.D.state_dict())
    fit(module, 3, batch_size=8)
    assert module.d_steps == 3 and module.g_steps == 3
    assert all(torch.isfinite(v).all() for v in module.last_losses.values())
    assert any(not torch.equal(before[k], v) for k, v in module.D.state_dict().items())


def test_minibatch_std_D_trains_with_packing_and_warns_with_an_input_gradient_penalty():
    with pytest.warns(UserWarning, match="not exactly per sample"):
        module = GANModule(
            *toy(2, 2, minibatch_std=True), regularizers=["wgan_gp"], remedies=Remedies(pack=2)
        )
    fit(module, 2, batch_size=6)
    assert torch.isfinite(module.last_losses["g/loss"]).all()


# --------------------------------------------------------------------------------------------------
# PacGAN's initialisation
# --------------------------------------------------------------------------------------------------


def test_pacgan_init_is_normal_0_02_with_zero_biases_and_per_member():
    D = ToyDiscriminator(members=3, hidden=200, layers=3, activation="maxout", init="normal", seed=4)
    for name, p in D.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        else:
            assert p.std().item() == pytest.approx(0.02, rel=0.03), name
            assert p.mean().abs().item() < 0.002, name
    for k in range(3):  # member k is the 1-member net with seed 4 + k
        single = ToyDiscriminator(
            members=1, hidden=200, layers=3, activation="maxout", init="normal", seed=4 + k
        )
        for name, value in member(D, k).items():
            assert torch.equal(value, single.state_dict()[name]), name
    G = ToyGenerator(members=1, hidden=16, init="normal")
    assert all(not n.endswith("bias") for n, _ in G.net[0].named_parameters())  # no bias before BatchNorm


# --------------------------------------------------------------------------------------------------
# Unrolled GAN
# --------------------------------------------------------------------------------------------------


def test_unrolled_0_is_the_plain_run_bit_for_bit(monkeypatch):
    """k = 0 through the look-ahead (``functional_call`` over D's detached parameters and cloned
    buffers, no update) gives G the same logits and the same gradient as D itself, bit for bit; and
    a fit with ``remedies.unrolled_steps=0`` never enters the look-ahead."""
    torch.manual_seed(0)
    module = GANModule(*toy(), objective="non_saturating", seed=1)
    opt_g, opt_d = module.configure_optimizers()
    module.optimizers = lambda: (opt_g, opt_d)
    G, D = module.G, module.D
    z, real = torch.randn(2, 6, 2), torch.randn(2, 6, 2)
    D_0 = lookahead(module, real, G(z))  # unrolled_steps = 0: zero look-ahead updates
    ours = torch.autograd.grad(module.objective.g_loss(D_0(G(z))).sum(), list(G.parameters()))
    plain = torch.autograd.grad(module.objective.g_loss(D(G(z))).sum(), list(G.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ours, plain, strict=True))
    assert torch.equal(D_0(real), D(real))

    fitted = GANModule(*toy(), objective="non_saturating", seed=1, remedies=Remedies(unrolled_steps=0))
    monkeypatch.setattr(gan_lab.module, "lookahead", None)  # calling it would fail the fit
    fit(fitted, 4)
    assert fitted.g_steps == 4


def _tiny(dtype=torch.float64):
    G = ToyGenerator(members=1, hidden=3, layers=1).to(dtype)
    D = ToyDiscriminator(members=1, hidden=3, layers=1, activation="tanh").to(dtype)
    return G, D


def _hand_d(theta, x):
    """D(x) = tanh(x W1 + b1) w2 + b2, written out: x (1, B, 2) -> (1, B)."""
    W1, b1, w2, b2 = theta
    return (torch.tanh(x @ W1 + b1) * w2.transpose(1, 2)).sum(-1) + b2[..., 0]


def _hand_lookahead_grad(G, D, z, real, opt_name, lr, state=None):
    """G's gradient of the non-saturating loss against D after one look-ahead step of SGD or Adam,
    the D loss and the update written out by hand."""
    fake = G(z)
    theta = [p.detach().clone().requires_grad_(True) for p in D.parameters()]

    def softplus(t):
        return torch.nn.functional.softplus(t)

    d_loss = softplus(-_hand_d(theta, real)).mean() + softplus(_hand_d(theta, fake)).mean()
    grads = torch.autograd.grad(d_loss, theta, create_graph=True)
    if opt_name == "SGD":
        new = [p - lr * g for p, g in zip(theta, grads)]
    else:  # Adam(β = (0.5, 0.9), ε = 1e-8) at step t with moments (m, v) of the state
        b1, b2, eps = 0.5, 0.9, 1e-8
        new = []
        for p, g, (t, m, v) in zip(theta, grads, state):
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            new.append(p - lr * (m / (1 - b1 ** (t + 1))) / ((v / (1 - b2 ** (t + 1))).sqrt() + eps))
    g_loss = softplus(-_hand_d(new, fake)).mean()
    return torch.autograd.grad(g_loss, list(G.parameters()))


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "Adam after a step"])
def test_unrolled_1_gradient_equals_a_hand_written_look_ahead(opt_name):
    torch.manual_seed(0)
    G, D = _tiny()
    lr = 0.1
    factory = (
        partial(torch.optim.SGD, lr=lr)
        if opt_name == "SGD"
        else partial(torch.optim.Adam, lr=lr, betas=(0.5, 0.9))
    )
    module = GANModule(
        G, D, objective="non_saturating", remedies=Remedies(unrolled_steps=1), optimizer_d=factory
    )
    opt_g, opt_d = module.configure_optimizers()
    state = [(0, torch.zeros_like(p), torch.zeros_like(p)) for p in D.parameters()]
    if opt_name == "Adam after a step":  # the look-ahead continues D's Adam state (t = 1, m, v)
        for p in D.parameters():
            p.grad = torch.randn_like(p)
        opt_d.step()
        state = [(1, opt_d.state[p]["exp_avg"], opt_d.state[p]["exp_avg_sq"]) for p in D.parameters()]
    module.optimizers = lambda: (opt_g, opt_d)
    z = torch.randn(1, 5, 2, dtype=torch.float64)
    real = torch.randn(1, 5, 2, dtype=torch.float64)
    D_before = copy.deepcopy(D.state_dict())

    fake = G(z)
    D_k = lookahead(module, real, fake)
    g_loss = module.objective.g_loss(D_k(fake)).mean(-1).sum()
    ours = torch.autograd.grad(g_loss, list(G.parameters()))
    by_hand = _hand_lookahead_grad(G, D, z, real, "SGD" if opt_name == "SGD" else "Adam", lr, state)
    for name, a, b in zip([n for n, _ in G.named_parameters()], ours, by_hand, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    # the look-ahead leaves D's parameters as they were; without it the gradient differs (the
    # second-order term). D's buffers: test_the_look_ahead_leaves_Ds_buffers_alone
    for k, v in D.state_dict().items():
        assert torch.equal(v, D_before[k])
    plain = torch.autograd.grad(module.objective.g_loss(D(G(z))).mean(-1).sum(), list(G.parameters()))
    assert any(not torch.allclose(a, b) for a, b in zip(ours, plain))


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_unrolled_trains_under_every_objective_with_packing(objective):
    module = GANModule(*toy(2, 2), objective=objective, remedies=Remedies(pack=2, unrolled_steps=2))
    fit(module, 2, batch_size=6)
    assert module.g_steps == 2 and all(torch.isfinite(v).all() for v in module.last_losses.values())


def test_the_look_ahead_leaves_Ds_buffers_alone():
    """A D with spectral norm (power-iteration vectors ``u``, ``v``) and BatchNorm (running
    statistics): k = 3 look-ahead forwards advance clones of its buffers, never D's own."""
    from gan_lab.nets.spectral import SNLinear, spectral_norm_

    torch.manual_seed(0)
    D = torch.nn.Sequential(
        spectral_norm_(SNLinear(2, 6), torch.Generator().manual_seed(1)),
        torch.nn.BatchNorm1d(6),
        torch.nn.Tanh(),
        torch.nn.Linear(6, 1),
        torch.nn.Flatten(0),
    )
    opt = torch.optim.Adam(D.parameters(), lr=0.1)
    before = {n: b.clone() for n, b in D.named_buffers()}
    assert any("_u" in n for n in before) and any("running_mean" in n for n in before)
    x = torch.randn(8, 2, requires_grad=True)

    theta = lookahead_parameters(D, opt, lambda critic: critic(x).mean(), 3)
    assert all(torch.equal(b, before[n]) for n, b in D.named_buffers())
    assert int(theta["1.num_batches_tracked"]) == 3  # the look-ahead's own copies moved
    assert not torch.equal(theta["1.running_mean"], before["1.running_mean"])


def test_the_look_ahead_projects_each_update_as_weight_clipping_does(monkeypatch):
    """With weight clipping D's update is Adam, then clamp to [-c, c]: the module's look-ahead θ_k
    stays in the box as D's own parameters do (unprojected, 3 Adam steps of lr 0.01 leave it)."""
    torch.manual_seed(0)
    module = GANModule(
        *toy(),
        objective="wasserstein",
        regularizers=["weight_clipping"],
        remedies=Remedies(unrolled_steps=3),
        optimizer_d=partial(torch.optim.Adam, lr=0.01),
    )
    opt_g, opt_d = module.configure_optimizers()
    module.optimizers = lambda: (opt_g, opt_d)
    module.constraints[0].apply_(module.D)
    seen = []
    monkeypatch.setattr(
        gan_lab.unrolled, "lookahead_parameters", lambda *a: seen.append(lookahead_parameters(*a)) or seen[-1]
    )
    real, fake = torch.randn(2, 6, 2), module.G(torch.randn(2, 6, 2))
    critic = lookahead(module, real, fake)
    assert torch.isfinite(critic(fake)).all()
    names, clip = dict(module.D.named_parameters()), module.constraints[0].clip
    unprojected = lookahead_parameters(
        module.D, opt_d, lambda c: module.objective.d_loss(c(real), c(fake)).mean(), 3
    )
    assert max(float(seen[0][n].detach().abs().max()) for n in names) <= clip
    assert max(float(unprojected[n].detach().abs().max()) for n in names) > clip


def test_update_step_matches_torch_optim_for_adamw_and_nesterov_sgd():
    for opt_cls, kw in (
        (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
        (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
        (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ):
        p = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
        opt = opt_cls([p], **kw)
        for _ in range(3):
            g = torch.randn(4, dtype=torch.float64)
            state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()}
            if "step" in state:
                state["step"] = float(state["step"])
            expected, _ = update_step(opt, p.detach().clone(), g, opt.param_groups[0], state)
            p.grad = g
            opt.step()
            torch.testing.assert_close(p.detach(), expected, msg=opt_cls.__name__)


def test_unrolled_refuses_an_optimizer_it_cannot_differentiate():
    with pytest.raises(ConfigError, match="RMSprop"):
        check_optimizer(torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(1))]))
    with pytest.raises(ConfigError, match="amsgrad"):
        check_optimizer(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], amsgrad=True))


def test_lookahead_parameters_zero_gradient_entries_stay_finite():
    """A parameter whose gradient is exactly 0 (Adam's sqrt(v) at v = 0) gives no NaN in G's gradient."""
    D = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        D.weight[0, 1] = 0.0
    opt = torch.optim.Adam(D.parameters(), lr=0.1)
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64, requires_grad=True)  # d/dw_1 = x_1 = 0

    params = lookahead_parameters(D, opt, lambda critic: critic(x).sum(), 1)
    (grad,) = torch.autograd.grad(sum(p.sum() for p in params.values()), x)
    assert torch.isfinite(grad).all()


def test_packed_unrolled_maxout_members_train_as_single_runs():
    """Member k of a packed, unrolled, maxout ensemble is the 1-member run with seed + k."""

    def run(members, seed):
        G, D = toy(members, 2, activation="maxout", init="normal")
        module = GANModule(
            G, D, objective="non_saturating", seed=seed, remedies=Remedies(pack=2, unrolled_steps=1)
        )
        fit(module, 4, batch_size=6)
        return module

    ens = run(2, 3)
    for k in range(2):
        single = run(1, 3 + k)
        for net_e, net_1 in ((ens.G, single.G), (ens.D, single.D)):
            ref = net_1.state_dict()
            for name, value in member(net_e, k).items():
                torch.testing.assert_close(value, ref[name], rtol=0, atol=1e-6, msg=name)
