"""Tests of the Fréchet distance (gan_lab.metrics.frechet): scipy's sqrtm formula, closed forms,
invariances of the Metric."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from gan_lab.errors import ConfigError
from gan_lab.metrics import METRICS
from gan_lab.metrics.frechet import (
    FrechetDistance,
    frechet_distance,
    gaussian_statistics,
    statistics_from_sums,
    trace_sqrt_product,
)


def gaussian(
    n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0, mix_seed: int = 0
) -> torch.Tensor:
    """(n, d) samples of the correlated Gaussian shift + scale · z A, z ~ N(0, I), A random from
    ``mix_seed``: one distribution per (shift, scale, mix_seed), samples drawn by ``seed``."""
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(10_000 + mix_seed), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    return shift + scale * torch.randn(n, d, generator=g, dtype=torch.float64) @ a / d**0.5


def scipy_fd(mu1, s1, mu2, s2) -> float:
    """The reference formula (pytorch-fid / Heusel et al.'s code): scipy.linalg.sqrtm of Σ1 Σ2."""
    mu1, s1, mu2, s2 = (np.asarray(t, dtype=np.float64) for t in (mu1, s1, mu2, s2))
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_matches_scipy_sqrtm_formula():
    for seed, (shift, scale) in enumerate([(0.5, 1.0), (0.0, 2.0), (-1.0, 0.5)]):
        mu1, s1 = gaussian_statistics(gaussian(400, 12, seed))
        mu2, s2 = gaussian_statistics(gaussian(400, 12, seed + 100, shift, scale, mix_seed=1))
        ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours.dtype == torch.float64 and ours.dim() == 0
        assert ours.item() == pytest.approx(scipy_fd(mu1, s1, mu2, s2), rel=1e-10, abs=1e-12)
        assert frechet_distance(mu2, s2, mu1, s1).item() == pytest.approx(ours.item(), rel=1e-10)


def test_diagonal_covariances_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(7, generator=g, dtype=torch.float64) * 3
    b = torch.rand(7, generator=g, dtype=torch.float64) * 3
    mu1 = torch.randn(7, generator=g, dtype=torch.float64)
    mu2 = torch.randn(7, generator=g, dtype=torch.float64)
    expected = ((a.sqrt() - b.sqrt()) ** 2).sum() + ((mu1 - mu2) ** 2).sum()
    got = frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_distance_to_itself_is_zero_even_for_singular_covariance():
    for n, d in [(500, 10), (20, 64), (40, 300)]:  # the last two have rank n - 1 < d
        mu, sigma = gaussian_statistics(gaussian(n, d, seed=3, shift=2.0))
        scale = sigma.trace().item()
        assert abs(frechet_distance(mu, sigma, mu, sigma).item()) < 1e-12 * scale
        assert trace_sqrt_product(sigma, sigma).item() == pytest.approx(scale, rel=1e-12)


@pytest.mark.parametrize(("n", "d"), [(20, 64), (40, 300), (200, 16)])
def test_rank_deficient_covariances_match_the_nuclear_norm_identity(n, d):
    """Tr((Σ1 Σ2)^½) = ‖X_c Y_cᵀ‖_* / (n − 1) for Σ1 = X_cᵀX_c / (n − 1), Σ2 = Y_cᵀY_c / (n − 1):
    an independent float64 value (numpy's SVD of an n × n matrix), exact also when n ≤ d, where
    scipy's sqrtm is off by ~1e-6 (checked against a 40-digit mpmath SVD when this was written)."""
    x, y = gaussian(n, d, seed=10), gaussian(n, d, seed=11, shift=0.5, mix_seed=1)
    xc = (x - x.mean(0)).numpy()
    yc = (y - y.mean(0)).numpy()
    nuclear = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / (n - 1)
    _, s1 = gaussian_statistics(x)
    _, s2 = gaussian_statistics(y)
    assert trace_sqrt_product(s1, s2).item() == pytest.approx(nuclear, rel=1e-11)
    assert trace_sqrt_product(s2, s1).item() == pytest.approx(nuclear, rel=1e-11)


def test_gaussian_statistics_match_numpy():
    x = gaussian(300, 6, seed=1, shift=3.0).to(torch.float32)
    mu, sigma = gaussian_statistics(x)
    assert mu.dtype == sigma.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), x.double().numpy().mean(0), rtol=1e-13)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x.double().numpy(), rowvar=False, ddof=1), rtol=1e-11)
    x64 = x.double()
    mu_s, sigma_s = statistics_from_sums(x64.sum(0), x64.T @ x64, x64.shape[0])
    torch.testing.assert_close(mu_s, mu, rtol=1e-13, atol=0)
    torch.testing.assert_close(sigma_s, sigma, rtol=1e-10, atol=1e-12)


def test_metric_equals_function_and_is_order_and_split_invariant():
    real, fake = gaussian(257, 8, seed=4), gaussian(301, 8, seed=5, shift=0.3)
    expected = frechet_distance(*gaussian_statistics(fake), *gaussian_statistics(real)).item()

    def run(real_parts, fake_parts):
        metric = FrechetDistance(num_features=8)
        for part in real_parts:
            metric.update(part, real=True)
        for part in fake_parts:
            metric.update(part)
        return metric.compute().item()

    one = run([real], [fake])
    assert one == pytest.approx(expected, rel=1e-10)
    g = torch.Generator().manual_seed(0)
    shuffled = run([real[torch.randperm(257, generator=g)]], [fake[torch.randperm(301, generator=g)]])
    split = run(real.split([1, 100, 156]), fake.split(37))
    assert shuffled == pytest.approx(one, rel=1e-12)
    assert split == pytest.approx(one, rel=1e-12)


def test_fixed_reference_survives_reset_and_equals_accumulated_real():
    real, fake = gaussian(200, 5, seed=6), gaussian(200, 5, seed=7, shift=1.0)
    mu, sigma = gaussian_statistics(real)
    fixed = FrechetDistance(mu=mu, sigma=sigma)
    assert fixed.num_features == 5
    fixed.update(fake[:50])
    fixed.reset()
    fixed.update(fake)
    accumulated = FrechetDistance(num_features=5)
    accumulated.update(real, real=True)
    accumulated.update(fake)
    assert fixed.compute().item() == pytest.approx(accumulated.compute().item(), rel=1e-10)
    later = FrechetDistance(num_features=5)
    later.set_reference(mu.float(), sigma.float())
    assert later.ref_mu.dtype == torch.float64
    later.update(fake)
    assert later.compute().item() == pytest.approx(
        frechet_distance(*gaussian_statistics(fake), mu.float(), sigma.float()).item(), rel=1e-12
    )


def test_distance_grows_with_the_shift():
    real = gaussian(500, 4, seed=8)
    values = [
        frechet_distance(
            *gaussian_statistics(gaussian(500, 4, seed=9, shift=s)), *gaussian_statistics(real)
        ).item()
        for s in (0.0, 0.5, 1.0, 2.0)
    ]
    assert values == sorted(values) and values[0] < 0.1 < values[1]
    # the mean term: a shift of s in every one of the 4 coordinates adds about 4 s²
    assert values[3] - values[0] == pytest.approx(4 * 2.0**2, rel=0.1)


def test_bad_input():
    with pytest.raises(ConfigError, match="at least 2 samples per side") as e:
        gaussian_statistics(torch.zeros(1, 3))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="num_features"):
        FrechetDistance()
    metric = FrechetDistance(num_features=3)
    metric.update(torch.zeros(4, 3))
    with pytest.raises(ConfigError, match="no reference: call set_reference"):
        metric.compute()
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        metric.update(torch.zeros(4, 2))
    with pytest.raises(ConfigError, match="another feature net"):
        metric.set_reference(torch.zeros(2), torch.eye(2))
    metric.set_reference(torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="fixed reference"):
        metric.update(torch.zeros(4, 3), real=True)
    with pytest.raises(ValueError, match="different dims"):
        frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_one_non_finite_feature_gives_nan_not_a_linalg_error(bad):
    """One NaN (or inf) feature made eigh fail with torch's "failed to converge" _LinAlgError; the
    distance is NaN, as KID's and PRDC's are for such features."""
    real, fake = gaussian(40, 6, seed=0), gaussian(40, 6, seed=1)
    fake[7, 2] = bad
    got = frechet_distance(*gaussian_statistics(fake), *gaussian_statistics(real))
    assert got.dtype == torch.float64 and torch.isnan(got)
    assert torch.isnan(trace_sqrt_product(gaussian_statistics(fake)[1], gaussian_statistics(real)[1]))
    metric = FrechetDistance(num_features=6)
    metric.update(real, real=True)
    metric.update(fake)
    assert torch.isnan(metric.compute())
    mu, sigma = gaussian_statistics(real)
    fixed = FrechetDistance(mu=mu, sigma=sigma)
    fixed.update(fake)
    assert torch.isnan(fixed.compute())


def test_empty_inputs_are_one_line_errors():
    for call, match in [
        (
            lambda: gaussian_statistics(torch.empty(0, 3)),
            "at least 2 samples per side to estimate a covariance, got 0",
        ),
        (lambda: gaussian_statistics(torch.empty(10, 0)), "0 dimensions"),
        (
            lambda: frechet_distance(torch.zeros(0), torch.zeros(0, 0), torch.zeros(0), torch.zeros(0, 0)),
            "0 dimensions",
        ),
        (lambda: trace_sqrt_product(torch.zeros(0, 0), torch.zeros(0, 0)), "0 dimensions"),
        (lambda: statistics_from_sums(torch.zeros(3), torch.zeros(3, 3), 0), "got 0"),
    ]:
        with pytest.raises(ConfigError, match=match) as e:
            call()
        assert "\n" not in str(e.value)
    metric = FrechetDistance(num_features=3)
    metric.update(gaussian(10, 3, seed=2), real=True)
    with pytest.raises(ConfigError, match="got 0"):
        metric.compute()  # no fake sample


def test_registered():
    assert METRICS["frechet_distance"] is FrechetDistance
