"""``--trainer.devices 2`` on a CPU trains two gloo ranks (Lightning's DDP, find_unused_parameters on:
each backward reaches only G or only D), or is refused in one line; it never hangs.

The ranks after the first are started by Lightning running the command line again, so the
command must see its own arguments (it once saw none: rank 1 printed the help and left, rank 0
waited for it for ever)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import torch
from tiny_fit import ROOT, TINY_RING8, training_steps

from gan_lab.cli import main

SMALL = [*TINY_RING8, "--trainer.enable_progress_bar=false", "--trainer.log_every_n_steps=1"]


def test_two_cpu_devices_train_two_ranks_as_the_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env.update(WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    args = [*SMALL, f"--trainer.default_root_dir={tmp_path}", "--model.max_g_steps=4"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gan_lab.cli",
            "fit",
            *args,
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its ranks too, so that a hang can be ended whole
    )
    try:
        output, _ = proc.communicate(timeout=400)  # a bound for a broken launch, not a timing
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"the 2-rank fit hung:\n{output[-3000:]}") from None
    assert proc.returncode == 0, output[-3000:]
    assert "GLOBAL_RANK: 1" in output and "Traceback" not in output, output[-3000:]
    assert sorted(p.name for p in (tmp_path / "ring8").iterdir()) == ["version_0"]
    run = tmp_path / "ring8" / "version_0"
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4]
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["gan_lab"]
    assert (state["g_steps"], state["d_steps"]) == (4, 4)
    assert output.count("gan-lab fit: ") == 1  # one summary, rank 0's


def test_several_devices_in_process_are_refused_in_one_line(tmp_path, capsys):
    """In-process (a test, a notebook) Lightning could start the other ranks only by running this
    process's command line, which is not gan-lab's: refused before any work."""
    code = main(
        [
            "fit",
            *SMALL,
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "run this fit as the gan-lab command" in err, err
    assert not (tmp_path / "ring8").exists()
