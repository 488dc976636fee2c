"""Tests of the stacked-digits mode count (gan_lab.metrics.stacked_modes): the VEEGAN protocol's
extreme cases, hand-made histograms, scipy's KL, update-split invariance."""

from __future__ import annotations

import itertools
import math

import pytest
import scipy.stats
import torch

from gan_lab.errors import ConfigError
from gan_lab.metrics import METRICS
from gan_lab.metrics.stacked_modes import StackedModeCount, mode_histograms, stacked_mode_statistics


def test_one_triple_is_one_mode_with_kl_ln_1000():
    out = stacked_mode_statistics(torch.tensor([[3, 1, 4]]).repeat(50, 1))
    assert out["modes"].item() == 1.0
    assert out["kl"].dtype == torch.float64
    assert out["kl"].item() == pytest.approx(math.log(1000), rel=1e-14)


def test_every_triple_equally_often_is_1000_modes_with_kl_0():
    triples = torch.tensor(list(itertools.product(range(10), repeat=3)))  # (1000, 3)
    out = stacked_mode_statistics(triples.repeat(2, 1))
    assert out["modes"].item() == 1000.0
    assert abs(out["kl"].item()) < 1e-12
    assert out["channel_histograms"].tolist() == [[200] * 10] * 3


def test_mode_index_and_channel_histograms_by_hand():
    labels = torch.tensor([[1, 2, 3], [1, 2, 3], [0, 0, 9], [9, 0, 0]])
    modes, per_channel = mode_histograms(labels)
    assert modes.shape == (1000,) and per_channel.shape == (3, 10)
    assert {i: int(c) for i, c in enumerate(modes) if c} == {123: 2, 9: 1, 900: 1}
    assert per_channel.tolist() == [
        [1, 2, 0, 0, 0, 0, 0, 0, 0, 1],
        [2, 0, 2, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 2, 0, 0, 0, 0, 0, 1],
    ]
    out = stacked_mode_statistics(labels)
    assert out["modes"].item() == 3.0
    p = [0.5, 0.25, 0.25] + [0.0] * 997
    assert out["kl"].item() == pytest.approx(scipy.stats.entropy(p, [1 / 1000] * 1000), rel=1e-12)
    assert out["kl"].item() == pytest.approx(0.5 * math.log(500) + 0.5 * math.log(250), rel=1e-12)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_other_channel_counts(channels):
    labels = torch.randint(0, 10, (300, channels), generator=torch.Generator().manual_seed(channels))
    out = stacked_mode_statistics(labels, channels=channels)
    distinct = len({tuple(row) for row in labels.tolist()})
    assert out["modes"].item() == distinct
    counts = torch.tensor(
        sorted([labels.tolist().count(list(r)) for r in {tuple(x) for x in labels.tolist()}])
    )
    p = counts.double() / 300
    expected = float((p * (p * 10**channels).log()).sum())
    assert out["kl"].item() == pytest.approx(expected, rel=1e-12)
    assert out["channel_histograms"].sum(1).tolist() == [300] * channels


def test_metric_sums_over_updates_and_resets():
    labels = torch.randint(0, 10, (257, 3), generator=torch.Generator().manual_seed(0))
    expected = stacked_mode_statistics(labels)
    metric = StackedModeCount()
    for part in labels.split([1, 100, 156]):
        metric.update(part)
    out = metric.compute()
    assert out["modes"].item() == expected["modes"].item()
    assert out["kl"].item() == pytest.approx(expected["kl"].item(), rel=1e-14)
    assert torch.equal(out["channel_histograms"], expected["channel_histograms"])
    metric.reset()
    metric.update(labels[:1])
    assert metric.compute()["kl"].item() == pytest.approx(math.log(1000), rel=1e-14)


def test_no_sample_gives_nan_kl():
    out = stacked_mode_statistics(torch.zeros(0, 3, dtype=torch.long))
    assert out["modes"].item() == 0.0 and math.isnan(out["kl"].item())


def test_bad_input():
    with pytest.raises(ValueError, match=r"digits 0\.\.9"):
        stacked_mode_statistics(torch.tensor([[1, 2, 10]]))
    with pytest.raises(ValueError, match=r"digits 0\.\.9"):
        stacked_mode_statistics(torch.tensor([[1, -1, 0]]))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        stacked_mode_statistics(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="integer digits"):
        stacked_mode_statistics(torch.tensor([[1.0, 2.0, 3.0]]))
    for channels in (0, 7, True, 2.0):
        with pytest.raises(ConfigError, match="stacked channels C"):
            StackedModeCount(channels=channels)


def test_registered():
    assert METRICS["stacked_modes"] is StackedModeCount
