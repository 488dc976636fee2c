"""Callbacks that observe training: evaluation schedules and plots."""

from gan_lab.callbacks.mode_eval import ModeCoverageEvaluator

__all__ = ["ModeCoverageEvaluator"]
