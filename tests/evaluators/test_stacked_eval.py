"""StackedModeEvaluator: the modes and KL of a generator whose triples are known by construction; the
real-data row (the data set's own triples); the confident count with a classifier whose softmax the
test sets; the report's real row, confident count and "not recognised" sentence."""

from __future__ import annotations

import math
from collections import Counter

import lightning as L
import numpy as np
import pytest
import torch
from fake_features import MeanDigit
from torch import nn

from gan_lab.data import ImageDataModule, StackedDigits
from gan_lab.data.digits import digit_images
from gan_lab.errors import ConfigError
from gan_lab.evaluators import StackedModeEvaluator
from gan_lab.evaluators.image_report import StackedModeReport, recognition_sentence
from gan_lab.metrics.features import FeatureNet
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


def evaluation_trainer(evaluator) -> L.Trainer:
    """A CPU Trainer with nothing but ``evaluator`` (no logger, checkpoint or progress bar)."""
    return L.Trainer(
        accelerator="cpu",
        max_epochs=-1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[evaluator],
    )


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
    trainer = evaluation_trainer(ev)
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


# --------------------------------------------------------------------------------------------------
# The real-data row and the confident count
# --------------------------------------------------------------------------------------------------


class SoftDigit(MeanDigit):
    """A classifier whose softmax the test sets: channel c of an image reads as digit
    ``d = round(5 · (mean + 1))`` (as ``MeanDigit``: TripleG's channel ``d / 5 − 1`` reads as d) with
    probability ``q = 0.2 + 0.079 · 5 · (mean + 1)`` (0.2 for a 0 channel of TripleG, 0.437 for a 3,
    0.753 for a 7, 0.911 for a 9) and ``(1 − q) / 9`` for every other digit."""

    name = "soft_digit"

    @staticmethod
    def digit_and_q(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = 5 * (x.double().mean((2, 3)) + 1)  # (B, C)
        return m.round().clamp(0, 9).long(), (0.2 + 0.079 * m).clamp(0.2, 0.99)

    def features_and_logits(self, x: torch.Tensor):
        d, q = self.digit_and_q(x)
        p = ((1 - q) / 9).unsqueeze(-1).expand(*d.shape, 10).clone()  # (B, C, 10)
        p.scatter_(-1, d.unsqueeze(-1), q.unsqueeze(-1))
        return x.mean((2, 3)), p.log().float()

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.digit_and_q(x)[0]


class PoolLookup(FeatureNet):
    """A perfect classifier of stacked scikit-learn digits: each channel's label is the label of the
    nearest image of the digit pool (the channel is one of them)."""

    name = "pool_lookup"

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.dim, self.weights_hash, self.channels = channels, "none", channels
        self.pool, self.pool_labels = digit_images(16)
        self.freeze()

    def input_handling(self) -> str:
        return "nearest pool digit"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        d = torch.cdist(x.reshape(b * c, -1).float(), self.pool.flatten(1).float())
        return self.pool_labels[d.argmin(1)].view(b, c)


class Stand:
    """The trainer and module stand-ins the evaluator's real_facts reads."""

    def __init__(self, n_train: int = 128_000) -> None:
        self.datamodule = ImageDataModule(StackedDigits(size=16, n_train=n_train), batch_size=4)
        self.device = torch.device("cpu")


def test_real_row_counts_the_data_sets_own_triples_near_1000_modes():
    # the first n of the training split in the datamodule's fixed order, n = n_samples; with a perfect
    # classifier the count is that of the data's own labels: near 1,000 modes at 10,000 triples, KL near
    # 0 (≈ 999 / (2n) ≈ 0.05). Mutations caught: generated samples in the real row, n other than
    # n_samples, another split or order, the real row computed again at each evaluation.
    n = 10_000
    stand = Stand()
    ev = StackedModeEvaluator(n_samples=n, classifier="test_stacked_eval.PoolLookup", batch_size=2500)
    real = ev.real_facts(stand, stand, ev.classifier(stand, stand))
    _, truth = stand.datamodule.reference(n, "train")
    counts = Counter(map(tuple, truth.tolist()))
    p = np.array(list(counts.values()), dtype=np.float64) / n
    assert real["n"] == n and real["split"] == "train"
    assert real["modes"] == real["true_modes"] == len(counts) >= 995
    assert real["kl"] == pytest.approx(math.log(1000) + float((p * np.log(p)).sum()), rel=1e-9)
    assert real["kl"] < 0.1
    assert real["triple_accuracy"] == 1.0 and real["channel_accuracy"] == 1.0
    assert real["threshold"] is None and real["confidence"] is None  # no logits: no confident count
    assert ev.real_facts(None, None, None) is real  # cached: once per evaluator
    small = StackedModeEvaluator(n_samples=500, classifier="test_stacked_eval.PoolLookup")
    assert small.real_facts(Stand(64), stand, PoolLookup())["n"] == 64  # never more than the split holds


def test_confident_count_with_a_classifier_whose_softmax_is_known(tmp_path):
    # τ = numpy's 1st percentile of SoftDigit's q over every real channel (by hand from the same real
    # images); TripleG's samples: a channel z_k > 0 reads as 3 / 7 / 9 with q = 0.437 / 0.753 / 0.911,
    # one z_k ≤ 0 as 0 with q = 0.2, so with 0.2 < τ ≤ 0.437 only the samples with all of z_1..3 > 0
    # are recognised: one confident mode (3, 7, 9), their share of the noise set kept. Mutations caught:
    # τ the 99th percentile or over samples, "any channel" instead of all, the fraction over channels,
    # the confidence of the real images logged as the generated one.
    n, seed, n_real = 500, 11, 400
    G = TripleG()
    m = GANModule(G, DCGANDiscriminator(in_channels=3, ndf=4, size=16), objective="hinge", max_g_steps=1)
    ev = StackedModeEvaluator(
        every_n_g_steps=1,
        n_samples=n,
        noise_seed=seed,
        batch_size=64,
        classifier="test_stacked_eval.SoftDigit",
    )
    trainer = evaluation_trainer(ev)
    dm = ImageDataModule(StackedDigits(size=16, n_train=n_real), batch_size=4, steps_per_epoch=2)
    trainer.fit(m, dm)
    real_images, _ = dm.reference(n_real, "train")
    _, q_real = SoftDigit.digit_and_q(real_images)  # (n_real, 3)
    tau = float(np.percentile(q_real.numpy(), 1))
    info = ev.info(trainer)
    real = info["real"]
    assert real["n"] == n_real and real["calibration_n"] == 3 * n_real
    assert real["threshold"] == pytest.approx(tau, rel=1e-6)
    assert 0.2 < tau <= 0.437
    assert real["confidence"] == pytest.approx(float(q_real.mean()), rel=1e-6)
    assert real["confident_fraction"] == pytest.approx(
        float((q_real >= real["threshold"]).all(1).double().mean())
    )
    z = fixed_noise(n, 3, seed)
    positive = (z[:, :3] > 0).double()  # (n, 3)
    q = 0.2 + 0.079 * positive * torch.tensor([3.0, 7.0, 9.0], dtype=torch.float64)
    row = ev.history[-1]
    assert row["confident_modes"] == 1.0
    assert row["confident_fraction"] == pytest.approx(float(positive.all(1).double().mean()), rel=1e-12)
    assert row["confidence"] == pytest.approx(float(q.mean()), rel=1e-6)
    assert row["modes"] == 8  # VEEGAN's count: every sample
    assert set(ev.METRICS) <= set(row)
    ev.save_artifacts(tmp_path)
    for png in ("stacked_samples.png", "stacked_real.png"):
        assert (tmp_path / png).is_file(), png


REAL = {
    "n": 10000, "split": "train", "modes": 1000.0, "kl": 0.053, "keep": 0.99, "threshold": 0.62,
    "calibration_n": 30000, "confidence": 0.982, "confident_modes": 1000.0, "confident_fraction": 0.973,
    "triple_accuracy": 0.977, "channel_accuracy": 0.992, "true_modes": 1000.0,
}  # fmt: skip
INFO = {
    "classifier": {"name": "digit_classifier"}, "n_samples": 10000, "num_modes": 1000,
    "kl_max": math.log(1000), "noise_seed": 2028, "use_ema": True, "real": REAL,
}  # fmt: skip


def test_report_states_the_real_row_the_threshold_and_the_confidences():
    # mutations caught: the real row left out of the protocol, τ or its calibration n unstated
    text = StackedModeReport().protocol(dict(INFO))
    for needle in ("**Real data** (10,000", "1,000 modes covered, KL 0.053", "0.982", "τ = 0.620",
                   "1st percentile", "30,000 real channels", "97.3 % of triples recognised"):  # fmt: skip
        assert needle in text, needle
    assert "not recognised" not in text  # no rows seen: no verdict on the samples
    assert "no confident count" in StackedModeReport().protocol({**INFO, "real": {**REAL, "threshold": None}})


def test_report_says_plainly_when_most_samples_are_not_digits(tmp_path):
    # kept fraction < 0.5 (mean over seeds) -> the sentence names that objective; ≥ 0.5 -> it does not.
    # The figure: one panel per seed beside the real grid. Mutations caught: the sentence on the best
    # seed instead of the mean, ≤ instead of <, the figure of the first seed only.
    from torchvision.io import write_png

    rows = [
        {"objective": "blobs", "seed": 0, "confident_fraction": 0.2},
        {"objective": "blobs", "seed": 1, "confident_fraction": 0.7},  # mean 0.45 < 0.5
        {"objective": "clean", "seed": 0, "confident_fraction": 0.5},
        {"objective": "clean", "seed": 1, "confident_fraction": 0.5},  # mean 0.5: mostly recognised
    ]
    sentence = recognition_sentence(rows, INFO)
    assert sentence.startswith(
        "**Most samples are not recognised as digits** for blobs (45 % of samples kept)"
    )
    assert "clean" not in sentence
    assert recognition_sentence(rows[2:], INFO).startswith("Most samples are recognised as digits")
    runs = []
    for lab in ("blobs", "clean"):
        for s in (0, 1):
            folder = tmp_path / lab / f"seed{s}"
            folder.mkdir(parents=True)
            img = torch.full((3, 20, 20), 60 * s + 40, dtype=torch.uint8)
            write_png(img, str(folder / "stacked_samples.png"))
            write_png(img, str(folder / "stacked_real.png"))
        runs.append((lab, tmp_path / lab / "seed0"))
    info = dict(INFO)
    section = StackedModeReport()
    history = [
        {**r, "g_steps": 1, "modes": 5.0, "kl": 1.0, "confident_modes": 1.0, "confidence": 0.5} for r in rows
    ]
    figures = section.figures(tmp_path, runs, rows, history, info, file_prefix="stacked_")
    assert figures[0] == ("final samples of every seed, beside real data", "stacked_samples.png")
    assert (tmp_path / "stacked_samples.png").is_file()
    assert {name for _, name in figures[1:]} == {f"stacked_{m}.png" for m in StackedModeEvaluator.METRICS}
    assert section.notes(rows, info) == sentence  # printed after the table (report.py)
    assert sentence not in section.protocol(info)
