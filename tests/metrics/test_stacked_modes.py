"""Tests of the stacked-digits mode count (gan_lab.metrics.stacked_modes): the VEEGAN protocol's
extreme cases, hand-made histograms, scipy's KL, update-split invariance; the confident count (its
threshold against numpy.percentile, counts and kept fraction by hand)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch

from gan_lab.errors import ConfigError
from gan_lab.metrics import METRICS
from gan_lab.metrics.stacked_modes import (
    StackedModeCount,
    confidence_threshold,
    confident_statistics,
    max_softmax,
    mode_histograms,
    stacked_mode_statistics,
)


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


# --------------------------------------------------------------------------------------------------
# The confident count: a sample counts when all its channels reach τ, the 1st percentile of real
# channels' max softmax
# --------------------------------------------------------------------------------------------------


def test_threshold_is_numpy_first_percentile_and_keeps_99_percent():
    # mutations caught: the 99th percentile (keep 1 %), nearest rank instead of numpy's linear
    # interpolation, a quantile of the per-sample minimum instead of every channel
    conf = torch.rand(4001, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tau = confidence_threshold(conf)
    assert tau == pytest.approx(float(np.percentile(conf.numpy(), 1)), rel=1e-12)
    assert float((conf >= tau).double().mean()) == pytest.approx(0.99, abs=1e-3)
    assert confidence_threshold(torch.tensor([0.5, 0.7, 0.9]), keep=0.5) == pytest.approx(0.7)  # the median
    assert confidence_threshold(torch.tensor([0.5, 0.7]), keep=0.99) == pytest.approx(0.502)  # 0.5 + 0.01·0.2
    assert math.isnan(confidence_threshold(torch.empty(0)))
    with pytest.raises(ValueError, match="keep"):
        confidence_threshold(conf, keep=0.0)


def test_max_softmax_by_hand():
    logits = torch.log(torch.tensor([[[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]]))  # (1, 2, 3)
    digits, conf = max_softmax(logits)
    assert digits.tolist() == [[1, 0]] and conf.dtype == torch.float64
    assert conf.flatten().tolist() == pytest.approx([0.6, 0.5], rel=1e-6)


def test_confident_count_by_hand():
    # four samples, τ = 0.5: sample 2 has one channel below τ (dropped: all channels must pass);
    # samples 0 and 1 share mode 123. Mutations caught: "any channel" instead of "all" (3 modes, 100 %),
    # the kept fraction over channels (11/12), the confidence averaged over kept samples only
    labels = torch.tensor([[1, 2, 3], [1, 2, 3], [4, 5, 6], [7, 8, 9]])
    conf = torch.tensor([[0.9, 0.8, 0.7], [0.5, 0.5, 0.5], [0.9, 0.49, 0.9], [0.6, 0.6, 1.0]])
    out = confident_statistics(labels, conf, 0.5)
    assert out["confident_modes"].item() == 2.0  # 123 and 789
    assert out["confident_fraction"].item() == 0.75
    assert out["confidence"].item() == pytest.approx(float(conf.double().mean()), rel=1e-12)
    none = confident_statistics(labels, conf, 0.95)
    assert none["confident_modes"].item() == 0.0 and none["confident_fraction"].item() == 0.0
    assert math.isnan(confident_statistics(labels, conf, math.nan)["confident_fraction"].item())
    with pytest.raises(ValueError, match="shaped as the labels"):
        confident_statistics(labels, conf[:, :2], 0.5)


def test_metric_confident_count_sums_over_updates_and_equals_one_call():
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 10, (301, 3), generator=g)
    conf = torch.rand(301, 3, generator=g, dtype=torch.float64)
    tau = 0.3
    expected = confident_statistics(labels, conf, tau)
    metric = StackedModeCount(threshold=tau)
    for part_l, part_c in zip(labels.split([1, 150, 150]), conf.split([1, 150, 150])):
        metric.update(part_l, part_c)
    out = metric.compute()
    for key in ("confident_modes", "confident_fraction", "confidence"):
        assert out[key].item() == pytest.approx(expected[key].item(), rel=1e-12), key
    kept = (conf >= tau).all(1)
    assert out["confident_fraction"].item() == pytest.approx(float(kept.double().mean()))
    assert out["confident_modes"].item() == len({tuple(r) for r in labels[kept].tolist()})
    assert out["modes"].item() == len({tuple(r) for r in labels.tolist()})  # VEEGAN's count: every sample
    # no threshold, or no confidences: NaN, and the VEEGAN count unchanged
    plain = StackedModeCount()  # VEEGAN's keys only, as before the confident count
    plain.update(labels, conf)
    assert set(plain.compute()) == {"modes", "kl", "channel_histograms"}
    no_conf = StackedModeCount(threshold=tau)
    no_conf.update(labels)
    res = no_conf.compute()
    assert math.isnan(res["confidence"].item()) and math.isnan(res["confident_fraction"].item())
    assert res["modes"].item() == out["modes"].item()
