"""Run folders (gan_lab.runs): `--ckpt_path` continues a run in its own version_N folder, its
metrics.csv and its W&B run; a new fit never writes into an old folder."""

import os
from pathlib import Path

import pytest
import torch
from tiny_fit import TINY_RING8, training_steps

from gan_lab.cli import main
from gan_lab.errors import ConfigError
from gan_lab.runs import _rows_until, resolve_resume, run_dir_of, wandb_run_ids

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


def test_wandb_run_ids_from_the_run_folder(tmp_path):
    """Each member's run id (``<base>m<k>``), of the newest base; older sessions of a run share its id."""
    assert wandb_run_ids(tmp_path) == {}
    for name in (
        "offline-run-20261201_070000-old00001m0",  # an earlier fit's runs in the same folder
        "offline-run-20261201_080000-abc123m0",
        "offline-run-20261201_080001-abc123m1",
        "offline-run-20261201_090000-abc123m0",  # a resumed session of member 0
        "offline-run-20261201_080000-nomember",  # not a per-seed run
    ):
        (tmp_path / "wandb" / name).mkdir(parents=True)
    (tmp_path / "wandb" / "latest-run").mkdir()
    assert wandb_run_ids(tmp_path) == {0: "abc123m0", 1: "abc123m1"}


def test_a_resumed_fit_continues_every_seeds_wandb_run(tmp_path, monkeypatch):
    """Two members, stopped at G step 3 and resumed to 5: still two W&B runs (two sessions each),
    whose histories read back with wandb's reader continue at G step 4."""
    from wandb_offline import inspect_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    args = ["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}"]
    assert main([*args, "--model.max_g_steps=3"]) == 0
    run = tmp_path / "ring8" / "version_0"
    assert main([*args, "--model.max_g_steps=5", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]) == 0
    sessions = [inspect_run(p) for p in sorted(run.glob("wandb/offline-run-*/run-*.wandb"))]
    assert len(sessions) == 4 and len({s["run_id"] for s in sessions}) == 2
    for run_id in {s["run_id"] for s in sessions}:
        first, second = sorted(
            (s for s in sessions if s["run_id"] == run_id), key=lambda s: s["history"][0]["g_steps"]
        )
        assert {r["g_steps"] for r in first["history"]} <= {0, 1, 2, 3}
        assert (
            min(r["g_steps"] for r in second["history"]) >= 3
            and max(r["g_steps"] for r in second["history"]) == 5
        )
        assert first["config"]["seed"] == second["config"]["seed"]


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
