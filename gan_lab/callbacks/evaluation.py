"""The schedule that every evaluator shares, and how an evaluation reaches the loggers.

An evaluator scores G every ``every_n_g_steps`` G steps (the module's own ``g_steps``, not
Lightning's ``global_step``), optionally at the start, and always at the end of training; it keeps
one ``history`` row per (evaluation, member) and saves it in the checkpoint, so that a resumed
run's history equals an uninterrupted one's. It computes and logs; it draws no report figure and
writes no report (:mod:`gan_lab.study` reads its ``history`` and writes those), only its own
artifacts in the run folder.

Each evaluation is logged **once, at its G step**: :meth:`ScheduledEvaluator.log_metrics` hands the
values straight to every logger (``logger.log_metrics(values, step=g_steps)``, the public Logger
API), so that metrics.csv and W&B show them in a row of their own at that step. (Through
``pl_module.log_dict`` Lightning would write them at its own log steps instead: at the next one
after the evaluation, and again at every later one until the next evaluation.)

A subclass sets :attr:`NAME` (the namespace of its logged keys, ``<NAME>/<metric>``, and of its
columns in a study of several evaluators), :attr:`METRICS` (the per-member metrics of each history
row) and :attr:`PRIMARY`, and implements :meth:`evaluate` (score, append rows, call
:meth:`log_metrics`), and for a study :meth:`info` (the facts of its setting, JSON) and
:meth:`save_artifacts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from lightning.pytorch.callbacks import Callback

from gan_lab.errors import check_int


class ScheduledEvaluator(Callback):
    """Evaluation every ``every_n_g_steps`` G steps and at the end of training."""

    #: the evaluator's name: its logged keys are ``<NAME>/<metric>``; a study's report helper for it
    #: is registered under this name (``gan_lab.study.report.REPORTS``)
    NAME: ClassVar[str] = ""
    #: the metrics of each history row (one value per member)
    METRICS: ClassVar[tuple[str, ...]] = ()
    #: the headline metric (the study's curves)
    PRIMARY: ClassVar[str] = ""
    #: also evaluate the untrained G (step 0)
    EVALUATE_AT_START: ClassVar[bool] = False

    def __init__(self, every_n_g_steps: int) -> None:
        super().__init__()
        self.every_n_g_steps = check_int(f"{type(self).__name__} every_n_g_steps", every_n_g_steps)
        self.history: list[dict] = []
        self._last_eval = -1
        self._logging = True

    # -- what subclasses provide --------------------------------------------------------------

    def evaluate(self, trainer, pl_module) -> dict:
        """Score G now: append to ``history``, :meth:`log_metrics`, set ``self._last_eval``."""
        raise NotImplementedError

    def finish(self, trainer, pl_module) -> None:
        """After the final evaluation (rank 0 only): artifacts into the run folder, W&B images."""

    def save_artifacts(self, run_dir: Path) -> None:
        """Write what a study's report reads from the run folder (final samples, image grids)."""
        raise NotImplementedError

    def info(self, trainer) -> dict:
        """The facts of the evaluation's setting (JSON), which the study's report states."""
        raise NotImplementedError

    # -- logging --------------------------------------------------------------------------------

    def log_metrics(self, trainer, pl_module, values: dict[str, float]) -> None:
        """Log one evaluation's ``values`` to every logger, once, at the module's G step.

        The values also go into ``trainer.callback_metrics`` (what the fit's summary line prints
        and a ``ModelCheckpoint(monitor=...)`` reads). Nothing is logged inside
        :meth:`evaluate_without_logging`."""
        if not self._logging:
            return
        step = int(pl_module.g_steps)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
            logger.save()
        callback_metrics = getattr(trainer, "callback_metrics", None)  # absent on a stand-in trainer
        if callback_metrics is not None:
            callback_metrics.update({k: torch.tensor(float(v)) for k, v in values.items()})

    def evaluate_without_logging(self, trainer, pl_module) -> dict:
        """Evaluate without logging (a study's diverged run, after its loggers were closed)."""
        self._logging = False
        try:
            return self.evaluate(trainer, pl_module)
        finally:
            self._logging = True

    # -- the schedule ---------------------------------------------------------------------------

    def on_train_start(self, trainer, pl_module) -> None:
        if self.EVALUATE_AT_START and pl_module.g_steps == 0 and self._last_eval != 0:
            self.evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        g = pl_module.g_steps
        if g > 0 and g != self._last_eval and g % self.every_n_g_steps == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if pl_module.g_steps != self._last_eval:
            self.evaluate(trainer, pl_module)
        if trainer.is_global_zero:
            self.finish(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"history": list(self.history), "last_eval": self._last_eval}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))
        self._last_eval = int(state_dict.get("last_eval", -1))
