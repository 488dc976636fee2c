"""The players' optimizers: the default Adam, StyleGAN2's correction for lazy regularization, and
gradient clipping on unscaled gradients.

Lazy regularization (StyleGAN2, Karras et al. 2020, sec. 3.1 / app. B): a regularizer run every
``k`` steps as its own optimizer step (multiplied by ``k``) changes the optimizer's effective step
size; with ``c = k / (k + 1)`` the hyper-parameters are corrected as ``lr ← c·lr``, ``β ← β^c``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch
from torch import nn
from torch.optim import Optimizer

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]

#: Adam with DCGAN's β1 = 0.5, the usual default of GAN papers (Radford et al., 2016), in
#: PyTorch's fused implementation (one kernel for all parameters, on CPU and CUDA: the for-loop
#: Adam step was 7 % of a toy CPU step). The CLI writes it into every resolved config.
ADAM_DEFAULTS = {"lr": 2e-4, "betas": (0.5, 0.999), "fused": True}
default_adam: OptimizerFactory = partial(torch.optim.Adam, **ADAM_DEFAULTS)


def correct_for_lazy_interval(optimizer: Optimizer, every: int) -> None:
    """StyleGAN2's correction for a lazy regularizer run every ``every`` steps:
    ``c = every / (every + 1)``, ``lr ← c·lr``, ``(β1, β2) ← (β1^c, β2^c)``.

    >>> opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.01, betas=(0.0, 0.99))
    >>> correct_for_lazy_interval(opt, 4)
    >>> round(opt.param_groups[0]["lr"], 6), [round(b, 6) for b in opt.param_groups[0]["betas"]]
    (0.008, [0.0, 0.991992])
    """
    c = every / (every + 1)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * c
        if "betas" in group:
            group["betas"] = tuple(b**c for b in group["betas"])


def clip_unscaled_(optimizer: Optimizer, max_norm: float, scaler=None) -> None:
    """Clip the 2-norm of ``optimizer``'s gradients to ``max_norm``, on true (unscaled) gradients.

    Under 16-mixed, Lightning unscales the gradients before ``on_before_optimizer_step``, except
    for optimizers that unscale inside their own step (``fused=True``:
    ``_step_supports_amp_scaling``). For those the ``scaler``'s ``unscale_`` runs here; the
    scaler's step then knows the gradients are unscaled and passes no scale to the fused kernel
    (it still skips non-finite steps)."""
    if scaler is not None and getattr(optimizer, "_step_supports_amp_scaling", False):
        scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if params:
        nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
