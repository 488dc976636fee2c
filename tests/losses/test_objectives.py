"""Tests of the adversarial objectives (gan_lab.losses).

The independent reference is the naive textbook form of every loss (sigmoid, then log) evaluated
in float64 on moderate logits, where it is still accurate; the stable forms under test must agree
with it there, and stay finite where it overflows (logits of +-200 in float32).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from gan_lab.errors import ConfigError
from gan_lab.losses import OBJECTIVES, Objective, get_objective
from gan_lab.losses import objectives as fn

NAMES = ["minimax", "non_saturating", "wasserstein", "hinge", "least_squares", "relativistic"]


# --------------------------------------------------------------------------------------------------
# Independent reference: the naive formulas, per sample
# --------------------------------------------------------------------------------------------------


def _naive_d(name: str, r: Tensor, f: Tensor) -> Tensor:
    s = torch.sigmoid
    if name in ("minimax", "non_saturating"):
        return -torch.log(s(r)) - torch.log(1.0 - s(f))  # -log D(x) - log(1 - D(G(z)))
    if name == "wasserstein":
        return f - r
    if name == "hinge":
        return torch.clamp(1.0 - r, min=0.0) + torch.clamp(1.0 + f, min=0.0)
    if name == "least_squares":
        return 0.5 * (r - 1.0) ** 2 + 0.5 * f**2
    if name == "relativistic":
        return -torch.log(s(r - f))
    raise AssertionError(name)


def _naive_g(name: str, f: Tensor, r: Tensor) -> Tensor:
    s = torch.sigmoid
    if name == "minimax":
        return torch.log(1.0 - s(f))  # saturating: log(1 - D(G(z)))
    if name == "non_saturating":
        return -torch.log(s(f))
    if name in ("wasserstein", "hinge"):
        return -f
    if name == "least_squares":
        return 0.5 * (f - 1.0) ** 2
    if name == "relativistic":
        return -torch.log(s(f - r))
    raise AssertionError(name)


def _logits(*shape: int, seed: int = 0, dtype=torch.float64) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = 4.0 * torch.randn(*shape, generator=g, dtype=dtype)  # moderate: naive forms accurate
    f = 4.0 * torch.randn(*shape, generator=g, dtype=dtype)
    return r, f


# --------------------------------------------------------------------------------------------------
# Smoke, registry, bad input
# --------------------------------------------------------------------------------------------------


def test_registry_holds_exactly_the_six_objectives():
    assert sorted(OBJECTIVES) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_get_objective_by_name(name):
    obj = get_objective(name)
    assert isinstance(obj, Objective)
    assert isinstance(obj, OBJECTIVES[name])
    assert obj.name == name
    assert repr(obj) == f"{type(obj).__name__}()"


def test_get_objective_passes_instance_through():
    obj = fn.Hinge()
    assert get_objective(obj) is obj


def test_get_objective_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        get_objective("nope")
    msg = str(info.value)
    assert "nope" in msg
    for name in NAMES:
        assert name in msg
    assert "\n" not in msg


def test_flags():
    assert get_objective("relativistic").needs_real_for_g
    assert get_objective("wasserstein").needs_lipschitz
    for name in set(NAMES) - {"relativistic"}:
        assert not get_objective(name).needs_real_for_g
    for name in set(NAMES) - {"wasserstein"}:
        assert not get_objective(name).needs_lipschitz


def test_relativistic_g_loss_without_real_logits_raises():
    with pytest.raises(ValueError, match="real"):
        get_objective("relativistic").g_loss(torch.zeros(4))


def test_base_objective_is_abstract():
    with pytest.raises(NotImplementedError):
        Objective().d_loss(torch.zeros(2), torch.zeros(2))
    with pytest.raises(NotImplementedError):
        Objective().g_loss(torch.zeros(2))


# --------------------------------------------------------------------------------------------------
# Known values
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_values_match_naive_formulas(name):
    obj = get_objective(name)
    r, f = _logits(64)
    torch.testing.assert_close(obj.d_loss(r, f), _naive_d(name, r, f), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(obj.g_loss(f, r), _naive_g(name, f, r), rtol=1e-10, atol=1e-10)


def test_values_by_hand():
    log2 = torch.log(torch.tensor(2.0, dtype=torch.float64))
    z = torch.zeros(1, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    # D(x) = D(G(z)) = 1/2: both minimax terms are log 2.
    torch.testing.assert_close(fn.minimax_d_loss(z, z), 2 * log2.reshape(1))
    torch.testing.assert_close(fn.minimax_g_loss(z), -log2.reshape(1))
    torch.testing.assert_close(fn.non_saturating_g_loss(z), log2.reshape(1))
    torch.testing.assert_close(fn.relativistic_d_loss(one, one), log2.reshape(1))
    torch.testing.assert_close(fn.relativistic_g_loss(one, one), log2.reshape(1))
    # Wasserstein, hinge, least squares on small exact numbers.
    r = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
    f = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(fn.wasserstein_d_loss(r, f), torch.tensor([-1.5, -2.5, 4.0]).double())
    torch.testing.assert_close(fn.wasserstein_g_loss(f), torch.tensor([-0.5, 2.0, -3.0]).double())
    # relu(1 - r) + relu(1 + f): [0 + 1.5, 0.5 + 0, 2 + 4]
    torch.testing.assert_close(fn.hinge_d_loss(r, f), torch.tensor([1.5, 0.5, 6.0]).double())
    # 1/2 (r-1)^2 + 1/2 f^2: [0.5 + 0.125, 0.125 + 2, 2 + 4.5]
    torch.testing.assert_close(fn.least_squares_d_loss(r, f), torch.tensor([0.625, 2.125, 6.5]).double())
    # 1/2 (f-1)^2: [0.125, 4.5, 2]
    torch.testing.assert_close(fn.least_squares_g_loss(f), torch.tensor([0.125, 4.5, 2.0]).double())


def test_optimal_points():
    # LSGAN: D loss 0 at r = 1, f = 0; G loss 0 at f = 1. Hinge: D loss 0 outside the margin.
    assert fn.least_squares_d_loss(torch.ones(3), torch.zeros(3)).eq(0).all()
    assert fn.least_squares_g_loss(torch.ones(3)).eq(0).all()
    assert fn.hinge_d_loss(torch.full((3,), 1.5), torch.full((3,), -1.5)).eq(0).all()


# --------------------------------------------------------------------------------------------------
# Shapes, module == function, invariances
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(7,), (3, 5)], ids=["B", "EB"])
def test_output_shape_equals_logits_shape(name, shape):
    obj = get_objective(name)
    r, f = _logits(*shape, dtype=torch.float32)
    assert obj.d_loss(r, f).shape == shape
    assert obj.g_loss(f, r).shape == shape


@pytest.mark.parametrize("name", NAMES)
def test_ensemble_is_elementwise(name):
    # (E, B) losses are the (B,) losses of each member, stacked: nothing mixes samples or members.
    obj = get_objective(name)
    r, f = _logits(3, 5)
    d = obj.d_loss(r, f)
    g = obj.g_loss(f, r)
    for e in range(3):
        torch.testing.assert_close(d[e], obj.d_loss(r[e], f[e]))
        torch.testing.assert_close(g[e], obj.g_loss(f[e], r[e]))
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(obj.d_loss(r[:, perm], f[:, perm]), d[:, perm])
    torch.testing.assert_close(obj.g_loss(f[:, perm], r[:, perm]), g[:, perm])


CLASS_VS_FUNCTION = {
    "minimax": (fn.minimax_d_loss, lambda f, r: fn.minimax_g_loss(f)),
    "non_saturating": (fn.minimax_d_loss, lambda f, r: fn.non_saturating_g_loss(f)),
    "wasserstein": (fn.wasserstein_d_loss, lambda f, r: fn.wasserstein_g_loss(f)),
    "hinge": (fn.hinge_d_loss, lambda f, r: fn.wasserstein_g_loss(f)),
    "least_squares": (fn.least_squares_d_loss, lambda f, r: fn.least_squares_g_loss(f)),
    "relativistic": (fn.relativistic_d_loss, fn.relativistic_g_loss),
}


@pytest.mark.parametrize("name", NAMES)
def test_module_equals_function(name):
    obj = get_objective(name)
    d_fn, g_fn = CLASS_VS_FUNCTION[name]
    r, f = _logits(16)
    torch.testing.assert_close(obj.d_loss(r, f), d_fn(r, f), rtol=0, atol=0)
    torch.testing.assert_close(obj.g_loss(f, r), g_fn(f, r), rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "relativistic"])
def test_g_loss_ignores_real_logits(name):
    obj = get_objective(name)
    r, f = _logits(8)
    torch.testing.assert_close(obj.g_loss(f), obj.g_loss(f, r), rtol=0, atol=0)


def test_invariances():
    r, f = _logits(32)
    c = 3.7
    # Relativistic and Wasserstein D losses see only r - f: a common shift changes nothing.
    torch.testing.assert_close(fn.relativistic_d_loss(r + c, f + c), fn.relativistic_d_loss(r, f))
    torch.testing.assert_close(fn.relativistic_g_loss(f + c, r + c), fn.relativistic_g_loss(f, r))
    torch.testing.assert_close(fn.wasserstein_d_loss(r + c, f + c), fn.wasserstein_d_loss(r, f))
    # Swapping the roles of real and fake turns the relativistic D loss into the G loss.
    torch.testing.assert_close(fn.relativistic_g_loss(f=r, r=f), fn.relativistic_d_loss(r, f))
    # The minimax D loss is symmetric under (r, f) -> (-f, -r) (the labels flipped with the sign).
    torch.testing.assert_close(fn.minimax_d_loss(-f, -r), fn.minimax_d_loss(r, f))
    # Saturating and non-saturating G losses differ by the logit itself:
    # softplus(f) - softplus(-f) = f, so log(1 - D(G(z))) + f = log D(G(z)).
    torch.testing.assert_close(fn.minimax_g_loss(f) + f, -fn.non_saturating_g_loss(f))


# --------------------------------------------------------------------------------------------------
# Gradients: float64 gradcheck, stability at extreme logits, saturation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(6,), (2, 3)], ids=["B", "EB"])
def test_gradcheck(name, shape):
    obj = get_objective(name)
    r, f = _logits(*shape, seed=3)
    # Keep away from the hinge kinks at r = 1 and f = -1, where finite differences disagree.
    r = torch.where((r - 1.0).abs() < 0.1, r + 0.5, r).requires_grad_(True)
    f = torch.where((f + 1.0).abs() < 0.1, f + 0.5, f).requires_grad_(True)
    assert torch.autograd.gradcheck(obj.d_loss, (r, f))
    assert torch.autograd.gradcheck(lambda f, r: obj.g_loss(f, r), (f, r))


EXTREME = torch.tensor([-200.0, 200.0])
EXTREME_R, EXTREME_F = torch.meshgrid(EXTREME, EXTREME, indexing="ij")  # every (r, f) sign pair


@pytest.mark.parametrize("name", NAMES)
def test_finite_values_and_gradients_at_extreme_logits(name):
    obj = get_objective(name)
    r = EXTREME_R.flatten().clone().requires_grad_(True)  # float32
    f = EXTREME_F.flatten().clone().requires_grad_(True)
    d = obj.d_loss(r, f)
    g = obj.g_loss(f, r)
    assert torch.isfinite(d).all() and torch.isfinite(g).all()
    d_grads = torch.autograd.grad(d.sum(), (r, f))
    g_grads = torch.autograd.grad(g.sum(), (f, r), allow_unused=True, materialize_grads=True)
    for grad in (*d_grads, *g_grads):
        assert torch.isfinite(grad).all()


def test_naive_forms_do_break_at_extreme_logits():
    # The reason for the stable forms: sigmoid saturates to exactly 0 or 1 in float32.
    r = EXTREME_R.flatten()
    f = EXTREME_F.flatten()
    assert not torch.isfinite(_naive_d("minimax", r, f)).all()
    assert not torch.isfinite(_naive_g("minimax", f, r)).all()
    assert not torch.isfinite(_naive_g("non_saturating", f, r)).all()
    assert not torch.isfinite(_naive_d("relativistic", r, f)).all()


def test_extreme_values_by_hand():
    big = torch.tensor([200.0])
    # A confident, correct D costs (almost) nothing; a confident, wrong one costs |logit| per term.
    torch.testing.assert_close(fn.minimax_d_loss(big, -big), torch.zeros(1), atol=1e-30, rtol=0)
    torch.testing.assert_close(fn.minimax_d_loss(-big, big), torch.tensor([400.0]))
    torch.testing.assert_close(fn.non_saturating_g_loss(-big), torch.tensor([200.0]))
    torch.testing.assert_close(fn.minimax_g_loss(big), torch.tensor([-200.0]))
    torch.testing.assert_close(fn.relativistic_d_loss(-big, big), torch.tensor([400.0]))
    torch.testing.assert_close(fn.relativistic_g_loss(-big, big), torch.tensor([400.0]))


def _dg_df(name: str, f0: float, dtype) -> float:
    f = torch.tensor([f0], dtype=dtype, requires_grad=True)
    (grad,) = torch.autograd.grad(get_objective(name).g_loss(f).sum(), f)
    return grad.item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saturating_vs_non_saturating_gradient(dtype):
    # D confidently rejects the fakes (f = -20): the saturating G loss log(1 - D(G(z))) gives G no
    # gradient (-sigmoid(-20) ~ -2e-9), the non-saturating -log D(G(z)) a gradient of ~ -1.
    assert abs(_dg_df("minimax", -20.0, dtype)) < 1e-6
    assert abs(_dg_df("non_saturating", -20.0, dtype)) > 0.99
    # D is fooled (f = +20): the reverse.
    assert abs(_dg_df("minimax", 20.0, dtype)) > 0.99
    assert abs(_dg_df("non_saturating", 20.0, dtype)) < 1e-6
    # Both push f up (a negative slope of the loss).
    assert _dg_df("minimax", -20.0, dtype) < 0 and _dg_df("non_saturating", -20.0, dtype) < 0
