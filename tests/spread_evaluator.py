"""A second toy evaluator for the tests of studies with several evaluators (importable by class
path), written as a user writes a new evaluator: this module is all of it. The evaluator class
schedules, computes and logs the spread of G's samples (``mean ‖x − mean(x)‖`` per member, on its
own schedule) and names its report section (:class:`SpreadReport`: a header, a protocol paragraph,
a figure, its own dashboard section); a study registers the class when it first runs it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.evaluators.section import EvaluatorReport


class SpreadReport(EvaluatorReport):
    """How a study shows the spread: its column header, its protocol, its curve, its dashboard section."""

    TABLE: ClassVar[dict[str, tuple[str, float, int]]] = {"spread": ("spread (distance)", 1.0, 3)}
    SECTION = "sample spread"

    def protocol(self, info: dict) -> str:
        return (
            f"Protocol (sample spread): {info['n_samples']} samples from a fixed noise set; the spread is their "
            "mean distance from their centroid."
        )

    def figures(
        self, study_dir, runs, results, history, info, file_prefix: str = ""
    ) -> list[tuple[str, str]]:
        from gan_lab.plots import save_curves_figure

        name = f"{file_prefix}curve.png"
        histories = {label: [r for r in history if r["objective"] == label] for label, _ in runs}
        save_curves_figure(histories, "spread", str(Path(study_dir) / name), ylabel="spread", title="spread")
        return [("spread against G steps", name)]


class SampleSpread(ScheduledEvaluator):
    """``spread``: the mean distance of 200 samples from their centroid, per member."""

    NAME = "spread"
    METRICS = ("spread",)
    PRIMARY = "spread"

    def __init__(self, every_n_g_steps: int = 3) -> None:
        super().__init__(every_n_g_steps)

    @torch.no_grad()
    def evaluate(self, trainer, pl_module) -> dict:
        g = torch.Generator().manual_seed(0)
        z = torch.randn(200, pl_module.G.z_dim, generator=g)
        if pl_module.members is not None:
            z = z.expand(pl_module.members, *z.shape)  # (E, N, z_dim)
        x = pl_module.generate(z.to(pl_module.device), ema=False).float().cpu()
        x = x if pl_module.members is not None else x[None]  # (E, N, 2)
        spread = (x - x.mean(-2, keepdim=True)).norm(dim=-1).mean(-1)  # (E,)
        for k, value in enumerate(spread.tolist()):
            self.history.append(
                {"g_steps": pl_module.g_steps, "member": k, "seed": pl_module.seed + k, "spread": value}
            )
        self.log_metrics(trainer, pl_module, {f"{self.NAME}/spread": float(spread.mean())})
        self._last_eval = pl_module.g_steps
        return {"spread": spread}

    def info(self, trainer) -> dict:
        return {"n_samples": 200}

    @classmethod
    def report_section(cls) -> SpreadReport:
        return SpreadReport()


class SampleSpreadAgain(SampleSpread):
    """Another evaluator class of the same ``NAME`` (a study refuses the two together)."""
