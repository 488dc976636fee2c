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


def _on_cuda(params: list) -> bool:
    """Whether every tensor of ``params`` (tensors, ``(name, tensor)`` pairs or param groups) is on CUDA."""
    tensors = []
    for p in params:
        if isinstance(p, dict):
            tensors += [t[1] if isinstance(t, tuple) else t for t in p["params"]]
        else:
            tensors.append(p[1] if isinstance(p, tuple) else p)
    return bool(tensors) and all(t.is_cuda for t in tensors)


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` (Kingma & Ba, 2015) whose ``fused`` default follows the parameters'
    device: PyTorch's fused kernel on CUDA (one kernel for every parameter), its for-loop
    implementation on a CPU.

    Why not fused on a CPU: the CPU fused kernel rounds an element differently depending on where
    it lies in the flattened tensor (its vectorised body and scalar remainders do not round alike),
    so member k of a seed ensemble, whose weights sit at another offset than in a 1-member run,
    drifts from that run by ~1e-7 per step, and the chaotic dynamics of GAN training amplify that
    into different results (measured: 0.26 apart after 60 steps of lr 1e-3, where the for-loop
    Adam stays bit-identical over 1,500 steps). The for-loop update is elementwise and rounds the
    same at every position, so ensemble members, mixed ensembles and single runs agree exactly.
    ``fused=True`` / ``False`` is passed through as given.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        params = list(params)
        if fused is None and foreach is None and not differentiable:
            fused = _on_cuda(params)
        super().__init__(
            params,
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused or None,
            decoupled_weight_decay=decoupled_weight_decay,
        )


#: Adam with DCGAN's β1 = 0.5, the usual default of GAN papers (Radford et al., 2016): fused on
#: CUDA, the for-loop on a CPU (:class:`Adam`). The CLI writes it into every resolved config.
ADAM_DEFAULTS = {"lr": 2e-4, "betas": (0.5, 0.999)}
default_adam: OptimizerFactory = partial(Adam, **ADAM_DEFAULTS)


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
