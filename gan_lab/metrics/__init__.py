"""torchmetrics Metrics and their functional cores for GAN evaluation (protocols in docs/DESIGN.md)."""

from __future__ import annotations

from gan_lab.metrics.mode_coverage import ModeCoverage, mean_and_se, mode_counts, mode_coverage

__all__ = ["ModeCoverage", "mean_and_se", "mode_counts", "mode_coverage"]
