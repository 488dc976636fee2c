"""PreemptionCheckpoint: SIGTERM / SIGUSR1 / SIGINT -> a checkpoint at the batch boundary that
``--ckpt_path last`` resumes from, to the same weights as a run that never stopped; interval saves
by G steps and by wall time."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from tiny_fit import TINY_RING8, training_steps

from gan_lab.callbacks.preemption import PreemptionCheckpoint
from gan_lab.cli import main
from gan_lab.data.toy import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.settings import EMA

ROOT = Path(__file__).resolve().parents[2]
MAX_G_STEPS = 12


class SignalAt(Callback):
    """Send ``signum`` to this very process when batch ``k`` starts (mid-run, deterministic)."""

    def __init__(self, signum, k) -> None:
        self.signum, self.k = signum, k

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.k:
            os.kill(os.getpid(), self.signum)


def fit(root, *callbacks, ckpt_path=None, max_g_steps=MAX_G_STEPS):
    L.seed_everything(0, verbose=False)
    model = GANModule(
        ToyGenerator(members=2, hidden=8, layers=2),
        ToyDiscriminator(members=2, hidden=8, layers=2),
        regularizers=["wgan_gp"],  # draws from the global RNG: resuming must restore it
        ema=EMA(beta=0.9),
        max_g_steps=max_g_steps,
    )
    trainer = L.Trainer(
        logger=False,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_steps=-1,
        callbacks=[*callbacks, ModelCheckpoint(Path(root) / "ckpt", save_last=True)],
    )
    trainer.fit(model, ToyMixtureDataModule(batch_size=16), ckpt_path=ckpt_path)
    return model


def _assert_same_weights(a: dict, b: dict, exact: bool) -> float:
    assert a.keys() == b.keys()
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    if exact:
        assert diff == 0.0, f"max parameter difference {diff}"
    return diff


SIGNALS = [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT]


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_signal_saves_at_the_batch_boundary_and_resume_equals_no_stop(tmp_path, signum):
    before = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGINT)
    callback = PreemptionCheckpoint(every_n_g_steps=None, every_minutes=None)
    with pytest.raises(SystemExit):  # Lightning's SIGTERMException
        fit(tmp_path / "run", callback, SignalAt(signum, k=4))
    last = tmp_path / "run" / "ckpt" / "last.ckpt"
    assert callback.saved == (signum.name, str(last), 10)  # 5 batches x (D + G) optimizer steps
    state = torch.load(last, weights_only=True)
    assert state["gan_lab"]["g_steps"] == 5 and state["gan_lab"]["d_steps"] == 5
    assert not list(last.parent.glob("*.partial"))
    assert (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGINT)) == before  # ours are gone

    resumed = fit(tmp_path / "run", ckpt_path="last")
    straight = fit(tmp_path / "straight")
    assert resumed.g_steps == straight.g_steps == MAX_G_STEPS
    _assert_same_weights(resumed.state_dict(), straight.state_dict(), exact=True)


def test_configured_path_and_no_save_without_a_signal(tmp_path):
    target = tmp_path / "elsewhere" / "preempted.ckpt"
    target.parent.mkdir()
    quiet = PreemptionCheckpoint(path=target)
    fit(tmp_path / "a", quiet, max_g_steps=3)
    assert quiet.saved is None and not target.exists()
    loud = PreemptionCheckpoint(path=target, signals=["SIGUSR2"])
    with pytest.raises(SystemExit):
        fit(tmp_path / "b", loud, SignalAt(signal.SIGUSR2, k=1), max_g_steps=3)
    assert torch.load(target, weights_only=True)["gan_lab"]["g_steps"] == 2


def test_a_second_ctrl_c_stops_at_once_without_a_checkpoint(tmp_path):
    callback = PreemptionCheckpoint(every_n_g_steps=None, every_minutes=None)

    class TwoCtrlC(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 2:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(SystemExit):  # Lightning ends a KeyboardInterrupt'd fit with exit status 1
        fit(tmp_path / "run", callback, TwoCtrlC())
    assert callback.saved is None and not (tmp_path / "run" / "ckpt" / "last.ckpt").exists()


def test_interval_saves_every_n_g_steps_without_a_signal(tmp_path):
    target = tmp_path / "interval.ckpt"
    callback = PreemptionCheckpoint(path=target, every_n_g_steps=4, every_minutes=None)
    fit(tmp_path / "run", callback, max_g_steps=10)
    assert torch.load(target, weights_only=True)["gan_lab"]["g_steps"] == 8  # the last multiple of 4
    assert callback.saved is None  # interval saves are not announced as preemptions


def test_interval_saves_on_wall_time(tmp_path, monkeypatch):
    """The wall-time rule, on a fake clock that advances 40 s a batch: every_minutes=1 writes at the
    2nd batch after the last write (80 s >= 60 s), then again 2 batches later."""
    import gan_lab.callbacks.preemption as preemption

    clock = {"now": 0.0}
    monkeypatch.setattr(preemption.time, "monotonic", lambda: clock["now"])
    writes = []

    class Tick(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock["now"] += 40.0

    target = tmp_path / "timed.ckpt"
    callback = PreemptionCheckpoint(path=target, every_n_g_steps=None, every_minutes=1)
    original = callback.save
    monkeypatch.setattr(
        callback,
        "save",
        lambda trainer, reason, announce=True: (
            writes.append(trainer.lightning_module.g_steps) or original(trainer, reason, announce)
        ),
    )
    fit(tmp_path / "run", Tick(), callback, max_g_steps=7)
    assert writes == [2, 4, 6]
    assert torch.load(target, weights_only=True)["gan_lab"]["g_steps"] == 6


def test_bad_signal_names():
    for name in ("SIGKILL", "SIGNOPE"):
        with pytest.raises(ConfigError, match="not a signal that can be caught"):
            PreemptionCheckpoint(signals=[name])


# ----------------------------------------------------------------------------------------------
# The real thing: `gan-lab fit` in a subprocess with the default loggers, stopped from outside
# ----------------------------------------------------------------------------------------------

SMALL = [
    *TINY_RING8,
    "--trainer.enable_progress_bar=false",
    "--trainer.log_every_n_steps=1",
]


def _callbacks_yaml(path: Path) -> Path:
    """The base config's checkpoint callbacks, with an interval save every 20 G steps."""
    path.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: gan_lab.callbacks.GStepCheckpoint\n"
        "      init_args: {save_last: true}\n"
        "    - class_path: gan_lab.callbacks.PreemptionCheckpoint\n"
        "      init_args: {every_n_g_steps: 20}\n"
    )
    return path


def _stop_a_cli_fit(tmp_path: Path, signum, common: list[str]) -> tuple[str, int, Path]:
    """Start ``gan-lab fit`` (default loggers, W&B offline) for far more G steps than it will make,
    send ``signum`` once its first interval checkpoint exists, return (output, exit status, run folder)."""
    run = tmp_path / "run" / "ring8" / "version_0"
    # (no WANDB_SERVICE: the fit starts its own W&B service, as from a shell, not this process's)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env.update(PYTHONUNBUFFERED="1", WANDB_MODE="offline")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan_lab.cli", "fit", *common, "--model.max_g_steps=1000000"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # only so that a broken fit cannot hang the suite
        while not (run / "checkpoints" / "last.ckpt").exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the fit never wrote its first checkpoint"
            time.sleep(0.02)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return output, proc.returncode, run


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 138)],
    ids=["SIGTERM", "SIGINT", "SIGUSR1"],
)
def test_stopped_cli_fit_resumes_with_ckpt_path_last_in_its_own_folder(tmp_path, signum, status):
    """As a user does it: stop a `gan-lab fit`, then run the same command with `--ckpt_path last`.
    The run continues in its own version_0 (no version_1), its metrics.csv reads as one run's
    (every G step once), the W&B run id is the same, and the weights equal a run that never stopped."""
    from wandb_offline import read_run

    cfg = _callbacks_yaml(tmp_path / "callbacks.yaml")
    common = [*SMALL, f"--config={cfg}", f"--trainer.default_root_dir={tmp_path / 'run'}"]
    total = 150
    output, returncode, run = _stop_a_cli_fit(tmp_path, signum, common)
    assert f"{signum.name}: saved {run / 'checkpoints' / 'last.ckpt'}" in output, output
    assert returncode == status, output
    assert f"gan-lab: stopped by {signum.name}; resume with --ckpt_path last" in output, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    stopped_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["gan_lab"]["g_steps"]
    assert 20 <= stopped_at < total, output

    assert main(["fit", *common, f"--model.max_g_steps={total}", "--ckpt_path=last"]) == 0
    assert [p.name for p in (tmp_path / "run" / "ring8").iterdir()] == ["version_0"]
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert training_steps(run / "metrics.csv") == list(range(1, total + 1))  # no step twice, none missing
    ids = {read_run(f)["run"].run_id for f in run.glob("wandb/offline-run-*/run-*.wandb")}
    # two sessions, and in each one run per seed (2 members): the same 2 runs continued
    assert len(list(run.glob("wandb/offline-run-*"))) == 4 and len(ids) == 2

    straight_args = [*SMALL, f"--config={cfg}", f"--trainer.default_root_dir={tmp_path / 's'}"]
    assert main(["fit", *straight_args, f"--model.max_g_steps={total}", "--trainer.logger=false"]) == 0
    straight = torch.load(tmp_path / "s" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["gan_lab"]["g_steps"] == straight["gan_lab"]["g_steps"] == total
    assert resumed["gan_lab"]["d_steps"] == straight["gan_lab"]["d_steps"] == total
    _assert_same_weights(resumed["state_dict"], straight["state_dict"], exact=True)
