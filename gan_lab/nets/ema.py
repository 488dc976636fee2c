"""Exponential moving average of a network's weights (``G_ema``, Karras et al. 2018/2020).

``θ_ema ← β θ_ema + (1 − β) θ`` after every G step; buffers (BatchNorm statistics) are copied.
The EMA copy never takes part in a gradient: it sits beside the step.

β is either fixed (``model.ema.beta``), or StyleGAN2's (``training_loop.py``; ``model.ema.kimg``,
:class:`gan_lab.settings.EMA`): a half-life of ``ema_kimg`` thousand samples, ramped up over the
first steps so that the early, fast-changing weights are not averaged in for long::

    ema_nimg = min(1000 · ema_kimg, rampup · cur_nimg)        (no ramp-up: rampup None)
    β = 0.5 ^ (batch / max(ema_nimg, 1e-8))

with ``cur_nimg`` the samples G has been trained on so far (per member, all ranks) and ``batch``
the samples of one G step. Why not ``torch.optim.swa_utils.AveragedModel``: it wraps the net
(``G_ema.module.*`` keys, which ``gan-lab sample`` and every existing checkpoint read as
``G_ema.*``), adds an ``n_averaged`` buffer, and its EMA helper takes a fixed decay; the update
here is the same arithmetic as its ``get_ema_multi_avg_fn`` (one ``_foreach_lerp_``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, rampup: float | None = 0.05) -> float:
    """StyleGAN2's β for one G step of ``batch`` samples after ``cur_nimg`` samples (formula above).

    >>> round(ema_beta(32, 10**9, ema_kimg=10.0), 6)  # ramp-up over: half-life 10k samples
    0.997784
    >>> round(ema_beta(32, 0, ema_kimg=10.0), 6)  # first step: ema_nimg = 0, β = 0 (a copy)
    0.0
    >>> round(ema_beta(32, 32 * 100, ema_kimg=10.0, rampup=0.05), 6)  # ema_nimg = 160
    0.870551
    """
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


def make_ema(net: nn.Module) -> nn.Module:
    """A frozen copy of ``net`` for the running average (``requires_grad=False``, eval mode)."""
    ema = copy.deepcopy(net).requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def ema_update_(ema: nn.Module, net: nn.Module, beta: float) -> None:
    """``θ_ema ← β θ_ema + (1 − β) θ`` for parameters; buffers copied.

    >>> a, b = nn.Linear(1, 1).requires_grad_(False), nn.Linear(1, 1).requires_grad_(False)
    >>> _ = a.weight.fill_(0.0); _ = b.weight.fill_(1.0)
    >>> ema_update_(a, b, 0.9); round(a.weight.item(), 6)
    0.1
    """
    ema_params = list(ema.parameters())
    params = [p.detach() for p in net.parameters()]
    torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):
        b_ema.copy_(b)
