"""Tests of gan_lab.divergences against scipy, the zero conventions, batching and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch

from gan_lab.divergences import cross_entropy, entropy, js_divergence, kl_divergence

LN2 = math.log(2.0)


def _random_probs(*shape: int, seed: int = 0, zeros: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    if zeros:  # knock out about a third of the entries, keeping one positive entry per vector
        x = x * (torch.rand(*shape, generator=g, dtype=torch.float64) > 0.33)
        x[..., 0] += 0.1
    return x / x.sum(-1, keepdim=True)


# --------------------------------------------------------------------------------------------------
# Against scipy
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zeros", [False, True])
def test_entropy_matches_scipy(zeros):
    p = _random_probs(6, 5, 7, zeros=zeros)
    expected = scipy.stats.entropy(p.numpy(), axis=-1)
    np.testing.assert_allclose(entropy(p).numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("zeros", [False, True])
def test_kl_matches_scipy(zeros):
    p = _random_probs(6, 5, 7, seed=1, zeros=zeros)
    q = _random_probs(6, 5, 7, seed=2)
    expected = scipy.stats.entropy(p.numpy(), q.numpy(), axis=-1)
    np.testing.assert_allclose(kl_divergence(p, q).numpy(), expected, rtol=1e-12, atol=1e-14)


def test_cross_entropy_is_entropy_plus_kl():
    p = _random_probs(4, 9, seed=3, zeros=True)
    q = _random_probs(4, 9, seed=4)
    expected = scipy.stats.entropy(p.numpy(), axis=-1) + scipy.stats.entropy(p.numpy(), q.numpy(), axis=-1)
    np.testing.assert_allclose(cross_entropy(p, q).numpy(), expected, rtol=1e-12)
    by_hand = -(p * q.log()).sum(-1)
    torch.testing.assert_close(cross_entropy(p, q), by_hand, rtol=1e-12, atol=0)


@pytest.mark.parametrize("zeros", [False, True])
def test_js_matches_scipy_squared(zeros):
    p = _random_probs(6, 5, 7, seed=5, zeros=zeros)
    q = _random_probs(6, 5, 7, seed=6, zeros=zeros)
    expected = scipy.spatial.distance.jensenshannon(p.numpy(), q.numpy(), axis=-1) ** 2  # base e
    np.testing.assert_allclose(js_divergence(p, q).numpy(), expected, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------------------------
# Zero conventions and known values
# --------------------------------------------------------------------------------------------------


def test_zero_times_log_zero_is_zero():
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.25, 0.75, 0.0, 0.0], dtype=torch.float64)  # 0 log(0/0) = 0 in the last two
    assert entropy(p).item() == pytest.approx(LN2, rel=1e-15)
    assert kl_divergence(p, q).item() == pytest.approx(0.5 * math.log(2.0) + 0.5 * math.log(2 / 3), rel=1e-14)
    assert cross_entropy(p, q).item() == pytest.approx(
        -0.5 * math.log(0.25) - 0.5 * math.log(0.75), rel=1e-14
    )
    assert torch.isfinite(js_divergence(p, q))


def test_certain_outcome_has_zero_entropy():
    p = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    h = entropy(p)
    assert h.item() == 0.0 and not torch.signbit(h)
    assert cross_entropy(p, p).item() == 0.0


def test_q_missing_support_gives_inf():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert kl_divergence(p, q).item() == math.inf
    assert cross_entropy(p, q).item() == math.inf
    assert kl_divergence(q, p).item() == pytest.approx(LN2)  # the other direction is finite
    assert torch.isfinite(js_divergence(p, q))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_is_zero(dtype):
    p = _random_probs(3, 8, seed=7, zeros=True).to(dtype)
    assert torch.equal(kl_divergence(p, p), torch.zeros(3, dtype=dtype))
    assert torch.equal(js_divergence(p, p), torch.zeros(3, dtype=dtype))
    torch.testing.assert_close(cross_entropy(p, p), entropy(p))


def test_disjoint_supports_js_is_ln2():
    p = torch.tensor([[0.3, 0.7, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.0, 0.1, 0.9], [0.0, 0.5, 0.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(js_divergence(p, q), torch.full((2,), LN2, dtype=torch.float64))
    assert torch.isinf(kl_divergence(p, q)).all()


def test_js_is_symmetric_and_bounded():
    p = _random_probs(50, 6, seed=8, zeros=True)
    q = _random_probs(50, 6, seed=9, zeros=True)
    js = js_divergence(p, q)
    torch.testing.assert_close(js, js_divergence(q, p), rtol=1e-14, atol=1e-15)
    assert (js >= -1e-15).all() and (js <= LN2 + 1e-15).all()


def test_uniform_values():
    k = 8
    u = torch.full((k,), 1 / k, dtype=torch.float64)
    one = torch.zeros(k, dtype=torch.float64)
    one[3] = 1.0
    assert entropy(u).item() == pytest.approx(math.log(k))
    assert kl_divergence(one, u).item() == pytest.approx(math.log(k))


def test_nan_propagates():
    p = torch.tensor([0.5, float("nan")])
    q = torch.tensor([0.5, 0.5])
    assert torch.isnan(entropy(p)) and torch.isnan(kl_divergence(p, q)) and torch.isnan(js_divergence(p, q))


# --------------------------------------------------------------------------------------------------
# Batching and shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [kl_divergence, cross_entropy, js_divergence])
def test_batched_equals_per_row(fn):
    p = _random_probs(3, 4, 5, seed=10, zeros=True)
    q = _random_probs(3, 4, 5, seed=11)
    out = fn(p, q)
    assert out.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert out[i, j].item() == pytest.approx(fn(p[i, j], q[i, j]).item(), rel=1e-15, abs=1e-15)


def test_entropy_batched_equals_per_row():
    p = _random_probs(2, 3, 6, seed=12, zeros=True)
    out = entropy(p)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, torch.stack([torch.stack([entropy(r) for r in row]) for row in p]))


def test_leading_dims_broadcast():
    p = _random_probs(5, 4, seed=13)
    u = torch.full((4,), 0.25, dtype=torch.float64)
    torch.testing.assert_close(kl_divergence(p, u), kl_divergence(p, u.expand(5, 4)))
    torch.testing.assert_close(js_divergence(u, p), js_divergence(p, u))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="negative"):
        entropy(torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="negative"):
        kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="last dim"):
        js_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="scalar"):
        entropy(torch.tensor(1.0))


# --------------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------------


def test_gradcheck_interior():
    p = _random_probs(2, 5, seed=14).requires_grad_(True)
    q = _random_probs(2, 5, seed=15).requires_grad_(True)
    assert torch.autograd.gradcheck(entropy, (p,))
    assert torch.autograd.gradcheck(cross_entropy, (p, q))
    assert torch.autograd.gradcheck(kl_divergence, (p, q))
    assert torch.autograd.gradcheck(js_divergence, (p, q))


@pytest.mark.parametrize("fn", [kl_divergence, cross_entropy, js_divergence])
def test_gradients_with_zeros_are_not_nan(fn):
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.25, 0.75, 0.0, 0.0], dtype=torch.float64, requires_grad=True)  # 0/0 at the end
    fn(p, q).backward()
    assert not torch.isnan(p.grad).any() and not torch.isnan(q.grad).any()
    if fn is not js_divergence:
        # where p = 0 the terms are identically 0 as functions of q, so is their gradient
        assert torch.equal(q.grad[2:], torch.zeros(2, dtype=torch.float64))
    # where both are positive, the gradient is the analytic one
    if fn is kl_divergence:
        torch.testing.assert_close(q.grad[:2], -(p / q).detach()[:2])
        torch.testing.assert_close(p.grad[:2], (p.log() - q.log() + 1).detach()[:2])


def test_entropy_gradient_with_zeros_is_finite():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64, requires_grad=True)
    entropy(p).backward()
    assert torch.isfinite(p.grad).all()
    torch.testing.assert_close(p.grad[:2], -(p.log() + 1).detach()[:2])


def test_js_gradient_with_disjoint_supports_is_finite():
    p = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    js_divergence(p, q).backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()
