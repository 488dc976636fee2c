"""The round trip from a checkpoint to the image metrics: `gan-lab sample --png DIR` writes the
samples of a stacked-digits generator (3 channels, one digit each) as PNG files, and `gan-lab metrics
DIR --dataset stacked_digits` scores them on the lab's digit classifier's features (each channel
classified on its own), as the lab's image evaluator does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gan_lab.cli import main
from gan_lab.data.images import ImageDataModule
from gan_lab.metrics.digit_classifier import SETTINGS
from gan_lab.metrics.features import DigitClassifierFeatures, quantize_uint8
from gan_lab.metrics.suite import SuiteSettings, image_metrics
from gan_lab.nets import DCGANGenerator
from gan_lab.nets.spec import net_spec


@pytest.fixture
def one_epoch(monkeypatch):
    """A digit classifier trained for one epoch (its own cache key: well under a second)."""
    monkeypatch.setitem(SETTINGS, "sklearn", {**SETTINGS["sklearn"], "epochs": 1})


def test_sample_png_then_metrics_on_digit_classifier_features(tmp_path, capsys, one_epoch):
    G = DCGANGenerator(z_dim=8, ngf=4, out_channels=3, size=16, seed=3)  # stacked digits: (3, 16, 16)
    ckpt = {
        "state_dict": {f"G.{k}": v for k, v in G.state_dict().items()},
        "hyper_parameters": {"generator": net_spec(G)},
    }
    torch.save(ckpt, tmp_path / "g.ckpt")
    pngs, npz, cache = tmp_path / "samples", tmp_path / "s.npz", tmp_path / "cache"
    argv = ["sample", "--ckpt", str(tmp_path / "g.ckpt"), "--n", "40", "--png", str(pngs), "--npz", str(npz)]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert len(list(pngs.glob("*.png"))) == 40

    metrics = [
        "metrics",
        str(pngs),
        "--dataset",
        "stacked_digits",
        "--n-real",
        "60",
        "--cache-dir",
        str(cache),
    ]
    metrics += ["--kid-subsets", "5", "--kid-subset-size", "20"]
    assert main([*metrics, "--feature-net", "digit_classifier"]) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["feature_net"]["name"] == "digit_classifier" and out["feature_net"]["dim"] == 3 * 64
    assert out["fake"] == {"folder": str(pngs), "n": 40, "shape": [3, 16, 16]}
    assert out["real"]["dataset"] == "stacked_digits" and out["real"]["N"] == 60

    # the same numbers from the samples themselves: what the PNGs hold is their 8-bit quantisation
    samples = torch.from_numpy(np.load(npz)["samples"])  # (40, 3, 16, 16) in [-1, 1]
    fake = quantize_uint8(samples).float() / 127.5 - 1
    net = DigitClassifierFeatures(size=16, channels=3, cache_dir=cache)
    real = ImageDataModule("stacked_digits", size=16).reference_images(60)
    with torch.no_grad():
        want = image_metrics(net(real), net(fake), settings=SuiteSettings(kid_subsets=5, kid_subset_size=20))
    for k in ("fd", "kid", "precision", "recall", "density", "coverage"):
        assert out["metrics"][k] == pytest.approx(want[k], rel=1e-5, abs=1e-9), k
    assert out["metrics"]["inception_score"] is None

    # stacked digits score on the digit classifier by default, as the docstring's example says
    assert main(metrics) == 0, capsys.readouterr().err
    default = json.loads(capsys.readouterr().out)
    assert default["feature_net"]["name"] == "digit_classifier" and default["metrics"] == out["metrics"]
