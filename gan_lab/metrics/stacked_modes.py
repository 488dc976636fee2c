"""Mode count on stacked digits / stacked MNIST (VEEGAN protocol; Srivastava et al., 2017, sec. 5.2;
Metz et al., 2017, "Unrolled GANs").

A generated sample stacks ``C`` digit images as channels (``C = 3``: RGB); a digit classifier labels
each channel, ``(d_1, .., d_C)`` with ``d_c ∈ {0..9}``, and the sample falls into mode

    mode = Σ_c d_c · 10^(C−c)        (for C = 3: 100 d_1 + 10 d_2 + d_3, one of 1,000 modes)

Reported over all samples (26,000 in the VEEGAN protocol):

    modes               #{mode : n_mode ≥ 1}                   distinct tuples seen
    kl                  KL(p̂ ‖ u) = Σ p̂ log(10^C p̂)          p̂ = n_mode / N, u uniform over 10^C modes, nats
    channel_histograms  (C, 10), how often each digit was read in each channel

``kl`` is 0 when every mode is used equally often and ``C · ln 10`` (``ln 1000``) when all samples
sit on one mode; NaN before any sample. :func:`stacked_mode_statistics` is the functional core;
:class:`StackedModeCount` sums the histograms over ``update`` calls and DDP processes
(``dist_reduce_fx="sum"``), so it equals one call on all samples.

**The confident count.** VEEGAN's count labels every sample, blob or digit: a classifier always
names *some* digit. Beside it, with the classifier's max-softmax confidence of each channel
(:func:`max_softmax`), a sample is *recognised* when all its C channels reach a threshold τ
calibrated on real digits (:func:`confidence_threshold`: the 1st percentile of the real channels'
confidences, so that 99 % of real channels pass):

    confidence          mean max-softmax over all channels of all samples
    confident_modes     #{mode : some recognised sample falls in it}
    confident_fraction  #recognised samples / N

(:func:`confident_statistics`). ``StackedModeCount(threshold=τ)`` keeps them too (its update takes
the ``(B, C)`` confidences beside the labels; all sums, so DDP reduces them by ``sum``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from gan_lab.divergences import kl_divergence
from gan_lab.errors import ConfigError

__all__ = [
    "MAX_CHANNELS",
    "REAL_KEEP",
    "StackedModeCount",
    "confidence_threshold",
    "confident_statistics",
    "max_softmax",
    "mode_histograms",
    "stacked_mode_statistics",
    "statistics_from_histograms",
]

MAX_CHANNELS = 6
"""At most 10^6 modes: the mode histogram is a dense vector."""

REAL_KEEP = 0.99
"""The share of real channels the confidence threshold keeps (τ: their 1st percentile)."""


def _check_channels(channels: int) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise ConfigError(
            f"stacked channels C must be an integer in 1..{MAX_CHANNELS} (10^C modes), got {channels!r}"
        )
    return channels


def _check_labels(labels: Tensor, channels: int) -> Tensor:
    labels = torch.as_tensor(labels).detach()
    if labels.dim() != 2 or labels.shape[1] != channels:
        raise ValueError(f"labels must be (B, {channels}), one digit per channel, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer digits 0..9, got dtype {labels.dtype}")
    if labels.numel() and bool(((labels < 0) | (labels > 9)).any()):
        raise ValueError("labels must be digits 0..9; some are outside")
    return labels.long()


def mode_histograms(labels: Tensor, channels: int = 3) -> tuple[Tensor, Tensor]:
    """Counts per mode ``(10^C,)`` and per channel and digit ``(C, 10)``, int64.

    Args:
        labels: ``(B, C)`` digits 0..9, integer dtype.
        channels: ``C``.

    Raises:
        ConfigError: ``channels`` outside ``1..6``.
        ValueError: labels of another shape, dtype or range.

    >>> modes, per_channel = mode_histograms(torch.tensor([[1, 2, 3], [1, 2, 3]]))
    >>> modes[123].item(), int(modes.sum()), per_channel[:, 1:4].tolist()
    (2, 2, [[2, 0, 0], [0, 2, 0], [0, 0, 2]])
    """
    channels = _check_channels(channels)
    labels = _check_labels(labels, channels)
    place = 10 ** torch.arange(channels - 1, -1, -1, device=labels.device)  # (C,): 100, 10, 1
    mode = (labels * place).sum(1)  # (B,)
    modes = torch.bincount(mode, minlength=10**channels)  # (10^C,)
    offsets = 10 * torch.arange(channels, device=labels.device)  # (C,)
    per_channel = torch.bincount((labels + offsets).flatten(), minlength=10 * channels).view(channels, 10)
    return modes, per_channel


def statistics_from_histograms(modes: Tensor, channel_histograms: Tensor) -> dict[str, Tensor]:
    """``{"modes", "kl", "channel_histograms"}`` from the histograms (module docstring).

    ``modes`` and ``kl`` are float64 scalars (``kl`` NaN without samples); ``channel_histograms`` is
    passed through.

    >>> statistics_from_histograms(torch.tensor([3, 1, 0, 0]), torch.zeros(1, 10))["kl"]  # ¾ ln 3 + ¼ ln 1
    tensor(0.8240, dtype=torch.float64)
    """
    counts = modes.to(torch.float64)
    n = counts.sum()
    uniform = torch.full_like(counts, 1.0 / counts.numel())
    kl = kl_divergence(counts / n, uniform) if n > 0 else torch.tensor(math.nan, dtype=torch.float64)
    return {"modes": (modes > 0).sum().to(torch.float64), "kl": kl, "channel_histograms": channel_histograms}


def stacked_mode_statistics(labels: Tensor, channels: int = 3) -> dict[str, Tensor]:
    """Modes seen, KL(p̂ ‖ uniform over 10^C) in nats and per-channel digit histograms of
    classified stacked samples (module docstring).

    Args:
        labels: ``(N, C)`` digits 0..9 per channel.
        channels: ``C`` (3 for stacked MNIST: 1,000 modes).

    Returns:
        ``{"modes", "kl", "channel_histograms"}``: float64 scalars and an int64 ``(C, 10)``.

    >>> out = stacked_mode_statistics(torch.tensor([[0, 0, 0], [9, 9, 9]]))
    >>> out["modes"].item(), round(out["kl"].item(), 4), round(math.log(500), 4)  # two of 1,000 modes
    (2.0, 6.2146, 6.2146)
    """
    return statistics_from_histograms(*mode_histograms(labels, channels))


def max_softmax(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(digits, confidence)``: the argmax and the largest softmax probability over the last axis
    of ``logits`` (``(..., 10)``), the confidence in float64.

    >>> digits, conf = max_softmax(torch.tensor([[0.0, 0.0], [math.log(3), 0.0]]))
    >>> digits.tolist(), [round(c, 6) for c in conf.tolist()]
    ([0, 0], [0.5, 0.75])
    """
    p = torch.as_tensor(logits).detach().to(torch.float64).softmax(-1)
    conf, digits = p.max(-1)
    return digits, conf


def confidence_threshold(real_confidence: Tensor, keep: float = REAL_KEEP) -> float:
    """The confidence τ that keeps the share ``keep`` of real channels: the ``(1 − keep)`` quantile
    of ``real_confidence`` (any shape, flattened), linearly interpolated as ``numpy.percentile``
    does by default. NaN when there is none (or any is NaN).

    >>> round(confidence_threshold(torch.linspace(0.0, 1.0, 101)), 6)  # the 1st percentile of 0, 0.01, .., 1
    0.01
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    c = torch.as_tensor(real_confidence).detach().to(torch.float64).flatten().cpu()
    if c.numel() == 0 or bool(c.isnan().any()):
        return math.nan
    c, _ = c.sort()
    pos = (1.0 - keep) * (c.numel() - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, c.numel() - 1)
    return float(c[lo] + (pos - lo) * (c[hi] - c[lo]))


def _recognised(confidence: Tensor, threshold: float) -> Tensor:
    """``(B,)`` bool: every channel of the sample reaches ``threshold``."""
    return (confidence.to(torch.float64) >= threshold).all(-1)


def confident_statistics(labels: Tensor, confidence: Tensor, threshold: float) -> dict[str, Tensor]:
    """``{"confidence", "confident_modes", "confident_fraction"}`` (module docstring), float64
    scalars, of labels ``(N, C)`` with their confidences ``(N, C)`` and the threshold τ. A sample
    counts when all its channels reach τ; NaN without samples (or with a NaN τ).

    >>> labels = torch.tensor([[1, 2, 3], [1, 2, 3], [4, 5, 6], [7, 8, 9]])
    >>> conf = torch.tensor([[0.9, 0.9, 0.9], [0.9, 0.9, 0.9], [0.9, 0.2, 0.9], [0.9, 0.9, 0.9]])
    >>> {k: round(v.item(), 4) for k, v in confident_statistics(labels, conf, 0.5).items()}
    {'confidence': 0.8417, 'confident_modes': 2.0, 'confident_fraction': 0.75}
    """
    labels = torch.as_tensor(labels)
    channels = labels.shape[1] if labels.dim() == 2 else 0
    confidence = torch.as_tensor(confidence).to(labels.device)
    if confidence.shape != labels.shape:
        raise ValueError(
            f"confidence must be shaped as the labels {tuple(labels.shape)}, got {tuple(confidence.shape)}"
        )
    keep = _recognised(confidence, threshold)
    modes, _ = mode_histograms(labels[keep], _check_channels(channels))
    return _confident_from_sums(
        modes, keep.sum(), labels.shape[0], confidence.to(torch.float64).sum(), confidence.numel(), threshold
    )


def _confident_from_sums(
    confident_modes: Tensor, kept, n, confidence_sum, confidence_n, threshold: float
) -> dict[str, Tensor]:
    nan = torch.tensor(math.nan, dtype=torch.float64)
    n, confidence_n = float(n), float(confidence_n)
    mean = torch.as_tensor(confidence_sum, dtype=torch.float64).cpu() / confidence_n if confidence_n else nan
    if n == 0 or math.isnan(threshold):
        return {"confidence": mean, "confident_modes": nan, "confident_fraction": nan}
    return {
        "confidence": mean,
        "confident_modes": (confident_modes > 0).sum().to(torch.float64).cpu(),
        "confident_fraction": torch.tensor(float(kept) / n, dtype=torch.float64),
    }


class StackedModeCount(Metric):
    """Modes and KL to uniform on stacked digits (VEEGAN protocol), over ``update`` calls and processes;
    with a ``threshold`` also the confident count (module docstring).

    States: the mode histogram ``(10^C,)`` and the per-channel digit histograms ``(C, 10)``, int64;
    the recognised samples' mode histogram ``(10^C,)``, the sum of channel confidences (float64) and
    the number of channels confidences were given for; all summed across processes.

    Args:
        channels: ``C``, digits per sample (3: 1,000 modes).
        threshold: τ, the confidence every channel of a recognised sample reaches (None: no
            confident count, and :meth:`compute` gives VEEGAN's keys only).
        kwargs: passed to ``torchmetrics.Metric``.

    >>> metric = StackedModeCount()
    >>> metric.update(torch.tensor([[1, 2, 3]]))
    >>> metric.update(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    >>> out = metric.compute()
    >>> out["modes"].item(), out["channel_histograms"][0].tolist()
    (2.0, [0, 2, 0, 0, 1, 0, 0, 0, 0, 0])
    >>> metric = StackedModeCount(threshold=0.5)
    >>> metric.update(torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([[0.9, 0.9, 0.9], [0.9, 0.1, 0.9]]))
    >>> out = metric.compute()
    >>> out["modes"].item(), out["confident_modes"].item(), out["confident_fraction"].item()
    (2.0, 1.0, 0.5)
    """

    is_differentiable = False
    higher_is_better = None  # more modes is better, lower KL is better
    full_state_update = False

    mode_counts: Tensor
    channel_counts: Tensor
    confident_counts: Tensor
    confidence_sum: Tensor
    confidence_n: Tensor

    def __init__(self, channels: int = 3, threshold: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = _check_channels(channels)
        self.threshold = None if threshold is None else float(threshold)
        self.add_state("mode_counts", torch.zeros(10**channels, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("channel_counts", torch.zeros(channels, 10, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("confident_counts", torch.zeros(10**channels, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("confidence_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("confidence_n", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, labels: Tensor, confidence: Tensor | None = None) -> None:
        """Add a batch of per-channel digit labels ``(B, C)`` and, optionally, their max-softmax
        confidences ``(B, C)`` (:func:`max_softmax`)."""
        labels = torch.as_tensor(labels).to(self.device)
        modes, per_channel = mode_histograms(labels, self.channels)
        self.mode_counts += modes
        self.channel_counts += per_channel
        if confidence is None:
            return
        confidence = torch.as_tensor(confidence).to(self.device, torch.float64)
        if confidence.shape != labels.shape:
            raise ValueError(
                f"confidence must be shaped as the labels {tuple(labels.shape)}, got {tuple(confidence.shape)}"
            )
        self.confidence_sum += confidence.sum()
        self.confidence_n += confidence.numel()
        if self.threshold is not None and not math.isnan(self.threshold):
            self.confident_counts += mode_histograms(
                labels[_recognised(confidence, self.threshold)], self.channels
            )[0]

    def compute(self) -> dict[str, Tensor]:
        """``{"modes", "kl", "channel_histograms"}`` (see :func:`stacked_mode_statistics`) and, with a
        threshold, ``{"confidence", "confident_modes", "confident_fraction"}`` (see
        :func:`confident_statistics`; NaN when no confidences were given)."""
        out = statistics_from_histograms(self.mode_counts, self.channel_counts)
        if self.threshold is None:
            return out
        threshold = self.threshold if int(self.confidence_n) else math.nan
        n = int(self.mode_counts.sum())
        kept = int(self.confident_counts.sum())
        return {
            **out,
            **_confident_from_sums(
                self.confident_counts, kept, n, self.confidence_sum, int(self.confidence_n), threshold
            ),
        }

    def extra_repr(self) -> str:
        return f"channels={self.channels}, threshold={self.threshold}"
