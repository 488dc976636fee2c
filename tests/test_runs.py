"""Run folders (gan_lab.runs): `--ckpt_path` continues a run in its own version_N folder, its
metrics.csv and its W&B run; a new fit never writes into an old folder."""

import os
from pathlib import Path

import pytest
import torch
from tiny_fit import TINY_RING8, training_steps

from gan_lab.cli import main
from gan_lab.errors import ConfigError
from gan_lab.runs import RunWandbLogger, _rows_until, resolve_resume, run_dir_of, wandb_run_id

SMALL = [
    *TINY_RING8,
    "--trainer.enable_progress_bar=false",
    "--trainer.log_every_n_steps=1",
]


def test_resume_by_path_continues_in_its_own_folder_and_a_new_fit_gets_a_new_one(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = ["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}"]
    assert main([*args, "--model.max_g_steps=3"]) == 0
    run = tmp_path / "ring8" / "version_0"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main([*args, "--model.max_g_steps=5", f"--ckpt_path={ckpt}"]) == 0
    assert sorted(p.name for p in (tmp_path / "ring8").iterdir()) == ["version_0"]
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4, 5]
    assert torch.load(ckpt, weights_only=True)["gan_lab"]["g_steps"] == 5
    assert main([*args, "--model.max_g_steps=2"]) == 0  # a new run: a new folder, the old one as it was
    assert sorted(p.name for p in (tmp_path / "ring8").iterdir()) == ["version_0", "version_1"]
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4, 5]


def test_ckpt_path_last_takes_the_newest_version(tmp_path):
    for n, age in ((0, 100), (1, 50), (2, None)):  # version_2 has no checkpoint
        folder = tmp_path / "ring8" / f"version_{n}" / "checkpoints"
        folder.mkdir(parents=True)
        if age is not None:
            torch.save({"state_dict": {}, "gan_lab": {"g_steps": n, "d_steps": 2 * n}}, folder / "last.ckpt")
            mtime = 1_700_000_000 - age
            os.utime(folder / "last.ckpt", (mtime, mtime))
    resume = resolve_resume("last", str(tmp_path), "ring8", loggers=True)
    assert resume.ckpt_path == str(tmp_path / "ring8" / "version_1" / "checkpoints" / "last.ckpt")
    assert resume.run_dir == (tmp_path / "ring8" / "version_1").resolve()
    assert (resume.g_steps, resume.d_steps) == (1, 2)
    with pytest.raises(ConfigError, match="no checkpoint at"):
        resolve_resume("last", str(tmp_path), "grid25", loggers=True)


def test_run_dir_of_a_checkpoint():
    assert run_dir_of("/r/ring8/version_3/checkpoints/last.ckpt") == Path("/r/ring8/version_3")
    assert run_dir_of("/r/elsewhere/last.ckpt") is None
    assert run_dir_of("/r/ring8/checkpoints/last.ckpt") is None  # a loggerless run's folder


def test_rows_past_the_checkpoint_are_dropped(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "d/loss,d_steps,mode/modes,step\n"
        "1.0,1,,1\n"
        "1.0,2,,1\n"  # a D-only batch (n_critic = 2)
        "1.0,3,,2\n"
        ",,7,2\n"  # an evaluation row: no d_steps
        "1.0,4,,2\n"  # logged after the checkpoint (g 2, d 3) was written
        "1.0,5,,3\n"
    )
    kept, header = _rows_until(path, g_steps=2, d_steps=3)
    assert header == ["d/loss", "d_steps", "mode/modes", "step"]
    assert [(r["d_steps"], r["step"]) for r in kept] == [("1", "1"), ("2", "1"), ("3", "2"), ("", "2")]


def test_wandb_run_id_from_the_run_folder(tmp_path):
    assert wandb_run_id(tmp_path) is None
    for name in ("offline-run-20261201_080000-abc123", "offline-run-20261201_090000-abc123"):
        (tmp_path / "wandb" / name).mkdir(parents=True)
    (tmp_path / "wandb" / "latest-run").mkdir()
    assert wandb_run_id(tmp_path) == "abc123"


def test_lightning_still_passes_anonymous_to_wandb(tmp_path):
    """Guard of RunWandbLogger's use of WandbLogger._wandb_init: when this fails, Lightning no longer
    passes ``anonymous=None`` and RunWandbLogger can be replaced by WandbLogger."""
    from lightning.pytorch.loggers import WandbLogger

    assert WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init["anonymous"] is None
    assert "anonymous" not in RunWandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init


def test_an_hpc_checkpoint_continues_the_run_folder_it_records(tmp_path, monkeypatch):
    """Lightning's SLURM requeue writes hpc_ckpt_<n>.ckpt into default_root_dir, outside the run
    folder; the resumed job continues in the version_N the checkpoint records, not a new one."""
    import shutil

    monkeypatch.setenv("WANDB_MODE", "offline")
    args = ["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}"]
    assert main([*args, "--model.max_g_steps=3"]) == 0
    run = tmp_path / "ring8" / "version_0"
    shutil.copy(run / "checkpoints" / "last.ckpt", tmp_path / "hpc_ckpt_1.ckpt")
    assert main([*args, "--model.max_g_steps=5", "--ckpt_path=hpc"]) == 0
    assert sorted(p.name for p in (tmp_path / "ring8").iterdir()) == ["version_0"]
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4, 5]
