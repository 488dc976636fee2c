"""Callbacks that observe training: evaluation schedules and plots, the divergence guard,
image metrics and the stacked-digits mode count, checkpoints named by G steps and on preemption / Ctrl-C, a progress bar in G steps."""

from gan_lab.callbacks.checkpoint import GStepCheckpoint
from gan_lab.callbacks.guard import DivergenceGuard, TrainingDiverged
from gan_lab.callbacks.image_eval import ImageMetricsEvaluator
from gan_lab.callbacks.mode_eval import ModeCoverageEvaluator
from gan_lab.callbacks.preemption import PreemptionCheckpoint
from gan_lab.callbacks.progress import GStepProgressBar
from gan_lab.callbacks.stacked_eval import StackedModeEvaluator

__all__ = [
    "DivergenceGuard",
    "GStepCheckpoint",
    "GStepProgressBar",
    "ImageMetricsEvaluator",
    "ModeCoverageEvaluator",
    "PreemptionCheckpoint",
    "StackedModeEvaluator",
    "TrainingDiverged",
]
