"""Exponential moving average of a network's weights (``G_ema``, Karras et al. 2018/2020).

``θ_ema ← β θ_ema + (1 − β) θ`` after every G step; buffers (BatchNorm statistics) are copied.
The EMA copy never takes part in a gradient: it sits beside the step.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


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
