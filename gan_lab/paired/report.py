"""How a study shows :class:`~gan_lab.paired.evaluator.SRMetricsEvaluator` (its report section):
the table's headers, the ×4 super-resolution protocol paragraph (with the bicubic baseline),
``sr_grids.png`` (each configuration's final validation grid, side by side) and ``sr_psnr.png``
(validation PSNR against G steps, mean ± s.e. over seeds, bicubic baseline dashed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from gan_lab.evaluators.section import EvaluatorReport


class SRMetricsReport(EvaluatorReport):
    """The report of super-resolution metrics (``info``: the datamodule's ``describe()``, the
    validation set's size, the bicubic baseline ``bicubic_<metric>`` and ``use_ema``).

    Args:
        grid_columns: what the columns of the run folders' ``grid.png`` show (the evaluator's
            :data:`~gan_lab.paired.evaluator.GRID_COLUMNS`), for the figure's caption.
    """

    TABLE: ClassVar[dict[str, tuple[str, float, int]]] = {
        "psnr": ("PSNR (dB)", 1.0, 2),
        "ssim": ("SSIM", 1.0, 3),
        "edge_error": ("Sobel-edge error", 1.0, 4),
    }
    HIGHER_IS_BETTER: ClassVar[dict[str, bool]] = {"psnr": True, "ssim": True, "edge_error": False}
    #: the metric of the curve figure
    CURVE = "psnr"

    def __init__(self, grid_columns: Sequence[str] = ()) -> None:
        self.grid_columns = tuple(grid_columns)

    def protocol(self, info: dict) -> str:
        s = info.get("crop_size", "?")
        scale = info.get("scale", "?")
        lr_size = info.get("lr_size", "?")
        val = info.get("val_images")
        val_text = f" ({', '.join(val)})" if isinstance(val, list) else ""
        n_img = len(val) if isinstance(val, list) else "held-out"
        base = ", ".join(
            f"{h.split(' (')[0]} {info[f'bicubic_{m}']:.{d}f}"
            for m, (h, _, d) in self.TABLE.items()
            if f"bicubic_{m}" in info
        )
        channels = {1: "grayscale", 3: "RGB"}.get(info.get("channels"), "")
        return (
            f"Protocol (×{scale} super-resolution): dataset `{info.get('dataset', '?')}`; the validation "
            f"set is {info.get('val_pairs', '?')} fixed {s}×{s} {channels} crops of {n_img} held-out "
            f"images{val_text}, the same for every run, and their bicubic downsampling (antialiased, "
            f"clamped to [-1, 1]) to {lr_size}×{lr_size} as G's input. G (eval mode"
            f"{', G_ema' if info.get('use_ema') else ''}) output is clamped to [-1, 1]. PSNR (dB) and SSIM "
            "(torchmetrics; Gaussian window 11, σ 1.5) are computed per crop on images mapped to [0, 1] "
            "with data range 1, over all channels and without border cropping, then averaged over crops; "
            "the Sobel-edge error is the mean |‖∇output‖ − ‖∇target‖| of kornia's normalised Sobel "
            "magnitudes on [-1, 1] (the training term's scale). Higher PSNR/SSIM and lower edge error "
            f"are better. Bicubic upsampling of the same inputs scores: {base or 'n/a'}."
        )

    def figures(
        self, study_dir, runs, results, history, info, file_prefix: str = ""
    ) -> list[tuple[str, str]]:
        """``<prefix>grids.png`` (the ``grid.png`` of each run folder, labelled with its mean PSNR
        and SSIM) and ``<prefix>psnr.png`` (the curve)."""
        import numpy as np
        from torchvision.io import decode_image

        from gan_lab.plots import save_curves_figure, save_image_panels

        study_dir = Path(study_dir)
        columns = " | ".join(self.grid_columns)
        figures = []
        panels = []
        for label, run_dir in runs:
            files = sorted(Path(run_dir).glob("**/grid.png"))
            if files:
                rows = [r for r in results if r["objective"] == label]
                summary = ""
                if rows:
                    p = np.mean([r["psnr"] for r in rows])
                    s = np.mean([r["ssim"] for r in rows])
                    summary = f"\nPSNR {p:.2f} dB, SSIM {s:.3f}"
                panels.append((f"{label}{summary}", decode_image(str(files[0])).permute(1, 2, 0).numpy()))
        if panels:
            name = f"{file_prefix}grids.png"
            save_image_panels(panels, str(study_dir / name), "validation crops, columns: " + columns)
            figures.append(("final outputs on validation crops: " + columns, name))
        if history:
            name = f"{file_prefix}{self.CURVE}.png"
            base = info.get(f"bicubic_{self.CURVE}") if isinstance(info, dict) else None
            save_curves_figure(
                {label: [r for r in history if r["objective"] == label] for label, _ in runs},
                self.CURVE,
                str(study_dir / name),
                ylabel=self.TABLE[self.CURVE][0],
                title="validation PSNR: mean ± s.e. over seeds",
                baseline=None if base is None else ("bicubic", base),
            )
            figures.append(("validation PSNR against G steps (dashed: bicubic)", name))
        return figures
