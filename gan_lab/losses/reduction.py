"""Reducing per-sample loss terms: the training loss of a seed ensemble, and the means that get logged.

The loss of an E-member ensemble is *the sum over members of each member's mean*, so that the E
members train exactly as E separate runs (Adam is elementwise)::

    reduce(loss (E, B)) = Σ_e mean_b loss[e, b]        (and mean_b loss[b] for a plain run)
"""

from __future__ import annotations

from torch import Tensor


def reduce_members(loss: Tensor) -> Tensor:
    """Σ over members of each member's mean over the batch (the last dim).

    >>> import torch
    >>> reduce_members(torch.tensor([[1.0, 3.0], [10.0, 20.0]]))  # (E=2, B=2): 2 + 15
    tensor(17.)
    >>> reduce_members(torch.tensor([1.0, 3.0]))  # a plain run: the batch mean
    tensor(2.)
    """
    return loss.mean(-1).sum()


def term_means(terms: dict[str, Tensor | float]) -> dict[str, Tensor | float]:
    """Each loss term as its mean: the step's terms are kept per sample (``(E, B)`` or ``(B,)``)
    or as scalars, and reduced only when logged or inspected.

    >>> import torch
    >>> term_means({"d/loss": torch.tensor([[1.0, 3.0]]), "d/r1": torch.tensor(0.5), "g_steps": 2.0})
    {'d/loss': tensor(2.), 'd/r1': tensor(0.5000), 'g_steps': 2.0}
    """
    return {k: v.mean() if isinstance(v, Tensor) and v.dim() else v for k, v in terms.items()}
