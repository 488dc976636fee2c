"""ImageMetricsEvaluator: what it scores (the fixed noise set, every rank's share once), its values
against the metric functions on the same features, and its history across a resume."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from gan_lab.data import ImageDataModule, StackedDigits
from gan_lab.errors import ConfigError
from gan_lab.evaluators import ImageMetricsEvaluator
from gan_lab.evaluators.fixed_samples import generate_fixed, rank_share
from gan_lab.metrics.frechet import frechet_distance, gaussian_statistics
from gan_lab.metrics.prdc import prdc
from gan_lab.module import GANModule
from gan_lab.nets import DCGANDiscriminator, DCGANGenerator
from gan_lab.settings import Speed

FEATURES = {"feature_net": "fake_features.RandomProjection", "feature_args": {"dim": 8}}


def evaluator(**kw) -> ImageMetricsEvaluator:
    args = dict(every_n_g_steps=2, n_samples=40, n_real=48, batch_size=16, kid_subset_size=20, grid=9)
    return ImageMetricsEvaluator(**{**args, **FEATURES, **kw})


def module(max_g_steps: int) -> GANModule:
    G = DCGANGenerator(z_dim=8, ngf=4, out_channels=3, size=16)
    D = DCGANDiscriminator(in_channels=3, ndf=4, size=16)
    return GANModule(G, D, objective="hinge", max_g_steps=max_g_steps, speed=Speed(cpu_threads=1))


def fit(m, ev, root, ckpt_path=None) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=-1,
        max_steps=-1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[ev, L.pytorch.callbacks.ModelCheckpoint(dirpath=root, save_last=True)],
    )
    dm = ImageDataModule(StackedDigits(size=16, n_train=512), batch_size=8, steps_per_epoch=3)
    trainer.fit(m, dm, ckpt_path=ckpt_path)
    return trainer


def test_rank_shares_cover_every_sample_once():
    # mutation caught: a share of `range(rank * n // world, ...)` blocks would still cover, but any
    # overlap or gap (e.g. arange(rank, n, world - 1)) fails
    for n, world in ((10, 1), (10, 3), (7, 4)):
        shares = torch.cat([rank_share(n, r, world) for r in range(world)])
        assert sorted(shares.tolist()) == list(range(n))


def test_ranks_generate_the_fixed_sets_rows():
    # rank r's samples are G(z_i) for i ≡ r (mod W) of the one fixed set: the two ranks' batches,
    # interleaved, are the single process's (mutation caught: each rank drawing its own noise)
    m = module(1)
    whole = torch.cat(list(generate_fixed(m, 10, 5, 4)))
    halves = [torch.cat(list(generate_fixed(m, 10, 5, 4, rank=r, world=2))) for r in (0, 1)]
    # (equal up to the rounding of other batch compositions: G is in eval mode, samples independent)
    torch.testing.assert_close(halves[0], whole[0::2], rtol=0, atol=1e-6)
    torch.testing.assert_close(halves[1], whole[1::2], rtol=0, atol=1e-6)


def test_values_equal_the_metric_functions_on_the_same_features(tmp_path):
    # the evaluator's FD / precision / recall / density / coverage are the functional metrics of
    # (the datamodule's first n_real reference images, G on the fixed noise set) under the feature
    # net (mutations caught: scoring the training batch, another noise set, n_real ignored, the
    # reference taken from the other split)
    m = module(2)
    ev = evaluator(cache_dir=str(tmp_path / "cache"))
    trainer = fit(m, ev, tmp_path / "run")
    net = ev._net
    real = net(trainer.datamodule.reference_images(48, split="train"))
    fake = net(torch.cat(list(generate_fixed(m, 40, ev.noise_seed, 16))))
    row = ev.history[-1]
    assert row["g_steps"] == 2 and row["member"] == 0
    want = float(frechet_distance(*gaussian_statistics(real), *gaussian_statistics(fake)))
    assert row["fd"] == pytest.approx(want, rel=1e-6)
    for k, v in prdc(real, fake).items():
        assert row[k] == pytest.approx(float(v), abs=1e-12), k
    assert math.isnan(row["inception_score"])  # not an Inception net: IS is undefined
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").rglob("*.pt"))  # cached
    assert ev.info(trainer)["reference"]["N"] == 48


def test_history_survives_resume_bit_for_bit(tmp_path):
    # fit 6 G steps with evaluations at 2, 4, 6 == fit 4, stop, resume to 6 (mutation caught: the
    # history not in the checkpoint, or the evaluation re-run at the resumed step)
    full_ev = evaluator(cache_dir=str(tmp_path / "cache"))
    fit(module(6), full_ev, tmp_path / "full")
    first = evaluator(cache_dir=str(tmp_path / "cache"))
    fit(module(4), first, tmp_path / "split")
    resumed_ev = evaluator(cache_dir=str(tmp_path / "cache"))
    fit(module(6), resumed_ev, tmp_path / "split2", ckpt_path=str(tmp_path / "split" / "last.ckpt"))
    assert [r["g_steps"] for r in full_ev.history] == [2, 4, 6]
    assert same_rows(resumed_ev.history, full_ev.history)  # floats compared exactly


def same_rows(a: list[dict], b: list[dict]) -> bool:
    """Rows equal value for value, NaN equal to NaN (IS is undefined here)."""

    def key(rows):
        return [
            {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows
        ]

    return key(a) == key(b)


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match="reference_split"):
        ImageMetricsEvaluator(reference_split="val")
    with pytest.raises(ConfigError, match="k-NN"):
        ImageMetricsEvaluator(n_samples=4, n_real=4)
