"""Tests of precision / recall / density / coverage (gan_lab.metrics.prdc): hand-computed small sets
with ties and duplicates, a brute-force reference on the full distance matrix, chunking and the
invariances of the Metric."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import scipy.spatial.distance
import torch

from gan_lab.errors import ConfigError
from gan_lab.metrics import METRICS
from gan_lab.metrics.prdc import PRDC, density_coverage, knn_radii, prdc, precision_recall

# the module, not the function gan_lab.metrics.prdc that the package exports under the same name
prdc_module = importlib.import_module("gan_lab.metrics.prdc")
KEYS = ("precision", "recall", "density", "coverage")
SQUARE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # k = 1 radii: all 1


def brute_force(real: torch.Tensor, fake: torch.Tensor, k_pr: int, k_dc: int) -> dict[str, float]:
    """The four definitions on full float64 distance matrices (scipy cdist, the direct form, which
    is exact on small integer coordinates), radii by sorting each row (self is the row's 0 at
    position 0, so the k-th other sample is at position k); closed balls (<=) for precision /
    recall (Kynkäänniemi et al.'s code), open balls (<) for density / coverage (Naeem et al.'s)."""
    r, f = real.double().numpy(), fake.double().numpy()
    d_rr = scipy.spatial.distance.cdist(r, r)
    d_ff = scipy.spatial.distance.cdist(f, f)
    d_fr = scipy.spatial.distance.cdist(f, r)  # (M, N)
    rad_r_pr, rad_r_dc = np.sort(d_rr, 1)[:, k_pr], np.sort(d_rr, 1)[:, k_dc]
    rad_f_pr = np.sort(d_ff, 1)[:, k_pr]
    return {
        "precision": float((d_fr <= rad_r_pr[None, :]).any(1).mean()),
        "recall": float((d_fr <= rad_f_pr[:, None]).any(0).mean()),
        "density": float((d_fr < rad_r_dc[None, :]).sum() / (k_dc * len(f))),
        "coverage": float((d_fr.min(0) < rad_r_dc).mean()),
    }


def naeem_reference(real: torch.Tensor, fake: torch.Tensor, k: int) -> dict[str, float]:
    """Naeem et al.'s ``compute_prdc`` (clovaai/generative-evaluation-prdc, ``prdc/prdc.py``),
    written out again in numpy: pairwise Euclidean distances, each radius the (k + 1)-th smallest
    distance of its row (``get_kth_value(k=nearest_k + 1)``: the row's own 0 counts as the first),
    and strict comparisons (``<``) in all four metrics. (Distances by scipy's direct form instead of
    sklearn's ``pairwise_distances``: exact on small integers, so ties stay ties.)"""
    r, f = real.double().numpy(), fake.double().numpy()
    real_radii = np.partition(scipy.spatial.distance.cdist(r, r), k, axis=1)[:, k]  # (k+1)-th smallest
    fake_radii = np.partition(scipy.spatial.distance.cdist(f, f), k, axis=1)[:, k]
    d_rf = scipy.spatial.distance.cdist(r, f)  # (N, M): distance_real_fake
    return {
        "precision": float((d_rf < real_radii[:, None]).any(axis=0).mean()),
        "recall": float((d_rf < fake_radii[None, :]).any(axis=1).mean()),
        "density": float((1.0 / k) * (d_rf < real_radii[:, None]).sum(axis=0).mean()),
        "coverage": float((d_rf.min(axis=1) < real_radii).mean()),
    }


def as_floats(out: dict) -> dict[str, float]:
    assert all(v.dtype == torch.float64 and v.dim() == 0 for v in out.values())
    return {k: v.item() for k, v in out.items()}


def grid_points(n: int, d: int, seed: int, high: int = 4) -> torch.Tensor:
    """Integer points in {0..high-1}^d: many equal distances (ties) and duplicates."""
    return torch.randint(0, high, (n, d), generator=torch.Generator().manual_seed(seed)).float()


def test_knn_radii_by_hand_with_duplicates():
    x = torch.tensor([[0.0], [1.0], [1.0], [4.0], [6.0]])
    assert knn_radii(x, k=1).tolist() == [1.0, 0.0, 0.0, 2.0, 2.0]  # a duplicate is at distance 0
    assert knn_radii(x, k=2).tolist() == [1.0, 1.0, 1.0, 3.0, 5.0]
    assert knn_radii(x, k=4).tolist() == [6.0, 5.0, 5.0, 4.0, 6.0]
    assert knn_radii(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), k=1).tolist() == [5.0, 5.0]


def test_hand_computed_square_with_a_fake_on_a_ball_boundary():
    # (2, 0) is exactly 1 from (1, 0): inside its closed ball (precision), outside its open one
    # (density); (0.5, 0.5) is inside all four balls
    fake = torch.tensor([[2.0, 0.0], [0.5, 0.5], [3.0, 3.0]])
    out = as_floats(prdc(SQUARE, fake, k_pr=1, k_dc=1))
    assert out["precision"] == pytest.approx(2 / 3, rel=1e-15)
    assert out["density"] == pytest.approx(4 / 3, rel=1e-15)  # (0 + 4 + 0) / (1 · 3)
    assert out["coverage"] == 1.0
    assert out["recall"] == 1.0  # every corner is 0.71 from (0.5, 0.5), whose fake radius is 1.58
    assert out == pytest.approx(brute_force(SQUARE, fake, 1, 1), rel=1e-15)


def test_collapsed_generator_duplicates():
    fake = torch.zeros(6, 2)  # six copies of the real corner (0, 0): fake radii 0
    out = as_floats(prdc(SQUARE, fake, k_pr=3, k_dc=1))
    assert out["precision"] == 1.0  # at distance 0 from a real sample
    assert out["recall"] == 0.25  # only (0, 0) is inside a fake (closed) ball of radius 0
    assert out["density"] == 1.0  # inside the k = 1 ball of (0, 0); on the boundary of (1, 0)'s and (0, 1)'s
    assert out["coverage"] == 0.25  # (1, 0) and (0, 1) hold the fakes on their boundary only
    assert out == brute_force(SQUARE, fake, 3, 1)


def test_duplicates_are_exactly_at_distance_zero_for_general_float_features():
    """Rows with all 24 bits significant over a wide range of exponents, where the Gram form alone
    leaves about half of the equal pairs up to ~1e-5 apart (the dot product and the squared norms
    round differently): every duplicated row's radius is 0 and its fake copies are inside."""
    g = torch.Generator().manual_seed(0)
    base = torch.exp(3 * torch.randn(300, 64, generator=g))
    real = torch.cat([base, base[:30], base[:30]])  # rows 0..29 three times each
    radii = knn_radii(real, k=2)
    assert radii[:30].tolist() == [0.0] * 30 and radii[300:].tolist() == [0.0] * 60
    assert radii[30:300].min() > 0
    fake = torch.cat([base[:30], torch.exp(3 * torch.randn(30, 64, generator=g))])
    out = prdc(real, fake, k_pr=2, k_dc=2)
    assert as_floats(out) == pytest.approx(brute_force(real, fake, 2, 2), rel=1e-15)
    assert precision_recall(real, base[:30].repeat(2, 1), k=2)["precision"].item() == 1.0


def _same_partition(ids: torch.Tensor, rows: torch.Tensor) -> bool:
    """ids group the rows exactly as equality of their values does (torch.unique's grouping)."""
    reference = torch.unique(rows, dim=0, return_inverse=True)[1]
    return torch.equal(ids[:, None] == ids[None, :], reference[:, None] == reference[None, :])


def test_duplicate_ids_group_equal_rows_exactly():
    g = torch.Generator().manual_seed(3)
    real = torch.exp(3 * torch.randn(40, 7, generator=g))
    fake = torch.cat([real[[1, 1, 5]], -real[:2], torch.randn(6, 7, generator=g).double()])
    real[3, 2], real[4] = -0.0, real[3]  # -0.0 and 0.0 are one value
    real[4, 2] = 0.0
    ids = prdc_module._duplicate_ids([real, fake], chunk=8)
    assert _same_partition(ids, torch.cat([real.double(), fake]))
    assert ids[1] == ids[40] == ids[41] and ids[3] == ids[4]


def test_duplicate_ids_survive_a_hash_collision(monkeypatch):
    """A hash that puts every row in one group: the check against the group's first row catches
    it and the exact grouping is used."""
    monkeypatch.setattr(prdc_module, "_row_hashes", lambda x: torch.zeros(x.shape[0], dtype=torch.long))
    x = grid_points(30, 2, seed=4)
    assert _same_partition(prdc_module._duplicate_ids([x[:20], x[20:]], chunk=7), x)
    assert as_floats(prdc(x[:20], x[20:], k_pr=2, k_dc=2)) == pytest.approx(
        brute_force(x[:20], x[20:], 2, 2), rel=1e-15
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("d", "k_pr", "k_dc"), [(1, 3, 5), (2, 3, 5), (3, 1, 2), (5, 2, 4)])
def test_matches_brute_force_on_grid_points_with_ties(seed, d, k_pr, k_dc):
    real, fake = grid_points(40, d, seed), grid_points(35, d, seed + 100)
    assert as_floats(prdc(real, fake, k_pr, k_dc)) == pytest.approx(
        brute_force(real, fake, k_pr, k_dc), rel=1e-15
    )


def test_matches_brute_force_on_continuous_features():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(120, 16, generator=g), 0.3 + 1.2 * torch.randn(100, 16, generator=g)
    got = as_floats(prdc(real, fake))
    assert got == pytest.approx(brute_force(real, fake, 3, 5), rel=1e-15)
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1 and 0 < got["coverage"] < 1


@pytest.mark.parametrize("chunk", [1, 3, 7, 16, 41, 1000])
def test_chunked_equals_unchunked(chunk):
    for real, fake in [
        (grid_points(41, 2, 3), grid_points(37, 2, 4)),
        (torch.randn(41, 8, generator=torch.Generator().manual_seed(5)), torch.randn(37, 8) + 0.2),
    ]:
        assert as_floats(prdc(real, fake, chunk=chunk)) == as_floats(prdc(real, fake, chunk=10_000))
        torch.testing.assert_close(knn_radii(real, 3, chunk=chunk), knn_radii(real, 3), rtol=1e-12, atol=0)


def test_translation_by_a_large_offset_keeps_exact_ties():
    """Points with a common offset of 2^26 + 1/2 (squares need 54 bits): the translation by a data
    point keeps the differences, and the results, exact."""
    real, fake = grid_points(40, 2, 6).double(), grid_points(30, 2, 7).double()
    offset = 2.0**26 + 0.5
    assert as_floats(prdc(real + offset, fake + offset, k_pr=2, k_dc=3)) == as_floats(prdc(real, fake, 2, 3))
    assert torch.equal(knn_radii(real + offset, 2), knn_radii(real, 2))


def test_identical_sets():
    """A set against a copy of itself, k-NN distances not tied: each real ball holds its own copy
    and the k - 1 nearer neighbours, not the k-th (on the boundary), so density is exactly 1 (the
    closed balls of the papers' formulas gave (k + 1) / k = 1.2)."""
    real = torch.randn(50, 4, generator=torch.Generator().manual_seed(8))
    out = as_floats(prdc(real, real.clone()))
    assert out["precision"] == out["recall"] == out["coverage"] == out["density"] == 1.0
    reference = naeem_reference(real, real, k=5)
    assert (out["density"], out["coverage"]) == (reference["density"], reference["coverage"])


def test_ties_by_hand_on_integers():
    # 0..4 on a line, k = 1: every radius is 1, so each neighbour sits on the ball's boundary;
    # open balls hold only the sample's own copy: density 5 / 5 = 1 (closed ones: 13 / 5 = 2.6)
    x = torch.arange(5.0)[:, None]
    out = as_floats(density_coverage(x, x.clone(), k=1))
    assert out == {"density": 1.0, "coverage": 1.0}
    reference = naeem_reference(x, x, 1)
    assert (reference["density"], reference["coverage"]) == (1.0, 1.0)
    # precision keeps closed balls (Kynkäänniemi et al.): the fake 5 is on the boundary of 4's ball
    assert precision_recall(x, x + 1, k=1)["precision"].item() == 1.0
    assert naeem_reference(x, x + 1, 1)["precision"] == 0.8  # the prdc package's < leaves it out
    # duplicated reals: radius 0, an empty open ball (Naeem et al.'s behaviour); the fake 5 is on the
    # boundary of the ball of 4 (radius 1), outside it
    real = torch.tensor([[0.0], [0.0], [4.0], [3.0]])
    out = as_floats(density_coverage(real, torch.tensor([[0.0], [5.0], [3.5]]), k=1))
    assert out == {"density": pytest.approx(2 / 3), "coverage": 0.5}  # 3.5 inside the balls of 3 and 4


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("d", "k", "high"), [(1, 5, 6), (2, 3, 4), (3, 5, 3), (8, 2, 2)])
def test_density_coverage_match_naeem_reference_on_integer_features(seed, d, k, high):
    """Integer-valued features (many ties, duplicates): density and coverage equal Naeem et al.'s
    formulas (strict <) exactly; precision and recall Kynkäänniemi et al.'s (<=)."""
    real, fake = grid_points(60, d, seed, high), grid_points(50, d, seed + 50, high)
    for r, f in ((real, fake), (real, real.clone())):
        out = as_floats(prdc(r, f, k_pr=k, k_dc=k))
        reference = naeem_reference(r, f, k)
        assert out["density"] == pytest.approx(reference["density"], rel=1e-14)  # 1/(kM) Σ vs (1/k) mean
        assert out["coverage"] == reference["coverage"]
        assert out == pytest.approx(brute_force(r, f, k, k), rel=1e-14)


def test_density_of_integer_features_is_not_the_closed_ball_count():
    """Integer features with many tied radii (the cross-check's kind of case), k = 5: closed balls
    counted every fake on a boundary, a density several times the reference formula's."""
    real, fake = grid_points(200, 4, 21, high=4), grid_points(200, 4, 22, high=4)
    out = as_floats(density_coverage(real, fake))
    reference = naeem_reference(real, fake, 5)
    assert out["density"] == pytest.approx(reference["density"], rel=1e-14)
    assert out["coverage"] == reference["coverage"]
    assert 0.4 < out["density"] < 0.5  # 0.458
    r, f = real.double().numpy(), fake.double().numpy()
    radii = np.sort(scipy.spatial.distance.cdist(r, r), 1)[:, 5]
    closed = (scipy.spatial.distance.cdist(f, r) <= radii[None, :]).sum() / (5 * len(f))
    assert closed > 3 * out["density"]  # 1.737: what the closed balls gave


def test_non_finite_features_give_nan():
    fake = torch.zeros(10, 2)
    fake[3, 0] = math.inf
    out = prdc(SQUARE.repeat(3, 1) + torch.arange(12.0)[:, None], fake)
    assert set(out) == set(KEYS) and all(math.isnan(v.item()) for v in out.values())


def test_bad_input():
    with pytest.raises(ConfigError, match="k=5 need more than 5 real samples") as e:
        prdc(torch.randn(5, 2), torch.randn(20, 2))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="k=3 need more than 3 fake samples"):
        prdc(torch.randn(20, 2), torch.randn(3, 2))
    with pytest.raises(ConfigError, match="chunk"):
        prdc(torch.randn(20, 2), torch.randn(20, 2), chunk=0)
    with pytest.raises(ConfigError, match="neighbourhood size k"):
        precision_recall(torch.randn(20, 2), torch.randn(20, 2), k=0)
    with pytest.raises(ValueError, match=r"\(N, d\) and \(M, d\)"):
        prdc(torch.randn(20, 2), torch.randn(20, 3))
    metric = PRDC(reference=torch.randn(20, 2))
    with pytest.raises(ValueError, match="fixed reference"):
        metric.update(torch.randn(4, 2), real=True)


def test_empty_inputs_are_one_line_errors():
    """No fake sample made density NaN and coverage 0 without a word; no dimension scored every
    sample as a duplicate."""
    real = torch.randn(20, 2)
    for call in (
        lambda: density_coverage(real, torch.empty(0, 2)),
        lambda: density_coverage(torch.empty(0, 2), torch.randn(5, 2)),
        lambda: precision_recall(real, torch.empty(0, 2)),
        lambda: prdc(real, torch.empty(0, 2)),
        lambda: prdc(torch.empty(20, 0), torch.empty(20, 0)),
        lambda: density_coverage(torch.empty(20, 0), torch.empty(3, 0)),
        lambda: knn_radii(torch.empty(20, 0), k=3),
    ):
        with pytest.raises(ConfigError) as e:
            call()
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="at least 1 fake sample, got 0"):
        density_coverage(real, torch.empty(0, 2))
    with pytest.raises(ConfigError, match="0 dimensions"):
        density_coverage(torch.empty(20, 0), torch.empty(3, 0))
    metric = PRDC(reference=real)
    metric.update(torch.empty(0, 2))
    with pytest.raises(ConfigError, match="more than 3 fake samples"):
        metric.compute()


def run_metric(real_parts, fake_parts, **kwargs):
    metric = PRDC(chunk=16, **kwargs)
    for part in real_parts:
        metric.update(part, real=True)
    for part in fake_parts:
        metric.update(part)
    return as_floats(metric.compute())


def test_metric_is_independent_of_order_and_update_splits():
    real, fake = grid_points(60, 3, 9), grid_points(50, 3, 10)
    expected = as_floats(prdc(real, fake))
    g = torch.Generator().manual_seed(0)
    assert run_metric([real], [fake]) == expected
    assert (
        run_metric([real[torch.randperm(60, generator=g)]], [fake[torch.randperm(50, generator=g)]])
        == expected
    )
    assert run_metric(real.split([1, 29, 30]), fake.split(7)) == expected


def test_fixed_reference_equals_accumulated_and_survives_reset():
    real, fake = grid_points(60, 3, 11), grid_points(50, 3, 12)
    metric = PRDC(reference=real, chunk=16)
    metric.update(fake[:5])
    metric.reset()
    metric.update(fake)
    assert as_floats(metric.compute()) == run_metric([real], [fake])


def test_registered():
    assert METRICS["prdc"] is PRDC
