"""Callbacks that observe training: evaluation schedules and plots, the divergence guard,
checkpoints named by G steps and on preemption / Ctrl-C, a progress bar in G steps."""

from gan_lab.callbacks.checkpoint import GStepCheckpoint
from gan_lab.callbacks.guard import DivergenceGuard, TrainingDiverged
from gan_lab.callbacks.mode_eval import ModeCoverageEvaluator
from gan_lab.callbacks.preemption import PreemptionCheckpoint
from gan_lab.callbacks.progress import GStepProgressBar

__all__ = [
    "DivergenceGuard",
    "GStepCheckpoint",
    "GStepProgressBar",
    "ModeCoverageEvaluator",
    "PreemptionCheckpoint",
    "TrainingDiverged",
]
