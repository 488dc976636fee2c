"""The per-seed W&B runs' files (docs/DESIGN.md, reliability rules): complete when a fit returns,
and a history that survives a kill -9 up to the last checkpoint, as ``metrics.csv`` does.

A killed session is driven by ``seed_runs_session.py`` (a :class:`SeedRunsLogger` fed batch by
batch as a fit feeds it, then SIGKILLed) or is a real ``gan-lab fit``; the resumed session runs in
this process. Histories are read back with wandb's own reader (``wandb leet inspect``, through
``wandb_offline``) and compared with a session that never stopped: every row once, in order, with
the same values and images."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from seed_runs_session import SEEDS, run_batches
from tiny_fit import TINY_RING8
from wandb_offline import inspect_run, read_run, sessions

from gan_lab.dashboard import seed_runs
from gan_lab.dashboard.seed_runs import JOURNAL_DIR, SUPERSEDED, SeedRunsLogger

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: checkpoint every 3 batches, evaluate every 2 (an evaluation also makes the history durable: the
#: kills come at or after the checkpoint of batch 9, the only durable point since batch 8)
EVERY = (3, 2)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB__TRANSACTION_LOG_FLUSH_INTERVAL", raising=False)


def _env(**extra) -> dict:
    """A child's environment: W&B offline, and a W&B service of its own (not this process's, whose
    runs a kill of the child must not touch)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WANDB_SERVICE", "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL")
    }
    return {**env, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **extra}


def _session(folder: Path, members: int, first: int, last: int, end: str = "kill", **spec) -> None:
    """One session in a child process (``seed_runs_session.py``), which must end as ``end`` says."""
    flush = spec.pop("flush_interval", None)
    spec = {
        "folder": str(folder),
        "members": members,
        "ids": {k: f"dur{members}m{k}" for k in range(members)},
        "first": first,
        "last": last,
        "checkpoint_every": EVERY[0],
        "eval_every": EVERY[1],
        "end": end,
        **spec,
    }
    extra = {"WANDB__TRANSACTION_LOG_FLUSH_INTERVAL": str(flush)} if flush else {}
    proc = subprocess.run(
        [sys.executable, str(HERE / "seed_runs_session.py"), json.dumps(spec)],
        cwd=ROOT,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == (-signal.SIGKILL if end == "kill" else 0), proc.stdout + proc.stderr


def _resume(folder: Path, members: int, resume_at: int, last: int) -> None:
    """The resumed session, in this process: from the checkpoint of batch ``resume_at`` to ``last``."""
    logger = SeedRunsLogger(
        folder,
        seeds=SEEDS[:members],
        group="g",
        name="g/x",
        ids={k: f"dur{members}m{k}" for k in range(members)},
        resume_at=(resume_at, resume_at),
    )
    run_batches(logger, resume_at + 1, last, *EVERY)
    logger.finish()


def _pixels(path: Path) -> str:
    """A digest of an image file's pixels (its PNG bytes may differ; what it shows may not)."""
    from PIL import Image

    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()[:16]


def _rows(files) -> list[dict]:
    """A run's history across its files, in order, as wandb's reader reads it: W&B's own ``_`` keys
    left out, each image as its pixels."""
    rows = []
    for f in files:
        for row in inspect_run(f)["history"]:
            out = {}
            for key, v in row.items():
                if key.startswith("_"):
                    continue
                if isinstance(v, dict) and v.get("_type") == "image-file":
                    v = ("image", v["width"], v["height"], _pixels(f.parent / "files" / v["path"]))
                out[key] = v
            rows.append(out)
    return rows


def _histories(folder: Path) -> dict[int, list[dict]]:
    """``member -> history`` of the runs under ``folder`` (the files W&B would sync)."""
    out = {}
    for files in sessions(folder).values():
        (member,) = {c["member"] for c in (read_run(f)["config"] for f in files) if "member" in c}
        out[member] = _rows(files)
    return out


def _straight(folder: Path, members: int, last: int) -> dict[int, list[dict]]:
    """The histories of a session that never stopped (batches 1..last)."""
    logger = SeedRunsLogger(folder, seeds=SEEDS[:members], group="g", name="g/x")
    run_batches(logger, 1, last, *EVERY)
    logger.finish()
    return _histories(folder)


def _training_steps(history: list[dict]) -> list[int]:
    return [r["g_steps"] for r in history if "d_steps" in r]


def _service_processes() -> list[int]:
    """The W&B service processes (``wandb-core``) this process started (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if name == "wandb-core" and int(ppid) == os.getpid() and state != "Z":
            found.append(int(entry.name))
    return found


# -- complete files ---------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds W&B's service process in /proc")
def test_finish_returns_once_every_runs_file_is_written(tmp_path, monkeypatch):
    """W&B's service writes a run's file when it closes the run, after ``run.finish()`` returned.
    Here the service is held (SIGSTOP) from the moment the last run is handed to it to be closed
    until the logger first looks at a file: a finish that did not wait for the files would return
    with the last one unwritten (its 7-byte header: no config, no history)."""
    from wandb.sdk.lib.service.service_connection import ServiceConnection

    logger = SeedRunsLogger(tmp_path, seeds=[3, 4], facts={"objective": "x"}, group="g", name="g/x")
    logger.log_member_metrics({"d/loss": [1.0, 2.0]}, step=1, shared={"d_steps": 1.0})
    held: list[int] = []
    inform_finish, complete = ServiceConnection.inform_finish, seed_runs.transaction_log_complete

    def hold_then_inform(self, run_id):
        if run_id == logger.ids[-1]:  # the last run: the service may not close it yet
            held.extend(_service_processes())
            for pid in held:
                os.kill(pid, signal.SIGSTOP)
        inform_finish(self, run_id=run_id)

    def release_then_look(path):
        for pid in held:
            os.kill(pid, signal.SIGCONT)
        return complete(path)

    monkeypatch.setattr(ServiceConnection, "inform_finish", hold_then_inform)
    monkeypatch.setattr(seed_runs, "transaction_log_complete", release_then_look)
    try:
        logger.finish()
        records = [read_run(f) for f in sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))]
    finally:  # (the files as finish() left them are read before the service may go on)
        for pid in held:
            os.kill(pid, signal.SIGCONT)
    assert held, "no W&B service process of this process was found"
    assert [r["complete"] for r in records] == [True, True]
    assert sorted((r["config"]["seed"], r["history"][0]["d/loss"]) for r in records) == [(3, 1.0), (4, 2.0)]


# -- history through kill -9 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "last", "kill_at"),
    [
        pytest.param(1, 9, "end", marks=pytest.mark.slow),
        pytest.param(2, 10, "end", marks=pytest.mark.slow),
        (2, 9, "checkpoint"),
    ],
    ids=["one-seed-killed-after-9", "ensemble-killed-after-10", "ensemble-killed-at-the-checkpoint"],
)
def test_history_up_to_the_checkpoint_survives_a_kill(tmp_path, members, last, kill_at):
    """Killed after the checkpoint of batch 9 (at the end of batch 9 or 10, or right after the
    checkpoint was written), before W&B flushed anything (it does every 15 s): resumed from 9 to
    12, each run's history equals the uninterrupted one's, row for row: the rows up to 9 logged
    again from the journal (the one-seed run's row of batch 9 too, which Lightning logs after the
    checkpoint), those of 10 once (logged again by the resumed session)."""
    run = tmp_path / "run"
    _session(run, members, 1, last, kill_at=kill_at)
    assert (run / JOURNAL_DIR).is_dir()
    _resume(run, members, 9, 12)
    history = _histories(run)
    assert history == _straight(tmp_path / "straight", members, 12)
    assert all(_training_steps(h) == list(range(1, 13)) for h in history.values())
    assert len(list(run.glob(f"wandb/offline-run-*/run-*.wandb{SUPERSEDED}"))) == members  # set aside


@pytest.mark.slow  # (~10-15 s each; the kill-at-the-checkpoint case and the real fit stay in `make test`)
def test_rows_past_the_checkpoint_in_the_killed_file_are_not_kept(tmp_path):
    """W&B flushing often: the killed session's files already hold batch 10, past the checkpoint
    at 9. The resumed runs read as if the fit had never stopped: those files are set aside (not
    deleted), their rows up to 9 logged again, and no row is there twice."""
    run = tmp_path / "run"
    _session(run, 2, 1, 10, wait_flushed=True, flush_interval=0.01)
    killed = {f: read_run(f) for f in run.glob("wandb/offline-run-*/run-*.wandb")}
    assert all(10 in {r["g_steps"] for r in k["history"]} for k in killed.values())
    _resume(run, 2, 9, 12)
    assert all(Path(f"{f}{SUPERSEDED}").is_file() and not f.exists() for f in killed)
    assert _histories(run) == _straight(tmp_path / "straight", 2, 12)


@pytest.mark.slow  # (~10-15 s each; the kill-at-the-checkpoint case and the real fit stay in `make test`)
def test_a_resumed_session_killed_again(tmp_path):
    """Killed at 10 (checkpoint 9), resumed and killed again at 13 (checkpoint 12) with W&B's files
    flushed, resumed to 15: the second session's rows and those it had logged again for the first
    are logged again once more (the first's only up to 9), and the history is still the
    uninterrupted one."""
    run = tmp_path / "run"
    _session(run, 2, 1, 10)
    _session(run, 2, 10, 13, resume_at=[9, 9], wait_flushed=True, flush_interval=0.01)
    _resume(run, 2, 12, 15)
    assert _histories(run) == _straight(tmp_path / "straight", 2, 15)


@pytest.mark.slow  # (~10-15 s each; the kill-at-the-checkpoint case and the real fit stay in `make test`)
def test_a_session_that_ended_cleanly_keeps_its_file(tmp_path):
    """A fit stopped by a signal at its checkpoint (9) closed its runs: its files are complete and
    stay; the resumed session logs nothing again, and the history is the uninterrupted one."""
    run = tmp_path / "run"
    _session(run, 2, 1, 9, end="stop")
    first = sorted(run.glob("wandb/offline-run-*/run-*.wandb"))
    _resume(run, 2, 9, 12)
    assert all(f.is_file() for f in first) and not list(run.glob(f"wandb/*/*{SUPERSEDED}"))
    for files in sessions(run).values():
        assert len(files) == 2 and min(_training_steps(_rows(files[1:]))) == 10
    assert _histories(run) == _straight(tmp_path / "straight", 2, 12)


@pytest.mark.slow  # (~10-15 s each; the kill-at-the-checkpoint case and the real fit stay in `make test`)
def test_a_resume_from_an_earlier_checkpoint_of_a_finished_session(tmp_path):
    """A session that went on past the checkpoint a resume starts from (finished at 12, resumed
    from 9): its files are set aside although complete, and its rows up to 9 are logged again
    from its journal (one file once it ended): the history is the uninterrupted one's."""
    run = tmp_path / "run"
    _session(run, 2, 1, 12, end="finish")
    assert len(list((run / JOURNAL_DIR).glob("*.rows.json"))) == 1
    _resume(run, 2, 9, 12)
    assert len(list(run.glob(f"wandb/offline-run-*/run-*.wandb{SUPERSEDED}"))) == 2
    assert _histories(run) == _straight(tmp_path / "straight", 2, 12)


def test_a_branch_starts_with_the_original_runs_history(tmp_path):
    """A new branch (new run folder, new runs) taken at the checkpoint of batch 9 of a killed run:
    its runs start with the original's history up to 9, then go on; the original is left as it
    was."""
    original = tmp_path / "run"
    _session(original, 2, 1, 10)
    before = sorted(p.relative_to(original) for p in original.rglob("*"))
    branch = tmp_path / "branch"
    logger = SeedRunsLogger(
        branch, seeds=SEEDS[:2], group="g", name="g/x", resume_at=(9, 9), history_from=original
    )
    run_batches(logger, 10, 12, *EVERY)
    logger.finish()
    assert sorted(p.relative_to(original) for p in original.rglob("*")) == before
    assert _histories(branch) == _straight(tmp_path / "straight", 2, 12)


# -- a real `gan-lab fit`, kill -9 ----------------------------------------------------------------------


def _checkpoint_g_steps(path: Path) -> int | None:
    try:
        return int(torch.load(path, weights_only=True)["gan_lab"]["g_steps"])
    except (OSError, RuntimeError, KeyError, EOFError):
        return None


def test_a_killed_gan_lab_fit_resumes_with_its_whole_wandb_history(tmp_path):
    """``gan-lab fit`` killed (SIGKILL) once its ``last.ckpt`` is at G step 6 or later, then resumed
    with ``--ckpt_path last`` to 3 G steps past that checkpoint: each seed's W&B history (D's and
    G's rows every batch, evaluations every 2 G steps with their images) equals that of a fit
    that ran straight to the same step: every D and G step once, none missing. (The resumed fit's
    per-seed logger is given the checkpoint it continues from: ``gan_lab.runs.default_loggers``
    passes ``resume_at``.)"""
    from gan_lab.cli import main

    callbacks = tmp_path / "callbacks.yaml"
    callbacks.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: gan_lab.evaluators.ModeCoverageEvaluator\n"
        "      init_args: {every_n_g_steps: 2, n_samples: 200}\n"
        "    - class_path: gan_lab.callbacks.GStepCheckpoint\n"
        "      init_args: {save_last: true, every_n_train_steps: 4}\n"  # every 2 G steps
        "    - class_path: gan_lab.callbacks.PreemptionCheckpoint\n"
        "      init_args: {every_n_g_steps: null, every_minutes: null}\n"
    )
    common = [*TINY_RING8, f"--config={callbacks}", "--trainer.log_every_n_steps=1"]
    common += ["--trainer.enable_progress_bar=false"]
    root = tmp_path / "runs"
    last = root / "ring8" / "version_0" / "checkpoints" / "last.ckpt"
    endless = ["--model.max_g_steps=100000"]  # killed long before
    log = tmp_path / "killed-fit.log"
    with open(log, "w") as out:
        command = [sys.executable, "-m", "gan_lab.cli", "fit", *common, f"--trainer.default_root_dir={root}"]
        proc = subprocess.Popen(
            [*command, *endless],
            cwd=ROOT,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                if last.is_file() and (_checkpoint_g_steps(last) or 0) >= 6:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, log.read_text()  # still training: killed mid-run
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    at = _checkpoint_g_steps(last)
    assert at is not None and at >= 6
    end = at + 3
    resume = [f"--trainer.default_root_dir={root}", f"--model.max_g_steps={end}", "--ckpt_path=last"]
    assert main(["fit", *common, *resume]) == 0
    straight_args = [f"--trainer.default_root_dir={tmp_path / 'straight'}", f"--model.max_g_steps={end}"]
    assert main(["fit", *common, *straight_args]) == 0
    resumed, straight = _histories(root), _histories(tmp_path / "straight")
    assert sorted(resumed) == sorted(straight) == [0, 1]
    for k, history in resumed.items():  # each batch: D's row (at its D step), then G's (at its G step)
        assert [r["d_steps"] for r in history if "d/loss" in r] == list(range(1, end + 1))
        assert [r["g_steps"] for r in history if "g/loss" in r] == list(range(1, end + 1))
        assert [r["g_steps"] for r in history if "mode/modes" in r][: end // 2] == list(range(2, end + 1, 2))
        assert history == straight[k]
