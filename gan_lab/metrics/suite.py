"""The image-metric suite between real and generated features: what the evaluator and
``gan-lab metrics`` both compute, through the torchmetrics Metrics of this package.

:func:`image_metrics` returns FD, KID (mean and std over subsets), IS (when logits are given),
precision / recall and density / coverage. Under DDP, every rank passes its share of the fake
features and the (identical on every rank) real
features as every Metric's fixed reference: the Metrics' states gather the fake shares only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from gan_lab.metrics.frechet import FrechetDistance, gaussian_statistics
from gan_lab.metrics.inception_score import InceptionScore
from gan_lab.metrics.kid import KernelDistance
from gan_lab.metrics.prdc import PRDC


@dataclass(frozen=True)
class SuiteSettings:
    """The suite's settings (the papers' defaults: KID 100 subsets of 1,000, IS 10 splits,
    k = 3 for precision / recall, k = 5 for density / coverage)."""

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    k_pr: int = 3
    k_dc: int = 5
    chunk: int = 2048


def image_metrics(
    real: Tensor,
    fake: Tensor,
    logits: Tensor | None = None,
    settings: SuiteSettings = SuiteSettings(),
    real_stats: tuple[Tensor, Tensor] | None = None,
) -> dict[str, float]:
    """FD, KID, IS, precision, recall, density, coverage of ``fake (M, d)`` against ``real (N, d)``.

    ``real`` is each Metric's fixed reference (identical on every DDP rank, never gathered);
    ``fake`` is this rank's share, gathered by the Metrics' states. ``real_stats``: the real
    features' ``(mu, sigma)`` when already known (the reference cache holds them).

    Returns:
        ``{"fd", "kid", "kid_std", "inception_score", "inception_score_std", "precision", "recall",
        "density", "coverage"}`` as floats; IS is NaN without ``logits``.
    """
    device = fake.device
    real = real.to(device)
    mu, sigma = real_stats if real_stats is not None else gaussian_statistics(real)
    metrics = {
        "fd": FrechetDistance(mu=mu.to(device), sigma=sigma.to(device)),
        "kid": KernelDistance(
            subsets=settings.kid_subsets, subset_size=settings.kid_subset_size, reference=real
        ),
        "prdc": PRDC(k_pr=settings.k_pr, k_dc=settings.k_dc, chunk=settings.chunk, reference=real),
    }
    for metric in metrics.values():
        metric.to(device).update(fake)
    values = {"fd": float(metrics["fd"].compute())}
    kid_mean, kid_std = metrics["kid"].compute()
    values["kid"], values["kid_std"] = float(kid_mean), float(kid_std)
    values.update({k: float(v) for k, v in metrics["prdc"].compute().items()})
    values["inception_score"] = values["inception_score_std"] = math.nan
    if logits is not None:
        score = InceptionScore(splits=settings.is_splits).to(device)
        score.update(logits)
        is_mean, is_std = score.compute()
        values["inception_score"], values["inception_score_std"] = float(is_mean), float(is_std)
    return values
