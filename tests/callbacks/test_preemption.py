"""PreemptionCheckpoint: SIGTERM / SIGUSR1 -> a checkpoint at the batch boundary that
``--ckpt_path last`` resumes from, to the same weights as a run that never stopped."""

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

from gan_lab.callbacks.preemption import PreemptionCheckpoint
from gan_lab.cli import main
from gan_lab.data.toy import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator

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
        ema_beta=0.9,
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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_signal_saves_at_the_batch_boundary_and_resume_equals_no_stop(tmp_path, signum):
    before = signal.getsignal(signal.SIGUSR1)
    callback = PreemptionCheckpoint()
    with pytest.raises(SystemExit):  # Lightning's SIGTERMException
        fit(tmp_path / "run", callback, SignalAt(signum, k=4))
    last = tmp_path / "run" / "ckpt" / "last.ckpt"
    assert callback.saved == (signum.name, str(last), 10)  # 5 batches x (D + G) optimizer steps
    state = torch.load(last, weights_only=True)
    assert state["gan_lab"]["g_steps"] == 5 and state["gan_lab"]["d_steps"] == 5
    assert not list(last.parent.glob("*.partial"))
    assert signal.getsignal(signal.SIGUSR1) == before  # our handler is gone again

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


def test_bad_signal_names():
    for name in ("SIGKILL", "SIGNOPE"):
        with pytest.raises(ConfigError, match="not a signal that can be caught"):
            PreemptionCheckpoint(signals=[name])


# ----------------------------------------------------------------------------------------------
# The real thing: `gan-lab fit` in a subprocess, killed from outside
# ----------------------------------------------------------------------------------------------

SMALL = [
    f"--config={ROOT / 'experiments/toy/ring8.yaml'}",
    "--model.generator.init_args.members=2",
    "--model.generator.init_args.hidden=8",
    "--model.generator.init_args.layers=2",
    "--model.discriminator.init_args.members=2",
    "--model.discriminator.init_args.hidden=8",
    "--model.discriminator.init_args.layers=2",
    "--data.init_args.batch_size=16",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
]


def _callbacks_yaml(path: Path, ckpt_dir: Path) -> Path:
    path.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        f"      init_args: {{dirpath: {ckpt_dir}, save_last: true, every_n_train_steps: 20}}\n"
        "    - class_path: gan_lab.callbacks.preemption.PreemptionCheckpoint\n"
    )
    return path


def test_sigterm_to_a_cli_fit_then_resume_with_ckpt_path_last(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    cfg = _callbacks_yaml(tmp_path / "callbacks.yaml", ckpt_dir)
    common = [*SMALL, f"--config={cfg}", f"--trainer.default_root_dir={tmp_path}"]
    total = 400
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    # Interrupted run: far more G steps than it will get to make.
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan_lab.cli", "fit", *common, "--model.max_g_steps=1000000"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (ckpt_dir / "last.ckpt").exists():  # the periodic save at 10 G steps
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the fit never wrote its first checkpoint"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "SIGTERM: saved" in output, output
    state = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    stopped_at = state["gan_lab"]["g_steps"]
    assert 10 <= stopped_at < total, output  # at or after the periodic save, well before the end
    # Lightning ends a SIGTERM'd fit with SystemExit() (status 0); 143 = 128 + SIGTERM if the CLI maps it.
    assert proc.returncode in (0, 143), output

    # Resume to `total` G steps, and a run that never stopped (both in this process).
    # (Another root folder: LightningCLI refuses to overwrite the config.yaml of the first run.)
    resume_args = [*SMALL, f"--config={cfg}", f"--trainer.default_root_dir={tmp_path / 'r'}"]
    assert main(["fit", *resume_args, f"--model.max_g_steps={total}", "--ckpt_path=last"]) == 0
    resumed = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    straight_cfg = _callbacks_yaml(tmp_path / "straight.yaml", tmp_path / "straight")
    straight_args = [*SMALL, f"--config={straight_cfg}", f"--trainer.default_root_dir={tmp_path / 's'}"]
    assert main(["fit", *straight_args, f"--model.max_g_steps={total}"]) == 0
    straight = torch.load(tmp_path / "straight" / "last.ckpt", weights_only=True)

    assert resumed["gan_lab"]["g_steps"] == straight["gan_lab"]["g_steps"] == total
    assert resumed["gan_lab"]["d_steps"] == straight["gan_lab"]["d_steps"] == total
    assert resumed["global_step"] == straight["global_step"]
    _assert_same_weights(resumed["state_dict"], straight["state_dict"], exact=True)
