"""GANModule: the D/G alternation, counters, lazy regularization, refusals, member equivalence."""

import copy
from functools import partial

import lightning as L
import pytest
import torch
from tiny_fit import quiet_trainer

from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule, correct_for_lazy_interval, reduce_members
from gan_lab.nets import ToyDiscriminator, ToyGenerator, member
from gan_lab.regularizers import R1, WGANGP, WeightClipping
from gan_lab.regularizers.image import PixelLoss
from gan_lab.settings import EMA, Paired

SETTINGS = {"ema": EMA, "paired": Paired}


def nets(members=2, **kw):
    return ToyGenerator(members=members, hidden=16, layers=2), ToyDiscriminator(
        members=members, hidden=16, layers=2
    )


def fit(module, batches, batch_size=32, callbacks=()):
    trainer = quiet_trainer(batches, callbacks)
    trainer.fit(module, ToyMixtureDataModule("ring8", batch_size=batch_size))
    return trainer


def test_reduce_members_is_sum_of_member_means():
    loss = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    assert reduce_members(loss) == pytest.approx(2.0 + 20.0)


@pytest.mark.parametrize("n_critic", [1, 3])
def test_counters_follow_n_critic(n_critic):
    module = GANModule(*nets(), objective="hinge", n_critic=n_critic)
    trainer = fit(module, batches=12)
    assert module.d_steps == 12
    assert module.g_steps == 12 // n_critic
    # Lightning's global_step counts the optimizer steps of both players.
    assert trainer.global_step == module.d_steps + module.g_steps


def test_max_g_steps_stops_training():
    module = GANModule(*nets(), n_critic=2, max_g_steps=3)
    fit(module, batches=50)
    assert module.g_steps == 3 and module.d_steps == 6


def test_generator_step_leaves_no_gradient_in_D_and_D_step_none_in_G():
    """G's step must not touch D's .grad (toggled_optimizer), nor D's step G's."""
    module = GANModule(*nets(), objective="relativistic")  # relativistic: D(real) in the G step too
    seen = {}
    d_step, g_step = module.discriminator_step, module.generator_step

    def d_wrapped(*a):
        g_before = [None if p.grad is None else p.grad.clone() for p in module.G.parameters()]
        d_step(*a)
        seen.setdefault("g_grad_unchanged", []).extend(
            (b is None and p.grad is None) or (b is not None and torch.equal(b, p.grad))
            for b, p in zip(g_before, module.G.parameters())
        )
        seen["d_grads_after_d"] = [p.grad.clone() for p in module.D.parameters()]

    def g_wrapped(*a):
        g_step(*a)
        seen["d_grads_after_g"] = [p.grad.clone() for p in module.D.parameters()]
        seen["d_requires_grad"] = [p.requires_grad for p in module.D.parameters()]

    module.discriminator_step, module.generator_step = d_wrapped, g_wrapped
    fit(module, batches=3)
    assert all(seen["g_grad_unchanged"])  # fakes are drawn under no_grad in D's step
    for before, after in zip(seen["d_grads_after_d"], seen["d_grads_after_g"]):
        assert torch.equal(before, after)
    assert all(seen["d_requires_grad"])  # toggling is undone after the step


def test_ensemble_members_train_exactly_as_single_runs():
    """Member k of a 3-member module == a 1-member module with seed + k (data, noise, weights)."""
    seed = 5
    ens = GANModule(*nets(3), objective="non_saturating", seed=seed)
    fit(ens, batches=15)
    for k in range(3):
        single = GANModule(*nets(1), objective="non_saturating", seed=seed + k)
        fit(single, batches=15)
        for net_e, net_1 in ((ens.G, single.G), (ens.D, single.D)):
            ref = net_1.state_dict()
            for name, value in member(net_e, k).items():
                torch.testing.assert_close(value, ref[name], rtol=0, atol=1e-6, msg=name)


def test_lazy_r1_runs_every_k_steps_with_stylegan2_correction():
    """A lazy R1 (every = k) is its own D step on d_steps 0, k, 2k, ..., of gradient
    k · γ · ∇θ R1 with R1 = Σ_e mean_b ½‖∇ₓD(x)‖² (StyleGAN2), and D's optimizer runs with
    lr · c and β^c, c = k / (k + 1). With SGD the lazy step's update is exactly
    -lr · c · k · γ · ∇θ R1, computed here by hand from D's weights before it and the real batch."""
    k, gamma, lr, batches = 4, 2.0, 0.05, 8
    steps = []  # (d_steps, D's parameters before the step, after it), one per D optimizer step
    reals = []  # the real batch of each training batch

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            before = [p.detach().clone() for group in self.param_groups for p in group["params"]]
            out = super().step(closure)
            after = [p.detach().clone() for group in self.param_groups for p in group["params"]]
            steps.append((module.d_steps, before, after))
            return out

    class RecordReal(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            reals.append(batch.detach().clone())

    module = GANModule(
        *nets(),
        regularizers=[R1(weight=gamma, every=k)],
        objective="non_saturating",
        optimizer_d=partial(RecordingSGD, lr=lr),
    )
    trainer = fit(module, batches=batches, callbacks=[RecordReal()])
    c = k / (k + 1)
    assert trainer.optimizers[1].param_groups[0]["lr"] == pytest.approx(lr * c)
    # one D step per batch, and a second one (the lazy R1 step) on d_steps 0 and k
    assert [d for d, *_ in steps] == [0, 0, 1, 2, 3, 4, 4, 5, 6, 7]
    lazy = [(d, before, after) for i, (d, before, after) in enumerate(steps) if i and steps[i - 1][0] == d]
    assert [d for d, *_ in lazy] == [0, k]
    for d, before, after in lazy:
        D = copy.deepcopy(module.D)
        with torch.no_grad():
            for p, b in zip(D.parameters(), before, strict=True):
                p.copy_(b)
        x = reals[d].requires_grad_(True)  # (E, B, 2)
        (grad_x,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)  # per sample: D mixes none
        r1 = (0.5 * grad_x.square().sum(-1)).mean(-1).sum()  # Σ_e mean_b ½‖∇ₓD(x)‖²
        grads = torch.autograd.grad(r1, list(D.parameters()), allow_unused=True, materialize_grads=True)
        for (name, _), a, b, g in zip(D.named_parameters(), after, before, grads, strict=True):
            torch.testing.assert_close(
                a - b,
                -lr * c * k * gamma * g,
                rtol=1e-4,
                atol=1e-7,  # float32 rounding of weights of size ~1
                msg=lambda m, d=d, name=name: f"the lazy step at d_steps {d}, {name}: {m}",
            )
    # 8 D steps + 2 lazy R1 steps (d_steps 0 and 4) + 8 G steps
    assert trainer.global_step == 8 + 2 + 8

    # Adam: lr and both betas corrected on D's optimizer only
    module = GANModule(*nets(), regularizers=[R1(weight=1.0, every=k)], objective="non_saturating")
    trainer = fit(module, batches=1)
    opt_d = trainer.optimizers[1]
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-4 * c)
    assert opt_d.param_groups[0]["betas"] == pytest.approx((0.5**c, 0.999**c))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(2e-4)  # G untouched
    assert trainer.optimizers[0].param_groups[0]["betas"] == pytest.approx((0.5, 0.999))


def test_correct_for_lazy_interval_by_hand():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.0025, betas=(0.0, 0.99))
    correct_for_lazy_interval(opt, 16)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert opt.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (16 / 17))


def test_weight_clipping_bounds_D_after_training():
    module = GANModule(*nets(), objective="wasserstein", regularizers=[WeightClipping(0.01)], n_critic=1)
    fit(module, batches=3)
    assert max(p.abs().max().item() for p in module.D.parameters()) <= 0.01 + 1e-7


def test_ema_copy_tracks_generator():
    """G_ema is the EMA of G's weights over the G steps, θ_ema ← β θ_ema + (1 − β) θ from G's
    initial weights, computed here by hand in float64 from G's weights after each G step; its
    buffers (BatchNorm statistics) are G's. β = 0.75, not 0.5: swapping β and 1 − β must show."""
    beta, n_critic, batches = 0.75, 2, 8
    module = GANModule(*nets(), ema=EMA(beta=beta), n_critic=n_critic)
    ema = [p.detach().double().clone() for p in module.G.parameters()]  # θ_ema at the start: θ_0
    for p, e in zip(module.G_ema.parameters(), ema, strict=True):
        assert torch.equal(p.double(), e)
    after_g_steps = []

    class RecordG(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if pl_module.g_steps > len(after_g_steps):  # this batch made a G step
                after_g_steps.append([p.detach().double().clone() for p in pl_module.G.parameters()])

    fit(module, batches=batches, callbacks=[RecordG()])
    assert len(after_g_steps) == module.g_steps == batches // n_critic
    for theta in after_g_steps:
        ema = [beta * e + (1.0 - beta) * t for e, t in zip(ema, theta)]
    names = [name for name, _ in module.G.named_parameters()]
    for name, p, e in zip(names, module.G_ema.parameters(), ema, strict=True):
        torch.testing.assert_close(
            p.double(), e, rtol=1e-6, atol=1e-7, msg=lambda m, n=name: f"G_ema.{n}: {m}"
        )
    # the average is not G itself (else the recursion above would not be tested)
    assert any(not torch.allclose(a, b) for a, b in zip(module.G_ema.parameters(), module.G.parameters()))
    for (name, b_ema), b in zip(module.G_ema.named_buffers(), module.G.buffers(), strict=True):
        assert torch.equal(b_ema, b), name
    assert not any(p.requires_grad for p in module.G_ema.parameters())
    assert "G_ema.net.0.weight" in module.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_critic": 0}, "n_critic"),
        ({"n_critic": 1.5}, "n_critic"),
        ({"regularizers": [WeightClipping(), WGANGP()]}, "weight clipping"),
        ({"regularizers": ["r1", "r1"]}, "appears 2 times"),
        ({"regularizers": [PixelLoss()]}, "paired target"),
        ({"regularizers": ["nope"]}, "valid regularizers"),
        ({"objective": "nope"}, "valid objectives"),
        ({"ema": {"beta": 1.5}}, "ema.beta"),
        ({"ema": {"kimg": -1.0}}, "ema.kimg"),
        ({"max_g_steps": 0}, "max_g_steps"),
        ({"paired": {"adversarial_weight": -1.0}}, "paired.adversarial_weight"),
        ({"paired": {"adversarial_weight": 0.0}}, "nothing would train G"),
        ({"regularizers": [R1(every=2), WGANGP(every=4)]}, "different intervals"),
    ],
)
def test_impossible_combinations_are_refused_at_build(kwargs, message):
    """A settings dataclass (given as its fields) refuses its own bad fields; the module the rest."""
    with pytest.raises(ConfigError, match=message) as info:
        GANModule(*nets(), **{k: SETTINGS[k](**v) if k in SETTINGS else v for k, v in kwargs.items()})
    assert "\n" not in str(info.value)


def test_members_mismatch_refused():
    with pytest.raises(ConfigError, match="ensemble members"):
        GANModule(ToyGenerator(members=2, hidden=8), ToyDiscriminator(members=3, hidden=8))


def test_negative_regularizer_weight_refused():
    with pytest.raises(ConfigError, match=">= 0"):
        R1(weight=-1.0)
