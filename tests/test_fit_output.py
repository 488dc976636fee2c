"""What `gan-lab fit` shows and records, run as a user runs it (default loggers, W&B offline):
G steps everywhere (progress bar, checkpoint names, the loggers' step axis), the optimizers in the
resolved config and in W&B, a closing summary, the CPU thread choice, and no noise."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tiny_fit import TINY_RING8
from wandb_offline import read_run

from gan_lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = TINY_RING8


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _wandb(run: Path) -> dict:
    """The W&B run of member 0 (a fit logs one run per seed: per ensemble member), read as soon as
    the fit returned: every run's file is complete by then (it holds the run's exit record), and
    there is one file per member, each naming its member (no file without a config)."""
    records = [read_run(f) for f in sorted(run.glob("wandb/offline-run-*/run-*.wandb"))]
    assert records and all(r["complete"] for r in records), "a W&B file was incomplete when the fit returned"
    assert sorted(r["config"]["member"] for r in records) == list(range(len(records)))
    (record,) = [r for r in records if r["config"]["member"] == 0]
    return record


def test_default_optimizers_are_in_the_resolved_config(capsys):
    with pytest.raises(SystemExit) as stop:  # LightningCLI prints the config and exits 0
        main(["fit", *SMALL, "--print_config"])
    assert stop.value.code in (0, None)
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    for key in ("optimizer_g", "optimizer_d"):
        assert model[key]["class_path"] == "gan_lab.optim.Adam"
        assert model[key]["init_args"]["lr"] == 2e-4 and model[key]["init_args"]["betas"] == [0.5, 0.999]


def test_the_learning_rate_is_set_on_the_base_config_and_recorded(tmp_path):
    """`--model.optimizer_d.init_args.lr` on the base config (refused before: 'lr' is not accepted);
    the optimizer that ran, its saved config and its W&B config all say 1e-3."""
    args = ["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}", "--model.max_g_steps=2"]
    assert main([*args, "--model.optimizer_d.init_args.lr=1e-3", "--trainer.enable_progress_bar=false"]) == 0
    run = tmp_path / "ring8" / "version_0"
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert saved["optimizer_d"]["init_args"]["lr"] == 1e-3 and saved["optimizer_g"]["init_args"]["lr"] == 2e-4
    g_state, d_state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"]
    assert d_state["param_groups"][0]["lr"] == 1e-3 and g_state["param_groups"][0]["lr"] == 2e-4
    config = _wandb(run)["config"]
    assert config["config"]["model"]["optimizer_d"] == saved["optimizer_d"]
    assert config["config"]["data"]["init_args"]["name"] == "ring8"
    assert config["cpu_threads"] == 1 and "small nets" in config["cpu_threads_reason"]


def test_g_steps_everywhere_for_a_wgan_gp_fit(tmp_path, capsys):
    """WGAN-GP with n_critic = 3 for 6 G steps is 18 batches: the bar, the file names and the step
    axis of metrics.csv and W&B count the 6 G steps."""
    args = [
        "fit",
        *SMALL,
        "--config",
        str(ROOT / "experiments/toy/objectives/wasserstein.yaml"),
        "--model.n_critic=3",
        "--model.max_g_steps=6",
        "--trainer.log_every_n_steps=1",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    run = tmp_path / "ring8" / "version_0"
    bar = [line for line in out.replace("\r", "\n").splitlines() if line.startswith("G steps")]
    assert bar and "6/6" in bar[-1] and not any("/18" in line or "/1000" in line for line in out.split())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["g_steps=6.ckpt", "last.ckpt"]
    rows = [r for r in _rows(run / "metrics.csv") if r["d_steps"]]  # the training rows
    assert len(rows) == 18 and [int(r["step"]) for r in rows] == [int(float(r["g_steps"])) for r in rows]
    assert max(int(r["step"]) for r in rows) == 6 and max(float(r["d_steps"]) for r in rows) == 18
    w_steps = [row["g_steps"] for row in _wandb(run)["history"] if "g_steps" in row]
    assert max(w_steps) == 6
    summary = [line for line in out.splitlines() if line.startswith("gan-lab fit:")]
    assert len(summary) == 1 and "6 G steps and 18 D steps" in summary[0]
    assert f"Run folder: {run}" in summary[0] and "wasserstein" in summary[0]


def test_a_fit_prints_what_the_user_needs_and_nothing_else(tmp_path):
    """In a subprocess, as from a shell: no GPU/TPU banner, advertising tip, warnings about
    tensorboardX, max_epochs or LeafSpec, no 'previous log files will be deleted', no W&B chatter."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT", "WANDB_SERVICE")}
    env["WANDB_MODE"] = "offline"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "gan_lab.cli", "fit", *SMALL, "--model.max_g_steps=3"),
            *(f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gan-lab fit: 3 G steps"), lines


def test_cpu_threads_are_chosen_for_the_nets_and_recorded(tmp_path):
    """Toy nets train with one intra-op thread on a CPU (whatever torch had), `cpu_threads`
    overrides it, and the choice is in the checkpoint's hyper-parameters."""
    args = [
        "fit",
        *SMALL,
        "--model.max_g_steps=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
    ]
    torch.set_num_threads(2)
    assert main([*args, f"--trainer.default_root_dir={tmp_path / 'a'}"]) == 0
    assert torch.get_num_threads() == 1
    hparams = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["cpu_threads_used"] == 1
    assert main([*args, f"--trainer.default_root_dir={tmp_path / 'b'}", "--model.speed.cpu_threads=2"]) == 0
    assert torch.get_num_threads() == 2
    hparams = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["cpu_threads_used"] == 2
