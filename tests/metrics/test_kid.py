"""Tests of the kernel (inception) distance (gan_lab.metrics.kid): torchmetrics' arithmetic on the same
subsets, a brute-force MMD², expected values, invariances of the Metric, the error message."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance

import gan_lab.metrics.kid as kid_module
from gan_lab.errors import ConfigError
from gan_lab.metrics import METRICS
from gan_lab.metrics.kid import KernelDistance, canonical_sort, kernel_inception_distance, polynomial_mmd2


def normal(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def brute_force_mmd2(x: np.ndarray, y: np.ndarray, degree=3, gamma=None, coef0=1.0) -> float:
    """The unbiased MMD² written out as explicit loops over pairs (Bińkowski et al. 2018, eq. 3)."""
    m, d = x.shape
    gamma = 1.0 / d if gamma is None else gamma

    def k(a, b):
        return (gamma * float(a @ b) + coef0) ** degree

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / m**2


@pytest.mark.parametrize(("degree", "gamma", "coef0"), [(3, None, 1.0), (2, 0.5, 0.0), (1, 1.0, 2.0)])
def test_polynomial_mmd2_equals_brute_force(degree, gamma, coef0):
    x, y = normal(12, 5, seed=0), normal(12, 5, seed=1, shift=0.3)
    got = polynomial_mmd2(x, y, degree, gamma, coef0)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(
        brute_force_mmd2(x.numpy(), y.numpy(), degree, gamma, coef0), rel=1e-12
    )


def mmd2_unequal_by_hand(
    x: list[list[float]], y: list[list[float]], degree=3, gamma=None, coef0=1.0
) -> float:
    """The unbiased MMD² for m real and n fake samples (Bińkowski et al. 2018, eq. 3; Gretton et al.
    2012, Lemma 6), in plain Python floats (float64), pair by pair: no tensor, no matrix."""
    m, n, d = len(x), len(y), len(x[0])
    gamma = 1.0 / d if gamma is None else gamma

    def k(a, b):
        return (gamma * math.fsum(ai * bi for ai, bi in zip(a, b)) + coef0) ** degree

    xx = math.fsum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = math.fsum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    xy = math.fsum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


@pytest.mark.parametrize(("m", "n"), [(7, 12), (12, 7), (2, 30), (15, 15)])
@pytest.mark.parametrize(("degree", "gamma", "coef0"), [(3, None, 1.0), (1, 1.0, 0.0)])
def test_polynomial_mmd2_with_unequal_sizes_equals_the_hand_computation(m, n, degree, gamma, coef0):
    """m != n used m for the fake side too (within-fake sum over m(m-1), cross sum over m²): a wrong
    value without an error."""
    x, y = normal(m, 4, seed=5), normal(n, 4, seed=6, shift=0.7)
    got = polynomial_mmd2(x.float(), y.float(), degree, gamma, coef0)
    assert got.dtype == torch.float64
    expected = mmd2_unequal_by_hand(
        x.float().double().tolist(), y.float().double().tolist(), degree, gamma, coef0
    )
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_polynomial_mmd2_by_hand_for_unequal_sizes():
    # k(a, b) = ab on 1-d points: x = (1, -1), y = (1, 1, 1):
    # within x: 2·(−1)/2 = −1; within y: 6·1/6 = 1; across: Σ x_i y_j = 0
    x, y = torch.tensor([[1.0], [-1.0]]), torch.tensor([[1.0], [1.0], [1.0]])
    assert polynomial_mmd2(x, y, degree=1, gamma=1.0, coef0=0.0).item() == 0.0
    assert polynomial_mmd2(y, x, degree=1, gamma=1.0, coef0=0.0).item() == 0.0  # symmetric


def test_polynomial_mmd2_empty_inputs_are_one_line_errors():
    for x, y, match in [
        (normal(1, 3, 0), normal(5, 3, 1), "at least 2 samples per side, got 1 real / 5 fake"),
        (normal(5, 3, 0), normal(0, 3, 1), "got 5 real / 0 fake"),
        (torch.empty(5, 0), torch.empty(5, 0), "0 dimensions"),
    ]:
        with pytest.raises(ConfigError, match=match) as e:
            polynomial_mmd2(x, y)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="0 dimensions"):
        kernel_inception_distance(torch.empty(20, 0), torch.empty(20, 0), subsets=2, subset_size=10)
    with pytest.raises(ValueError, match=r"\(N, d\) and \(M, d\)"):
        polynomial_mmd2(normal(5, 3, 0), normal(5, 4, 1))


def test_matches_torchmetrics_on_the_same_subsets():
    """torchmetrics draws randperm(n_real)[:m], randperm(n_fake)[:m] per subset from torch's global
    generator; the same draws from a generator with the same seed give the same subsets."""
    real, fake = normal(150, 16, seed=2), normal(130, 16, seed=3, shift=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        reference = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=7, subset_size=50)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    torch.manual_seed(123)
    ref_mean, ref_std = reference.compute()
    mean, std = kernel_inception_distance(
        real, fake, subsets=7, subset_size=50, generator=torch.Generator().manual_seed(123)
    )
    assert mean.item() == pytest.approx(ref_mean.item(), rel=1e-12)
    assert std.item() == pytest.approx(ref_std.item(), rel=1e-10)  # both ddof 0


def test_near_zero_for_one_distribution_and_growing_with_a_shift():
    # two samples of N(0, I): the unbiased estimate is centred on 0; each subset estimate has the
    # spread ``std``, so their mean (over correlated subsets) lies within 3 std of 0
    for seed in range(3):
        mean, std = kernel_inception_distance(
            normal(600, 8, seed=10 + seed),
            normal(600, 8, seed=20 + seed),
            subsets=20,
            subset_size=300,
            generator=torch.Generator().manual_seed(seed),
        )
        assert abs(mean.item()) < 3 * std.item()
    means = []
    for shift in (0.25, 0.5, 1.0):
        mean, std = kernel_inception_distance(
            normal(600, 8, seed=30),
            normal(600, 8, seed=31, shift=shift),
            subsets=20,
            subset_size=300,
            generator=torch.Generator().manual_seed(0),
        )
        assert mean.item() > 3 * std.item()
        means.append(mean.item())
    assert means == sorted(means)


def test_too_few_samples_is_one_line_before_any_work():
    with pytest.raises(ConfigError) as e:
        kernel_inception_distance(normal(999, 4, 0), normal(2000, 4, 1))
    assert str(e.value) == (
        "KID needs at least 1000 samples per side, got 999 real / 2000 fake; lower subset_size or raise n"
    )
    metric = KernelDistance(subset_size=10)
    metric.update(normal(20, 4, 0), real=True)
    metric.update(normal(5, 4, 1))
    with pytest.raises(ConfigError, match="got 20 real / 5 fake"):
        metric.compute()


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric KernelDistance was called before")
def test_bad_arguments():
    for kwargs, match in [
        (dict(subsets=0), "KID subsets"),
        (dict(subset_size=1), "KID subset_size"),
        (dict(degree=0), "KID degree"),
        (dict(gamma=-1.0), "KID gamma"),
        (dict(coef0=-1.0), "KID coef0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            KernelDistance(**kwargs)
    with pytest.raises(ValueError, match=r"\(N, d\) and \(M, d\)"):
        kernel_inception_distance(normal(10, 3, 0), normal(10, 4, 1), subset_size=5)
    metric = KernelDistance(reference=normal(10, 3, 0))
    with pytest.raises(ValueError, match="fixed reference"):
        metric.update(normal(10, 3, 0), real=True)
    with pytest.raises(ConfigError, match="no real features"):
        KernelDistance().compute()


def test_non_finite_features_give_nan():
    fake = normal(20, 3, 1)
    fake[4, 1] = math.nan
    mean, std = kernel_inception_distance(normal(20, 3, 0), fake, subsets=2, subset_size=10)
    assert math.isnan(mean.item()) and math.isnan(std.item())


def run_metric(real_parts, fake_parts, **kwargs):
    metric = KernelDistance(subsets=6, subset_size=40, **kwargs)
    for part in real_parts:
        metric.update(part, real=True)
    for part in fake_parts:
        metric.update(part)
    return metric.compute()


def test_metric_is_deterministic_and_independent_of_order_and_splits():
    real, fake = normal(90, 6, seed=40).float(), normal(70, 6, seed=41, shift=0.5).float()
    one = run_metric([real], [fake])
    assert run_metric([real], [fake]) == one  # same seed, same subsets
    g = torch.Generator().manual_seed(0)
    shuffled = run_metric([real[torch.randperm(90, generator=g)]], [fake[torch.randperm(70, generator=g)]])
    split = run_metric(real.split([3, 50, 37]), fake.split(9))
    assert all(torch.equal(a, b) for a, b in zip(one, shuffled, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(one, split, strict=True))
    assert not torch.equal(run_metric([real], [fake], seed=1)[0], one[0])  # the seed picks the subsets


def test_fixed_reference_equals_accumulated_real_and_survives_reset():
    real, fake = normal(60, 4, seed=42), normal(60, 4, seed=43, shift=0.5)
    fixed = KernelDistance(subsets=4, subset_size=30, reference=real)
    fixed.update(fake[:10])
    fixed.reset()
    fixed.update(fake)
    assert all(torch.equal(a, b) for a, b in zip(fixed.compute(), run_metric_small(real, fake), strict=True))


def run_metric_small(real, fake):
    metric = KernelDistance(subsets=4, subset_size=30)
    metric.update(real, real=True)
    metric.update(fake)
    return metric.compute()


def test_canonical_sort_is_a_permutation_independent_of_order():
    x = torch.cat([normal(30, 3, seed=44), normal(5, 3, seed=45)[[0, 0, 1, 2, 2]]])  # with duplicates
    y = canonical_sort(x)
    assert sorted(map(tuple, y.tolist())) == sorted(map(tuple, x.tolist()))
    for seed in range(3):
        perm = torch.randperm(35, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(canonical_sort(x[perm]), y)


def test_canonical_sort_resolves_equal_keys_of_different_rows(monkeypatch):
    """With the projection direction (1, 1), the rows (1, 2) and (2, 1) have the same key; the
    lexicographic fallback orders them whatever their input order."""
    monkeypatch.setattr(kid_module, "_direction", lambda d, device: torch.ones(d, dtype=torch.float64))
    a = torch.tensor([[1.0, 2.0], [2.0, 1.0], [0.0, 0.0]])
    b = a[[1, 0, 2]]
    assert torch.equal(canonical_sort(a), canonical_sort(b))
    assert canonical_sort(a).tolist() == [[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]]


def test_registered():
    assert METRICS["kernel_distance"] is KernelDistance
