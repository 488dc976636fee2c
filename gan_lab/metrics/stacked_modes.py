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
    "StackedModeCount",
    "mode_histograms",
    "stacked_mode_statistics",
    "statistics_from_histograms",
]

MAX_CHANNELS = 6
"""At most 10^6 modes: the mode histogram is a dense vector."""


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


class StackedModeCount(Metric):
    """Modes and KL to uniform on stacked digits (VEEGAN protocol), over ``update`` calls and processes.

    States: the mode histogram ``(10^C,)`` and the per-channel digit histograms ``(C, 10)``, int64,
    summed across processes.

    Args:
        channels: ``C``, digits per sample (3: 1,000 modes).
        kwargs: passed to ``torchmetrics.Metric``.

    >>> metric = StackedModeCount()
    >>> metric.update(torch.tensor([[1, 2, 3]]))
    >>> metric.update(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    >>> out = metric.compute()
    >>> out["modes"].item(), out["channel_histograms"][0].tolist()
    (2.0, [0, 2, 0, 0, 1, 0, 0, 0, 0, 0])
    """

    is_differentiable = False
    higher_is_better = None  # more modes is better, lower KL is better
    full_state_update = False

    mode_counts: Tensor
    channel_counts: Tensor

    def __init__(self, channels: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = _check_channels(channels)
        self.add_state("mode_counts", torch.zeros(10**channels, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("channel_counts", torch.zeros(channels, 10, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, labels: Tensor) -> None:
        """Add a batch of per-channel digit labels ``(B, C)``."""
        modes, per_channel = mode_histograms(torch.as_tensor(labels).to(self.device), self.channels)
        self.mode_counts += modes
        self.channel_counts += per_channel

    def compute(self) -> dict[str, Tensor]:
        """``{"modes", "kl", "channel_histograms"}`` (see :func:`stacked_mode_statistics`)."""
        return statistics_from_histograms(self.mode_counts, self.channel_counts)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
