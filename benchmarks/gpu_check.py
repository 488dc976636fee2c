"""``make gpu-check``: the checks that need a GPU, in one process, printed as JSON (< 8 minutes).

1. ``fits``: a short fit of every objective (with WGAN-GP for ``wasserstein``, R1 otherwise) on
   the toy ensemble under ``bf16-mixed`` and ``16-mixed``, and of a DCGAN-32 WGAN-GP: every logged
   loss finite, parameters finite.
2. ``penalty``: every gradient penalty (wgan_gp, one_sided_gp, dragan, r1, r2) on a DCGAN-32 critic,
   once in float32 and once under autocast (float16 with a GradScaler: the scaled-gradient recipe;
   bfloat16 without), same weights, inputs and random points: the per-sample penalties agree
   within ``PENALTY_RTOL``.
3. ``bench``: ``python -m benchmarks.bench --device cuda`` (see :mod:`benchmarks.bench`);
   ``bench_bf16``: the same in ``bf16-mixed``; ``bench_e512``: the toy ensemble with 512 members
   (member-steps/s); ``bench_ens`` / ``bench_ens_cudagraphs``: the counter-stream ensembles of
   PacGAN-size nets at E = 1, 64, 512, eager and as CUDA graphs (``compile="reduce-overhead"``).

Only torch, lightning and torchvision are imported (no wandb, no kornia). Without CUDA it stops at
once with one line on stderr and exit code 2; ``--device cpu`` runs parts 1 and 2 on the CPU instead
(16-mixed there is float16 autocast with a CPU GradScaler), to check the script itself.

Run from the repository root (``benchmarks`` is not installed with ``gan_lab``):

    python -m benchmarks.gpu_check              # what `make gpu-check` runs
    python -m benchmarks.gpu_check --device cpu --no-bench
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager

import torch
from torch import Tensor

from gan_lab.losses import OBJECTIVES as LOSSES
from gan_lab.regularizers import REGULARIZERS

OBJECTIVES = tuple(LOSSES)
PENALTIES = tuple(n for n, cls in REGULARIZERS.items() if getattr(cls, "needs_input_grad", False))
#: max error of the per-sample penalties under autocast against float32, relative to their max
PENALTY_RTOL = {"16-mixed": 2e-2, "bf16-mixed": 8e-2}
#: the GradScaler's scale in the checks: 2^16, where GradScaler (and so Lightning's 16-mixed) starts
CHECK_SCALE = 2.0**16
#: multiplier of the DCGAN critic's initial weights (slopes ≈ 0.1: (‖∇‖ − 1)² is well conditioned)
SLOPE_GAIN = 2.0
AUTOCAST_DTYPE = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


def trainer_precision(precision: str, device: str):
    """``Trainer`` arguments for ``precision`` on ``device``: 16-mixed on CPU (which Lightning
    would turn into bf16-mixed) is given as a MixedPrecision plugin with a CPU GradScaler."""
    if precision == "16-mixed" and device == "cpu":
        from lightning.pytorch.plugins import MixedPrecision

        return {"plugins": [MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu"))]}
    return {"precision": precision}


def short_fit(
    objective: str,
    regularizers: list,
    precision: str,
    device: str = "cpu",
    batches: int = 6,
    members: int = 2,
    batch_size: int = 32,
    nets: str = "toy",
    **module_kwargs,
) -> dict:
    """Fit ``nets`` (``"toy"``: an ensemble of ``members`` 2D MLPs on ring8; ``"dcgan"``: DCGAN-32
    with ngf = ndf = 8 on random images) for ``batches`` steps; return the logged losses of every
    step and whether all of them, and every parameter, are finite."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from gan_lab.data import ToyMixtureDataModule
    from gan_lab.module import GANModule
    from gan_lab.nets import ToyDiscriminator, ToyGenerator

    class Record(Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k})

    if nets == "dcgan":
        from benchmarks.bench import _image_datamodule
        from gan_lab.nets.dcgan import DCGANDiscriminator, DCGANGenerator

        G, D = DCGANGenerator(ngf=8, seed=0), DCGANDiscriminator(ndf=8, seed=0)
        data = _image_datamodule(batch_size, batches)
    else:
        G = ToyGenerator(members=members, hidden=32, layers=2)
        D = ToyDiscriminator(members=members, hidden=32, layers=2)
        data = ToyMixtureDataModule("ring8", batch_size=batch_size)
    n_critic = 2 if objective == "wasserstein" else 1
    module = GANModule(
        G, D, objective=objective, regularizers=regularizers, n_critic=n_critic, **module_kwargs
    )
    record = Record()
    trainer = L.Trainer(
        accelerator=device,
        devices=1,
        max_epochs=1,
        limit_train_batches=batches,
        log_every_n_steps=1,  # the module logs its loss terms only on the steps the loggers write
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
        **trainer_precision(precision, device),
    )
    trainer.fit(module, data)
    losses = record.rows
    finite_losses = bool(losses) and all(
        v == v and abs(v) != float("inf") for row in losses for v in row.values()
    )
    finite_params = all(torch.isfinite(p).all().item() for p in module.parameters())
    return {
        "nets": nets,
        "objective": objective,
        "regularizers": [getattr(r, "name", r) for r in regularizers],
        "precision": precision,
        "d_steps": module.d_steps,
        "g_steps": module.g_steps,
        "last": losses[-1] if losses else {},
        "finite": finite_losses and finite_params,
    }


@contextmanager
def _true_float32():
    """No TF32 in convolutions and matmuls (cuDNN's default allows it): the float32 references of
    the penalty checks are then float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _fixed_rand(device: torch.device, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    return lambda shape: torch.rand(shape, generator=g, device=device)


def penalty_equivalence(precision: str, device: str = "cuda", batch: int = 16, ndf: int = 16) -> dict:
    """Each gradient penalty under ``precision``'s autocast (with a GradScaler for 16-mixed)
    against float32, on the same DCGAN-32 critic, inputs and random points."""
    from gan_lab.nets.dcgan import DCGANDiscriminator
    from gan_lab.regularizers import PenaltyInputs, get_regularizer

    dev = torch.device(device)
    D = DCGANDiscriminator(ndf=ndf, seed=0).to(dev)
    with torch.no_grad():  # input slopes ≈ 0.1 rather than ≈ 0.005
        for p in D.parameters():
            p.mul_(SLOPE_GAIN)
    g = torch.Generator(device=dev).manual_seed(1)
    real = torch.rand(batch, 3, 32, 32, generator=g, device=dev) * 2 - 1
    fake = torch.rand(batch, 3, 32, 32, generator=g, device=dev) * 2 - 1
    dtype = AUTOCAST_DTYPE[precision]
    scaler = torch.amp.GradScaler(dev.type, init_scale=CHECK_SCALE) if precision == "16-mixed" else None
    out: dict[str, dict] = {}
    for name in PENALTIES:
        reg = get_regularizer(name)
        with _true_float32():
            exact = reg.penalty(PenaltyInputs(D, real, fake, 1, rand=_fixed_rand(dev))).detach()
        with torch.autocast(dev.type, dtype=dtype):
            mixed = reg.penalty(PenaltyInputs(D, real, fake, 1, rand=_fixed_rand(dev), grad_scaler=scaler))
        mixed = mixed.detach()
        # normwise: max |Δ| over the batch against max |penalty| (one_sided_gp may be 0 throughout)
        rel = ((mixed.float() - exact).abs().max() / exact.abs().max().clamp_min(1e-6)).item()
        out[name] = {
            "fp32_mean": exact.mean().item(),
            "mixed_mean": mixed.float().mean().item(),
            "max_rel_err": rel,
            "dtype": str(mixed.dtype),
            "ok": bool(rel <= PENALTY_RTOL[precision] and torch.isfinite(mixed).all()),
        }
    return out


def penalty_gradients_match(precision: str, device: str = "cuda") -> dict:
    """The D-parameter gradient of (scaled, then unscaled) WGAN-GP under ``precision`` against
    float32: the ordinary backward after the recipe gives the true gradient."""
    from gan_lab.nets.dcgan import DCGANDiscriminator
    from gan_lab.regularizers import PenaltyInputs, get_regularizer

    dev = torch.device(device)
    D = DCGANDiscriminator(ndf=16, seed=0).to(dev)
    g = torch.Generator(device=dev).manual_seed(2)
    real = torch.rand(16, 3, 32, 32, generator=g, device=dev) * 2 - 1
    fake = torch.rand(16, 3, 32, 32, generator=g, device=dev) * 2 - 1
    reg = get_regularizer("wgan_gp")

    def grads(scaler, dtype) -> list[Tensor]:
        D.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = reg.penalty(
                PenaltyInputs(D, real, fake, 1, rand=_fixed_rand(dev), grad_scaler=scaler)
            ).mean()
        (scaler.scale(loss) if scaler is not None else loss).backward()
        inv = 1.0 / scaler.get_scale() if scaler is not None else 1.0
        return [p.grad.float() * inv for p in D.parameters() if p.grad is not None]  # (last bias: none)

    with _true_float32():
        exact = grads(None, None)
    scaler = torch.amp.GradScaler(dev.type, init_scale=CHECK_SCALE) if precision == "16-mixed" else None
    mixed = grads(scaler, AUTOCAST_DTYPE[precision])
    num = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(mixed, exact)))
    den = torch.sqrt(sum((b**2).sum() for b in exact))
    rel = (num / den).item()
    return {"rel_err": rel, "ok": bool(rel <= 5 * PENALTY_RTOL[precision])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description="GPU checks of gan_lab, as JSON.")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to check the script")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu-check: error: CUDA is not available on this machine; run it where a GPU is", file=sys.stderr
        )
        return 2
    import warnings

    from benchmarks.bench import quiet_lightning

    quiet_lightning()
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    report: dict = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    fits = []
    for precision in ("bf16-mixed", "16-mixed"):
        for objective in OBJECTIVES:
            regs = ["wgan_gp"] if objective == "wasserstein" else ["r1"]
            fits.append(
                short_fit(objective, regs, precision, args.device, batches=20, members=4, batch_size=256)
            )
        # a float16-logit critic (conv head) with a gradient penalty, from the scaler's first scale
        fits.append(short_fit("wasserstein", ["wgan_gp"], precision, args.device, batches=20, nets="dcgan"))
    report["fits"] = fits
    report["penalty"] = {p: penalty_equivalence(p, args.device) for p in ("16-mixed", "bf16-mixed")}
    report["penalty_gradients"] = {
        p: penalty_gradients_match(p, args.device) for p in ("16-mixed", "bf16-mixed")
    }
    if not args.no_bench:
        from benchmarks.bench import run_bench

        report["bench"] = run_bench(device=args.device, quick=args.device == "cpu", repeats=3)
        if args.device == "cuda":
            report["bench_bf16"] = run_bench(device="cuda", precision="bf16-mixed", repeats=1)
            # the ensemble target: >= 40k member-steps/s with 512 seeds stacked
            report["bench_e512"] = run_bench(device="cuda", names=["toy_e64"], members=512, repeats=1)
            # the counter-stream ensembles (PacGAN-size nets), eager and as CUDA graphs
            ens = ["toy_ens_e1", "toy_ens_e64", "toy_ens_e512"]
            report["bench_ens"] = run_bench(device="cuda", names=ens, repeats=1)
            report["bench_ens_cudagraphs"] = run_bench(
                device="cuda", names=ens, repeats=1, compile="reduce-overhead"
            )
    ok = (
        all(f["finite"] for f in fits)
        and all(v["ok"] for per in report["penalty"].values() for v in per.values())
        and all(v["ok"] for v in report["penalty_gradients"].values())
    )
    report["ok"] = ok
    report["seconds"] = round(time.perf_counter() - start, 1)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
