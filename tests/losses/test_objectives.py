"""Tests of the adversarial objectives (gan_lab.losses).

Two independent references: the naive textbook form of every loss (sigmoid, then log) evaluated
in float64 on moderate logits, where it is still accurate; and the documented closed forms
(docs/DESIGN.md) in float64 with ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` written out here
(not ``F.softplus``), with their derivatives by hand, which stay exact at any logit. The stable
forms under test must agree with the first on moderate logits and with the second everywhere,
including logits of +-1e4 in float32, where the naive forms give inf or NaN.
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


def _softplus64(x: Tensor) -> Tensor:
    """``log(1 + e^x)`` in float64: ``max(x, 0) + log1p(e^-|x|)``, exact for any x."""
    x = x.double()
    return x.clamp(min=0.0) + torch.log1p(torch.exp(-x.abs()))


def _sigmoid64(x: Tensor) -> Tensor:
    """``1 / (1 + e^-x)`` in float64, the derivative of softplus: ``e^-softplus(-x)``."""
    return torch.exp(-_softplus64(-x))


def _step64(x: Tensor) -> Tensor:
    """``1[x > 0]``: the derivative of ``relu(x)``."""
    return (x.double() > 0).double()


#: name -> (d_loss(r, f), (∂d/∂r, ∂d/∂f), g_loss(f, r), (∂g/∂f, ∂g/∂r)): the table of
#: docs/DESIGN.md in float64 closed form, derivatives by hand
REFERENCE = {
    "minimax": (
        lambda r, f: _softplus64(-r) + _softplus64(f),
        lambda r, f: (-_sigmoid64(-r), _sigmoid64(f)),
        lambda f, r: -_softplus64(f),
        lambda f, r: (-_sigmoid64(f), 0 * r.double()),
    ),
    "non_saturating": (
        lambda r, f: _softplus64(-r) + _softplus64(f),
        lambda r, f: (-_sigmoid64(-r), _sigmoid64(f)),
        lambda f, r: _softplus64(-f),
        lambda f, r: (-_sigmoid64(-f), 0 * r.double()),
    ),
    "wasserstein": (
        lambda r, f: f.double() - r.double(),
        lambda r, f: (-torch.ones_like(r.double()), torch.ones_like(f.double())),
        lambda f, r: -f.double(),
        lambda f, r: (-torch.ones_like(f.double()), 0 * r.double()),
    ),
    "hinge": (
        lambda r, f: (1.0 - r.double()).clamp(min=0.0) + (1.0 + f.double()).clamp(min=0.0),
        lambda r, f: (-_step64(1.0 - r.double()), _step64(1.0 + f.double())),
        lambda f, r: -f.double(),
        lambda f, r: (-torch.ones_like(f.double()), 0 * r.double()),
    ),
    "least_squares": (
        lambda r, f: 0.5 * (r.double() - 1.0) ** 2 + 0.5 * f.double() ** 2,
        lambda r, f: (r.double() - 1.0, f.double()),
        lambda f, r: 0.5 * (f.double() - 1.0) ** 2,
        lambda f, r: (f.double() - 1.0, 0 * r.double()),
    ),
    "relativistic": (
        lambda r, f: _softplus64(f.double() - r.double()),
        lambda r, f: (-_sigmoid64(f.double() - r.double()), _sigmoid64(f.double() - r.double())),
        lambda f, r: _softplus64(r.double() - f.double()),
        lambda f, r: (-_sigmoid64(r.double() - f.double()), _sigmoid64(r.double() - f.double())),
    ),
}


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
    """The class, through the registry (``get_objective``), equals its functional core, and both
    equal the documented formula computed independently (float64 closed form, ``REFERENCE``)."""
    obj = get_objective(name)
    d_fn, g_fn = CLASS_VS_FUNCTION[name]
    d_ref, _, g_ref, _ = REFERENCE[name]
    r, f = _logits(16)
    r, f = torch.cat([r, 8 * r]), torch.cat([f, 8 * f])  # moderate and large logits (|x| up to ~100)
    torch.testing.assert_close(obj.d_loss(r, f), d_fn(r, f), rtol=0, atol=0)
    torch.testing.assert_close(obj.g_loss(f, r), g_fn(f, r), rtol=0, atol=0)
    # rtol 1e-9: above x = 20, F.softplus returns x itself (its threshold), off by e^-x < 2.1e-9,
    # under 1e-10 of the value
    for what, got, ref in (("d_loss", d_fn(r, f), d_ref(r, f)), ("g_loss", g_fn(f, r), g_ref(f, r))):
        torch.testing.assert_close(
            got, ref, rtol=1e-9, atol=1e-12, msg=lambda m, w=what: f"{name} {w} against its formula: {m}"
        )


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


#: float32 logits from moderate to extreme, every (r, f) pair of them (-0.5 and 1.5, not the hinge
#: kinks f = -1 and r = 1, where the derivative is a convention)
LOGITS = torch.tensor([-1e4, -200.0, -88.0, -30.0, -0.5, 0.0, 1.5, 30.0, 88.0, 200.0, 1e4])


@pytest.mark.parametrize("name", NAMES)
def test_objectives_hold_at_extreme_logits_where_naive_forms_break(name):
    """Where the naive float32 forms are inf (sigmoid saturates to exactly 0 or 1), every
    objective's per-sample losses and their gradients are finite and equal the float64 closed form
    (``REFERENCE``) at its limits: a confident, correct D costs ~0, a wrong one |logit| per
    softplus term; the gradients tend to 0 or ±1."""
    # The reason for the stable forms, in float32: log sigmoid(-200) and log(1 - sigmoid(30)) are -inf.
    assert torch.log(torch.sigmoid(torch.tensor(-200.0))).isinf()
    assert torch.log(1 - torch.sigmoid(torch.tensor(30.0))).isinf()
    rr, ff = torch.meshgrid(LOGITS, LOGITS, indexing="ij")
    r = rr.flatten().clone().requires_grad_(True)  # float32
    f = ff.flatten().clone().requires_grad_(True)
    obj = get_objective(name)
    d_ref, d_grad_ref, g_ref, g_grad_ref = REFERENCE[name]
    d, g = obj.d_loss(r, f), obj.g_loss(f, r)
    assert d.dtype == g.dtype == torch.float32
    d_grads = torch.autograd.grad(d.sum(), (r, f))
    g_grads = torch.autograd.grad(g.sum(), (f, r), allow_unused=True, materialize_grads=True)
    r64, f64 = r.detach().double(), f.detach().double()
    checks = [
        ("d_loss", d, d_ref(r64, f64)),
        ("g_loss", g, g_ref(f64, r64)),
        *zip(("dd/dr", "dd/df"), d_grads, d_grad_ref(r64, f64)),
        *zip(("dg/df", "dg/dr"), g_grads, g_grad_ref(f64, r64)),
    ]
    for what, got, ref in checks:
        where = [(r64[i].item(), f64[i].item()) for i in torch.nonzero(~torch.isfinite(got)).flatten()]
        assert not where, f"{name} {what} is not finite at {len(where)} (r, f) pairs, e.g. {where[:3]}"
        # float32 rounding of the result (and of a difference of logits): 1e-6 relative; values
        # below float32's range (e^-200) are 0 there
        torch.testing.assert_close(
            got.detach().double(), ref, rtol=1e-6, atol=1e-30, msg=lambda m, w=what: f"{name} {w}: {m}"
        )


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
