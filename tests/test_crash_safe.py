"""Files written whole, one writer per run folder, and one line (no traceback) when a fit cannot go
on: a kill during a checkpoint write, a torn ``last.ckpt``, a resumed ``metrics.csv``, a second
writer, a full disk, a diverged run, an abbreviated key, a refusal that would leave an empty
``version_N``."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_fit import ROOT, TINY_RING8, training_steps

from gan_lab.checkpoints import checkpoint_counters
from gan_lab.cli import main
from gan_lab.files import LOCK_FILE, FolderLock, clean_orphans, write_whole
from gan_lab.runs import RunExperimentWriter, _rows_until, new_version_folder

SMALL = [*TINY_RING8, "--trainer.enable_progress_bar=false", "--trainer.log_every_n_steps=1"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # the fit starts its own
    env.update(PYTHONUNBUFFERED="1", WANDB_MODE="offline", **extra)
    return env


def _other_filesystem(tmp_path: Path) -> Path:
    """A temporary folder on another filesystem than ``tmp_path`` where the machine has one
    (/dev/shm), so that a move from it onto the run is a copy, as it was for the user."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.stat(shm).st_dev != os.stat(tmp_path).st_dev:
        folder = shm / f"gan-lab-test-{os.getpid()}-{tmp_path.name}"
        folder.mkdir(exist_ok=True)
        return folder
    return tmp_path / "tmpdir"


def test_a_kill_during_a_checkpoint_write_leaves_last_ckpt_whole(tmp_path, capsys):
    """kill -9 half-way through the second write of last.ckpt (``tests/killing_writer.py`` cuts it),
    with ``$TMPDIR`` on another filesystem: last.ckpt is still the first whole state, the cut
    temporary file is cleared when the run is resumed, and the resumed run reads as one run."""
    cfg = tmp_path / "callbacks.yaml"
    cfg.write_text(  # last.ckpt written by ModelCheckpoint every 2 G steps (4 optimizer steps) only
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: gan_lab.callbacks.GStepCheckpoint\n"
        "      init_args: {save_last: true, every_n_train_steps: 4}\n"
        "    - class_path: gan_lab.callbacks.PreemptionCheckpoint\n"
        "      init_args: {every_n_g_steps: null, every_minutes: null}\n"
    )
    root = tmp_path / "runs"
    common = [*SMALL, f"--config={cfg}", f"--trainer.default_root_dir={root}"]
    tmpdir = _other_filesystem(tmp_path)
    tmpdir.mkdir(exist_ok=True)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "killing_writer.py"),
                "fit",
                *common,
                "--model.max_g_steps=6",
            ],
            cwd=ROOT,
            env=_env(TMPDIR=str(tmpdir), KILL_AT_WRITE="2"),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if tmpdir.parent == Path("/dev/shm"):
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # it was killed in the write
    checkpoints = root / "ring8" / "version_0" / "checkpoints"
    assert checkpoint_counters(checkpoints / "last.ckpt") == (2, 2)  # the first save, whole
    assert [p for p in checkpoints.iterdir() if p.name.endswith(".tmp")]  # the cut write's file

    # ModelCheckpoint wrote g_steps=4.ckpt whole just before: `last` resumes from the furthest state
    assert checkpoint_counters(checkpoints / "g_steps=4.ckpt") == (4, 4)
    assert main(["fit", *common, "--model.max_g_steps=6", "--ckpt_path=last"]) == 0
    assert "is at G step 2; resuming from g_steps=4.ckpt" in capsys.readouterr().err
    assert not [p for p in checkpoints.iterdir() if p.name.endswith(".tmp")]
    assert checkpoint_counters(checkpoints / "last.ckpt") == (6, 6)
    # Every row once, in order. (The row of G step 4 itself is gone: Lightning logs a batch's
    # metrics after the batch-end callbacks, and the kill came in the checkpoint write between.)
    assert training_steps(root / "ring8" / "version_0" / "metrics.csv") == [1, 2, 3, 5, 6]


def test_last_falls_back_to_the_newest_valid_checkpoint_with_a_note(tmp_path, capsys):
    root = tmp_path / "runs"
    args = ["fit", *SMALL, f"--trainer.default_root_dir={root}"]
    assert main([*args, "--model.max_g_steps=3"]) == 0
    checkpoints = root / "ring8" / "version_0" / "checkpoints"
    last = checkpoints / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # torn
    capsys.readouterr()
    assert main([*args, "--model.max_g_steps=5", "--ckpt_path=last"]) == 0
    err = capsys.readouterr().err
    assert f"{last} cannot be read" in err and "resuming from g_steps=3.ckpt" in err
    assert checkpoint_counters(last) == (5, 5)
    assert training_steps(root / "ring8" / "version_0" / "metrics.csv") == [1, 2, 3, 4, 5]


def test_write_whole_leaves_the_old_file_when_the_write_is_cut(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half_then_die(f):
        f.write(b"ne")
        raise KeyboardInterrupt  # a signal in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        write_whole(target, half_then_die)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    write_whole(target, "new")
    assert target.read_text() == "new"


def test_clean_orphans_removes_only_temporary_files_of_whole_writes(tmp_path):
    names = [".last.ckpt.ab12cd.tmp", ".last.ckpt.preempt.tmp", "last.ckpt", "notes.tmp", ".hidden"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = sorted(p.name for p in clean_orphans(tmp_path))
    assert removed == [".last.ckpt.ab12cd.tmp", ".last.ckpt.preempt.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.ckpt", "notes.tmp"]


def test_a_resumed_metrics_csv_is_never_missing(tmp_path, monkeypatch):
    """Lightning's writer deletes metrics.csv when it opens a folder, and the lab then rewrote the
    kept rows: a kill in between left no file. Now the kept rows replace it in one rename: cut the
    rewrite (the rename never happens) and the old file is still there, whole."""
    path = tmp_path / "metrics.csv"
    path.write_text("d_steps,step\n1,1\n2,2\n3,3\n")

    def no_rename(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        RunExperimentWriter(str(tmp_path), keep=(path, 2, 2))
    assert path.read_text() == "d_steps,step\n1,1\n2,2\n3,3\n"
    monkeypatch.undo()
    writer = RunExperimentWriter(str(tmp_path), keep=(path, 2, 2))
    assert path.read_text().splitlines() == ["d_steps,step", "1,1", "2,2"] and writer.metrics_keys == [
        "d_steps",
        "step",
    ]


def test_a_row_torn_by_a_kill_is_dropped(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("d/loss,d_steps,g/loss,step\n1.0,1,0.5,1\n1.0,2,0.5,2\n1.0,3")  # the last row cut
    kept, header = _rows_until(path, g_steps=10, d_steps=10)
    assert header == ["d/loss", "d_steps", "g/loss", "step"]
    assert [r["step"] for r in kept] == ["1", "2"]


def test_two_new_runs_claim_two_folders(tmp_path, monkeypatch):
    """The next version_N is taken by mkdir: a folder another process made first is passed over."""
    import gan_lab.runs as runs

    first = new_version_folder(tmp_path, "ring8")
    monkeypatch.setattr(runs, "versions", lambda root, name: [])  # as if it had not seen version_0
    second = new_version_folder(tmp_path, "ring8")
    assert (first.name, second.name) == ("version_0", "version_1")


def test_a_second_writer_of_a_run_folder_is_refused_naming_the_holder(tmp_path, capsys):
    """Another process holds the run folder (it is writing it): a resume into it is refused in one
    line naming that process, and runs once the holder is gone (the kernel drops its lock)."""
    root = tmp_path / "runs"
    args = ["fit", *SMALL, f"--trainer.default_root_dir={root}"]
    assert main([*args, "--model.max_g_steps=2"]) == 0
    run = root / "ring8" / "version_0"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from gan_lab.files import FolderLock; "
            f"FolderLock.acquire({str(run)!r}); print('locked', flush=True); sys.stdin.read()",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert main([*args, "--model.max_g_steps=4", "--ckpt_path=last"]) == 2
        err = capsys.readouterr().err.strip()
        assert (
            err.count("\n") == 0
            and f"run folder {run} is being written by another process (pid {holder.pid}" in err
        )
        assert training_steps(run / "metrics.csv") == [1, 2]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert main([*args, "--model.max_g_steps=4", "--ckpt_path=last"]) == 0
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4]


def test_a_lock_is_held_while_writing_and_released_after(tmp_path):
    lock = FolderLock.acquire(tmp_path, "run folder")
    with pytest.raises(Exception, match=f"pid {os.getpid()}"):
        FolderLock.acquire(tmp_path, "run folder")
    lock.release()
    FolderLock.acquire(tmp_path).release()
    assert (tmp_path / LOCK_FILE).is_file()


def _one_line(err: str, prefix: str = "gan-lab: ") -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    return lines[0]


def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import gan_lab.callbacks.checkpoint

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(gan_lab.callbacks.checkpoint, "write_whole", full)  # the checkpoint's write
    code = main(["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}", "--model.max_g_steps=3"])
    line = _one_line(capsys.readouterr().err)
    assert code == 1 and "the disk is full while writing" in line and "--ckpt_path last" in line


def test_a_diverged_fit_is_one_line(tmp_path, capsys):
    code = main(
        [
            "fit",
            *SMALL,
            f"--trainer.default_root_dir={tmp_path}",
            "--model.max_g_steps=20",
            "--model.objective=nan_objective.NaNFromStep",
        ]
    )
    line = _one_line(capsys.readouterr().err)
    assert code == 1 and line.startswith("gan-lab: training diverged: ")


def test_an_abbreviated_key_is_refused_with_the_close_one_and_writes_nothing(tmp_path, capsys):
    code = main(["fit", *SMALL, f"--trainer.default_root_dir={tmp_path / 'r'}", "--model.max_g_step=3"])
    line = _one_line(capsys.readouterr().err, "gan-lab: error: ")
    assert code == 2 and "--model.max_g_step (did you mean --model.max_g_steps?)" in line
    assert not (tmp_path / "r").exists()


def test_a_refusal_after_the_folder_was_claimed_leaves_no_empty_version(tmp_path, capsys, monkeypatch):
    """A W&B sweep runs one seed per run: an ensemble is refused there, and no version_N is left."""
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc")
    code = main(["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}", "--model.max_g_steps=3"])
    _one_line(capsys.readouterr().err, "gan-lab: error: ")
    assert code == 2 and not list((tmp_path / "ring8").glob("version_*"))
