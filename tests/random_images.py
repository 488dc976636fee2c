"""Random image data and a tiny Lightning fit, for the tests of the image nets (DCGAN, SN-ResNet)."""

from __future__ import annotations

import math
from dataclasses import replace

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from gan_lab.module import GANModule
from gan_lab.settings import Speed


class RandomImages(L.LightningDataModule):
    """``n`` uniform images in [-1, 1] of shape ``(channels, size, size)``, seeded, in batches;
    ``channels`` is what :func:`gan_lab.checks.check_data` compares with the nets."""

    def __init__(self, channels: int, size: int, batch_size: int = 4, n: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.channels, self.size, self.batch_size = channels, size, batch_size
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, channels, size, size, generator=g) * 2 - 1  # (n, C, s, s)

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.images), batch_size=self.batch_size, shuffle=False)


def tiny_fit(
    G, D, batches: int = 3, precision: str = "32-true", default_root_dir=None, **module_kwargs
) -> tuple[GANModule, list[dict[str, float]], L.Trainer]:
    """Fit ``GANModule(G, D, **module_kwargs)`` for ``batches`` batches of 4 random images on the
    CPU (one thread); return the module, every step's logged loss terms and the trainer (which
    writes a checkpoint only when ``default_root_dir`` is given)."""
    from benchmarks.gpu_check import trainer_precision

    rows: list[dict[str, float]] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            rows.append({k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k})

    speed = replace(module_kwargs.pop("speed", Speed()), cpu_threads=1)
    module = GANModule(G, D, speed=speed, **module_kwargs)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=batches,
        log_every_n_steps=1,
        logger=False,
        enable_checkpointing=default_root_dir is not None,
        default_root_dir=default_root_dir,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Record()],
        **trainer_precision(precision, "cpu"),
    )
    trainer.fit(module, RandomImages(G.out_channels, G.size, batch_size=4, n=4 * batches))
    return module, rows, trainer


def all_finite(rows: list[dict[str, float]]) -> bool:
    return bool(rows) and all(math.isfinite(v) for row in rows for v in row.values())
