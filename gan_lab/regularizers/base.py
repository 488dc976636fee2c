"""The contract between the module and its regularizers.

A :class:`Regularizer` declares the player it acts on (``"D"`` or ``"G"``), its weight, how often
it runs (``every``, lazy regularization) and whether it needs a paired target. The module asks it
for a per-sample :meth:`~Regularizer.penalty`, multiplies by ``weight`` and reduces; a regularizer
never calls ``backward`` itself. A :class:`Constraint` (weight clipping) is not a loss term: the
module applies it to a network after that network's optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gan_lab.errors import check_int, check_weight


def full_precision(t: Tensor) -> Tensor:
    """``t`` in float32 when autocast made it float16 / bfloat16; any other dtype unchanged.

    >>> full_precision(torch.ones(2, dtype=torch.bfloat16)).dtype, full_precision(torch.ones(2)).dtype
    (torch.float32, torch.float32)
    """
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


@dataclass
class PenaltyInputs:
    """What a penalty may look at during one player's step.

    Attributes:
        D: the discriminator as a function of its input (conditioning already bound), returning
            per-sample logits of shape ``real.shape[:batch_ndim]``.
        real: a real batch, ``(B, ...)`` or ``(E, B, ...)`` for an ensemble of ``E`` seeds.
        fake: a generated batch of the same shape; detached in D's step, attached in G's step.
        batch_ndim: number of leading batch dims (1, or 2 for an ensemble). Norms and means run
            over every dim after these.
        target: the paired target for ``fake`` in a conditional run (else None).
        condition: the conditioning input of G in a conditional run (else None).
        rand: ``shape -> U[0, 1)`` draws of that shape (leading dims ``(B,)`` or ``(E, B)``), from
            the module's own per-member, per-rank streams; None draws from the global torch RNG.
            Penalties with random points (WGAN-GP's ε, DRAGAN's α and u) draw through it, so that
            a DDP run and a single-process run on the concatenated batch draw the same numbers.
        grad_scaler: the GradScaler of a 16-mixed run (else None). Input gradients are then
            taken of the *scaled* output and unscaled before the penalty (the scaled-gradient
            recipe of PyTorch's AMP notes), so that they do not underflow in float16.
    """

    D: Callable[[Tensor], Tensor]
    real: Tensor
    fake: Tensor
    batch_ndim: int = 1
    target: Tensor | None = None
    condition: Tensor | None = None
    rand: Callable[[tuple[int, ...]], Tensor] | None = None
    grad_scaler: Any | None = None


class Regularizer(nn.Module):
    """A weighted per-sample penalty added to one player's loss.

    Args:
        weight: multiplier of the per-sample penalty (λ, γ, ...); must be >= 0.
        every: run on every ``every``-th step of its player only (lazy regularization, Karras et al.
            2020, StyleGAN2 sec. 3.1). When ``every > 1`` the module runs it as a separate
            optimizer step, multiplies it by ``every`` and corrects that player's Adam learning
            rate and betas by ``c = every / (every + 1)``.

    Subclasses set ``name``, ``player`` and implement :meth:`penalty`, and declare what the
    module must know about them:

    - ``needs_target``: it compares G's output with a paired target (refused in an unconditional
      run).
    - ``needs_input_grad``: its penalty takes ``autograd.grad`` of D's output w.r.t. D's *input*
      (``create_graph=True``): WGAN-GP, one-sided GP, DRAGAN, R1, R2. D must then keep samples
      independent (per-sample gradients: no BatchNorm mixing the batch, no SyncBatchNorm, whose
      backward is not twice differentiable).
    - ``enforces_lipschitz``: it constrains D's Lipschitz constant as WGAN's
      Kantorovich-Rubinstein dual needs: toward 1 on points between the real and the generated
      distributions (WGAN-GP, one-sided GP; weight clipping, a :class:`Constraint`, bounds it by a
      K the clip sets). R1, R2 and DRAGAN take input gradients too, but only at or around the
      data: they stabilise a GAN, they do not make WGAN's critic Lipschitz.
    """

    name: str = ""
    player: str = "D"
    needs_target: bool = False
    needs_input_grad: bool = False
    enforces_lipschitz: bool = False

    def __init__(self, weight: float = 1.0, every: int = 1) -> None:
        super().__init__()
        self.weight = check_weight(f"{self.name} weight", weight)
        self.every = check_int(f"{self.name} 'every'", every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        """Per-sample penalty of shape ``inputs.real.shape[:inputs.batch_ndim]``, without weight."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"weight={self.weight}, every={self.every}"


class Constraint(nn.Module):
    """A projection applied to a network's parameters after its optimizer step.

    It declares the flags of :class:`Regularizer` that apply to it: ``needs_input_grad`` is False
    (it never looks at D's input), ``enforces_lipschitz`` is True for weight clipping.
    """

    name: str = ""
    player: str = "D"
    needs_target: bool = False
    needs_input_grad: bool = False
    enforces_lipschitz: bool = False

    def apply_(self, net: nn.Module) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def project(self, name: str, p: Tensor) -> Tensor:  # pragma: no cover - interface
        """The same projection of one parameter ``p`` (named ``name`` in the net), out of place and
        differentiable: what Unrolled GAN's look-ahead applies after each of its updates."""
        raise NotImplementedError
