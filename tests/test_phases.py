"""The module's phases (Dmain, Dreg, Gmain, Greg): review defects, each with a test that failed
before its fix — lazy terms logged whatever the intervals, a zero-weight penalty not computed,
gradient_clip_val 0 refused, StyleGAN2's EMA schedule."""

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from gan_lab.cli import main
from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.nets.ema import ema_beta
from gan_lab.regularizers import R1
from gan_lab.settings import EMA


def nets():
    return ToyGenerator(members=2, hidden=8, layers=1), ToyDiscriminator(members=2, hidden=8, layers=1)


def fit(module, batches, root, log_every=50):
    trainer = L.Trainer(
        max_steps=-1,
        limit_train_batches=batches,
        max_epochs=1,
        logger=CSVLogger(root, name="", version=""),
        log_every_n_steps=log_every,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, ToyMixtureDataModule("ring8", batch_size=16))
    if not (root / "metrics.csv").is_file():  # nothing logged (fewer batches than log_every)
        return []
    with open(root / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_lazy_term_is_logged_when_its_interval_and_the_log_interval_share_a_factor(tmp_path):
    """R1 every 4 D steps runs at D steps 0, 4, 8, ...; the loggers write every 2nd batch (1, 3, 5,
    ...): they never coincide, and before the fix `d/r1` never appeared. Now every logged row
    carries the last R1 value."""
    module = GANModule(*nets(), regularizers=[R1(weight=1.0, every=4)])
    rows = fit(module, batches=12, root=tmp_path, log_every=2)
    assert len(rows) == 6
    assert all(row["d/r1"] not in ("", None) for row in rows)
    assert all(float(row["d/r1"]) >= 0 for row in rows)


def test_a_zero_weight_penalty_is_not_computed(tmp_path, monkeypatch):
    calls = []
    original = R1.penalty
    monkeypatch.setattr(R1, "penalty", lambda self, inputs: calls.append(1) or original(self, inputs))
    fit(GANModule(*nets(), regularizers=[R1(weight=0.0)]), batches=3, root=tmp_path)
    assert calls == []  # no input gradient, no double backward
    fit(GANModule(*nets(), regularizers=[R1(weight=1.0)]), batches=3, root=tmp_path / "b")
    assert len(calls) == 3


def test_gradient_clip_val_zero_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="gradient_clip_val must be > 0 or null"):
        GANModule(*nets(), gradient_clip_val=0)
    args = ["fit", "--config", "tests/configs/tiny_ring8.yaml", "--model.gradient_clip_val=0"]
    assert main([*args, f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.logger=false"]) == 2
    assert "gradient_clip_val must be > 0 or null (off)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_stylegan2_ema_follows_the_half_life_schedule(tmp_path):
    """With ema.kimg, G_ema after each G step equals the hand-computed average with
    β_t = 0.5 ** (B / min(1000 · kimg, 0.05 · t · B)) (StyleGAN2's training loop)."""
    torch.manual_seed(0)
    module = GANModule(*nets(), ema=EMA(kimg=0.01, rampup=0.05))  # half-life 10 samples
    weights, expected = [], None
    original = module._update_ema

    def record(batch_size):
        original(batch_size)
        weights.append([p.detach().clone() for p in module.G.parameters()])

    module._update_ema = record
    fit(module, batches=5, root=tmp_path)
    expected = None
    for t, w in enumerate(weights):
        beta = ema_beta(16, t * 16, 0.01, 0.05)
        expected = (
            [x.clone() for x in w]
            if expected is None
            else [beta * e + (1 - beta) * x for e, x in zip(expected, w)]
        )
    for e, p in zip(expected, module.G_ema.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    assert ema_beta(16, 0, 0.01, 0.05) == 0.0  # the first step copies G
