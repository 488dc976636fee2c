"""Callbacks that observe training: evaluation schedules and plots, the divergence guard,
checkpoints on preemption."""

from gan_lab.callbacks.guard import DivergenceGuard, TrainingDiverged
from gan_lab.callbacks.mode_eval import ModeCoverageEvaluator
from gan_lab.callbacks.preemption import PreemptionCheckpoint

__all__ = ["DivergenceGuard", "ModeCoverageEvaluator", "PreemptionCheckpoint", "TrainingDiverged"]
