"""The image metrics under DDP (gloo, 2 CPU processes): compute() on every rank equals one process's
result on all the data.

Each rank updates every other sample (rank r takes rows r, r + 2, ...; uneven counts), in two
batches, so the gathered ``cat`` states hold the samples in another order than the one-process
run: FD sums sufficient statistics (equal up to float64 rounding of the sums); KID and IS sort
each side canonically before drawing their seeded subsets / shuffle, and PRDC and the stacked mode
count depend only on the sets, so those are compared exactly. A second FD / KID / PRDC set gets the
real features on rank 0 only (the evaluator's "lead" rank), the fakes split as before.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gan_lab.metrics import PRDC, FrechetDistance, InceptionScore, KernelDistance, StackedModeCount

WORLD = 2
D = 6


def make_data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "real": torch.randn(65, D, generator=g),
        "fake": 0.5 + torch.randn(61, D, generator=g),
        "logits": 3 * torch.randn(83, 10, generator=g),
        "labels": torch.randint(0, 10, (97, 3), generator=g),
    }


def make_metrics() -> dict:
    return {
        "fd": FrechetDistance(num_features=D),
        "kid": KernelDistance(subsets=5, subset_size=20),
        "is": InceptionScore(splits=4),
        "prdc": PRDC(chunk=16),
        "modes": StackedModeCount(),
        "fd_lead": FrechetDistance(num_features=D),
        "kid_lead": KernelDistance(subsets=5, subset_size=20),
        "prdc_lead": PRDC(chunk=16),
    }


def evaluate(data: dict, rank: int, world: int) -> dict:
    """Update every metric with this rank's share (two batches each) and compute."""

    def share(x):
        return x[rank::world].split(max(1, (x[rank::world].shape[0] + 1) // 2))

    metrics = make_metrics()
    for name in ("fd", "kid", "prdc"):
        for part in share(data["real"]):
            metrics[name].update(part, real=True)
        for part in share(data["fake"]):
            metrics[name].update(part)
    for name in ("fd_lead", "kid_lead", "prdc_lead"):
        if rank == 0:
            metrics[name].update(data["real"], real=True)
        for part in share(data["fake"]):
            metrics[name].update(part)
    for part in share(data["logits"]):
        metrics["is"].update(part)
    for part in share(data["labels"]):
        metrics["modes"].update(part)
    return {name: metric.compute() for name, metric in metrics.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.save(evaluate(make_data(), rank, WORLD), os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _same(a, b, exact: bool) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], exact) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y, exact) for x, y in zip(a, b, strict=True))
    if exact:
        return torch.equal(a, b)
    return torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_ddp_compute_equals_one_process_on_all_data(tmp_path):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, start_method="spawn")
    single = evaluate(make_data(), rank=0, world=1)
    assert (
        single["fd"] > 0.1 and single["kid"][0] > 0 and 0 < single["prdc"]["precision"] < 1
    )  # not degenerate
    for rank in range(WORLD):
        ranked = torch.load(tmp_path / f"rank{rank}.pt")
        for name in ("fd", "fd_lead"):
            assert _same(ranked[name], single["fd"], exact=False), (rank, name)
        for name in ("kid", "kid_lead"):
            assert _same(ranked[name], single["kid"], exact=True), (rank, name)
        for name in ("prdc", "prdc_lead"):
            assert _same(ranked[name], single["prdc"], exact=True), (rank, name)
        assert _same(ranked["is"], single["is"], exact=True), rank
        assert _same(ranked["modes"], single["modes"], exact=True), rank
    # the ranks did see different halves: rank 0 alone gives other values
    alone = evaluate(make_data(), rank=0, world=2)  # no process group: rank 0's share only
    assert not torch.equal(alone["kid"][0], single["kid"][0])
