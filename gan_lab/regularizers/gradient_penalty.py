"""Gradient penalties on the discriminator, per sample.

Every penalty is a function of the per-sample gradient norm ``||∇_x D(x)||_2`` taken over all
non-batch dims, so it works for vectors ``(B, d)``, images ``(B, C, H, W)`` of any channel count,
and seed ensembles ``(E, B, ...)``. Because the samples of a batch (and the members of an
ensemble) are independent under D, ``∇_x sum(D(x))`` holds every sample's own gradient; D must not
mix samples (no BatchNorm in D).

The gradient is taken with ``torch.autograd.grad(..., create_graph=True)`` and the penalty then
goes into an ordinary backward: this is the form that stays correct under DDP (``autograd.grad``
with explicit inputs runs none of DDP's gradient hooks; the one ordinary backward reduces once).
D's output is summed in float32, and under a GradScaler (16-mixed) the sum is scaled before
``autograd.grad`` (by the scaler's scale, at most 2^14: see :data:`MAX_PENALTY_SCALE`) and the
input gradient unscaled after it (PyTorch AMP notes, "Gradient penalty"): the penalty is then computed on true gradients, and the loss it enters is scaled once
more by the ordinary scaled backward. Random points (ε, α, u) are drawn through
``PenaltyInputs.rand`` when the module provides it (per-member, per-rank streams).

| name          | penalty per sample                        | point x̂                         | paper                 |
|---------------|-------------------------------------------|----------------------------------|-----------------------|
| wgan_gp       | (‖∇D(x̂)‖ − 1)²                           | εx + (1−ε)x̃, ε ~ U[0,1]          | Gulrajani et al. 2017 |
| one_sided_gp  | max(0, ‖∇D(x̂)‖ − 1)²                     | as wgan_gp                       | Gulrajani et al. 2017 (app.), Petzka et al. 2018 |
| dragan        | (‖∇D(x̂)‖ − 1)²                           | x + α·δ, δ = ½·std(x)·U[0,1]     | Kodali et al. 2017    |
| r1            | ½‖∇D(x)‖² (× γ = weight)                  | real x                           | Mescheder et al. 2018 |
| r2            | ½‖∇D(x̃)‖² (× γ = weight)                  | fake x̃                           | Mescheder et al. 2018 |

All five set ``needs_input_grad``; only ``wgan_gp`` and ``one_sided_gp`` set ``enforces_lipschitz``:
their points x̂ lie between the real and the generated distributions, where WGAN's dual needs the
critic 1-Lipschitz. R1 / R2 (at the data, toward a zero slope) and DRAGAN (around the real data)
stabilise training but leave a WGAN critic unconstrained elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gan_lab.regularizers.base import PenaltyInputs, Regularizer, full_precision

#: Largest scale of the penalty's scaled ``autograd.grad``. Each sample's logit receives the
#: gradient ``s`` itself (the output is summed, not averaged), and float16 stops at 65504: the
#: GradScaler's starting scale 2^16 would turn every per-sample penalty of a float16-logit critic
#: (a conv or linear head) into NaN. 2^14 leaves room for last-layer slopes up to 4.
MAX_PENALTY_SCALE = 2.0**14


def input_grad(D: Callable[[Tensor], Tensor], x: Tensor, grad_scaler=None) -> Tensor:
    """``∇_x sum(D(x))`` with ``create_graph=True``: every sample's own input gradient (float32
    under autocast).

    With a ``grad_scaler`` (a ``torch.amp.GradScaler``) the output is multiplied by the scale
    ``s = min(scaler scale, MAX_PENALTY_SCALE)`` before ``autograd.grad`` and the gradient divided
    by ``s`` after it, so that float16 intermediate gradients neither underflow nor overflow; ``s``
    stays a device tensor (no host sync).
    """
    x = x.detach().requires_grad_(True)
    out = full_precision(D(x)).sum()
    if grad_scaler is None:
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
        return full_precision(grad)
    scale = grad_scaler.scale(torch.ones((), device=out.device)).clamp(max=MAX_PENALTY_SCALE)  # s, 0-dim
    (scaled_grad,) = torch.autograd.grad(out * scale, x, create_graph=True)
    return full_precision(scaled_grad) / scale


def per_sample_grad_norm(
    D: Callable[[Tensor], Tensor], x: Tensor, batch_ndim: int = 1, grad_scaler=None
) -> Tensor:
    """``||∇_x D(x)||_2`` for every sample, over all dims after the first ``batch_ndim``.

    Args:
        D: maps ``x`` to per-sample logits ``x.shape[:batch_ndim]`` (or with a trailing 1).
        x: ``(B, ...)`` or ``(E, B, ...)``. It is detached and made to require grad here.
        batch_ndim: 1, or 2 for an ensemble.
        grad_scaler: the GradScaler of a 16-mixed run, or None (see :func:`input_grad`).

    Returns:
        Norms (float32 under autocast) of shape ``x.shape[:batch_ndim]``, differentiable w.r.t. D's parameters
        (``create_graph=True``).

    >>> w = torch.tensor([3.0, 4.0])
    >>> per_sample_grad_norm(lambda x: x @ w, torch.randn(5, 2)).detach()
    tensor([5., 5., 5., 5., 5.])
    """
    grad = input_grad(D, x, grad_scaler)
    return torch.linalg.vector_norm(grad.flatten(batch_ndim), dim=-1)


def per_sample_grad_sq_norm(
    D: Callable[[Tensor], Tensor], x: Tensor, batch_ndim: int = 1, grad_scaler=None
) -> Tensor:
    """``||∇_x D(x)||²`` for every sample (no square root, so no kink at a zero gradient)."""
    grad = input_grad(D, x, grad_scaler)
    return grad.flatten(batch_ndim).square().sum(-1)


def _uniform(shape: tuple[int, ...], like: Tensor, rand=None) -> Tensor:
    """``U[0, 1)`` draws of ``shape`` in ``like``'s dtype and device, from ``rand`` if given."""
    if rand is None:
        return torch.rand(shape, device=like.device, dtype=like.dtype)
    return rand(shape).to(device=like.device, dtype=like.dtype)


def _uniform_per_sample(x: Tensor, batch_ndim: int, rand=None) -> Tensor:
    """``U[0, 1]`` draws of shape ``x.shape[:batch_ndim] + (1, ..., 1)``, broadcastable to ``x``."""
    shape = x.shape[:batch_ndim] + (1,) * (x.dim() - batch_ndim)
    return _uniform(tuple(shape), x, rand)


def interpolate(real: Tensor, fake: Tensor, batch_ndim: int = 1, rand=None) -> Tensor:
    """WGAN-GP's random points ``x̂ = ε x + (1 − ε) x̃`` with one ``ε ~ U[0, 1]`` per sample.

    ``rand(shape)`` draws ε (None: the global torch RNG). The points are float32 whatever the
    fakes' autocast dtype (float64 stays float64)."""
    real, fake = full_precision(real.detach()), full_precision(fake.detach())
    eps = _uniform_per_sample(real, batch_ndim, rand)
    return eps * real + (1.0 - eps) * fake


def dragan_perturb(real: Tensor, batch_ndim: int = 1, rand=None) -> Tensor:
    """DRAGAN's points near the data: ``x̂ = x + α δ``, ``δ = ½ std(x) u``, ``u, α ~ U[0, 1]``.

    ``std(x)`` is taken over the whole batch of one run (per member for an ensemble), ``u`` is
    drawn elementwise and ``α`` per sample, as in Kodali et al.'s reference code.
    """
    x = real.detach()
    dims = tuple(range(batch_ndim - 1, x.dim()))
    std = x.std(dim=dims, keepdim=True)
    alpha = _uniform_per_sample(x, batch_ndim, rand)
    return x + alpha * 0.5 * std * _uniform(tuple(x.shape), x, rand)


def two_sided_penalty(grad_norm: Tensor) -> Tensor:
    """``(‖∇D‖ − 1)²`` (WGAN-GP, DRAGAN)."""
    return (grad_norm - 1.0).square()


def one_sided_penalty(grad_norm: Tensor) -> Tensor:
    """``max(0, ‖∇D‖ − 1)²``: penalises only slopes above 1."""
    return torch.clamp(grad_norm - 1.0, min=0.0).square()


class WGANGP(Regularizer):
    """Two-sided gradient penalty of WGAN-GP, λ = ``weight`` (10 in Gulrajani et al., 2017)."""

    name = "wgan_gp"
    needs_input_grad = True
    enforces_lipschitz = True

    def __init__(self, weight: float = 10.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        x_hat = interpolate(inputs.real, inputs.fake, inputs.batch_ndim, inputs.rand)
        return two_sided_penalty(per_sample_grad_norm(inputs.D, x_hat, inputs.batch_ndim, inputs.grad_scaler))


class OneSidedGP(Regularizer):
    """One-sided gradient penalty ``λ max(0, ‖∇D(x̂)‖ − 1)²`` on WGAN-GP's interpolates."""

    name = "one_sided_gp"
    needs_input_grad = True
    enforces_lipschitz = True

    def __init__(self, weight: float = 10.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        x_hat = interpolate(inputs.real, inputs.fake, inputs.batch_ndim, inputs.rand)
        return one_sided_penalty(per_sample_grad_norm(inputs.D, x_hat, inputs.batch_ndim, inputs.grad_scaler))


class DRAGAN(Regularizer):
    """DRAGAN (Kodali et al., 2017): ``λ (‖∇D(x̂)‖ − 1)²`` at points perturbed around real data."""

    name = "dragan"
    needs_input_grad = True
    enforces_lipschitz = False  # only at the data: does not make a WGAN critic Lipschitz

    def __init__(self, weight: float = 10.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        x_hat = dragan_perturb(inputs.real, inputs.batch_ndim, inputs.rand)
        return two_sided_penalty(per_sample_grad_norm(inputs.D, x_hat, inputs.batch_ndim, inputs.grad_scaler))


class R1(Regularizer):
    """R1 (Mescheder, Geiger & Nowozin, 2018): ``γ/2 ‖∇D(x)‖²`` on real data, γ = ``weight``.

    StyleGAN2 runs it lazily (``every=16``).
    """

    name = "r1"
    needs_input_grad = True
    enforces_lipschitz = False  # only at the data: does not make a WGAN critic Lipschitz

    def __init__(self, weight: float = 10.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        return 0.5 * per_sample_grad_sq_norm(inputs.D, inputs.real, inputs.batch_ndim, inputs.grad_scaler)


class R2(Regularizer):
    """R2 (Mescheder et al., 2018): ``γ/2 ‖∇D(x̃)‖²`` on generated data, γ = ``weight``."""

    name = "r2"
    needs_input_grad = True
    enforces_lipschitz = False  # only at the data: does not make a WGAN critic Lipschitz

    def __init__(self, weight: float = 10.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        return 0.5 * per_sample_grad_sq_norm(inputs.D, inputs.fake, inputs.batch_ndim, inputs.grad_scaler)
