"""Tests of the super-resolution evaluator (gan_lab.paired.evaluator).

References: torchmetrics' PSNR / SSIM Metric classes (the evaluator uses the functional forms per
image), scikit-image's ``peak_signal_noise_ratio`` / ``structural_similarity`` (independent
implementations), a PSNR computed by hand, and a short Lightning fit for the schedule and the
files the study reads.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import kornia
import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fake_sr import FakePairs as FakeData
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch.utils.data import DataLoader
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchvision.io import decode_image

from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.paired.data import bicubic_downsample
from gan_lab.paired.evaluator import SRMetricsEvaluator, make_sr_grid, sr_metrics
from gan_lab.paired.nets import PatchDiscriminator, SRResNet
from gan_lab.regularizers import PixelLoss
from gan_lab.regularizers.image import sobel_edge_loss
from gan_lab.settings import Paired


def pair(seed: int = 0, n: int = 2, noise: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """A hand-made (output, target) pair in [-1, 1]: a smooth target and a noisy copy."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    target = F.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False)
    output = (target + noise * torch.randn(target.shape, generator=g)).clamp(-1, 1)
    return output, target


def fake_run(G, g_steps: int = 0):
    """A (trainer, pl_module) pair with just what :meth:`SRMetricsEvaluator.evaluate` reads; its
    one logger records ``(metrics, step)`` of every ``log_metrics``."""
    logged = []

    class Recorder:
        def log_metrics(self, metrics, step=None):
            logged.append((dict(metrics), step))

        def save(self):
            pass

    module = SimpleNamespace(
        G=G,
        G_ema=None,
        device=torch.device("cpu"),
        g_steps=g_steps,
        seed=7,
        conditional=True,
        members=None,
    )
    # GANModule's own generate (eval mode, G_ema when kept), on the stand-in's G and G_ema
    module.generate = lambda *inputs, ema=True: GANModule.generate(module, *inputs, ema=ema)
    trainer = SimpleNamespace(
        datamodule=FakeData(), loggers=[Recorder()], is_global_zero=True, log_dir=None, callback_metrics={}
    )
    return trainer, module, logged


class Bicubic(torch.nn.Module):
    z_dim = 0

    def forward(self, lr, z=None):
        return F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def test_psnr_and_ssim_equal_torchmetrics_classes_on_unit_range():
    """``sr_metrics`` (torchmetrics' functional forms, all images at once) against torchmetrics'
    Metric classes, each fed one image at a time (their own ``update`` / ``compute`` path), on
    ``[-1, 1]`` mapped to ``[0, 1]`` here: image by image, PSNR and SSIM are the classes' values,
    and PSNR is ``10 log10(1 / MSE)`` by hand in float64; an SSIM class accumulated over the images
    gives the mean of the per-image values. The output overshoots [-1, 1]: it is clamped first."""
    output, target = pair(n=3)
    output = torch.cat([output[:2], 1.5 * output[2:]])  # the third image leaves [-1, 1]
    assert output.abs().max() > 1
    m = sr_metrics(output, target)
    assert m["psnr"].shape == m["ssim"].shape == (3,)
    o, t = (output.clamp(-1, 1) + 1) / 2, (target + 1) / 2
    accumulated = StructuralSimilarityIndexMeasure(data_range=1.0)
    for k in range(output.shape[0]):
        psnr = PeakSignalNoiseRatio(data_range=1.0)(o[k : k + 1], t[k : k + 1])
        ssim = StructuralSimilarityIndexMeasure(data_range=1.0)(o[k : k + 1], t[k : k + 1])
        accumulated.update(o[k : k + 1], t[k : k + 1])
        torch.testing.assert_close(m["psnr"][k], psnr, msg=lambda msg, k=k: f"PSNR of image {k}: {msg}")
        torch.testing.assert_close(m["ssim"][k], ssim, msg=lambda msg, k=k: f"SSIM of image {k}: {msg}")
        mse = (o[k].double() - t[k].double()).square().mean()
        assert float(m["psnr"][k]) == pytest.approx(float(10 * torch.log10(1 / mse)), abs=1e-4)
    torch.testing.assert_close(m["ssim"].mean(), accumulated.compute())


def test_psnr_and_ssim_agree_with_scikit_image():
    """scikit-image crops a 5-pixel border before averaging the SSIM map; torchmetrics averages
    the whole map of the reflect-padded image. Padding the same way before scikit-image's map
    makes the two independent implementations agree."""
    output, target = pair(seed=3)
    m = sr_metrics(output, target)
    for k in range(output.shape[0]):
        o = ((output[k] + 1) / 2).permute(1, 2, 0).double().numpy()  # (H, W, C) in [0, 1]
        t = ((target[k] + 1) / 2).permute(1, 2, 0).double().numpy()
        assert float(m["psnr"][k]) == pytest.approx(peak_signal_noise_ratio(t, o, data_range=1.0), abs=1e-4)
        pad = ((5, 5), (5, 5), (0, 0))  # the Gaussian window's radius (11 taps, σ = 1.5)
        _, ssim_map = structural_similarity(
            np.pad(t, pad, mode="reflect"),
            np.pad(o, pad, mode="reflect"),
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            full=True,
        )
        assert float(m["ssim"][k]) == pytest.approx(ssim_map[5:-5, 5:-5].mean(), abs=1e-5)


def test_psnr_by_hand_and_range_convention():
    target = torch.zeros(1, 3, 16, 16)
    m = sr_metrics(target + 0.2, target)  # on [0, 1] the error is 0.1: MSE 0.01, PSNR 20 dB
    assert float(m["psnr"][0]) == pytest.approx(20.0, abs=1e-4)
    # The same as PSNR on [-1, 1] with data range 2.
    mse = ((target + 0.2) - target).square().mean()
    assert float(m["psnr"][0]) == pytest.approx(float(10 * torch.log10(4 / mse)), abs=1e-4)


def test_identical_images_give_infinite_psnr_unit_ssim_zero_edge_error():
    _, target = pair()
    m = sr_metrics(target.clone(), target)
    assert torch.isinf(m["psnr"]).all() and (m["psnr"] > 0).all()
    torch.testing.assert_close(m["ssim"], torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(m["edge_error"], torch.zeros(2))


def test_edge_error_is_the_sobel_edge_loss_and_outputs_are_clamped():
    output, target = pair(noise=0.5)
    torch.testing.assert_close(sr_metrics(output, target)["edge_error"], sobel_edge_loss(output, target))
    loud = output * 3
    torch.testing.assert_close(
        sr_metrics(loud, target)["psnr"], sr_metrics(loud.clamp(-1, 1), target)["psnr"]
    )


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        sr_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))


# --------------------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------------------


def test_evaluate_appends_a_history_row_and_scores_the_bicubic_baseline():
    ev = SRMetricsEvaluator(grid_rows=3)
    trainer, module, logged = fake_run(Bicubic(), g_steps=40)
    result = ev.evaluate(trainer, module)
    assert ev.history == [{"g_steps": 40, "member": 0, "seed": 7, **result}]
    assert set(result) == set(SRMetricsEvaluator.METRICS) and SRMetricsEvaluator.PRIMARY == "psnr"
    assert result == pytest.approx(ev.baseline)  # a bicubic G scores the baseline exactly
    ref = sr_metrics(Bicubic()(trainer.datamodule.lr).clamp(-1, 1), trainer.datamodule.hr)
    assert result["psnr"] == pytest.approx(float(ref["psnr"].mean()))
    ((metrics, step),) = logged  # once, at its G step, straight to the logger
    assert step == 40 and metrics["sr/psnr"] == pytest.approx(result["psnr"]) and "sr/bicubic_ssim" in metrics


def test_evaluate_uses_eval_mode_and_the_ema_copy_and_restores_training():
    G = SRResNet(width=4, blocks=1)  # random tanh net: far from bicubic
    G_ema = SRResNet(width=4, blocks=1, output="identity", bicubic_skip=True)  # exactly bicubic
    trainer, module, _ = fake_run(G)
    module.G_ema = G_ema.train()
    seen = []
    G_ema.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    ev = SRMetricsEvaluator(use_ema=True)
    result = ev.evaluate(trainer, module)
    assert seen == [False] and G_ema.training  # eval mode inside, train mode restored
    assert result == pytest.approx(ev.baseline)  # G_ema (bicubic) was scored, not G
    no_ema = SRMetricsEvaluator(use_ema=False).evaluate(trainer, module)
    assert no_ema["psnr"] < result["psnr"] - 1


def test_evaluate_refuses_a_generator_of_the_wrong_scale():
    class Twice(Bicubic):
        def forward(self, lr, z=None):
            return F.interpolate(lr, scale_factor=2)

    trainer, module, _ = fake_run(Twice())
    with pytest.raises(ValueError, match="scale"):
        SRMetricsEvaluator().evaluate(trainer, module)


def test_grid_shows_nearest_bicubic_output_target_and_is_written(tmp_path):
    ev = SRMetricsEvaluator(grid_rows=2)
    trainer, module, _ = fake_run(Bicubic())
    ev.evaluate(trainer, module)
    ev.save_artifacts(tmp_path)
    img = decode_image(str(tmp_path / "grid.png"))
    assert img.shape == (3, 2 * 32 + 3 * 2, 4 * 32 + 5 * 2)  # 2 rows, 4 columns, padding 2
    torch.testing.assert_close(img, ev.last_grid)
    lr, hr = trainer.datamodule.validation_pairs()
    rows = ev.grid_indices(hr)
    detail = [float(kornia.filters.sobel(h[None]).mean()) for h in hr]
    assert len(rows) == 2 and min(detail[i] for i in rows) == pytest.approx(sorted(detail)[-2])
    lr, hr = lr[rows], hr[rows]
    nearest = F.interpolate(lr[:1], size=(32, 32), mode="nearest")
    tile = img[:, 2:34, 2:34].float() / 255  # row 0, column 0
    torch.testing.assert_close(tile, ((nearest[0] + 1) / 2), atol=1 / 255, rtol=0)
    target_tile = img[:, 2:34, 2 + 3 * 34 : 2 + 3 * 34 + 32].float() / 255  # row 0, column 3
    torch.testing.assert_close(target_tile, (hr[0] + 1) / 2, atol=1 / 255, rtol=0)


def test_make_grid_handles_grayscale():
    lr, out, hr = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    assert make_sr_grid(lr, out, hr).shape == (3, 2 * 16 + 6, 4 * 16 + 10)


def test_state_dict_round_trip():
    ev = SRMetricsEvaluator()
    trainer, module, _ = fake_run(Bicubic(), g_steps=5)
    ev.evaluate(trainer, module)
    other = SRMetricsEvaluator()
    other.load_state_dict(ev.state_dict())
    assert other.history == ev.history and other.baseline == ev.baseline and other._last_eval == 5


def test_bad_arguments_and_unpaired_runs_are_config_errors():
    with pytest.raises(ConfigError, match="every_n_g_steps"):
        SRMetricsEvaluator(every_n_g_steps=0)
    trainer, module, _ = fake_run(Bicubic())
    module.conditional = False
    with pytest.raises(ConfigError, match="conditional"):
        SRMetricsEvaluator().setup(trainer, module, "fit")
    trainer, module, _ = fake_run(Bicubic())
    trainer.datamodule = object()
    with pytest.raises(ConfigError, match="validation_pairs"):
        SRMetricsEvaluator().setup(trainer, module, "fit")


# --------------------------------------------------------------------------------------------------
# In a Lightning fit
# --------------------------------------------------------------------------------------------------


class TinyPairs(L.LightningDataModule):
    """Random (lr, hr) pairs, 16×16 -> 4×4, with the evaluator's validation_pairs()."""

    def __init__(self) -> None:
        super().__init__()
        self.fake = FakeData(n=3, size=16)

    def validation_pairs(self):
        return self.fake.validation_pairs()

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        hr = torch.rand(8, 2, 3, 16, 16, generator=g) * 2 - 1
        return DataLoader([(bicubic_downsample(h, 4), h) for h in hr], batch_size=None)


@pytest.mark.parametrize("adversarial_weight", [0.0, 1e-3])
def test_fit_evaluates_at_start_on_schedule_and_at_end_and_writes_the_grid(tmp_path, adversarial_weight):
    torch.manual_seed(0)
    model = GANModule(
        SRResNet(width=4, blocks=1, output="identity", bicubic_skip=True),
        PatchDiscriminator(width=4, n_layers=1, paired=True),
        regularizers=[PixelLoss()],
        paired=Paired(d_conditional=True, adversarial_weight=adversarial_weight),
        max_g_steps=5,
        seed=3,
    )
    ev = SRMetricsEvaluator(every_n_g_steps=2, grid_rows=2)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[ev],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, TinyPairs())
    assert [r["g_steps"] for r in ev.history] == [0, 2, 4, 5]
    assert all(r["member"] == 0 and r["seed"] == 3 for r in ev.history)
    assert ev.history[0]["psnr"] == pytest.approx(ev.baseline["psnr"])  # bicubic skip at step 0
    assert all(math.isfinite(r[m]) for r in ev.history for m in SRMetricsEvaluator.METRICS)
    assert (Path(tmp_path) / "grid.png").is_file()


def test_without_adversarial_term_a_lazy_pixel_loss_steps_g_only_when_due():
    """paired.adversarial_weight = 0 and G's only penalty lazy (every 2): G changes at G steps 0 and 2
    only (no D step, and no empty main step in between)."""
    model = GANModule(
        SRResNet(width=4, blocks=1, output="identity", bicubic_skip=True),
        PatchDiscriminator(width=4, n_layers=1, paired=True),
        regularizers=[PixelLoss(every=2)],
        paired=Paired(d_conditional=True, adversarial_weight=0.0),
        max_g_steps=4,
        seed=3,
    )
    snapshots = [[p.detach().clone() for p in model.G.parameters()]]

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots.append([p.detach().clone() for p in pl_module.G.parameters()])

    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[Snapshot()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, TinyPairs())
    changed = [any(not torch.equal(a, b) for a, b in zip(x, y)) for x, y in pairwise(snapshots)]
    assert changed == [True, False, True, False]
    assert (model.g_steps, model.d_steps) == (4, 0)


# --------------------------------------------------------------------------------------------------
# The shipped configs (slow: the CLI and the VGG16 file)
# --------------------------------------------------------------------------------------------------

SR_CONFIGS = ["pixel", "pixel_perceptual", "pixel_perceptual_edge", "adv_ns", "adv_wgan_gp"]
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments" / "sr"


@pytest.fixture
def torch_home_with_vgg16(tmp_path, monkeypatch) -> Path:
    """A TORCH_HOME whose cache holds VGG16 ``features.*`` weights made here (random, seeded)."""
    import torchvision

    from gan_lab.weights import VGG16_FILE

    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
    features = features.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    for m in features.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=g)
            torch.nn.init.zeros_(m.bias)
    path = tmp_path / "torch_home" / "hub" / "checkpoints" / VGG16_FILE
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return path


@pytest.mark.slow
def test_shipped_sr_configs_parse_and_take_vgg16_from_torch_home(torch_home_with_vgg16, tmp_path):
    from gan_lab.fit import build_cli

    adversarial = {}
    for name in SR_CONFIGS:
        args = ["--config", str(EXPERIMENTS / "base.yaml"), "--config", str(EXPERIMENTS / f"{name}.yaml")]
        cli = build_cli(
            [*args, "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"], run=False
        )
        model = cli.model
        assert model.conditional and model.G.z_dim == 0
        assert [cb for cb in cli.trainer.callbacks if isinstance(cb, SRMetricsEvaluator)]
        model.check_ready()  # perceptual terms load VGG16 from $TORCH_HOME
        for reg in model.penalties:
            if reg.name == "perceptual":
                assert Path(reg.load().path) == torch_home_with_vgg16
        adversarial[name] = (model.adversarial_weight, model.objective.name, model.regularizer_names)
    assert adversarial["pixel"] == (0.0, "non_saturating", ["pixel"])
    assert adversarial["adv_wgan_gp"][1] == "wasserstein" and "wgan_gp" in adversarial["adv_wgan_gp"][2]


@pytest.mark.slow
def test_wgan_gp_sr_config_fits_a_few_steps(torch_home_with_vgg16, tmp_path):
    from gan_lab.cli import main

    args = [
        "fit",
        "--config",
        str(EXPERIMENTS / "base.yaml"),
        "--config",
        str(EXPERIMENTS / "adv_wgan_gp.yaml"),
    ]
    args += ["--model.max_g_steps=2", "--data.init_args.batch_size=2", "--trainer.logger=false"]
    args += ["--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path / 'run'}"]
    assert main(args) == 0
    assert (tmp_path / "run" / "grid.png").is_file()


@pytest.mark.slow
def test_the_sr_study_reports_its_section_and_the_vgg16_file_it_used(torch_home_with_vgg16, tmp_path):
    """experiments/studies/sr.yaml, two of its entries, 2 G steps: the SR section of the report
    (its protocol, grids and PSNR curve, columns ``sr/<metric>``), and the VGG16 file the perceptual
    entry loaded, hashed once before the first fit, in plan.json, study.json and the report."""
    import hashlib
    import json

    import yaml

    from gan_lab.cli import main

    source = Path(__file__).resolve().parents[2] / "experiments" / "studies" / "sr.yaml"
    raw = yaml.safe_load(source.read_text())
    raw["base"] = str((source.parent / raw["base"]).resolve())
    raw["objectives"] = [e for e in raw["objectives"] if e["label"] in ("pixel", "pixel_perceptual")]
    for entry in raw["objectives"]:
        entry["configs"] = [str((source.parent / c).resolve()) for c in entry["configs"]]
    study = tmp_path / "sr.yaml"
    study.write_text(yaml.safe_dump(raw, sort_keys=False))
    small = [
        "--model.max_g_steps=2",
        "--data.init_args.batch_size=2",
        "--trainer.callbacks.every_n_g_steps=1",
    ]
    assert (
        main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb", "--jobs", "1", *small]) == 0
    )
    out = tmp_path / "runs" / "sr"
    expected = {
        str(torch_home_with_vgg16): hashlib.sha256(torch_home_with_vgg16.read_bytes()).hexdigest()[:16]
    }
    assert json.loads((out / "plan.json").read_text())["weights"] == expected
    assert json.loads((out / "study.json").read_text())["weights"] == expected
    report = (out / "report.md").read_text()
    ((path, digest),) = expected.items()
    assert f"Pretrained weights: `{path}` (sha256 {digest}…)." in report
    assert "## SRMetricsEvaluator (`sr/` columns)" in report and "Protocol (×4 super-resolution)" in report
    assert (
        "![final outputs on validation crops: LR (nearest) | bicubic | output | target](sr_grids.png)"
        in report
    )
    assert (out / "sr_grids.png").is_file() and (out / "sr_psnr.png").is_file()
    with open(out / "results.csv") as f:
        header = f.readline().strip().split(",")
    assert [c for c in header if c.startswith("sr/")] == ["sr/psnr", "sr/ssim", "sr/edge_error"]
