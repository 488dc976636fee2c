"""torchmetrics Metrics and their functional cores for GAN evaluation (protocols in docs/DESIGN.md).

:data:`METRICS` finds a metric class by name, as stylegan3's ``metric_main`` does, so that an
evaluator's config names the metric it runs (``ModeCoverageEvaluator(metric="mode_coverage")``):

>>> sorted(METRICS)
['mode_coverage']
>>> METRICS["mode_coverage"] is ModeCoverage
True
"""

from __future__ import annotations

from gan_lab.metrics.mode_coverage import ModeCoverage, mean_and_se, mode_counts, mode_coverage
from gan_lab.registry import Registry

#: metric classes by name; a new metric is ``METRICS.register(MyMetric, name="my_metric")``
METRICS: Registry = Registry("metric")
METRICS.register(ModeCoverage, name="mode_coverage")

__all__ = ["METRICS", "ModeCoverage", "mean_and_se", "mode_counts", "mode_coverage"]
