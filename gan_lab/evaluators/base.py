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

**Per seed.** A study's W&B runs are one per seed, also for the members of an ensemble
(:class:`gan_lab.dashboard.SeedRunsLogger`). Such a logger has ``log_member_metrics(values, step,
shared=None, media=None)``, and :meth:`ScheduledEvaluator.log_metrics` hands it the values *per
member* instead of the mean and s.e.: pass ``per_member={"<NAME>/<metric>": [v_0, ..., v_E-1]}``
(the CSV logger still gets ``values``, the means and ``_se`` columns). Media go the same way:
``media={"<NAME>/<what>": [img_0, ..., img_E-1]}``, each a uint8 ``(H, W, 3)`` array (or
``(array, caption)``), logged under the same key at every evaluation so that a W&B media panel
steps through training. Draw them only when :meth:`ScheduledEvaluator.media_settings` returns
settings (None: no per-seed logger, or media off), at its ``size`` and ``count``, with
:func:`gan_lab.dashboard.media.scatter_image` (toy samples over the mixture means) or
:func:`gan_lab.dashboard.media.image_grid` (generated images)::

    settings = self.media_settings(trainer)
    media = None
    if settings is not None:
        media = {f"{self.NAME}/samples": [image_grid(x[k], settings.size, settings.count) for k in range(E)]}
    self.log_metrics(trainer, pl_module, means_and_se, per_member=per_member, media=media)

**One plug-in.** A subclass sets :attr:`NAME` (the namespace of its logged keys,
``<NAME>/<metric>``, of its study columns and of its report figures), :attr:`METRICS` (the
per-member metrics of each history row) and :attr:`PRIMARY`, implements :meth:`evaluate` (score,
append rows, call :meth:`log_metrics`) and, for a study, :meth:`info` (the facts of its setting,
JSON) and :meth:`save_artifacts`; :meth:`report_section` names how a study shows it (columns,
protocol paragraph, figures, dashboard panels: a :class:`~gan_lab.evaluators.section.EvaluatorReport`).
Registered once in :data:`gan_lab.study.EVALUATORS` (the lab's) — or when a study first runs it (a
user's) — it is all a study needs::

    class SpreadReport(EvaluatorReport): ...           # gan_lab/evaluators/spread.py

    class Spread(ScheduledEvaluator):
        NAME, METRICS, PRIMARY = "spread", ("spread",), "spread"

        def evaluate(self, trainer, pl_module): ...     # history rows, self.log_metrics(...)

        @classmethod
        def report_section(cls):                        # optional: the default shows METRICS by name
            return SpreadReport()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import torch
from lightning.pytorch.callbacks import Callback

from gan_lab.dashboard.media import MediaSettings
from gan_lab.errors import check_int
from gan_lab.evaluators.section import EvaluatorReport


class ScheduledEvaluator(Callback):
    """Evaluation every ``every_n_g_steps`` G steps and at the end of training."""

    #: the evaluator's name: its logged keys are ``<NAME>/<metric>``, its study columns too, and
    #: study.json names it by this (:data:`gan_lab.study.EVALUATORS`)
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

    def save_artifacts(self, run_dir: Path, members: Sequence[int] | None = None) -> None:
        """Write what a study's report reads from the run folder (final samples, image grids);
        ``members``: only theirs (one entry of a mixed ensemble; None: every member). Default:
        nothing."""

    def info(self, trainer) -> dict:
        """The facts of the evaluation's setting (JSON), which the study's report states; default:
        none."""
        return {}

    @classmethod
    def report_section(cls) -> EvaluatorReport:
        """How a study shows this evaluator: its report section (table columns, protocol
        paragraph, figures) and dashboard panels. This default shows :attr:`METRICS` by name, with
        no protocol and no figures; an evaluator with a section of its own returns it."""
        return EvaluatorReport()

    # -- logging --------------------------------------------------------------------------------

    def log_metrics(
        self,
        trainer,
        pl_module,
        values: dict[str, float],
        per_member: Mapping[str, Sequence[float]] | None = None,
        media: Mapping[str, Sequence] | None = None,
    ) -> None:
        """Log one evaluation's ``values`` to every logger, once, at the module's G step.

        Args:
            values: what every logger gets (the means over members and their ``_se``).
            per_member: ``key -> one value per member``: what a per-seed logger gets instead of
                ``values`` (see the module doc); None: it gets ``values``.
            media: ``key -> one uint8 (H, W, 3) image per member``, for per-seed loggers only.

        The values also go into ``trainer.callback_metrics`` (what the fit's summary line prints
        and a ``ModelCheckpoint(monitor=...)`` reads). Nothing is logged inside
        :meth:`evaluate_without_logging`."""
        if not self._logging:
            return
        step = int(pl_module.g_steps)
        for logger in trainer.loggers:
            if per_member is not None and hasattr(logger, "log_member_metrics"):
                logger.log_member_metrics(per_member, step=step, media=media)
            else:
                logger.log_metrics(values, step=step)
            logger.save()
        callback_metrics = getattr(trainer, "callback_metrics", None)  # absent on a stand-in trainer
        if callback_metrics is not None:
            callback_metrics.update({k: torch.tensor(float(v)) for k, v in values.items()})

    def media_settings(self, trainer) -> MediaSettings | None:
        """The media settings of the first per-seed logger, or None (no such logger, media off,
        or inside :meth:`evaluate_without_logging`): draw media only when this is not None."""
        if not self._logging:
            return None
        for logger in getattr(trainer, "loggers", ()):
            settings = getattr(logger, "media", None)
            if hasattr(logger, "log_member_metrics") and settings is not None:
                return settings if settings.enabled else None
        return None

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
