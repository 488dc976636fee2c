"""Tests of the gradient penalties (gan_lab.regularizers.gradient_penalty).

The main tool is a linear critic ``D(x) = <x, w> + b``: its input gradient is ``w`` for every
sample, so every penalty has a closed form that holds for every sample whatever the random
interpolation or perturbation (``(‖w‖ − 1)²``, ``max(0, ‖w‖ − 1)²``, ``½‖w‖²``), and so does its
derivative w.r.t. ``w``. Per-sample gradient norms of nonlinear critics are checked against
``torch.func`` (vmap of jacrev) as an independent reference.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

from gan_lab.errors import ConfigError
from gan_lab.regularizers import (
    DRAGAN,
    R1,
    R2,
    REGULARIZERS,
    WGANGP,
    OneSidedGP,
    PenaltyInputs,
    Regularizer,
    WeightClipping,
    get_regularizer,
)
from gan_lab.regularizers.gradient_penalty import (
    dragan_perturb,
    interpolate,
    one_sided_penalty,
    per_sample_grad_norm,
    per_sample_grad_sq_norm,
    two_sided_penalty,
)

GP_CLASSES = {"wgan_gp": WGANGP, "one_sided_gp": OneSidedGP, "dragan": DRAGAN, "r1": R1, "r2": R2}
NAMES = list(GP_CLASSES)


# --------------------------------------------------------------------------------------------------
# Closed forms for a linear critic with input gradient w: penalty(‖w‖) and d penalty / d w
# --------------------------------------------------------------------------------------------------


def closed_penalty(name: str, n: float) -> float:
    if name in ("wgan_gp", "dragan"):
        return (n - 1.0) ** 2
    if name == "one_sided_gp":
        return max(0.0, n - 1.0) ** 2
    return 0.5 * n**2  # r1, r2


def closed_grad(name: str, w: Tensor) -> Tensor:
    n = torch.linalg.vector_norm(w)
    if name in ("wgan_gp", "dragan"):
        return 2.0 * (n - 1.0) * w / n
    if name == "one_sided_gp":
        return 2.0 * torch.clamp(n - 1.0, min=0.0) * w / n
    return w  # d/dw ½‖w‖² = w


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _vector_of_norm(shape, norm: float, seed: int = 0, dtype=torch.float32) -> Tensor:
    v = torch.randn(*shape, generator=_gen(seed), dtype=dtype)
    return v * (norm / torch.linalg.vector_norm(v))


def _batch(*shape, seed: int = 1, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    g = _gen(seed)
    return torch.randn(*shape, generator=g, dtype=dtype), 3.0 * torch.randn(*shape, generator=g, dtype=dtype)


NORMS = [0.4, 2.5]  # below and above 1: the one-sided penalty is 0 below, two-sided on both


# --------------------------------------------------------------------------------------------------
# Smoke, registry, bad input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_get_regularizer_defaults(name):
    reg = get_regularizer(name)
    assert isinstance(reg, GP_CLASSES[name])
    assert isinstance(reg, Regularizer)
    assert reg.name == name
    assert reg.player == "D"
    assert reg.needs_input_grad
    assert not reg.needs_target
    assert reg.weight == 10.0  # λ = 10 (Gulrajani et al.), γ = 10 (Mescheder et al.)
    assert reg.every == 1
    assert repr(reg) == f"{type(reg).__name__}(weight=10.0, every=1)"


def test_registry_and_passthrough():
    assert set(GP_CLASSES) | {"weight_clipping"} <= set(REGULARIZERS)
    reg = R1(weight=0.5, every=16)
    assert get_regularizer(reg) is reg
    clip = WeightClipping(0.05)
    assert get_regularizer(clip) is clip


def test_get_regularizer_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        get_regularizer("nope")
    for name in [*NAMES, "weight_clipping"]:
        assert name in str(info.value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("weight", [-1.0, -1e-9, float("nan"), "10", None, True])
def test_bad_weight_raises(name, weight):
    with pytest.raises(ConfigError, match="weight"):
        GP_CLASSES[name](weight=weight)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("every", [0, -1, 1.5, "16", True])
def test_bad_every_raises(name, every):
    with pytest.raises(ConfigError, match="every"):
        GP_CLASSES[name](every=every)


@pytest.mark.parametrize("name", NAMES)
def test_valid_arguments_are_kept(name):
    reg = GP_CLASSES[name](weight=0, every=16)
    assert reg.weight == 0.0 and isinstance(reg.weight, float)
    assert reg.every == 16


# --------------------------------------------------------------------------------------------------
# Known values (linear critic), shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("norm", NORMS)
def test_vector_inputs_closed_form(name, norm):
    B, d = 8, 5
    w = _vector_of_norm((d,), norm).requires_grad_(True)
    b = torch.tensor(0.3, requires_grad=True)
    real, fake = _batch(B, d)
    pen = GP_CLASSES[name]().penalty(PenaltyInputs(D=lambda x: x @ w + b, real=real, fake=fake))
    assert pen.shape == (B,)
    torch.testing.assert_close(pen, torch.full((B,), closed_penalty(name, norm)), rtol=1e-5, atol=1e-6)
    # Differentiable w.r.t. D's parameters, with the closed-form derivative.
    gw, gb = torch.autograd.grad(pen.mean(), (w, b), allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(gw, closed_grad(name, w.detach()), rtol=1e-5, atol=1e-6)
    assert gb == 0  # the bias does not move the input gradient


def test_one_sided_is_zero_below_one_and_two_sided_is_not():
    w = _vector_of_norm((4,), 0.4)
    real, fake = _batch(6, 4)
    inputs = PenaltyInputs(D=lambda x: x @ w, real=real, fake=fake)
    assert OneSidedGP().penalty(inputs).eq(0).all()
    assert WGANGP().penalty(inputs).gt(0.3).all()  # (0.4 - 1)² = 0.36


@pytest.mark.parametrize("name", NAMES)
def test_ensemble_inputs_use_each_members_own_critic(name):
    E, B, d = 3, 4, 5
    norms = [0.4, 1.7, 3.0]
    w = torch.stack([_vector_of_norm((d,), n, seed=e) for e, n in enumerate(norms)]).requires_grad_(True)
    b = torch.randn(E, generator=_gen(7))
    real, fake = _batch(E, B, d)

    def D(x: Tensor) -> Tensor:  # (E, B, d) -> (E, B)
        return torch.einsum("ebd,ed->eb", x, w) + b[:, None]

    pen = GP_CLASSES[name]().penalty(PenaltyInputs(D=D, real=real, fake=fake, batch_ndim=2))
    assert pen.shape == (E, B)
    expected = torch.tensor([closed_penalty(name, n) for n in norms])[:, None].expand(E, B)
    torch.testing.assert_close(pen, expected, rtol=1e-5, atol=1e-6)
    # Member e's penalty moves only w_e: d sum(pen) / d w_e = B * closed-form derivative at w_e.
    (gw,) = torch.autograd.grad(pen.sum(), w)
    for e in range(E):
        torch.testing.assert_close(gw[e], B * closed_grad(name, w[e].detach()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("C", [1, 3, 5])
def test_image_inputs_norm_over_all_non_batch_dims(name, C):
    B, H, W_ = 4, 6, 5
    norm = 2.5
    W = _vector_of_norm((C, H, W_), norm, seed=C).requires_grad_(True)
    real, fake = _batch(B, C, H, W_)

    def D(x: Tensor) -> Tensor:  # (B, C, H, W) -> (B,)
        return (x * W).flatten(1).sum(-1) + 0.1

    pen = GP_CLASSES[name]().penalty(PenaltyInputs(D=D, real=real, fake=fake))
    assert pen.shape == (B,)
    torch.testing.assert_close(pen, torch.full((B,), closed_penalty(name, norm)), rtol=1e-5, atol=1e-5)
    (gW,) = torch.autograd.grad(pen.mean(), W)
    torch.testing.assert_close(gW, closed_grad(name, W.detach()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_ensemble_image_inputs(name):
    E, B, C, H, W_ = 2, 3, 3, 4, 4
    norms = [0.5, 2.0]
    W = torch.stack([_vector_of_norm((C, H, W_), n, seed=e) for e, n in enumerate(norms)])
    real, fake = _batch(E, B, C, H, W_)

    def D(x: Tensor) -> Tensor:  # (E, B, C, H, W) -> (E, B)
        return (x * W[:, None]).flatten(2).sum(-1)

    pen = GP_CLASSES[name]().penalty(PenaltyInputs(D=D, real=real, fake=fake, batch_ndim=2))
    assert pen.shape == (E, B)
    expected = torch.tensor([closed_penalty(name, n) for n in norms])[:, None].expand(E, B)
    torch.testing.assert_close(pen, expected, rtol=1e-5, atol=1e-5)


def test_per_sample_grad_norm_accepts_trailing_one():
    w = torch.tensor([3.0, 4.0])
    x = torch.randn(5, 2)
    n = per_sample_grad_norm(lambda x: (x @ w)[:, None], x)  # D returns (B, 1)
    assert n.shape == (5,)
    torch.testing.assert_close(n, torch.full((5,), 5.0))
    torch.testing.assert_close(per_sample_grad_sq_norm(lambda x: (x @ w)[:, None], x), torch.full((5,), 25.0))


def test_penalty_helpers_by_hand():
    n = torch.tensor([0.0, 0.5, 1.0, 3.0])
    torch.testing.assert_close(two_sided_penalty(n), torch.tensor([1.0, 0.25, 0.0, 4.0]))
    torch.testing.assert_close(one_sided_penalty(n), torch.tensor([0.0, 0.0, 0.0, 4.0]))


# --------------------------------------------------------------------------------------------------
# Nonlinear critics: per-sample independence, independent reference (torch.func)
# --------------------------------------------------------------------------------------------------


def _mlp(d_in: int, seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, 16), nn.SiLU(), nn.Linear(16, 1)).to(
        dtype
    )


def _vector_critic(net: nn.Module):
    return lambda x: net(x).squeeze(-1)  # (B, d) -> (B,)


def _image_critic(net: nn.Module):
    return lambda x: net(x.flatten(1)).squeeze(-1)  # (B, C, H, W) -> (B,)


def test_per_sample_grad_norm_is_per_sample():
    D = _vector_critic(_mlp(3))
    x = torch.randn(6, 3, generator=_gen(2))
    in_batch = per_sample_grad_norm(D, x)
    alone = torch.stack([per_sample_grad_norm(D, x[i : i + 1])[0] for i in range(6)])
    torch.testing.assert_close(in_batch, alone)
    # ... and not constant across samples (a norm over the whole batch would be).
    assert in_batch.std() > 1e-3


def test_r1_penalty_is_per_sample():
    D = _vector_critic(_mlp(3))
    real, fake = _batch(6, 3)
    in_batch = R1().penalty(PenaltyInputs(D=D, real=real, fake=fake))
    for i in range(6):
        alone = R1().penalty(PenaltyInputs(D=D, real=real[i : i + 1], fake=fake[i : i + 1]))
        torch.testing.assert_close(in_batch[i : i + 1], alone)


def _reference_norm(D, x: Tensor) -> Tensor:
    """‖∇_x D(x_i)‖ for each sample i by vmap over jacrev of the single-sample critic."""
    jac = vmap(jacrev(lambda xi: D(xi.unsqueeze(0))[0]))(x)  # (B, ...) = x.shape
    return torch.linalg.vector_norm(jac.flatten(1), dim=-1)


@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 2, 2)], ids=["vector", "image"])
def test_per_sample_grad_norm_matches_torch_func(shape):
    d_in = math.prod(shape[1:])
    net = _mlp(d_in, seed=4, dtype=torch.float64)
    D = _vector_critic(net) if len(shape) == 2 else _image_critic(net)
    x = torch.randn(*shape, generator=_gen(5), dtype=torch.float64)
    ref = _reference_norm(D, x)
    torch.testing.assert_close(per_sample_grad_norm(D, x), ref)
    torch.testing.assert_close(per_sample_grad_sq_norm(D, x), ref.square())


def test_ensemble_grad_norm_matches_members_alone():
    # A toy seed-ensemble critic with stacked weights (E, ...) and batched matmul.
    E, B, d, h = 3, 5, 2, 8
    g = _gen(6)
    W1, b1 = torch.randn(E, d, h, generator=g), torch.randn(E, 1, h, generator=g)
    W2 = torch.randn(E, h, 1, generator=g)

    def D(x: Tensor) -> Tensor:  # (E, B, d) -> (E, B)
        return torch.bmm(torch.tanh(torch.bmm(x, W1) + b1), W2).squeeze(-1)

    def member(e: int):
        return lambda x: (torch.tanh(x @ W1[e] + b1[e]) @ W2[e]).squeeze(-1)  # (B, d) -> (B,)

    x = torch.randn(E, B, d, generator=g)
    n = per_sample_grad_norm(D, x, batch_ndim=2)
    assert n.shape == (E, B)
    for e in range(E):
        torch.testing.assert_close(n[e], per_sample_grad_norm(member(e), x[e]))
        torch.testing.assert_close(n[e], _reference_norm(member(e), x[e]))


def test_grad_norm_invariant_to_critic_offset():
    D = _vector_critic(_mlp(3))
    x = torch.randn(6, 3, generator=_gen(8))
    torch.testing.assert_close(per_sample_grad_norm(lambda x: D(x) + 5.0, x), per_sample_grad_norm(D, x))


# --------------------------------------------------------------------------------------------------
# float64 gradcheck
# --------------------------------------------------------------------------------------------------


def test_gradcheck_r1_linear_critic():
    real, fake = _batch(4, 3, dtype=torch.float64)
    w = _vector_of_norm((3,), 1.7, dtype=torch.float64).requires_grad_(True)

    def pen(w: Tensor) -> Tensor:
        return R1().penalty(PenaltyInputs(D=lambda x: x @ w, real=real, fake=fake))

    assert torch.autograd.gradcheck(pen, (w,))


def test_gradcheck_r1_nonlinear_critic():
    real, fake = _batch(4, 3, dtype=torch.float64)
    g = _gen(9)
    W1 = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)

    def pen(W1: Tensor, v: Tensor) -> Tensor:
        D = lambda x: torch.tanh(x @ W1) @ v  # noqa: E731
        return R1().penalty(PenaltyInputs(D=D, real=real, fake=fake))

    assert torch.autograd.gradcheck(pen, (W1, v))


@pytest.mark.parametrize("name", ["wgan_gp", "one_sided_gp", "dragan", "r2"])
def test_gradcheck_linear_critic(name):
    # With a linear critic the random points do not change the value, so gradcheck is deterministic.
    real, fake = _batch(4, 3, dtype=torch.float64)
    w = _vector_of_norm((3,), 1.7, dtype=torch.float64).requires_grad_(True)

    def pen(w: Tensor) -> Tensor:
        return GP_CLASSES[name]().penalty(PenaltyInputs(D=lambda x: x @ w, real=real, fake=fake))

    assert torch.autograd.gradcheck(pen, (w,))


# --------------------------------------------------------------------------------------------------
# Module == function; which data each penalty looks at
# --------------------------------------------------------------------------------------------------


def test_module_equals_function():
    D = _vector_critic(_mlp(3))
    real, fake = _batch(6, 3)
    inputs = PenaltyInputs(D=D, real=real, fake=fake)

    def seeded(f):
        torch.manual_seed(123)
        return f()

    torch.testing.assert_close(
        seeded(lambda: WGANGP().penalty(inputs)),
        seeded(lambda: two_sided_penalty(per_sample_grad_norm(D, interpolate(real, fake)))),
    )
    torch.testing.assert_close(
        seeded(lambda: OneSidedGP().penalty(inputs)),
        seeded(lambda: one_sided_penalty(per_sample_grad_norm(D, interpolate(real, fake)))),
    )
    torch.testing.assert_close(
        seeded(lambda: DRAGAN().penalty(inputs)),
        seeded(lambda: two_sided_penalty(per_sample_grad_norm(D, dragan_perturb(real)))),
    )
    torch.testing.assert_close(R1().penalty(inputs), 0.5 * per_sample_grad_sq_norm(D, real))
    torch.testing.assert_close(R2().penalty(inputs), 0.5 * per_sample_grad_sq_norm(D, fake))


def test_r1_looks_at_real_r2_at_fake():
    D = _vector_critic(_mlp(3))
    real, fake = _batch(6, 3)
    r1 = R1().penalty(PenaltyInputs(D=D, real=real, fake=fake))
    r2 = R2().penalty(PenaltyInputs(D=D, real=real, fake=fake))
    torch.testing.assert_close(R1().penalty(PenaltyInputs(D=D, real=real, fake=fake + 1.0)), r1)
    torch.testing.assert_close(R2().penalty(PenaltyInputs(D=D, real=real + 1.0, fake=fake)), r2)
    torch.testing.assert_close(R2().penalty(PenaltyInputs(D=D, real=fake, fake=real)), r1)


def test_penalty_does_not_backprop_into_the_batch():
    # The points are detached: in G's step (fake attached) the penalty must not reach G through x.
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    real = torch.randn(5, 2, requires_grad=True)
    fake = torch.randn(5, 2, requires_grad=True)
    for name in NAMES:
        pen = GP_CLASSES[name]().penalty(PenaltyInputs(D=lambda x: x @ w, real=real, fake=fake))
        g_real, g_fake = torch.autograd.grad(pen.sum(), (real, fake), allow_unused=True)
        assert g_real is None and g_fake is None


# --------------------------------------------------------------------------------------------------
# The random points
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,batch_ndim", [((64, 3), 1), ((16, 3, 4, 4), 1), ((3, 16, 2, 4, 4), 2)])
def test_interpolate_lies_on_segment_with_one_eps_per_sample(shape, batch_ndim):
    torch.manual_seed(0)
    real = torch.randn(*shape)
    fake = real + 1.0 + torch.rand(*shape)  # real - fake <= -1 elementwise: eps is well defined
    x_hat = interpolate(real, fake, batch_ndim)
    assert x_hat.shape == real.shape
    eps = (x_hat - fake) / (real - fake)  # x̂ = ε x + (1 − ε) x̃
    eps = eps.flatten(batch_ndim)  # (..., n)
    assert eps.min() >= -1e-5 and eps.max() <= 1 + 1e-5
    # One ε per sample, shared by every non-batch dim ...
    assert (eps.max(-1).values - eps.min(-1).values).max() < 1e-5
    # ... and different across samples (and members).
    per_sample = eps[..., 0].flatten()
    assert per_sample.unique().numel() == per_sample.numel()
    assert per_sample.min() < 0.25 and per_sample.max() > 0.75


def test_interpolate_detaches():
    real = torch.randn(4, 3, requires_grad=True)
    fake = torch.randn(4, 3, requires_grad=True)
    assert not interpolate(real, fake).requires_grad


def test_dragan_perturb_within_half_std_of_batch():
    torch.manual_seed(0)
    x = 2.0 * torch.randn(64, 8) + 1.0
    x_hat = dragan_perturb(x)
    assert x_hat.shape == x.shape and not x_hat.requires_grad
    delta = x_hat - x
    std = x.std()  # over the whole batch of one run
    assert delta.min() >= 0
    assert delta.max() <= 0.5 * std + 1e-5
    assert delta.max() > 0.4 * std  # it does perturb, up to (almost) the bound
    # α is per sample: some samples are moved much less than others.
    per_sample_max = delta.max(-1).values
    assert per_sample_max.min() < 0.5 * per_sample_max.max()


def test_dragan_perturb_uses_each_members_own_std():
    torch.manual_seed(0)
    scales = torch.tensor([0.01, 1.0, 100.0])
    x = torch.randn(3, 32, 2, 3, 3) * scales[:, None, None, None, None]  # (E, B, C, H, W)
    delta = dragan_perturb(x, batch_ndim=2) - x
    for e in range(3):
        std = x[e].std()
        assert delta[e].min() >= 0
        assert delta[e].max() <= 0.5 * std * (1 + 1e-5)
        assert delta[e].max() > 0.4 * std
