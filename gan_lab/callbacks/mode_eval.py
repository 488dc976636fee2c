"""Evaluate mode coverage of a toy-mixture run every K generator steps.

The protocol (PacGAN / VEEGAN, as docs/DESIGN.md states it): G (in eval mode, ``G_ema`` when kept and
asked for) maps a *fixed* set of 2,500 noise vectors to samples; each sample goes to its nearest
mixture mean, is high quality (HQ) when its distance is under 3 std, and a mode is covered when at
least one HQ sample lands on it. Reported per ensemble member, then as mean ± s.e. over members.
The same noise set is used for every member and every evaluation, so curves are comparable.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from gan_lab.callbacks.evaluation import ScheduledEvaluator
from gan_lab.errors import check_int
from gan_lab.metrics import ModeCoverage, mean_and_se
from gan_lab.seeding import fixed_noise


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

    After training, ``history`` holds one dict per (evaluation, member) with ``g_steps``,
    ``member`` and the four metrics, and ``last_samples`` the final samples ``(E, N, 2)``.
    The class also implements what :mod:`gan_lab.study` asks of an evaluator: ``METRICS``,
    ``save_artifacts``, ``info``, ``study_figures`` and ``protocol``.
    """

    METRICS: ClassVar[dict[str, tuple[str, float, int]]] = {
        "modes": ("modes covered", 1.0, 2),
        "hq_fraction": ("HQ %", 100.0, 1),
        "reverse_kl": ("reverse KL (nats)", 1.0, 3),
        "js": ("JS (nats)", 1.0, 3),
    }
    PRIMARY = "modes"

    def __init__(
        self,
        every_n_g_steps: int = 100,
        n_samples: int = 2500,
        noise_seed: int = 2024,
        use_ema: bool = True,
        plot: bool = True,
    ) -> None:
        super().__init__(every_n_g_steps)
        self.n_samples = check_int("ModeCoverageEvaluator n_samples", n_samples)
        self.noise_seed, self.use_ema, self.plot = noise_seed, use_ema, plot
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
        metric = ModeCoverage(mixture.means, mixture.std, members=samples.shape[0]).to(samples.device)
        metric.update(samples)
        result = {k: v.detach().cpu().reshape(-1) for k, v in metric.compute().items()}  # (E,)
        for k in range(samples.shape[0]):
            row = {"g_steps": pl_module.g_steps, "member": k, "seed": pl_module.seed + k}
            row.update({name: float(result[name][k]) for name in self.METRICS})
            self.history.append(row)
        logs = {}
        for name in self.METRICS:
            mean, se = mean_and_se(result[name])
            logs[f"mode/{name}"], logs[f"mode/{name}_se"] = mean, se
        pl_module.log_dict(logs, on_step=True, on_epoch=False)
        self.last_samples = samples.cpu()
        self._last_eval = pl_module.g_steps
        return result

    def finish(self, trainer, pl_module) -> None:
        if self.plot and self.last_samples is not None:
            self._plot(trainer)

    def _plot(self, trainer) -> None:
        from gan_lab.plots import save_samples_figure

        if trainer.log_dir is None:
            return
        path = os.path.join(trainer.log_dir, "samples.png")
        os.makedirs(trainer.log_dir, exist_ok=True)
        final = [r for r in self.history if r["g_steps"] == self._last_eval]
        save_samples_figure({"final": (self.last_samples, trainer.datamodule.mixture.means, final)}, path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[path])

    # ------------------------------------------------------------------------------------------
    # What gan_lab.study asks of an evaluator
    # ------------------------------------------------------------------------------------------

    def save_artifacts(self, run_dir: Path) -> None:
        """Final samples ``(E, N, 2)`` as ``final_samples.npy`` in the run folder."""
        run_dir.mkdir(parents=True, exist_ok=True)
        np.save(run_dir / "final_samples.npy", self.last_samples.numpy())

    def info(self, trainer) -> dict:
        m = trainer.datamodule.mixture
        return {"mixture": m.name, "means": m.means.tolist(), "std": m.std, "n_samples": self.n_samples}

    @classmethod
    def protocol(cls, info: dict) -> str:
        k = len(info["means"])
        return (
            f"Protocol (PacGAN / VEEGAN): `{info['mixture']}`, {k} equal-weight Gaussians, std {info['std']}. "
            f"G (eval mode) maps a fixed set of {info['n_samples']:,} noise vectors to samples; each sample "
            "is assigned to its nearest mean and is high quality (HQ) if its distance is below 3 std; a mode "
            "is covered if at least one HQ sample is assigned to it. Reverse KL is KL(p̂ ‖ uniform) and JS is "
            f"JS(p̂, uniform), in nats, for the histogram p̂ of HQ samples over the {k} modes (0 is best; "
            f"ln {k} = {math.log(k):.2f} and ln 2 = 0.69 are the worst); both are undefined for a seed with "
            "no HQ sample, and such seeds are left out of their mean (n shown)."
        )

    @classmethod
    def study_figures(cls, study_dir: Path, runs, results, history, info) -> list[tuple[str, str]]:
        """``samples.png`` (final samples per objective) and ``coverage.png`` (modes vs G steps)."""
        from gan_lab.plots import save_coverage_figure, save_samples_figure

        means = np.array(info["means"])
        panels = {}
        for label, run_dir in runs:
            files = sorted(Path(run_dir).glob("**/final_samples.npy"))
            samples = np.concatenate([np.load(f) for f in files])  # (seeds, N, 2)
            panels[label] = (samples, means, [r for r in results if r["objective"] == label])
        save_samples_figure(panels, str(study_dir / "samples.png"))
        save_coverage_figure(
            {label: [r for r in history if r["objective"] == label] for label, _ in runs},
            str(study_dir / "coverage.png"),
            num_modes=len(means),
        )
        return [("final samples", "samples.png"), ("mode coverage", "coverage.png")]
