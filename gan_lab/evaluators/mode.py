"""Evaluate mode coverage of a toy-mixture run every K generator steps.

The protocol (PacGAN / VEEGAN, as docs/DESIGN.md states it): G (in eval mode, ``G_ema`` when kept and
asked for) maps a *fixed* set of 2,500 noise vectors to samples; each sample goes to its nearest
mixture mean, is high quality (HQ) when its distance is under 3 std, and a mode is covered when at
least one HQ sample lands on it. Reported per ensemble member, then as mean ± s.e. over members.
The same noise set is used for every member and every evaluation, so curves are comparable.

The metric is found by name in :data:`gan_lab.metrics.METRICS` among the mode-coverage metrics
(:func:`mode_metrics`: ``mode_coverage``, the protocol above, or a registered subclass of it); how
a study shows this evaluator (protocol paragraph, ``mode_samples.png``, ``mode_coverage.png``, the
dashboard's "mode coverage" section) is :class:`gan_lab.evaluators.mode_report.ModeCoverageReport`
(:meth:`ModeCoverageEvaluator.report_section`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from gan_lab.dashboard.media import scatter_image
from gan_lab.errors import check_choice, check_int
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.evaluators.mode_report import ModeCoverageReport
from gan_lab.metrics import METRICS, ModeCoverage, mean_and_se
from gan_lab.runs import run_folder
from gan_lab.seeding import fixed_noise


def mode_metrics() -> list[str]:
    """The names in :data:`gan_lab.metrics.METRICS` that :class:`ModeCoverageEvaluator` can run:
    :class:`~gan_lab.metrics.ModeCoverage` and its subclasses, built as ``cls(means, std,
    members=E)`` and computing ``modes``, ``hq_fraction``, ``reverse_kl`` and ``js`` per member (the
    other metrics take features or labels, not 2D samples).

    >>> mode_metrics()
    ['mode_coverage']
    """
    return [n for n, cls in METRICS.items() if isinstance(cls, type) and issubclass(cls, ModeCoverage)]


class ModeCoverageEvaluator(ScheduledEvaluator):
    """Log modes covered, HQ fraction, reverse KL and JS every ``every_n_g_steps`` G steps.

    Args:
        every_n_g_steps: evaluation interval in G steps (the module's ``g_steps``); the final
            state is always evaluated when training ends.
        n_samples: samples per member (2,500 in the protocol).
        noise_seed: seed of the fixed noise set.
        use_ema: evaluate ``G_ema`` when the module keeps one.
        plot: write ``samples.png`` (final samples over the mixture means) into the run folder and,
            with a W&B logger, log it there.
        metric: the name in :data:`gan_lab.metrics.METRICS` of a mode-coverage metric
            (:func:`mode_metrics`), built as ``cls(means, std, members=E)``, updated with the
            samples ``(E, N, 2)``, and computing the four :attr:`METRICS` per member; another name
            is refused here, in one line naming the valid ones.

    After training, ``history`` holds one dict per (evaluation, member) with ``g_steps``,
    ``member``, ``seed`` and the four metrics, and ``last_samples`` the final samples ``(E, N, 2)``.
    Logged (once per evaluation, at its G step): the mean and s.e. over members, ``mode/<metric>``
    and ``mode/<metric>_se``; to a per-seed logger each member's ``mode/<metric>`` and its scatter
    ``mode/samples`` (:meth:`media`).
    """

    NAME = "mode"
    METRICS: ClassVar[tuple[str, ...]] = ("modes", "hq_fraction", "reverse_kl", "js")
    PRIMARY = "modes"

    def __init__(
        self,
        every_n_g_steps: int = 100,
        n_samples: int = 2500,
        noise_seed: int = 2024,
        use_ema: bool = True,
        plot: bool = True,
        metric: str = "mode_coverage",
    ) -> None:
        super().__init__(every_n_g_steps)
        self.n_samples = check_int("ModeCoverageEvaluator n_samples", n_samples)
        check_choice("mode-coverage metric", metric, mode_metrics())
        self.noise_seed, self.use_ema, self.plot, self.metric = noise_seed, use_ema, plot, metric
        self.last_samples: torch.Tensor | None = None

    def _fixed_noise(self, pl_module) -> torch.Tensor:
        z = fixed_noise(self.n_samples, pl_module.G.z_dim, self.noise_seed, pl_module.members)
        return z.to(pl_module.device)  # (E, N, z_dim) or (N, z_dim)

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module) -> dict[str, torch.Tensor]:
        mixture = trainer.datamodule.mixture
        samples = pl_module.generate(self._fixed_noise(pl_module), ema=self.use_ema).float()
        if pl_module.members is None:
            samples = samples.unsqueeze(0)  # (1, N, 2)
        metric = METRICS[self.metric](mixture.means, mixture.std, members=samples.shape[0])
        metric = metric.to(samples.device)
        metric.update(samples)
        result = {k: v.detach().cpu().reshape(-1) for k, v in metric.compute().items()}  # (E,)
        for k in range(samples.shape[0]):
            row = {"g_steps": pl_module.g_steps, "member": k, "seed": pl_module.run_seeds[k]}
            row.update({name: float(result[name][k]) for name in self.METRICS})
            self.history.append(row)
        logs = {}
        for name in self.METRICS:
            mean, se = mean_and_se(result[name])
            logs[f"{self.NAME}/{name}"], logs[f"{self.NAME}/{name}_se"] = mean, se
        per_member = {f"{self.NAME}/{name}": result[name].tolist() for name in self.METRICS}
        self.log_metrics(trainer, pl_module, logs, per_member, self.media(trainer, samples, mixture.means))
        self.last_samples = samples.cpu()
        self._last_eval = pl_module.g_steps
        return result

    def media(self, trainer, samples: torch.Tensor, means: torch.Tensor) -> dict | None:
        """``{"mode/samples": [one scatter per member]}`` (each member's samples over the mixture
        means, :func:`~gan_lab.dashboard.media.scatter_image`), or None when no media are logged."""
        settings = self.media_settings(trainer)
        if settings is None:
            return None
        images = [scatter_image(member, means, settings.size, settings.count) for member in samples]
        return {f"{self.NAME}/samples": images}

    def finish(self, trainer, pl_module) -> None:
        if self.plot and self.last_samples is not None:
            self._plot(trainer, pl_module)

    def _plot(self, trainer, pl_module) -> None:
        from gan_lab.plots import save_samples_figure

        if run_folder(trainer) is None:
            return
        path = os.path.join(run_folder(trainer), "samples.png")
        os.makedirs(run_folder(trainer), exist_ok=True)
        final = [r for r in self.history if r["g_steps"] == self._last_eval]
        save_samples_figure({"final": (self.last_samples, trainer.datamodule.mixture.means, final)}, path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[path], step=int(pl_module.g_steps))

    # -- what a study reads ----------------------------------------------------------------------

    @classmethod
    def report_section(cls):
        """:class:`~gan_lab.evaluators.mode_report.ModeCoverageReport`."""
        return ModeCoverageReport()

    def save_artifacts(self, run_dir: Path, members: Sequence[int] | None = None) -> None:
        """Final samples ``(E, N, 2)`` as ``final_samples.npy`` in the run folder; ``members``: only
        theirs (one entry of a mixed ensemble)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        samples = self.last_samples if members is None else self.last_samples[list(members)]
        np.save(run_dir / "final_samples.npy", samples.numpy())

    def info(self, trainer) -> dict:
        m = trainer.datamodule.mixture
        return {"mixture": m.name, "means": m.means.tolist(), "std": m.std, "n_samples": self.n_samples}
