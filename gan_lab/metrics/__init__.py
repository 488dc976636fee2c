"""torchmetrics Metrics and their functional cores for GAN evaluation (protocols in docs/DESIGN.md).

:data:`METRICS` finds a metric class by name, as stylegan3's ``metric_main`` does, so that an
evaluator's config names the metric it runs (``ModeCoverageEvaluator(metric="mode_coverage")``:
a mode-coverage metric, ``mode_coverage`` or a registered subclass of :class:`ModeCoverage`;
the evaluator refuses the others, which take features or labels):

>>> METRICS["mode_coverage"] is ModeCoverage, "prdc" in METRICS
(True, True)

The image metrics take features (or logits, or digit labels), not images: FID is
``frechet_distance`` and KID ``kernel_distance`` on Inception-v3 pool3 features, IS is
``inception_score`` on its logits; ``prdc`` is precision / recall / density / coverage on the same
features; ``stacked_modes`` counts stacked-digit modes from per-channel classifier labels.
"""

from __future__ import annotations

from gan_lab.metrics.frechet import FrechetDistance, frechet_distance, gaussian_statistics
from gan_lab.metrics.inception_score import InceptionScore, inception_score
from gan_lab.metrics.kid import KernelDistance, kernel_inception_distance
from gan_lab.metrics.mode_coverage import ModeCoverage, mean_and_se, mode_counts, mode_coverage
from gan_lab.metrics.prdc import PRDC, density_coverage, knn_radii, prdc, precision_recall
from gan_lab.metrics.stacked_modes import StackedModeCount, stacked_mode_statistics
from gan_lab.registry import Registry

#: metric classes by name; a new metric is ``METRICS.register(MyMetric, name="my_metric")``
METRICS: Registry = Registry("metric")
METRICS.register(ModeCoverage, name="mode_coverage")
METRICS.register(FrechetDistance, name="frechet_distance")
METRICS.register(KernelDistance, name="kernel_distance")
METRICS.register(InceptionScore, name="inception_score")
METRICS.register(PRDC, name="prdc")
METRICS.register(StackedModeCount, name="stacked_modes")

__all__ = [
    "METRICS",
    "PRDC",
    "FrechetDistance",
    "InceptionScore",
    "KernelDistance",
    "ModeCoverage",
    "StackedModeCount",
    "density_coverage",
    "frechet_distance",
    "gaussian_statistics",
    "inception_score",
    "kernel_inception_distance",
    "knn_radii",
    "mean_and_se",
    "mode_counts",
    "mode_coverage",
    "prdc",
    "precision_recall",
    "stacked_mode_statistics",
]
