"""Tests of the toy-mixture mode-coverage protocol (gan_lab.metrics.mode_coverage)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch

from gan_lab.errors import ConfigError
from gan_lab.metrics import ModeCoverage, mean_and_se, mode_counts, mode_coverage

STD = 0.01
LN2 = math.log(2.0)
KEYS = ("modes", "hq_fraction", "reverse_kl", "js")


def ring8(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The docs/DESIGN.md ring8 means (cos 2πi/8, sin 2πi/8), i = 0..7, radius 1: shape (8, 2)."""
    angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    return torch.stack([angles.cos(), angles.sin()], dim=-1).to(dtype)


def near(modes: list[int], seed: int = 0, scale: float = 0.1 * STD) -> torch.Tensor:
    """One sample near each listed ring8 mean, with Gaussian noise of std ``scale``: (N, 2)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.tensor(modes)
    return ring8()[idx] + scale * torch.randn(len(modes), 2, generator=g, dtype=torch.float64)


def _js_by_hand(p: list[float]) -> float:
    """JS(p, uniform) with numpy, written out: ½ KL(p ‖ m) + ½ KL(u ‖ m)."""
    p = np.asarray(p, dtype=np.float64)
    u = np.full_like(p, 1 / len(p))
    m = (p + u) / 2
    nz = p > 0
    return 0.5 * np.sum(p[nz] * np.log(p[nz] / m[nz])) + 0.5 * np.sum(u * np.log(u / m))


def _random_ensemble(e: int = 3, n: int = 400, seed: int = 0) -> torch.Tensor:
    """(E, N, 2): member i draws from the first 8 - 2i modes, noise large enough for some non-HQ."""
    g = torch.Generator().manual_seed(seed)
    members = []
    for i in range(e):
        idx = torch.randint(0, 8 - 2 * i, (n,), generator=g)
        members.append(ring8()[idx] + 1.5 * STD * torch.randn(n, 2, generator=g, dtype=torch.float64))
    return torch.stack(members)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() == set(KEYS)
    for k in KEYS:
        torch.testing.assert_close(a[k], b[k], equal_nan=True, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Known values
# --------------------------------------------------------------------------------------------------


def test_all_samples_on_one_mode():
    out = mode_coverage(near([3] * 100), ring8(), STD)
    assert out["modes"].item() == 1
    assert out["hq_fraction"].item() == 1.0
    assert out["reverse_kl"].item() == pytest.approx(math.log(8), rel=1e-12)
    # m = (9/16 at the mode, 1/16 elsewhere): JS = ½ log(16/9) + ½ (1/8 log(2/9) + 7/8 log 2)
    js = 0.5 * math.log(16 / 9) + 0.5 * (math.log(2 / 9) / 8 + 7 / 8 * LN2)
    assert out["js"].item() == pytest.approx(js, rel=1e-12)
    assert out["js"].item() == pytest.approx(_js_by_hand([1, 0, 0, 0, 0, 0, 0, 0]), rel=1e-12)


def test_uniform_over_all_modes():
    out = mode_coverage(near(list(range(8)) * 50, seed=1), ring8(), STD)
    assert out["modes"].item() == 8
    assert out["hq_fraction"].item() == 1.0
    assert out["reverse_kl"].item() == 0.0
    assert out["js"].item() == 0.0


def test_no_hq_sample_gives_nan_divergences():
    out = mode_coverage(torch.zeros(50, 2, dtype=torch.float64), ring8(), STD)  # the origin: 100 std away
    assert out["modes"].item() == 0
    assert out["hq_fraction"].item() == 0.0
    assert math.isnan(out["reverse_kl"].item()) and math.isnan(out["js"].item())


def test_hand_built_counts():
    # HQ: mode 0 twice, modes 2 and 5 once; non-HQ: 4 std from mode 6, and the origin
    m = ring8()
    tangent6 = torch.tensor([-m[6, 1], m[6, 0]], dtype=torch.float64)
    off = torch.stack([m[6] + 4 * STD * tangent6, torch.zeros(2, dtype=torch.float64)])
    samples = torch.cat([near([0, 0, 2, 5], seed=2), off])  # (6, 2)
    hq_counts, n_total = mode_counts(samples, m, STD)
    assert hq_counts.tolist() == [2, 0, 1, 0, 0, 1, 0, 0] and n_total.item() == 6
    out = mode_coverage(samples, m, STD)
    assert out["modes"].item() == 3  # mode 6 got a sample, but not an HQ one
    assert out["hq_fraction"].item() == pytest.approx(4 / 6, rel=1e-15)
    # p̂ = (1/2, 1/4, 1/4) on three of 8 modes: KL(p̂ ‖ u) = ½ log 4 + ½ log 2 = 1.5 log 2
    assert out["reverse_kl"].item() == pytest.approx(1.5 * LN2, rel=1e-12)
    # m = (5/16, 3/16, 3/16, 1/16 x 5)
    kl_pm = 0.5 * math.log(8 / 5) + 0.5 * math.log(4 / 3)
    kl_um = math.log(2 / 5) / 8 + math.log(2 / 3) / 4 + 5 / 8 * LN2
    assert out["js"].item() == pytest.approx(0.5 * (kl_pm + kl_um), rel=1e-12)
    p_hat = [0.5, 0, 0.25, 0, 0, 0.25, 0, 0]
    assert out["js"].item() == pytest.approx(_js_by_hand(p_hat), rel=1e-12)
    assert out["js"].item() == pytest.approx(
        scipy.spatial.distance.jensenshannon(p_hat, [1 / 8] * 8) ** 2, rel=1e-10
    )


def test_three_std_threshold():
    m = ring8()
    radial0 = m[0] / m[0].norm()
    samples = torch.stack([m[0] + 2.99 * STD * radial0, m[1] - 3.01 * STD * m[1]])  # (2, 2)
    hq_counts, _ = mode_counts(samples, m, STD)
    assert hq_counts.tolist() == [1, 0, 0, 0, 0, 0, 0, 0]


def test_threshold_is_strict():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.tensor([[1.5, 0.0], [0.0, 1.4999]])  # exactly 3 std (not HQ), just under
    hq_counts, _ = mode_counts(samples, means, std=0.5)
    assert hq_counts.tolist() == [1, 0]


#: float32 samples within a few ulps of 3 std whose float32 distance falls on the other side of the
#: threshold (found by searching grid25 / ring8 samples at 3σ · (1 ± 2e-6)): (mean, std, sample, HQ).
NEAR_THRESHOLD = [
    ((-2.0, 4.0), 0.05, (-1.857289433479309, 3.953808069229126), False),  # 3.0000000177 std
    ((1.0, 0.0), 0.01, (0.9915462732315063, -0.02878427505493164), True),  # 2.9999999779 std
]


@pytest.mark.parametrize(("mean", "std", "sample", "hq"), NEAR_THRESHOLD, ids=["above", "below"])
def test_threshold_is_decided_in_float64_for_float32_samples(mean, std, sample, hq):
    """The 3-std decision is that of an independent float64 computation (numpy, the exact values
    of the float32 inputs), not float32 arithmetic's, which puts these samples on the wrong side."""
    x = torch.tensor([sample], dtype=torch.float32)  # (1, 2), as G outputs them
    means = torch.tensor([mean, [mean[0] + 10.0, mean[1]]], dtype=torch.float32)  # (2, 2)
    d64 = np.linalg.norm(x.double().numpy()[0] - means.double().numpy()[0]) / std
    assert (d64 < 3.0) == hq and abs(d64 - 3.0) < 1e-7
    d32 = torch.linalg.vector_norm(x[0] - means[0]) / torch.tensor(std, dtype=torch.float32)
    assert bool(d32 < 3.0) != hq  # float32 arithmetic decides the other way
    hq_counts, _ = mode_counts(x, means, std)
    assert hq_counts.tolist() == [int(hq), 0]
    metric = ModeCoverage(means, std)
    metric.update(x)
    assert metric.compute()["hq_fraction"].item() == float(hq)


def test_diverged_samples_are_never_hq():
    samples = torch.cat([near([1, 2]), torch.tensor([[math.nan, 0.0], [math.inf, 1.0]], dtype=torch.float64)])
    out = mode_coverage(samples, ring8(), STD)
    assert out["modes"].item() == 2 and out["hq_fraction"].item() == 0.5


def test_empty_batch():
    hq_counts, n_total = mode_counts(torch.zeros(2, 0, 2), ring8(), STD)
    assert hq_counts.shape == (2, 8) and hq_counts.sum().item() == 0 and n_total.tolist() == [0, 0]
    metric = ModeCoverage(ring8(), STD)
    metric.update(torch.zeros(0, 2))
    metric.update(near([4]))
    assert metric.compute()["modes"].item() == 1


def test_grid_means_and_higher_dims():
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    grid25 = torch.cartesian_prod(axis, axis)  # (25, 2)
    out = mode_coverage(grid25 + 0.01, grid25, std=0.05)
    assert out["modes"].item() == 25 and out["reverse_kl"].item() == pytest.approx(0.0, abs=1e-6)
    means3 = torch.eye(3)  # (K=3, d=3)
    out = mode_coverage(torch.eye(3)[[0, 0, 1]], means3, std=0.1)
    assert out["modes"].item() == 2


def test_output_shapes_and_dtypes():
    out = mode_coverage(near([0, 1]), ring8(), STD)
    assert all(v.shape == () and v.dtype == torch.float64 for v in out.values())
    out = mode_coverage(_random_ensemble(e=2, n=10).float(), ring8(torch.float32), STD)
    assert all(v.shape == (2,) and v.dtype == torch.float32 for v in out.values())
    hq_counts, n_total = mode_counts(_random_ensemble(e=2, n=10), ring8(), STD)
    assert hq_counts.shape == (2, 8) and n_total.tolist() == [10, 10]


# --------------------------------------------------------------------------------------------------
# Ensembles and the Metric
# --------------------------------------------------------------------------------------------------


def test_ensemble_members_are_independent():
    samples = _random_ensemble()
    out = mode_coverage(samples, ring8(), STD)
    assert out["modes"].tolist() == [8, 6, 4]
    assert ((out["hq_fraction"] > 0.5) & (out["hq_fraction"] < 1.0)).all()  # some non-HQ in each
    for i in range(samples.shape[0]):
        _assert_same({k: v[i] for k, v in out.items()}, mode_coverage(samples[i], ring8(), STD))


def test_metric_equals_functional():
    samples = _random_ensemble()
    metric = ModeCoverage(ring8(), STD, members=3)
    metric.update(samples)
    _assert_same(metric.compute(), mode_coverage(samples, ring8(), STD))


def test_metric_single_member_accepts_2d():
    samples = _random_ensemble(e=1)[0]  # (N, 2)
    metric = ModeCoverage(ring8(), STD)
    metric.update(samples)
    out = metric.compute()
    assert all(v.shape == () for v in out.values())  # torchmetrics squeezes one-element results
    _assert_same(out, mode_coverage(samples, ring8(), STD))
    metric.update(samples[None])  # (1, N, 2) works as well
    assert metric.n_total.tolist() == [2 * samples.shape[0]]


def test_metric_accumulates_over_updates():
    samples = _random_ensemble(n=300, seed=3)
    one = ModeCoverage(ring8(), STD, members=3)
    one.update(samples)
    two = ModeCoverage(ring8(), STD, members=3)
    two.update(samples[:, :100])
    two.update(samples[:, 100:])
    assert torch.equal(one.hq_counts, two.hq_counts) and torch.equal(one.n_total, two.n_total)
    _assert_same(one.compute(), two.compute())


def test_metric_reset_and_no_hq_member():
    metric = ModeCoverage(ring8(), STD, members=2)
    metric.update(torch.stack([near([0, 1, 2]), torch.zeros(3, 2, dtype=torch.float64)]))
    out = metric.compute()
    assert out["modes"].tolist() == [3, 0]
    assert not math.isnan(out["reverse_kl"][0].item()) and math.isnan(out["reverse_kl"][1].item())
    metric.reset()
    assert metric.hq_counts.sum().item() == 0 and metric.n_total.sum().item() == 0


def test_metric_means_are_a_buffer_not_a_state():
    metric = ModeCoverage(ring8(torch.float32), STD)
    assert "means" in dict(metric.named_buffers())
    assert "means" not in metric._defaults
    assert not any("means" in key for key in metric.state_dict())
    before = metric.means.clone()
    metric.half()  # as a 16-true run would: the means keep their dtype and values
    assert metric.means.dtype == torch.float32 and torch.equal(metric.means, before)
    metric.to(torch.float64)
    assert torch.equal(metric.means, before)
    metric.to("cpu")
    assert metric.means.device.type == "cpu"


def test_metric_accepts_half_samples():
    metric = ModeCoverage(ring8(torch.float32), STD)
    metric.update(ring8(torch.float32)[[0, 1, 1]].to(torch.bfloat16))
    assert metric.compute()["modes"].item() == 2


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (5, 3), (2, 5, 2), (1, 2, 5, 2)])
def test_metric_bad_shapes_raise(shape):
    metric = ModeCoverage(ring8(), STD)  # members = 1, d = 2
    with pytest.raises(ValueError, match="shape"):
        metric.update(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(5, 2), (2, 5, 2), (3, 5, 3)])
def test_ensemble_metric_bad_shapes_raise(shape):
    metric = ModeCoverage(ring8(), STD, members=3)
    with pytest.raises(ValueError, match="members = 3"):
        metric.update(torch.zeros(shape))


def test_functional_bad_inputs_raise():
    with pytest.raises(ValueError, match="samples must have shape"):
        mode_coverage(torch.zeros(5, 3), ring8(), STD)
    with pytest.raises(ValueError, match="samples must have shape"):
        mode_coverage(torch.zeros(5), ring8(), STD)
    with pytest.raises(ConfigError, match="std"):
        mode_coverage(torch.zeros(5, 2), ring8(), 0.0)
    with pytest.raises(ConfigError, match="std"):
        mode_coverage(torch.zeros(5, 2), ring8(), math.nan)
    with pytest.raises(ConfigError, match="means"):
        mode_coverage(torch.zeros(5, 2), ring8()[0], STD)


def test_metric_bad_config_raises():
    with pytest.raises(ConfigError, match="members"):
        ModeCoverage(ring8(), STD, members=0)
    with pytest.raises(ConfigError, match="std"):
        ModeCoverage(ring8(), -1.0)
    with pytest.raises(ConfigError, match="means"):
        ModeCoverage(torch.zeros(0, 2), STD)


# --------------------------------------------------------------------------------------------------
# mean ± s.e.
# --------------------------------------------------------------------------------------------------


def test_mean_and_se_matches_scipy():
    values = torch.tensor([7.0, 8.0, 6.0, 8.0, 5.0, 8.0, 7.0, 8.0, 8.0, 6.0], dtype=torch.float64)
    mean, se = mean_and_se(values)
    assert mean == pytest.approx(np.mean(values.numpy()), rel=1e-12)
    assert se == pytest.approx(scipy.stats.sem(values.numpy()), rel=1e-12)
    assert se == pytest.approx(np.std(values.numpy(), ddof=1) / math.sqrt(10), rel=1e-12)


def test_mean_and_se_skips_non_finite():
    values = torch.tensor([0.1, math.nan, 0.3, math.inf, 0.2], dtype=torch.float64)
    mean, se = mean_and_se(values)
    assert mean == pytest.approx(0.2)
    assert se == pytest.approx(scipy.stats.sem([0.1, 0.3, 0.2]))
    assert se == pytest.approx(scipy.stats.sem(values.numpy()[np.isfinite(values.numpy())]))


def test_mean_and_se_few_values():
    mean, se = mean_and_se(torch.tensor([math.nan, 4.0]))
    assert mean == 4.0 and math.isnan(se)
    mean, se = mean_and_se(torch.tensor([math.nan, math.nan]))
    assert math.isnan(mean) and math.isnan(se)
    mean, se = mean_and_se(torch.tensor([]))
    assert math.isnan(mean) and math.isnan(se)


def test_mean_and_se_of_metric_output():
    out = mode_coverage(_random_ensemble(), ring8(), STD)
    mean, se = mean_and_se(out["modes"])
    assert mean == pytest.approx(6.0) and se == pytest.approx(scipy.stats.sem([8, 6, 4]))
    assert isinstance(mean, float) and isinstance(se, float)
