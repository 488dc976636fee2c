"""`make gpu-check` (``python -m benchmarks.gpu_check``) on a machine without CUDA, and its promise to
the GPU machine: its path needs neither wandb nor kornia (that machine has neither)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import PENALTIES, main

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_still_finds_the_input_gradient_penalties():
    assert PENALTIES == ("wgan_gp", "one_sided_gp", "dragan", "r1", "r2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_gpu_check_refuses_without_cuda(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "\n" not in err


#: each part of the check, tiny, in a process where ``import wandb`` and ``import kornia`` fail
WITHOUT_WANDB_OR_KORNIA = """
import json, sys
sys.modules["wandb"] = sys.modules["kornia"] = None  # as if not installed
from benchmarks.bench import quiet_lightning, run_bench
from benchmarks.gpu_check import penalty_equivalence, penalty_gradients_match, short_fit
quiet_lightning()
fits = [
    short_fit("hinge", ["r1"], "bf16-mixed", batches=2, batch_size=8),
    short_fit("wasserstein", ["wgan_gp"], "16-mixed", batches=2, batch_size=4, nets="dcgan"),
]
penalty = penalty_equivalence("bf16-mixed", "cpu", batch=2, ndf=4)
grads = penalty_gradients_match("16-mixed", "cpu")
bench = run_bench(names=["toy_e1", "eval"], quick=True, repeats=1, warmup=1)
print(json.dumps({
    "fits": [f["finite"] for f in fits],
    "penalty": [v["ok"] for v in penalty.values()],
    "grads": grads["ok"],
    "bench": [c["case"] for c in bench["cases"]],
}))
"""


def test_the_gpu_checks_path_needs_neither_wandb_nor_kornia():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_WANDB_OR_KORNIA],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"fits": [True, True], "penalty": [True] * 5, "grads": True, "bench": ["toy_e1", "eval"]}
