"""Tests of the Inception Score (gan_lab.metrics.inception_score): hand values, torch-fidelity's and
torchmetrics' arithmetic on the same logits, invariances of the Metric."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric
from torchmetrics.image.inception import InceptionScore as TorchmetricsInceptionScore

from gan_lab.errors import ConfigError
from gan_lab.metrics import METRICS
from gan_lab.metrics.inception_score import InceptionScore, inception_score


def random_logits(n: int, c: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    return scale * torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_uniform_posteriors_give_one():
    mean, std = inception_score(torch.full((40, 7), 2.5), splits=4)
    assert mean.dtype == torch.float64
    assert mean.item() == pytest.approx(1.0, abs=1e-14) and std.item() == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_confident_distinct_classes_used_equally_give_the_number_of_classes(classes):
    logits = 200.0 * torch.eye(classes).repeat(3, 1)  # (3C, C): each class three times, certain
    mean, std = inception_score(logits, splits=3)  # each split holds every class once
    assert mean.item() == pytest.approx(classes, rel=1e-12) and std.item() == pytest.approx(0.0, abs=1e-9)


def test_splits_are_contiguous_and_std_has_ddof_0():
    # split 1: four samples certain of class 0 (IS 1); split 2: classes 0, 1, 0, 1 (IS 2)
    logits = 100.0 * torch.eye(2)[[0, 0, 0, 0, 0, 1, 0, 1]]
    mean, std = inception_score(logits, splits=2)
    assert mean.item() == pytest.approx(1.5, rel=1e-12)
    assert std.item() == pytest.approx(0.5, rel=1e-12)  # population std of (1, 2)


def test_hand_computed_value_for_soft_posteriors():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64)
    marginal = p.mean(0)
    expected = math.exp(sum((p[i] * (p[i] / marginal).log()).sum().item() for i in range(2)) / 2)
    mean, _ = inception_score(p.log() + 5.0, splits=1)  # logits up to a constant
    assert mean.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "splits"), [(1003, 10), (500, 7), (64, 1)])
def test_matches_torch_fidelity_without_shuffle(n, splits):
    logits = random_logits(n, 20, seed=n)
    ref = isc_features_to_metric(logits, splits=splits, shuffle=False)
    mean, std = inception_score(logits, splits=splits)
    assert mean.item() == pytest.approx(ref["inception_score_mean"], rel=1e-12)
    assert std.item() == pytest.approx(ref["inception_score_std"], rel=1e-9, abs=1e-12)


def test_matches_torchmetrics_on_its_shuffle():
    """torchmetrics permutes with torch's global generator, cuts ``chunk(splits)`` (the same
    boundaries when N is a multiple of the splits) and reports the std with ddof 1."""
    n, splits = 600, 6
    logits = random_logits(n, 12, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        reference = TorchmetricsInceptionScore(feature=torch.nn.Identity(), splits=splits)
    reference.update(logits)
    torch.manual_seed(7)
    ref_mean, ref_std = reference.compute()
    torch.manual_seed(7)
    mean, std = inception_score(logits[torch.randperm(n)], splits=splits)
    assert mean.item() == pytest.approx(ref_mean.item(), rel=1e-12)
    assert std.item() * math.sqrt(splits / (splits - 1)) == pytest.approx(ref_std.item(), rel=1e-9)


def test_extreme_logits_stay_finite():
    logits = random_logits(50, 5, seed=2, scale=1e4)  # posteriors of exact 0 and 1
    mean, std = inception_score(logits, splits=5)
    assert math.isfinite(mean.item()) and 1.0 <= mean.item() <= 5.0 + 1e-9 and math.isfinite(std.item())


def run_metric(parts, **kwargs):
    metric = InceptionScore(splits=5, **kwargs)
    for part in parts:
        metric.update(part)
    return metric.compute()


def test_metric_is_independent_of_order_and_splits():
    logits = random_logits(203, 9, seed=3).float()
    one = run_metric([logits])
    perm = torch.randperm(203, generator=torch.Generator().manual_seed(0))
    shuffled = run_metric([logits[perm]])
    split = run_metric(logits.split([1, 100, 102]))
    assert all(torch.equal(a, b) for a, b in zip(one, shuffled, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(one, split, strict=True))
    # the seeded shuffle makes the splits a random partition, not the order of arrival
    assert not torch.equal(run_metric([logits], seed=1)[0], one[0])


def test_metric_shuffles_class_sorted_input():
    """Class-sorted logits split in order would score 1 per split; the Metric's shuffle mixes them."""
    logits = 100.0 * torch.eye(5)[torch.arange(5).repeat_interleave(40)]  # (200, 5), sorted by class
    assert inception_score(logits, splits=5)[0].item() == pytest.approx(1.0)
    assert run_metric([logits])[0].item() > 4.5


def test_bad_input():
    with pytest.raises(ConfigError, match="at least one sample per split, got 3 samples for 10 splits") as e:
        inception_score(torch.zeros(3, 4))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="IS splits"):
        InceptionScore(splits=0)
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        InceptionScore().update(torch.zeros(4))


def test_registered():
    assert METRICS["inception_score"] is InceptionScore
