"""The schedule that every evaluator shares, and the protocol :mod:`gan_lab.study` reads.

An evaluator scores G every ``every_n_g_steps`` G steps (the module's own ``g_steps``, not
Lightning's ``global_step``), optionally at the start, and always at the end of training; it keeps
one ``history`` row per (evaluation, member) and saves it in the checkpoint, so that a resumed
run's history equals an uninterrupted one's. Subclasses implement :meth:`evaluate` (append rows,
log through ``pl_module.log_dict``) and :meth:`finish` (final figures), plus what a study asks:
``METRICS``, ``PRIMARY``, ``save_artifacts``, ``info``, ``study_figures`` and ``protocol``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from lightning.pytorch.callbacks import Callback

from gan_lab.errors import check_int


class ScheduledEvaluator(Callback):
    """Evaluation every ``every_n_g_steps`` G steps and at the end of training."""

    #: metric -> (report header, display scale, digits)
    METRICS: ClassVar[dict[str, tuple[str, float, int]]] = {}
    #: the metric of the study's curves
    PRIMARY: ClassVar[str] = ""
    #: also evaluate the untrained G (step 0)
    EVALUATE_AT_START: ClassVar[bool] = False

    def __init__(self, every_n_g_steps: int) -> None:
        super().__init__()
        self.every_n_g_steps = check_int(f"{type(self).__name__} every_n_g_steps", every_n_g_steps)
        self.history: list[dict] = []
        self._last_eval = -1

    # -- what subclasses provide --------------------------------------------------------------

    def evaluate(self, trainer, pl_module) -> dict:
        """Score G now: append to ``history``, log, set ``self._last_eval = pl_module.g_steps``."""
        raise NotImplementedError

    def finish(self, trainer, pl_module) -> None:
        """After the final evaluation (rank 0 only): figures into the run folder, W&B images."""

    def save_artifacts(self, run_dir: Path) -> None:
        raise NotImplementedError

    def info(self, trainer) -> dict:
        raise NotImplementedError

    @classmethod
    def study_figures(cls, study_dir: Path, runs, results, history, info) -> list[tuple[str, str]]:
        raise NotImplementedError

    @classmethod
    def protocol(cls, info: dict) -> str:
        raise NotImplementedError

    # -- the schedule ---------------------------------------------------------------------------

    def evaluate_without_logging(self, trainer, pl_module) -> dict:
        """Evaluate where Lightning forbids ``self.log`` (``on_train_start`` / ``on_train_end``)."""
        log_dict = pl_module.log_dict
        pl_module.log_dict = lambda *a, **k: None
        try:
            return self.evaluate(trainer, pl_module)
        finally:
            pl_module.log_dict = log_dict

    def on_train_start(self, trainer, pl_module) -> None:
        if self.EVALUATE_AT_START and pl_module.g_steps == 0 and self._last_eval != 0:
            self.evaluate_without_logging(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        g = pl_module.g_steps
        if g > 0 and g != self._last_eval and g % self.every_n_g_steps == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if pl_module.g_steps != self._last_eval:
            self.evaluate_without_logging(trainer, pl_module)
        if trainer.is_global_zero:
            self.finish(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"history": list(self.history), "last_eval": self._last_eval}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))
        self._last_eval = int(state_dict.get("last_eval", -1))
