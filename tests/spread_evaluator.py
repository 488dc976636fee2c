"""A second toy evaluator for the tests of studies with several evaluators (importable by class
path): the spread of G's samples, ``mean ‖x − mean(x)‖`` per member, on its own schedule."""

from __future__ import annotations

from pathlib import Path

import torch

from gan_lab.callbacks.evaluation import ScheduledEvaluator


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

    def save_artifacts(self, run_dir: Path) -> None:
        """Nothing to save."""

    def info(self, trainer) -> dict:
        return {"n_samples": 200}


class SampleSpreadAgain(SampleSpread):
    """Another evaluator class of the same ``NAME`` (a study refuses the two together)."""
