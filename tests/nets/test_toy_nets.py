"""Tests of the toy ensemble nets (gan_lab.nets.toy, gan_lab.nets.ensemble).

The seed-ensemble contract (docs/DESIGN.md): member ``k`` of an E-member net built with seed ``s`` starts
exactly like a 1-member net built with seed ``s + k``, and, trained on the sum over members of each
member's mean loss with Adam (elementwise), it stays equal to that single run. The independent
references are ``nn.functional.linear`` and ``nn.BatchNorm1d`` applied member by member, and E
separate 1-member runs.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from gan_lab.errors import ConfigError
from gan_lab.losses.objectives import minimax_d_loss, non_saturating_g_loss
from gan_lab.module import reduce_members
from gan_lab.nets import EnsembleBatchNorm, EnsembleLinear, ToyDiscriminator, ToyGenerator, member

# --------------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("E", [1, 3])
def test_generator_maps_noise_to_2d_points_per_member(E):
    G = ToyGenerator(members=E, z_dim=5, hidden=16, layers=2, seed=0)
    assert G(torch.randn(E, 7, 5)).shape == (E, 7, 2)  # (E, B, z) -> (E, B, 2)
    G3 = ToyGenerator(members=E, z_dim=5, hidden=16, layers=1, out_dim=3, seed=0)
    assert G3(torch.randn(E, 7, 5)).shape == (E, 7, 3)


@pytest.mark.parametrize("E", [1, 3])
def test_discriminator_maps_points_to_one_logit_per_sample(E):
    D = ToyDiscriminator(members=E, hidden=16, layers=2, seed=0)
    assert D(torch.randn(E, 7, 2)).shape == (E, 7)  # (E, B, 2) -> (E, B)


# --------------------------------------------------------------------------------------------------
# EnsembleLinear == a linear map per member
# --------------------------------------------------------------------------------------------------


def test_ensemble_linear_known_values_by_hand():
    lin = EnsembleLinear(2, 2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[[1.0], [2.0]], [[-1.0], [0.5]]]))  # (E=2, in=2, out=1)
        lin.bias.copy_(torch.tensor([[[10.0]], [[0.0]]]))  # (E, 1, out)
    x = torch.tensor([[[1.0, 1.0], [3.0, -1.0]], [[2.0, 4.0], [0.0, 0.0]]])  # (E=2, B=2, 2)
    # member 0: 1 + 2 + 10 = 13, 3 - 2 + 10 = 11; member 1: -2 + 2 = 0, 0
    expected = torch.tensor([[[13.0], [11.0]], [[0.0], [0.0]]])
    torch.testing.assert_close(lin(x), expected, rtol=0, atol=0)


def test_ensemble_linear_equals_functional_linear_per_member():
    E, B, d_in, d_out = 3, 5, 4, 6
    lin = EnsembleLinear(E, d_in, d_out)
    lin.reset_parameters([torch.Generator().manual_seed(s) for s in range(E)])
    x = torch.randn(E, B, d_in, generator=torch.Generator().manual_seed(9))
    y = lin(x)
    for e in range(E):
        # x_e @ W_e + b_e, with nn.functional.linear's (out, in) weight layout
        ref = nn.functional.linear(x[e], lin.weight[e].T, lin.bias[e, 0])
        torch.testing.assert_close(y[e], ref, rtol=1e-6, atol=1e-6)


def test_ensemble_linear_init_follows_nn_linear_bound():
    lin = EnsembleLinear(4, 25, 50)
    lin.reset_parameters([torch.Generator().manual_seed(s) for s in range(4)])
    bound = 1.0 / math.sqrt(25)  # U(-1/sqrt(in), 1/sqrt(in)), as nn.Linear
    for p in (lin.weight, lin.bias):
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.9 * bound  # spread over the whole interval, not a constant
    assert not torch.equal(lin.weight[0], lin.weight[1])


@pytest.mark.parametrize(
    "d_out",
    [
        2,
        32,
        1,  # D's head: bmm would round it differently for E = 1 than for E > 1
    ],
)
def test_ensemble_linear_output_does_not_depend_on_ensemble_size(d_out):
    """Member k computes bit for bit the same in an E=4 ensemble as alone (E=1): forward and grads."""
    E, B, d_in = 4, 64, 32
    g = torch.Generator().manual_seed(0)
    lin = EnsembleLinear(E, d_in, d_out)
    lin.reset_parameters([torch.Generator().manual_seed(s) for s in range(E)])
    x = torch.randn(E, B, d_in, generator=g)
    grad_out = torch.randn(E, B, d_out, generator=g)
    y = lin(x)
    y.backward(grad_out)
    for k in range(E):
        one = EnsembleLinear(1, d_in, d_out)
        with torch.no_grad():
            one.weight.copy_(lin.weight[k : k + 1])
            one.bias.copy_(lin.bias[k : k + 1])
        y1 = one(x[k : k + 1])
        y1.backward(grad_out[k : k + 1])
        for what, a, b in (
            ("output", y[k : k + 1], y1),
            ("weight grad", lin.weight.grad[k : k + 1], one.weight.grad),
            ("bias grad", lin.bias.grad[k : k + 1], one.bias.grad),
        ):
            assert torch.equal(a, b), f"member {k}: {what} differs by {(a - b).abs().max().item():.1e}"


# --------------------------------------------------------------------------------------------------
# EnsembleBatchNorm == nn.BatchNorm1d per member
# --------------------------------------------------------------------------------------------------


def _bn_pair(E: int, C: int) -> tuple[EnsembleBatchNorm, list[nn.BatchNorm1d]]:
    """An ensemble BN with non-trivial γ, β, and E separate BatchNorm1d holding member e's γ, β."""
    ens = EnsembleBatchNorm(E, C)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        ens.bn.weight.copy_(1.0 + torch.rand(E * C, generator=g))
        ens.bn.bias.copy_(torch.randn(E * C, generator=g))
    refs = []
    for e in range(E):
        bn = nn.BatchNorm1d(C)
        with torch.no_grad():
            bn.weight.copy_(ens.bn.weight[e * C : (e + 1) * C])
            bn.bias.copy_(ens.bn.bias[e * C : (e + 1) * C])
        refs.append(bn)
    return ens, refs


def test_ensemble_batchnorm_train_mode_equals_batchnorm1d_per_member():
    E, B, C = 3, 16, 4
    ens, refs = _bn_pair(E, C)
    g = torch.Generator().manual_seed(0)
    for step in range(3):  # several steps: running stats accumulate with momentum 0.1
        # members with different scales/offsets, so that mixing members would show
        x = torch.randn(E, B, C, generator=g) * torch.tensor([1.0, 5.0, 0.2]).view(E, 1, 1) + step
        y = ens(x)
        assert y.shape == (E, B, C)
        for e, bn in enumerate(refs):
            torch.testing.assert_close(y[e], bn(x[e]), rtol=1e-5, atol=1e-5)
    for e, bn in enumerate(refs):
        sl = slice(e * C, (e + 1) * C)
        torch.testing.assert_close(ens.bn.running_mean[sl], bn.running_mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(ens.bn.running_var[sl], bn.running_var, rtol=1e-6, atol=1e-6)
    assert ens.bn.num_batches_tracked.item() == 3


def test_ensemble_batchnorm_eval_mode_uses_running_stats():
    E, B, C = 2, 8, 3
    ens, _ = _bn_pair(E, C)
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        ens(3.0 + 2.0 * torch.randn(E, B, C, generator=g))  # move the running stats off (0, 1)
    ens.eval()
    x = torch.randn(E, B, C, generator=g)
    y = ens(x)
    rm = ens.bn.running_mean.view(E, 1, C)
    rv = ens.bn.running_var.view(E, 1, C)
    w, b = ens.bn.weight.view(E, 1, C), ens.bn.bias.view(E, 1, C)
    by_hand = (x - rm) / torch.sqrt(rv + ens.bn.eps) * w + b
    torch.testing.assert_close(y, by_hand, rtol=1e-5, atol=1e-5)
    # eval mode is not the batch statistics: the train-mode output of this batch differs
    ens.train()
    assert (ens(x) - y).abs().max() > 0.1


# --------------------------------------------------------------------------------------------------
# Initialisation: member k of seed s == the 1-member net of seed s + k
# --------------------------------------------------------------------------------------------------


NETS = {
    "G": lambda E, s: ToyGenerator(members=E, z_dim=3, hidden=8, layers=2, seed=s),
    "D": lambda E, s: ToyDiscriminator(members=E, hidden=8, layers=2, seed=s),
}


@pytest.mark.parametrize("kind", ["G", "D"])
def test_member_k_starts_like_single_net_with_seed_plus_k(kind):
    E, s = 3, 11
    ens = NETS[kind](E, s)
    for k in range(E):
        single = NETS[kind](1, s + k).state_dict()
        mk = member(ens, k)
        assert mk.keys() == single.keys()
        for name, t in single.items():
            assert torch.equal(mk[name], t), f"member {k}, {name}"
    # and the members are distinct networks
    m0, m1 = member(ens, 0), member(ens, 1)
    for name in m0:
        if name.endswith(("weight", "bias")) and ".bn." not in name:  # BN's γ=1, β=0 are shared by design
            assert not torch.equal(m0[name], m1[name]), name


def test_generator_and_discriminator_draw_from_distinct_streams():
    # same seed, same first-layer shape (2 -> 8): different weights, since G and D use distinct streams
    G = ToyGenerator(members=1, z_dim=2, hidden=8, layers=1, seed=5)
    D = ToyDiscriminator(members=1, hidden=8, layers=1, seed=5)
    assert G.net[0].weight.shape == D.net[0].weight.shape
    assert not torch.equal(G.net[0].weight, D.net[0].weight)


def test_reset_parameters_needs_one_seed_per_member():
    G = ToyGenerator(members=3, hidden=8, layers=1)
    with pytest.raises(ConfigError, match="2 seeds for 3"):
        G.reset_parameters([0, 1])


# --------------------------------------------------------------------------------------------------
# THE ensemble contract: E members train exactly as E separate runs
# --------------------------------------------------------------------------------------------------

E_TRAIN, B_TRAIN, Z_DIM, HIDDEN, LAYERS, STEPS, SEED = 4, 64, 2, 32, 2, 50, 2


def _adam(params) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))


def _train(G: ToyGenerator, D: ToyDiscriminator, real: Tensor, z_d: Tensor, z_g: Tensor) -> None:
    """Alternate a non-saturating D step and G step on fixed data; loss = Σ_e mean_b loss[e, b]."""
    opt_g, opt_d = _adam(G.parameters()), _adam(D.parameters())
    for t in range(real.shape[0]):
        with torch.no_grad():
            fake = G(z_d[t])
        d_loss = reduce_members(minimax_d_loss(D(real[t]), D(fake)))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = reduce_members(non_saturating_g_loss(D(G(z_g[t]))))
        opt_g.zero_grad(set_to_none=True)  # also clears what this step left on D before D's next step
        g_loss.backward()
        opt_g.step()
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss)


def _max_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, float]:
    return {n: (a[n].double() - b[n].double()).abs().max().item() for n in b}


@pytest.mark.parametrize(
    "batch_norm",
    [
        pytest.param(False, id="no_bn"),
        pytest.param(True, id="bn"),  # BN + Adam amplify any 1-ulp difference: a strict check
    ],
)
def test_ensemble_members_train_exactly_as_separate_runs(batch_norm):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(123)
    real = torch.randn(STEPS, E_TRAIN, B_TRAIN, 2, generator=g) * 0.5 + 1.0  # (T, E, B, 2)
    z_d = torch.randn(STEPS, E_TRAIN, B_TRAIN, Z_DIM, generator=g)  # (T, E, B, z)
    z_g = torch.randn(STEPS, E_TRAIN, B_TRAIN, Z_DIM, generator=g)

    def nets(E: int, seed: int) -> tuple[ToyGenerator, ToyDiscriminator]:
        G = ToyGenerator(E, Z_DIM, HIDDEN, LAYERS, batch_norm=batch_norm, seed=seed)
        return G, ToyDiscriminator(E, 2, HIDDEN, LAYERS, seed=seed)

    G, D = nets(E_TRAIN, SEED)
    init = [(member(G, k), member(D, k)) for k in range(E_TRAIN)]
    _train(G, D, real, z_d, z_g)

    singles = []
    for k in range(E_TRAIN):
        G1, D1 = nets(1, SEED + k)  # the same initial weights as member k (tested above)
        sl = slice(k, k + 1)
        _train(G1, D1, real[:, sl], z_d[:, sl], z_g[:, sl])
        singles.append((G1.state_dict(), D1.state_dict()))

    for k in range(E_TRAIN):
        for ens, single, start in zip((G, D), singles[k], init[k]):
            mk = member(ens, k)
            # the members moved: every parameter and running statistic changed from its start
            moved = _max_diff(mk, start)
            assert all(v > 0 for v in moved.values()), moved
            assert max(moved.values()) > 1e-2, moved
            diff = _max_diff(mk, single)
            bad = {n: v for n, v in diff.items() if v > 1e-6}
            assert not bad, f"member {k} of {type(ens).__name__} departs from its single run: {bad}"
    # control: the tolerance separates runs; member 0 is far from the single run of another seed
    assert max(_max_diff(member(G, 0), singles[1][0]).values()) > 1e-3


def test_generator_has_no_parameter_that_batchnorm_cancels():
    """Every parameter of G gets a real gradient (float64: a cancelled one gets ~1e-17).

    A bias in a linear layer followed by BatchNorm is cancelled by the mean subtraction: its gradient
    is pure round-off, which Adam (``m / (sqrt(v) + eps)``) turns into lr-sized random steps.
    """
    G = ToyGenerator(members=2, z_dim=2, hidden=16, layers=2, batch_norm=True, seed=0).double().train()
    z = torch.randn(2, 32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    reduce_members(G(z).sin().sum(-1)).backward()  # any loss
    tiny = {n: p.grad.abs().max().item() for n, p in G.named_parameters() if p.grad.abs().max() < 1e-10}
    assert not tiny, f"parameters with no effect on the training output: {tiny}"


# --------------------------------------------------------------------------------------------------
# D holds no BatchNorm: per-sample input gradients depend on that sample alone
# --------------------------------------------------------------------------------------------------


def _per_sample_grads_are_independent(net: nn.Module, x: Tensor) -> bool:
    """grad of net(x)^2 summed, wrt x[e, b], vs the same sample fed alone (a batch of one)."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).square().sum(), x)  # (E, B, d)
    B = x.shape[1]
    for b in range(B):
        xb = x.detach()[:, b : b + 1].clone().requires_grad_(True)  # (E, 1, d): sample b of each member
        (gb,) = torch.autograd.grad(net(xb).square().sum(), xb)
        if not torch.allclose(grad[:, b : b + 1], gb, rtol=1e-10, atol=1e-12):
            return False
    return True


def test_discriminator_per_sample_gradients_are_independent_of_the_batch():
    D = ToyDiscriminator(members=2, hidden=16, layers=3, seed=0).double().train()
    assert not any(isinstance(m, (nn.modules.batchnorm._BatchNorm, EnsembleBatchNorm)) for m in D.modules())
    x = torch.randn(2, 6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert _per_sample_grads_are_independent(D, x)


def test_per_sample_gradient_check_detects_batchnorm():
    # control for the test above: a net with BatchNorm (G in train mode) couples the samples
    G = ToyGenerator(members=2, z_dim=2, hidden=16, layers=2, batch_norm=True, seed=0).double().train()
    x = torch.randn(2, 6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # (a batch of one cannot be batch-normalised in train mode: compare a sub-batch of two instead)
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(G(xx).square().sum(), xx)
    x2 = x[:, :2].clone().requires_grad_(True)
    (grad2,) = torch.autograd.grad(G(x2).square().sum(), x2)
    assert not torch.allclose(grad[:, :2], grad2, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------------------
# Bad configuration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ToyGenerator, ToyDiscriminator])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": 0}, "'hidden' must be an integer >= 1"),
        ({"layers": 0}, "'layers' must be an integer >= 1"),
        ({"members": 0}, "'members' must be an integer >= 1"),
        ({"members": True}, "'members' must be an integer >= 1"),
        ({"hidden": 2.5}, "'hidden' must be an integer >= 1"),
        ({"activation": "nope"}, "unknown activation 'nope'; valid activations: leaky_relu, "),
        ({"init": "xavier"}, "unknown init 'xavier'; valid inits: normal, uniform"),
    ],
)
def test_bad_config_raises_config_error(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


def test_maxout_is_a_discriminator_activation_only():
    with pytest.raises(ConfigError, match="valid activations: leaky_relu, maxout, relu, tanh"):
        ToyDiscriminator(activation="nope")
    with pytest.raises(ConfigError, match="valid activations: leaky_relu, relu, tanh"):
        ToyGenerator(activation="maxout")
