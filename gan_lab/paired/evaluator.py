"""Evaluate a super-resolution run on a fixed validation set every K generator steps.

The protocol: G (in eval mode, ``G_ema`` when kept and asked for) maps the fixed low-res
validation crops of the datamodule (:meth:`~gan_lab.paired.data.PairedImageDataModule.validation_pairs`,
held-out images, the same crops for every run) to high-res outputs, clamped to ``[-1, 1]`` as they
would be saved. Then, per crop, averaged over the crops:

- PSNR (dB) and SSIM through torchmetrics, on images mapped to ``[0, 1]`` (``(x + 1) / 2``) with
  ``data_range = 1``: the usual convention (PSNR is the same as on ``[-1, 1]`` with range 2; SSIM
  is not, its constants and luminance term depend on the range). Every channel counts (RGB, not
  the Y channel of SR benchmarks) and no border is cropped. SSIM uses a Gaussian window of 11
  pixels, σ = 1.5 (Wang et al., 2004), on the reflect-padded image, and averages the SSIM map
  over every pixel (scikit-image instead drops a 5-pixel border);
- the Sobel-edge error: :func:`~gan_lab.regularizers.image.sobel_edge_loss` on ``[-1, 1]``, the
  same scale as the training term.

The bicubic upsampling of the low-res crops is scored once, as the baseline every SR net should
beat. Image grids (one row per crop: low-res upsampled nearest | bicubic | output | target, for
the crops with the most detail) are written as ``grid.png`` into the run folder at the end of
training. How a study shows this evaluator (protocol paragraph, ``sr_grids.png``, ``sr_psnr.png``) is
:class:`gan_lab.paired.report.SRMetricsReport` (:meth:`SRMetricsEvaluator.report_section`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import kornia
import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from gan_lab.errors import ConfigError, check_int
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.paired.report import SRMetricsReport
from gan_lab.regularizers.image import sobel_edge_loss
from gan_lab.runs import run_folder

GRID_COLUMNS = ("LR (nearest)", "bicubic", "output", "target")


def to_unit(x: Tensor) -> Tensor:
    """``[-1, 1]`` -> ``[0, 1]`` (clamped first)."""
    return (x.clamp(-1.0, 1.0) + 1.0) / 2.0


def sr_metrics(output: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image PSNR (dB), SSIM and Sobel-edge error of ``output`` against ``target``.

    Args:
        output, target: ``(N, C, H, W)`` in ``[-1, 1]`` (``output`` is clamped to it).

    Returns:
        ``{"psnr": (N,), "ssim": (N,), "edge_error": (N,)}``; PSNR is ``inf`` where the images
        are identical. PSNR and SSIM on ``[0, 1]`` with ``data_range=1``; the edge error on
        ``[-1, 1]``.

    >>> x = torch.zeros(2, 1, 16, 16)
    >>> m = sr_metrics(x + 0.2, x)  # MSE on [0, 1] is 0.1² = 0.01: PSNR = 20 dB
    >>> m["psnr"].round(decimals=3)
    tensor([20., 20.])
    >>> m["edge_error"]
    tensor([0., 0.])
    """
    if output.shape != target.shape or output.dim() != 4:
        raise ValueError(
            f"sr_metrics: output and target must be (N, C, H, W) of one shape, got "
            f"{tuple(output.shape)} and {tuple(target.shape)}"
        )
    output = output.clamp(-1.0, 1.0).float()
    target = target.float()
    o, t = to_unit(output), to_unit(target)
    psnr = peak_signal_noise_ratio(o, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(o, t, data_range=1.0, reduction="none")
    return {"psnr": psnr.reshape(-1), "ssim": ssim.reshape(-1), "edge_error": sobel_edge_loss(output, target)}


def upsample(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """``nearest`` or ``bicubic`` (``align_corners=False``, clamped to ``[-1, 1]``) upsampling."""
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def make_sr_grid(lr: Tensor, output: Tensor, target: Tensor, padding: int = 2) -> Tensor:
    """uint8 ``(3, H', W')`` grid, one row per image: LR nearest | bicubic | output | target.

    Args:
        lr: ``(n, C, h, w)`` low-res inputs, ``output`` and ``target``: ``(n, C, H, W)``, all in
            ``[-1, 1]``.
    """
    from torchvision.utils import make_grid

    size = tuple(target.shape[-2:])
    cols = [upsample(lr, size, "nearest"), upsample(lr, size, "bicubic"), output, target]
    tiles = torch.stack([to_unit(c.float().cpu()) for c in cols], dim=1)  # (n, 4, C, H, W)
    grid = make_grid(tiles.flatten(0, 1), nrow=len(cols), padding=padding, pad_value=1.0)  # (3, H', W')
    return (grid * 255).round().clamp(0, 255).to(torch.uint8)


class SRMetricsEvaluator(ScheduledEvaluator):
    """PSNR, SSIM and Sobel-edge error on the fixed validation set, every ``every_n_g_steps``.

    Args:
        every_n_g_steps: evaluation interval in G steps (the module's ``g_steps``); the state
            before training (G step 0) and the final state are always evaluated.
        use_ema: evaluate ``G_ema`` when the module keeps one.
        batch_size: validation crops per G forward.
        grid_rows: validation crops shown in the image grid: those with the most detail (largest
            mean Sobel magnitude of the target).
        plot: write ``grid.png`` into the run folder at train end and, with a W&B logger, log it.

    ``history`` holds one dict per evaluation with ``g_steps``, ``member`` (0: SR nets are not
    seed ensembles), ``seed`` and the metrics of :attr:`METRICS`; ``baseline`` the bicubic
    baseline's metrics; ``last_grid`` the final grid (uint8 ``(3, H, W)``). Logged (once per
    evaluation, at its G step): ``sr/<metric>`` and the baseline's ``sr/bicubic_<metric>``; to a
    per-seed logger also the grid ``sr/grid`` (:meth:`media`).
    """

    NAME = "sr"
    METRICS: ClassVar[tuple[str, ...]] = ("psnr", "ssim", "edge_error")
    PRIMARY = "psnr"
    EVALUATE_AT_START = True  # the untrained G is the bicubic baseline (bicubic skip)

    def __init__(
        self,
        every_n_g_steps: int = 50,
        use_ema: bool = True,
        batch_size: int = 32,
        grid_rows: int = 4,
        plot: bool = True,
    ) -> None:
        super().__init__(every_n_g_steps)
        for name, v in (
            ("batch_size", batch_size),
            ("grid_rows", grid_rows),
        ):
            check_int(f"SRMetricsEvaluator {name}", v)
        self.use_ema, self.batch_size = use_ema, batch_size
        self.grid_rows, self.plot = grid_rows, plot
        self.baseline: dict[str, float] | None = None
        self.last_grid: Tensor | None = None

    # ------------------------------------------------------------------------------------------
    # Evaluation
    # ------------------------------------------------------------------------------------------

    @staticmethod
    def _validation_pairs(trainer) -> tuple[Tensor, Tensor]:
        dm = getattr(trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "validation_pairs"):
            raise ConfigError(
                "SRMetricsEvaluator needs a datamodule with validation_pairs(), such as "
                "gan_lab.paired.data.PairedImageDataModule"
            )
        return dm.validation_pairs()

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not getattr(pl_module, "conditional", False):
            raise ConfigError(
                "SRMetricsEvaluator needs a paired run: set model.paired (e.g. model.paired: {d_conditional: true})"
            )
        if getattr(pl_module, "members", None) is not None:
            raise ConfigError("SRMetricsEvaluator evaluates single nets, not seed ensembles (members)")
        self._validation_pairs(trainer)

    def super_resolve(self, pl_module, lr: Tensor) -> Tensor:
        """G's outputs for ``lr (N, C, h, w)``, on the CPU: ``pl_module.generate`` (eval mode,
        ``G_ema`` when kept and ``use_ema``) in chunks of ``batch_size``."""
        chunks = lr.split(self.batch_size)
        outs = [
            pl_module.generate(c.to(pl_module.device), None, ema=self.use_ema).float().cpu() for c in chunks
        ]
        return torch.cat(outs)

    def bicubic_baseline(self, trainer) -> dict[str, float]:
        """The validation metrics of bicubic upsampling (computed once, then kept in ``baseline``)."""
        if self.baseline is None:
            lr, hr = self._validation_pairs(trainer)
            bicubic = upsample(lr, tuple(hr.shape[-2:]), "bicubic")
            self.baseline = {k: float(v.mean()) for k, v in sr_metrics(bicubic, hr).items()}
        return self.baseline

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module) -> dict[str, float]:
        """Score G on the validation set, append to ``history``, log ``sr/*``, refresh the grid."""
        lr, hr = self._validation_pairs(trainer)
        baseline = self.bicubic_baseline(trainer)
        output = self.super_resolve(pl_module, lr)
        if output.shape != hr.shape:
            raise ValueError(
                f"G maps the validation inputs {tuple(lr.shape)} to {tuple(output.shape)}, but the "
                f"targets are {tuple(hr.shape)}: G's scale does not match the data's"
            )
        result = {k: float(v.mean()) for k, v in sr_metrics(output, hr).items()}
        row = {"g_steps": pl_module.g_steps, "member": 0, "seed": int(pl_module.seed)}
        row.update({name: result[name] for name in self.METRICS})
        self.history.append(row)
        logs = {f"{self.NAME}/{k}": v for k, v in result.items()}
        logs.update({f"{self.NAME}/bicubic_{k}": v for k, v in baseline.items()})
        rows = self.grid_indices(hr)
        self.last_grid = make_sr_grid(lr[rows], output[rows], hr[rows])
        self.log_metrics(trainer, pl_module, logs, {k: [v] for k, v in logs.items()}, self.media(trainer))
        self._last_eval = pl_module.g_steps
        return result

    def media(self, trainer) -> dict | None:
        """``{"sr/grid": [the grid]}`` (LR | bicubic | output | target), its longest side resized to
        the media size (count: the grid's rows are ``grid_rows``), or None when no media are logged."""
        settings = self.media_settings(trainer)
        if settings is None or self.last_grid is None:
            return None
        grid = self.last_grid.float()[None] / 255
        scale = settings.size / max(grid.shape[-2:])
        size = [max(1, round(s * scale)) for s in grid.shape[-2:]]
        grid = F.interpolate(grid, size=size, mode="bilinear", antialias=scale < 1, align_corners=False)[0]
        image = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return {f"{self.NAME}/grid": [(image, " | ".join(GRID_COLUMNS))]}

    def grid_indices(self, hr: Tensor) -> Tensor:
        """The ``grid_rows`` validation crops with the most detail (largest mean Sobel magnitude
        of the target), in validation order: flat crops (sky) show nothing of SR."""
        detail = kornia.filters.sobel(hr.float()).flatten(1).mean(-1)  # (N,)
        n = min(self.grid_rows, hr.shape[0])
        return detail.topk(n).indices.sort().values

    def finish(self, trainer, pl_module) -> None:
        if self.plot and self.last_grid is not None and run_folder(trainer):
            path = self.save_grid(Path(run_folder(trainer)))
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_image(
                        key="sr/grid",
                        images=[str(path)],
                        step=int(pl_module.g_steps),
                        caption=[" | ".join(GRID_COLUMNS)],
                    )

    def save_grid(self, run_dir: Path) -> Path:
        """Write the final grid as ``run_dir/grid.png``."""
        from torchvision.io import write_png

        if self.last_grid is None:
            raise RuntimeError("SRMetricsEvaluator has no grid yet: evaluate first")
        os.makedirs(run_dir, exist_ok=True)
        path = Path(run_dir) / "grid.png"
        write_png(self.last_grid, str(path))
        return path

    # ------------------------------------------------------------------------------------------
    # What a study reads
    # ------------------------------------------------------------------------------------------

    def save_artifacts(self, run_dir: Path, members: Sequence[int] | None = None) -> None:
        """The final image grid as ``grid.png`` in the run folder (SR nets: one member)."""
        if self.last_grid is not None:
            self.save_grid(Path(run_dir))

    @classmethod
    def report_section(cls):
        """:class:`~gan_lab.paired.report.SRMetricsReport`, captioning the grids with
        :data:`GRID_COLUMNS`."""
        return SRMetricsReport(GRID_COLUMNS)

    def info(self, trainer) -> dict:
        """Dataset, crop size, scale, validation set and the bicubic baseline (JSON-serialisable)."""
        dm = trainer.datamodule
        facts = dict(dm.describe()) if hasattr(dm, "describe") else {}
        if "val_pairs" not in facts:
            facts["val_pairs"] = int(self._validation_pairs(trainer)[1].shape[0])
        facts.update({f"bicubic_{k}": v for k, v in self.bicubic_baseline(trainer).items()})
        facts["use_ema"] = bool(self.use_ema)
        return facts

    def state_dict(self) -> dict:
        return {**super().state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.baseline = state_dict.get("baseline")
