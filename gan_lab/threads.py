"""How many intra-op threads a CPU run uses.

Small nets do not gain from intra-op parallelism, and on a shared machine they lose a lot: torch's
OpenMP workers spin-wait for each other between the many tiny kernels of a step, so when another
process holds a core, every kernel waits for the descheduled worker. Measured on a 2-core machine
with one other CPU-bound process running: a 300-G-step ring8 fit (4 members, 128 units) took
47–58 s with torch's default two threads and 13 s with one.

So nets declare what they want: a net class with ``cpu_threads = 1`` (the toy MLPs) runs with one
thread on a CPU; nets that declare nothing (the convolutional ones) keep torch's default. The
choice, in order of precedence:

1. an explicit setting (``GANModule(speed=Speed(cpu_threads=N))``, ``--model.speed.cpu_threads N``);
2. ``OMP_NUM_THREADS`` when the user set it (torch already honours it; it is reported as the reason);
3. the smallest ``cpu_threads`` the nets declare;
4. torch's default (``torch.get_num_threads()`` as the process found it).

Only CPU runs are affected; on a GPU the host threads only launch kernels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import torch

from gan_lab.errors import check_int

#: torch's intra-op thread count as this process found it (before gan_lab changed it)
TORCH_DEFAULT_THREADS = torch.get_num_threads()


class ThreadChoice(NamedTuple):
    """``threads`` intra-op threads, and why (one phrase for logs and reports)."""

    threads: int
    reason: str


def choose_cpu_threads(
    nets: Iterable[object], setting: int | None = None, environ: Mapping[str, str] = os.environ
) -> ThreadChoice:
    """The intra-op thread count for a CPU run of ``nets`` (precedence in the module docstring).

    >>> class Small:
    ...     cpu_threads = 1
    >>> choose_cpu_threads([Small(), object()], environ={})
    ThreadChoice(threads=1, reason='small nets (intra-op threads spin on a busy machine)')
    >>> choose_cpu_threads([Small()], environ={"OMP_NUM_THREADS": "2"})
    ThreadChoice(threads=2, reason='set by OMP_NUM_THREADS')
    >>> choose_cpu_threads([Small()], setting=3, environ={"OMP_NUM_THREADS": "2"})
    ThreadChoice(threads=3, reason='set by cpu_threads')
    """
    if setting is not None:
        return ThreadChoice(check_int("cpu_threads", setting), "set by cpu_threads")
    env = environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return ThreadChoice(int(env), "set by OMP_NUM_THREADS")
    declared = [n.cpu_threads for n in nets if getattr(n, "cpu_threads", None) is not None]
    if declared:
        return ThreadChoice(min(declared), "small nets (intra-op threads spin on a busy machine)")
    return ThreadChoice(TORCH_DEFAULT_THREADS, "torch's default")


def apply_cpu_threads(choice: ThreadChoice) -> ThreadChoice:
    """Set torch's intra-op thread count to ``choice.threads`` and return the choice."""
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def use_cpu_threads(trainer, nets: Iterable[object], setting: int | None) -> ThreadChoice | None:
    """On a CPU run, apply the choice for ``nets`` and log it to the trainer's loggers
    (``cpu_threads``, ``cpu_threads_reason``); on any other device, None (nothing changed)."""
    if trainer.strategy.root_device.type != "cpu":
        return None
    choice = apply_cpu_threads(choose_cpu_threads(nets, setting))
    for logger in trainer.loggers:
        logger.log_hyperparams({"cpu_threads": choice.threads, "cpu_threads_reason": choice.reason})
    return choice
