"""``make bench``: the lab's training step against a minimal hand-written PyTorch loop.

In one process, for each case, the same nets (same initial weights), objective, batch and precision
are trained by

    (a) ``lab``:  :class:`~gan_lab.module.GANModule` under the Lightning ``Trainer`` (manual
        optimization, logging through ``self.log_dict``; no logger, progress bar or checkpoint), and
    (b) ``hand``: the loop below: sample data and noise, D step (objective + penalty), G step with
        D's parameters frozen, ``Adam``, ``autocast`` / ``GradScaler`` as the precision asks;

each timed over ``steps`` training steps (whole cycles of ``n_critic`` D steps and one G step) after
``warmup`` steps (at least ``n_critic``, so that the first G step is warm), ``repeats`` times after
one untimed round of both, in ABBA order (a b, b a, a b, ...), and the medians are printed as JSON:
steps/s, samples/s (real samples per step × steps/s; for an ensemble, members × batch) and
``ratio = lab / hand`` (1.0: no overhead).
A step is one training batch: one D step and, every ``n_critic`` batches, one G step. On CPU the
bench first fixes glibc's malloc thresholds (:func:`fix_malloc_thresholds`; ``--keep-malloc`` leaves
them adaptive): page faults that come and go from run to run would otherwise swamp the difference.

Cases: ``toy_e1`` and ``toy_e64`` (PacGAN's 2D MLPs, ring8, ensembles of 1 and 64 seeds,
non-saturating, batch 512 per member: the configuration of the issue's reference figures, 4.7 ms a
step on an H200), ``dcgan32_ns`` (DCGAN 32×32, batch 256, non-saturating) and ``dcgan32_wgan_gp``
(the same nets as a WGAN-GP critic: Wasserstein + gradient penalty λ = 10, n_critic = 5). Toy cases
also report member-steps/s (members × steps/s), the throughput of a seed ensemble. ``--batch`` and
``--members`` override the cases' batch (per member) and the toy cases' ensemble size.

Threads: on CPU each case runs both loops with the intra-op thread count the lab would choose for its
nets (:func:`gan_lab.threads.choose_cpu_threads`: one for the toy MLPs, torch's default for DCGAN;
``--threads N`` is the explicit setting, ``OMP_NUM_THREADS`` is honoured), reported per case as
``threads`` and ``threads_reason``; on a GPU the count is left as the process found it (or
``--threads``).

Seed ensembles (named only, ``--cases toy_ens_e1 toy_ens_e64 toy_ens_e512``): PacGAN-size toy nets
(G 4 × 400 with BatchNorm, D 3 × 200), batch 100 per member, non-saturating, E = 1, 64 and 512;
``lab_member_steps_per_s`` is the ensemble's throughput. In every toy case both loops draw the data,
G's noise and the penalty points from the same counter-based streams of :mod:`gan_lab.seeding`
(seed 0), all members in one op each, so ``ratio`` compares the loops on the same work.

``eval`` (in the default run; :mod:`benchmarks.eval_bench`): the image metrics: features/s of each
feature network (Inception-v3, VGG16 fc2, the digit classifier; random weights of their
architectures) and the seconds of one FD + precision/recall + density/coverage evaluation at
N = 10,000 on 2,048-d features.

``toy_e1_busy`` (CPU only; in the default CPU run): a shared machine. The lab loop of ``toy_e1``
timed quiet and with one competing CPU-bound process that the bench starts (and kills: also on an
error or Ctrl-C), in ABBA order, medians of ``quiet_steps_per_s`` and ``busy_steps_per_s``, and
``busy_quiet_ratio = quiet_steps_per_s / busy_steps_per_s`` (= busy time / quiet time per step:
the slowdown factor, 1.0 = unaffected, 2.0 = twice as slow). Two entries: ``threads_from: "lab"``
(the lab's choice, as above) and ``threads_from: "torch_default"`` (torch's default count, what
the lab used before :mod:`gan_lab.threads`).

Run from the repository root (``benchmarks`` is not installed with ``gan_lab``):

    python -m benchmarks.bench --device cpu     # all cases (minutes on 2 CPU cores): `make bench`
    python -m benchmarks.bench --device cpu --cases toy_e1 --repeats 5
    python -m benchmarks.bench --device cpu --cases toy_e1_busy   # quiet vs one competing process
    python -m benchmarks.bench --device cuda --cases toy_e64 --members 512   # many seeds at once
    python -m benchmarks.bench --device cuda --precision bf16-mixed
    python -m benchmarks.bench --quick          # tiny sizes: a smoke run (tests)
    python -m benchmarks.bench --device cuda --channels-last --compile
    python -m benchmarks.bench --device cuda --cases toy_ens_e512 --compile reduce-overhead  # CUDA graphs

``--channels-last`` and ``--compile [MODE]`` set GANModule's ``speed`` switches of the same names in the lab
loop and do the same in the hand loop: 4-D weights and image batches in channels_last memory
format; ``torch.compile``'d G and D (in ``MODE``, :data:`gan_lab.compiled.COMPILE_MODES`) for the
main passes (the gradient penalty goes through the plain D).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from gan_lab.compiled import COMPILE_MODES, compile_mode
from gan_lab.threads import TORCH_DEFAULT_THREADS, ThreadChoice, apply_cpu_threads, choose_cpu_threads

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
#: the image metrics' case: features/s of each feature net and one FD + PRDC evaluation at N = 10,000
EVAL_CASE = "eval"


@dataclass
class Case:
    """One benchmark configuration."""

    name: str
    kind: str  # "toy" or "dcgan"
    batch: int  # per member
    members: int | None = None  # toy only (None: plain, non-ensemble nets)
    objective: str = "non_saturating"
    regularizers: list[str] = field(default_factory=list)
    n_critic: int = 1
    width: int = 0  # toy: G hidden (D: half); dcgan: ngf = ndf
    steps: dict[str, int] = field(default_factory=dict)  # timed steps per device type (none: not run)
    busy: bool = False  # the lab loop quiet and with a competing process, not lab against hand
    default: bool = True  # in the default run (False: only when named with --cases)

    @property
    def samples_per_step(self) -> int:
        return self.batch * (self.members or 1)


def cases(quick: bool) -> dict[str, Case]:
    if quick:
        return {
            "toy_e1": Case("toy_e1", "toy", 32, 1, width=32, steps={"cpu": 4, "cuda": 4}),
            "toy_e64": Case("toy_e64", "toy", 16, 4, width=16, steps={"cpu": 4, "cuda": 4}),
            "dcgan32_ns": Case("dcgan32_ns", "dcgan", 4, width=4, steps={"cpu": 2, "cuda": 2}),
            "dcgan32_wgan_gp": Case(
                "dcgan32_wgan_gp", "dcgan", 4, None, "wasserstein", ["wgan_gp"], 5, 4, {"cpu": 2, "cuda": 2}
            ),
            "toy_e1_busy": Case("toy_e1_busy", "toy", 32, 1, width=32, steps={"cpu": 4}, busy=True),
            **{
                f"toy_ens_e{e}": Case(
                    f"toy_ens_e{e}", "toy", 8, m, width=8, steps={"cpu": 2, "cuda": 2}, default=False
                )
                for e, m in ((1, 1), (64, 4), (512, 8))
            },
        }
    return {
        "toy_e1": Case("toy_e1", "toy", 512, 1, width=400, steps={"cpu": 300, "cuda": 300}),
        "toy_e64": Case("toy_e64", "toy", 512, 64, width=400, steps={"cpu": 5, "cuda": 100}),
        "dcgan32_ns": Case("dcgan32_ns", "dcgan", 256, width=64, steps={"cpu": 3, "cuda": 100}),
        "dcgan32_wgan_gp": Case(
            "dcgan32_wgan_gp", "dcgan", 256, None, "wasserstein", ["wgan_gp"], 5, 64, {"cpu": 3, "cuda": 100}
        ),
        # CPU only: on a GPU the host threads only launch kernels (and a GPU host has cores to spare)
        "toy_e1_busy": Case("toy_e1_busy", "toy", 512, 1, width=400, steps={"cpu": 30}, busy=True),
        # seed ensembles at PacGAN's size (G 4 x 400 with BatchNorm, D 3 x 200; batch 100 per member):
        # member-steps/s, E = 1, 64, 512 (named with --cases only: E = 512 is minutes a step on a CPU)
        **{
            f"toy_ens_e{e}": Case(f"toy_ens_e{e}", "toy", 100, e, width=400, steps=steps, default=False)
            for e, steps in (
                (1, {"cpu": 60, "cuda": 300}),
                (64, {"cpu": 4, "cuda": 200}),
                (512, {"cpu": 1, "cuda": 100}),
            )
        },
    }


def make_nets(case: Case, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    if case.kind == "toy":
        from gan_lab.nets.toy import ToyDiscriminator, ToyGenerator

        G = ToyGenerator(members=case.members or 1, hidden=case.width, seed=seed)
        D = ToyDiscriminator(members=case.members or 1, hidden=max(1, case.width // 2), seed=seed)
        return G, D
    from gan_lab.nets.dcgan import DCGANDiscriminator, DCGANGenerator

    return DCGANGenerator(ngf=case.width, seed=seed), DCGANDiscriminator(ndf=case.width, seed=seed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------
# Data: drawn on the device at each step, in both loops
# ----------------------------------------------------------------------------------------------


class RandomImages:
    """Uniform images in [-1, 1], ``(B, 3, 32, 32)``, drawn on the device (no input pipeline cost)."""

    def __init__(self, batch: int, device: torch.device, seed: int = 0) -> None:
        self.batch, self.device = batch, device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def sample(self) -> Tensor:
        x = torch.rand(self.batch, 3, 32, 32, generator=self.generator, device=self.device)
        return x.mul_(2.0).sub_(1.0)


def _image_datamodule(batch: int, steps: int):
    import lightning as L

    from gan_lab.data.steps import StepIndices

    class RandomImagesDataModule(L.LightningDataModule):
        def train_dataloader(self):
            return StepIndices(steps)

        def transfer_batch_to_device(self, step, device, dataloader_idx):
            if not hasattr(self, "_images"):
                self._images = RandomImages(batch, device)
            return self._images.sample()

    return RandomImagesDataModule()


def _toy_streams(case: Case) -> dict:
    """The lab's counter-based streams of a toy case (:mod:`gan_lab.seeding`), for the hand loop:
    the data, noise and penalty streams of a GANModule and ToyMixtureDataModule of seed 0, so that
    both loops draw the same numbers with the same ops."""
    from gan_lab.seeding import CounterStream, run_seeds

    seeds = run_seeds(0, case.members or 1)
    return {name: CounterStream(seeds, name) for name in ("data", "noise", "penalty")}


def _toy_sampler(case: Case, device: torch.device, stream):
    from gan_lab.data.toy import get_mixture

    mixture = get_mixture("ring8").to(device)
    n = case.batch * mixture.words_per_sample
    return lambda: mixture.from_words(stream.words(n, device))  # (E, B, 2), all members at once


# ----------------------------------------------------------------------------------------------
# (b) the hand-written loop
# ----------------------------------------------------------------------------------------------


def hand_loop(
    case: Case,
    G: nn.Module,
    D: nn.Module,
    device: torch.device,
    precision: str,
    warmup: int,
    steps: int,
    channels_last: bool = False,
    compile: bool | str = False,
    threads: int | None = None,
):
    """Seconds for ``steps`` training steps after ``warmup``: plain PyTorch, nothing else.
    ``threads``: as in :func:`lab_loop` (checked, not set)."""
    from gan_lab.losses import get_objective
    from gan_lab.regularizers.gradient_penalty import MAX_PENALTY_SCALE

    objective = get_objective(case.objective)
    G, D = G.to(device), D.to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    # the main passes through the compiled nets; the gradient penalty's double backward through D
    mode = compile_mode(compile)
    G_main, D_main = (torch.compile(G, mode=mode), torch.compile(D, mode=mode)) if mode else (G, D)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None
    streams = _toy_streams(case) if case.kind == "toy" else None
    sample_real = (
        _toy_sampler(case, device, streams["data"])
        if case.kind == "toy"
        else RandomImages(case.batch, device).sample
    )
    if channels_last and case.kind != "toy":
        sample_images = sample_real

        def sample_real() -> Tensor:
            return sample_images().contiguous(memory_format=torch.channels_last)

    noise = torch.Generator(device=device).manual_seed(1)
    z_shape = (case.members, case.batch, G.z_dim) if case.kind == "toy" else (case.batch, G.z_dim)

    def sample_noise() -> Tensor:
        if streams is not None:  # toy: the lab's counter-based noise streams
            return streams["noise"].normal(z_shape[1:], device)
        return torch.randn(z_shape, generator=noise, device=device)

    gp_weight = 10.0 if "wgan_gp" in case.regularizers else 0.0

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def backward_step(loss: Tensor, opt) -> None:
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    def gradient_penalty(real: Tensor, fake: Tensor) -> Tensor:
        bnd = 2 if case.kind == "toy" else 1
        shape = real.shape[:bnd] + (1,) * (real.dim() - bnd)
        if streams is not None:  # toy: the lab's counter-based penalty streams
            eps = streams["penalty"].uniform(shape[1:], device)
        else:
            eps = torch.rand(shape, device=device)
        x = (eps * real + (1 - eps) * fake.float()).requires_grad_(True)
        out = D(x).float().sum()
        # the lab's cap: at 2^16 (the scaler's start) float16 logits overflow (see MAX_PENALTY_SCALE)
        scale = (
            scaler.scale(torch.ones((), device=device)).clamp(max=MAX_PENALTY_SCALE)
            if scaler is not None
            else None
        )
        (grad,) = torch.autograd.grad(out if scale is None else out * scale, x, create_graph=True)
        grad = grad if scale is None else grad / scale
        return (grad.flatten(bnd).norm(dim=-1) - 1).square().mean(-1).sum()

    def step(i: int) -> None:
        real = sample_real()
        with autocast():
            with torch.no_grad():
                fake = G_main(sample_noise())
            d_loss = objective.d_loss(D_main(real).float(), D_main(fake).float()).mean(-1).sum()
            if gp_weight:
                d_loss = d_loss + gp_weight * gradient_penalty(real, fake)
        backward_step(d_loss, opt_d)
        if (i + 1) % case.n_critic == 0:
            for p in D.parameters():
                p.requires_grad_(False)
            with autocast():
                fake = G_main(sample_noise())
                g_loss = objective.g_loss(D_main(fake).float(), None).mean(-1).sum()
            backward_step(g_loss, opt_g)
            for p in D.parameters():
                p.requires_grad_(True)

    G.train(), D.train()
    for i in range(warmup):
        step(i)
    _sync(device)
    if threads is not None and torch.get_num_threads() != threads:
        raise RuntimeError(f"the hand loop runs with {torch.get_num_threads()} threads, not {threads}")
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    _sync(device)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------------------------
# (a) the lab: GANModule under the Lightning Trainer
# ----------------------------------------------------------------------------------------------


def lab_loop(
    case: Case,
    G: nn.Module,
    D: nn.Module,
    device: torch.device,
    precision: str,
    warmup: int,
    steps: int,
    channels_last: bool = False,
    compile: bool | str = False,
    threads: int | None = None,
):
    """Seconds for ``steps`` full iterations of Lightning's fit loop after ``warmup``: from the end
    of batch ``warmup - 1`` to the end of the last batch (data fetch, hooks, both players' steps,
    logging). ``threads``: the intra-op thread count the caller set for both loops, passed to
    GANModule as ``speed.cpu_threads`` (which it applies in ``setup``); the timed window must run under
    it (a RuntimeError otherwise).

    The stopwatch is GANModule's own ``on_train_batch_end`` hook, which Lightning calls at every
    batch anyway: a timing ``Callback`` would add its own dispatch to each of the eight callback
    hooks of a batch (about 0.07 ms a batch on a CPU), a cost of the measurement, not of the lab."""
    import lightning as L

    from gan_lab.data.toy import ToyMixtureDataModule
    from gan_lab.module import GANModule
    from gan_lab.settings import Speed

    stamps: dict[int, float] = {}
    seen_threads: set[int] = set()

    class TimedGANModule(GANModule):
        def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
            if batch_idx == warmup - 1 or batch_idx == warmup + steps - 1:
                _sync(device)
                stamps[batch_idx] = time.perf_counter()
                seen_threads.add(torch.get_num_threads())

    module = TimedGANModule(
        G,
        D,
        objective=case.objective,
        regularizers=case.regularizers,
        n_critic=case.n_critic,
        # the bench's thread count (the hand loop's), not the module's own choice
        speed=Speed(compile=compile, channels_last=channels_last, cpu_threads=threads),
    )
    if case.kind == "toy":
        data = ToyMixtureDataModule("ring8", batch_size=case.batch, steps_per_epoch=warmup + steps)
    else:
        data = _image_datamodule(case.batch, warmup + steps)
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_train_batches=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, data)
    if threads is not None and seen_threads != {threads}:
        raise RuntimeError(f"the lab loop ran with {sorted(seen_threads)} threads, not the bench's {threads}")
    return stamps[warmup + steps - 1] - stamps[warmup - 1]


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def case_threads(
    nets: tuple[nn.Module, nn.Module], device: torch.device, setting: int | None
) -> ThreadChoice:
    """The intra-op thread count both loops of a case run with: on CPU the lab's choice for the
    case's G and D (:func:`~gan_lab.threads.choose_cpu_threads`, ``setting`` = ``--threads``); on a
    GPU, where the lab leaves it alone, ``--threads`` or the count as the process found it."""
    if device.type == "cpu":
        choice = choose_cpu_threads(nets, setting)
        return choice._replace(reason="set by --threads") if setting is not None else choice
    if setting is not None:
        return ThreadChoice(setting, "set by --threads")
    return ThreadChoice(torch.get_num_threads(), "as the process found it (a GPU run)")


@contextlib.contextmanager
def using_threads(choice: ThreadChoice) -> Iterator[ThreadChoice]:
    """torch's intra-op thread count set to ``choice.threads`` for the block, then put back."""
    before = torch.get_num_threads()
    try:
        yield apply_cpu_threads(choice)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _window(case: Case, device: torch.device, warmup: int) -> tuple[int, int]:
    """The timed steps and the warm-up of ``case`` on ``device``."""
    # whole D/G cycles: n_critic D steps and one G step, in the window as in training
    steps = -(-case.steps[device.type] // case.n_critic) * case.n_critic
    # the first G step (batch n_critic - 1) inside the warm-up: its first-call costs (compiling G
    # with gradients, Adam's state) are not timed
    return steps, max(warmup, case.n_critic)


def _case_fields(case: Case, warmup: int, steps: int, choice: ThreadChoice) -> dict:
    return {
        "case": case.name,
        "threads": choice.threads,
        "threads_reason": choice.reason,
        "members": case.members,
        "batch": case.batch,
        "objective": case.objective,
        "regularizers": case.regularizers,
        "n_critic": case.n_critic,
        "warmup": warmup,
        "steps": steps,
    }


def run_case(
    case: Case,
    device: torch.device,
    precision: str,
    repeats: int,
    warmup: int,
    channels_last: bool = False,
    compile: bool | str = False,
    threads: int | None = None,
) -> dict:
    """The lab loop against the hand loop on ``case``, both under :func:`case_threads`'s count
    (``threads``: ``--threads``)."""
    steps, warmup = _window(case, device, warmup)
    G0, D0 = make_nets(case)
    choice = case_threads((G0, D0), device, threads)
    speed = {"channels_last": channels_last, "compile": compile, "threads": choice.threads}

    def steps_per_s(loop) -> float:
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        return steps / loop(case, G, D, device, precision, warmup, steps, **speed)

    with using_threads(choice):
        # One untimed round first: a process's first runs grow its heap and fault its pages in (and
        # fill the compile and cuDNN caches), which would otherwise be charged to the loop run first.
        steps_per_s(lab_loop), steps_per_s(hand_loop)
        runs: dict = {lab_loop: [], hand_loop: []}
        for r in range(repeats):  # ABBA order: neither loop always runs first
            for loop in (lab_loop, hand_loop) if r % 2 == 0 else (hand_loop, lab_loop):
                runs[loop].append(steps_per_s(loop))
    lab, hand = runs[lab_loop], runs[hand_loop]
    lab_sps, hand_sps = statistics.median(lab), statistics.median(hand)
    return {
        **_case_fields(case, warmup, steps, choice),
        "lab_steps_per_s": round(lab_sps, 3),
        "hand_steps_per_s": round(hand_sps, 3),
        "lab_samples_per_s": round(lab_sps * case.samples_per_step, 1),
        "hand_samples_per_s": round(hand_sps * case.samples_per_step, 1),
        # a seed ensemble's throughput (None for the DCGAN cases)
        "lab_member_steps_per_s": round(lab_sps * case.members, 1) if case.members else None,
        "hand_member_steps_per_s": round(hand_sps * case.members, 1) if case.members else None,
        "ratio": round(lab_sps / hand_sps, 4),
        "lab_runs_steps_per_s": [round(v, 3) for v in lab],
        "hand_runs_steps_per_s": [round(v, 3) for v in hand],
    }


# ----------------------------------------------------------------------------------------------
# A busy machine: the lab loop quiet and with one competing CPU-bound process
# ----------------------------------------------------------------------------------------------

#: the competing process: a pure-Python busy loop that says when it spins, and ends by itself
#: once its parent is gone (a bench killed by SIGKILL runs no ``finally``)
_SPIN = """\
import os
parent = os.getppid()
print("spinning", flush=True)
while os.getppid() == parent:
    for _ in range(1 << 20):
        pass
"""


@contextlib.contextmanager
def competing_process() -> Iterator[subprocess.Popen]:
    """One CPU-bound process, spinning from the start of the block to its end; killed there, also
    when the block raises (KeyboardInterrupt included)."""
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", _SPIN],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        if proc.stdout.readline() != "spinning\n":
            raise RuntimeError(f"the competing process did not start (exit status {proc.wait()})")
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def run_busy_case(
    case: Case,
    device: torch.device,
    precision: str,
    repeats: int,
    warmup: int,
    channels_last: bool = False,
    compile: bool | str = False,
    threads: int | None = None,
) -> list[dict]:
    """The lab loop of ``case`` quiet and busy (one :func:`competing_process`), in ABBA order after
    one untimed quiet run: one entry with the lab's thread count (:func:`case_threads`), one with
    torch's default. ``busy_quiet_ratio`` = quiet steps/s / busy steps/s (medians) = busy time /
    quiet time: the slowdown, 1.0 when the competing process costs nothing."""
    steps, warmup = _window(case, device, warmup)
    G0, D0 = make_nets(case)
    settings = {
        "lab": case_threads((G0, D0), device, threads),
        "torch_default": ThreadChoice(
            TORCH_DEFAULT_THREADS, "torch's default (the lab before gan_lab.threads)"
        ),
    }
    speed = {"channels_last": channels_last, "compile": compile}

    def steps_per_s(busy: bool) -> float:
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        threads_now = torch.get_num_threads()  # as using_threads set it
        with competing_process() if busy else contextlib.nullcontext():
            return steps / lab_loop(
                case, G, D, device, precision, warmup, steps, threads=threads_now, **speed
            )

    entries = []
    for label, choice in settings.items():
        with using_threads(choice):
            steps_per_s(busy=False)  # untimed: a new thread count's first run
            runs: dict[bool, list[float]] = {False: [], True: []}
            for r in range(repeats):  # ABBA order: quiet busy, busy quiet, ...
                for busy in (False, True) if r % 2 == 0 else (True, False):
                    runs[busy].append(steps_per_s(busy))
        quiet, busy = statistics.median(runs[False]), statistics.median(runs[True])
        ratio = quiet / busy
        n, who = choice.threads, "the lab's choice" if label == "lab" else "torch's default"
        entries.append(
            {
                "case": case.name,
                "threads_from": label,
                **_case_fields(case, warmup, steps, choice),
                "competing_processes": 1,
                "quiet_steps_per_s": round(quiet, 3),
                "busy_steps_per_s": round(busy, 3),
                "busy_quiet_ratio": round(ratio, 3),
                "quiet_runs_steps_per_s": [round(v, 3) for v in runs[False]],
                "busy_runs_steps_per_s": [round(v, 3) for v in runs[True]],
                "summary": f"with {n} thread{'s' * (n != 1)} ({who}): a step takes {ratio:.2f}x as long "
                "with one competing CPU-bound process",
            }
        )
    return entries


#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def fix_malloc_thresholds(mmap_bytes: int = 32 << 20, trim_bytes: int = 1 << 30) -> str | None:
    """Fix glibc's malloc thresholds for this process, as ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` would at start-up; a description, or None where ``mallopt`` is
    missing (not glibc) or refuses.

    By default glibc adapts both thresholds as memory is freed, so the activation buffers of a CPU
    step (hundreds of kB each) are now and then returned to the OS and faulted back in at the next
    step: on the toy_e1 case, from a few to 600 minor page faults a step and 0.3 to 1.8 ms of system
    time on an 18 ms step, varying from run to run in both loops. That noise is larger than the
    difference the bench measures; with fixed thresholds the buffers stay in the heap (2 to 20
    faults a step). Buffers above 32 MiB, glibc's cap (toy_e64's 52 MB activations), are mmapped
    either way and keep their noise. Process-wide and permanent, like the environment variables.
    """
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return None
    if mallopt(M_MMAP_THRESHOLD, mmap_bytes) != 1 or mallopt(M_TRIM_THRESHOLD, trim_bytes) != 1:
        return None
    return f"glibc mallopt: mmap threshold {mmap_bytes >> 20} MiB, trim threshold {trim_bytes >> 20} MiB"


def quiet_lightning() -> None:
    """Only Lightning's errors on the console: the commands' quiet set-up
    (:func:`gan_lab.console.quiet_lightning`), and no summaries or warnings per fit either."""
    import logging

    from gan_lab.console import quiet_lightning as quiet_commands

    quiet_commands()
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_bench(
    device: str = "cpu",
    precision: str = "32-true",
    names: list[str] | None = None,
    repeats: int = 5,
    warmup: int = 3,
    quick: bool = False,
    channels_last: bool = False,
    compile: bool | str = False,
    batch: int | None = None,
    members: int | None = None,
    fix_malloc: bool = False,
    threads: int | None = None,
) -> dict:
    """Run the cases and return the JSON-able result (see the module docstring). ``batch`` and
    ``members`` override every case's batch (per member) and the toy cases' ensemble size;
    ``threads`` is the explicit intra-op thread count (``--threads``; None: the lab's choice per
    case). Default cases: those with steps for ``device`` (``toy_e1_busy`` is CPU only)."""
    import warnings

    from gan_lab.errors import ConfigError, check_choice, check_int

    check_choice("device", device, ("cpu", "cuda"))
    table = cases(quick)
    eval_case = names is None or EVAL_CASE in names  # the image metrics' case (benchmarks.eval_bench)
    names = [n for n in names if n != EVAL_CASE] if names is not None else None
    names = names if names is not None else [n for n, c in table.items() if device in c.steps and c.default]
    for n in names:
        check_choice("case", n, table)
        if device not in table[n].steps:
            raise ConfigError(f"case {n!r} runs on CPU only (a GPU run's host threads only launch kernels)")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but CUDA is not available here; use --device cpu")
    check_choice("precision", precision, PRECISIONS)
    if precision == "16-mixed" and device == "cpu":
        raise ConfigError("16-mixed needs CUDA (Lightning runs bf16-mixed instead on CPU); use bf16-mixed")
    if repeats < 1 or warmup < 1:
        raise ConfigError("--repeats and --warmup must be >= 1")
    for flag, value in (("--batch", batch), ("--members", members), ("--threads", threads)):
        if value is not None:
            check_int(flag, value)
    for n in names:
        c = table[n]
        table[n] = replace(
            c, batch=batch or c.batch, members=(members or c.members) if c.kind == "toy" else None
        )
    quiet_lightning()
    malloc = fix_malloc_thresholds() if fix_malloc else None
    dev = torch.device(device)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in names:
            case, args = table[n], (dev, precision, repeats, warmup, channels_last, compile, threads)
            if case.busy:
                results.extend(run_busy_case(case, *args))
            else:
                results.append(run_case(case, *args))
        if eval_case:
            from benchmarks.eval_bench import run_eval_bench

            results.append(run_eval_bench(device, quick=quick))
    return {
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "precision": precision,
        "torch": torch.__version__,
        "torch_default_threads": TORCH_DEFAULT_THREADS,  # each case's count: its "threads"
        "threads_setting": threads,
        "repeats": repeats,
        "warmup": warmup,
        "quick": quick,
        "channels_last": channels_last,
        "compile": compile,
        "malloc": malloc or "as the process found it",
        "batch": batch,
        "members": members,
        "timing": "median over repeats of steps / seconds, after warmup; ratio = lab / hand; "
        "busy_quiet_ratio = quiet / busy steps per second (the slowdown with one competing process)",
        "cases": results,
    }


def bench_main(argv: list[str]) -> int:
    from gan_lab.errors import ConfigError, fail

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="32-true", help=", ".join(PRECISIONS))
    parser.add_argument(
        "--cases",
        nargs="*",
        default=None,
        help="subset of: toy_e1 toy_e64 dcgan32_ns dcgan32_wgan_gp toy_e1_busy (CPU only) eval; "
        "named only: toy_ens_e1 toy_ens_e64 toy_ens_e512",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per loop and case (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed run")
    parser.add_argument("--quick", action="store_true", help="tiny nets and batches: a smoke run")
    parser.add_argument(
        "--channels-last", action="store_true", help="channels_last weights and image batches (both loops)"
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=False,
        choices=COMPILE_MODES,
        help="torch.compile G and D (both loops), in this mode (default: 'default'; 'reduce-overhead': CUDA graphs)",
    )
    parser.add_argument("--batch", type=int, default=None, help="batch per member, for every case")
    parser.add_argument("--members", type=int, default=None, help="ensemble size of the toy cases")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads for every case (default: the lab's choice per case on CPU)",
    )
    parser.add_argument(
        "--keep-malloc",
        action="store_true",
        help="leave glibc's adaptive malloc thresholds (by default a CPU run fixes them: less noise)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 1), min(args.warmup, 1)
    try:
        result = run_bench(
            args.device,
            args.precision,
            args.cases,
            args.repeats,
            args.warmup,
            args.quick,
            channels_last=args.channels_last,
            compile=args.compile,
            batch=args.batch,
            members=args.members,
            fix_malloc=args.device == "cpu" and not args.quick and not args.keep_malloc,
            threads=args.threads,
        )
    except ConfigError as e:
        return fail(e)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(bench_main(sys.argv[1:]))


__all__ = [
    "Case",
    "bench_main",
    "case_threads",
    "cases",
    "competing_process",
    "hand_loop",
    "lab_loop",
    "run_bench",
    "run_busy_case",
]
