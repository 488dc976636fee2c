"""StackedModeEvaluator: the modes and KL of a generator whose triples are known by construction."""

from __future__ import annotations

import math
from collections import Counter

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from gan_lab.data import ImageDataModule, StackedDigits
from gan_lab.errors import ConfigError
from gan_lab.evaluators import StackedModeEvaluator
from gan_lab.module import GANModule
from gan_lab.nets import DCGANDiscriminator
from gan_lab.seeding import fixed_noise


class TripleG(nn.Module):
    """``z -> `` an image whose channel k is the constant ``d_k / 5 − 1``, with ``d_k`` decided by the
    sign pattern of z: ``d_k = digits[k]`` where z_k > 0, else 0 — at most 8 distinct triples."""

    def __init__(self, digits=(3, 7, 9), z_dim: int = 3) -> None:
        super().__init__()
        self.z_dim, self.out_channels = z_dim, 3
        self.register_buffer("digits", torch.tensor(digits, dtype=torch.float32))
        self.zero = nn.Parameter(torch.zeros(()))  # for the optimizer: its gradient is 0, it stays 0

    def triples(self, z: torch.Tensor) -> torch.Tensor:
        return (z[:, :3] > 0).float() * self.digits  # (B, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        d = self.triples(z) / 5 - 1
        return (d + 0 * self.zero)[:, :, None, None].expand(-1, -1, 16, 16).contiguous()


def test_modes_and_kl_of_a_known_generator(tmp_path):
    # modes = distinct triples among the fixed noise set; KL(p̂ ‖ U(1000)) = ln 1000 − H(p̂), both by
    # hand from the same noise (mutations caught: counting channels instead of triples, KL of the
    # other direction, another noise set, a sample scored twice)
    n, seed = 500, 11
    G = TripleG()
    m = GANModule(G, DCGANDiscriminator(in_channels=3, ndf=4, size=16), objective="hinge", max_g_steps=1)
    ev = StackedModeEvaluator(
        every_n_g_steps=1, n_samples=n, noise_seed=seed, batch_size=64, classifier="fake_features.MeanDigit"
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=-1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[ev],
    )
    trainer.fit(m, ImageDataModule(StackedDigits(size=16, n_train=64), batch_size=4, steps_per_epoch=2))
    z = fixed_noise(n, 3, seed)
    counts = Counter(map(tuple, G.triples(z).long().tolist()))
    p = np.array(list(counts.values()), dtype=np.float64) / n
    kl = math.log(1000) + float((p * np.log(p)).sum())
    row = ev.history[-1]
    assert row["modes"] == len(counts) == 8
    assert row["kl"] == pytest.approx(kl, rel=1e-9)
    hist = ev.channel_histograms  # (3, 10): digit k of channel c
    for c, digit in enumerate((3, 7, 9)):
        assert hist[c, digit] == int((z[:, c] > 0).sum()) and hist[c, 0] == n - hist[c, digit]
    info = ev.info(trainer)
    assert info["num_modes"] == 1000 and info["kl_max"] == pytest.approx(math.log(1000))


def test_a_classifier_without_classify_is_one_line():
    ev = StackedModeEvaluator(classifier="fake_features.RandomProjection")

    class T:
        datamodule = ImageDataModule(StackedDigits(size=16, n_train=64), batch_size=4)

    class M:
        device = torch.device("cpu")

    with pytest.raises(ConfigError, match="classify"):
        ev.classifier(T(), M())
