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


def member_means(loss: Tensor) -> Tensor:
    """Each member's mean over the batch: ``(E,)`` of ``(E, B)``, the batch mean of ``(B,)``, so
    that ``reduce_members(loss) == member_means(loss).sum()``. A penalty kept as ``member_means``
    is logged per member to the per-seed W&B runs (:func:`member_terms`).

    >>> import torch
    >>> member_means(torch.tensor([[1.0, 3.0], [10.0, 20.0]]))
    tensor([ 2., 15.])
    """
    return loss.mean(-1)


def member_terms(terms: dict[str, Tensor | float], members: int) -> dict[str, Tensor]:
    """The terms known per member, each as its ``members`` means ``(E,)``: tensors whose leading dim
    is E (per sample ``(E, B)``, or per member ``(E,)``); scalars (a term already reduced over the
    members) are left out. What the per-seed W&B runs of an ensemble get (one run per member).

    >>> import torch
    >>> member_terms({"d/loss": torch.tensor([[1.0, 3.0], [5.0, 7.0]]), "d/r1": torch.tensor(0.5),
    ...               "g/pixel": torch.tensor([0.1, 0.2]), "g_steps": 2.0}, members=2)
    {'d/loss': tensor([2., 6.]), 'g/pixel': tensor([0.1000, 0.2000])}
    """
    return {
        k: v.detach().reshape(members, -1).mean(1)
        for k, v in terms.items()
        if isinstance(v, Tensor) and v.dim() and v.shape[0] == members
    }
