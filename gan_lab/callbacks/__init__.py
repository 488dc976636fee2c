"""Callbacks that keep training safe and readable: the divergence guard, checkpoints named by G
steps and on preemption / Ctrl-C, a progress bar in G steps. (The evaluators, which score G on a
schedule, are :mod:`gan_lab.evaluators`.)"""

from gan_lab.callbacks.checkpoint import GStepCheckpoint
from gan_lab.callbacks.guard import DivergenceGuard, TrainingDiverged
from gan_lab.callbacks.preemption import PreemptionCheckpoint
from gan_lab.callbacks.progress import GStepProgressBar

__all__ = [
    "DivergenceGuard",
    "GStepCheckpoint",
    "GStepProgressBar",
    "PreemptionCheckpoint",
    "TrainingDiverged",
]
