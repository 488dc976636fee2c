"""Entropy, cross-entropy, KL and JS divergences of discrete distributions, in nats.

Every function takes probability vectors along the **last** dim, ``p`` and ``q`` of shape
``(..., K)`` (leading dims broadcast against each other), and returns one value per vector, of
shape ``(...)``. Logs are natural (nats); divide by ``ln 2`` for bits.

    H(p)       = -Σ_k p_k log p_k                          entropy (Shannon, 1948)
    H(p, q)    = -Σ_k p_k log q_k                          cross-entropy
    KL(p ‖ q)  =  Σ_k p_k log(p_k / q_k) = H(p, q) - H(p)  Kullback & Leibler (1951)
    JS(p, q)   = ½ KL(p ‖ m) + ½ KL(q ‖ m),  m = ½(p + q)  Lin (1991)

Conventions (those of information theory, and of ``scipy.special.rel_entr``), implemented
exactly:

- ``0 · log 0 = 0`` and ``0 · log(0 / q) = 0`` for any ``q``, also ``q = 0``: a term with
  ``p_k = 0`` contributes exactly 0 (and 0 to the gradient with respect to ``q_k``).
- ``KL(p ‖ q) = H(p, q) = +inf`` when ``q_k = 0`` for some ``k`` with ``p_k > 0`` (``q`` misses
  part of the support of ``p``).
- ``JS`` is symmetric, always finite, and ``0 ≤ JS ≤ ln 2``; ``ln 2`` exactly when ``p`` and ``q``
  have disjoint supports.

Direction matters for KL: with ``p`` the model's distribution and ``q`` the data's,
``KL(p_model ‖ p_data)`` is the *reverse* KL that stays small when the model drops modes and
``KL(p_data ‖ p_model)`` the *forward* KL that blows up when it does; pass the arguments in the
order you mean.

Inputs are **not** normalised here: they must already be probability vectors (non-negative,
summing to 1 along the last dim). Negative entries raise ``ValueError``; the sum is not checked
(a histogram that is off by rounding is fine). NaN inputs give NaN outputs.

Every term is computed as ``xlogy(p, ·)`` with the masked entries replaced by 1 *before* the log
(``torch.where`` on the inputs, not on the output), so no ``0 · (-inf)`` or ``0 / 0`` appears,
neither in the value nor in the backward pass: gradients are finite wherever the divergence is
differentiable and never NaN. At ``p_k = 0`` (where ``d/dp (p log p)`` is ``-inf``) the gradient
with respect to ``p_k`` is that of the constant-0 branch.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cross_entropy", "entropy", "js_divergence", "kl_divergence"]


def _check(name: str, x: Tensor) -> Tensor:
    x = torch.as_tensor(x)
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dim (the K outcomes, last), got a scalar")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if bool((x < 0).any()):
        raise ValueError(f"{name} must be a probability vector along the last dim; it has negative entries")
    return x


def _check_pair(p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    p, q = _check("p", p), _check("q", q)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"p and q must have the same number of outcomes (last dim), got {p.shape[-1]} and {q.shape[-1]}"
        )
    return p, q


def _plogp(p: Tensor) -> Tensor:
    """``p log p`` per entry, with ``0 log 0 = 0`` and a finite (0) gradient at ``p = 0``."""
    return torch.xlogy(p, torch.where(p > 0, p, torch.ones_like(p)))


def _plogq(p: Tensor, q: Tensor) -> Tensor:
    """``p log q`` per entry: 0 where ``p = 0`` (whatever ``q``), ``-inf`` where ``p > 0, q = 0``."""
    return torch.xlogy(p, torch.where(p > 0, q, torch.ones_like(q)))


def entropy(p: Tensor) -> Tensor:
    """Shannon entropy ``H(p) = -Σ_k p_k log p_k`` in nats, with ``0 log 0 = 0``.

    ``0 ≤ H(p) ≤ log K``, the maximum at the uniform distribution.

    Args:
        p: probabilities ``(..., K)`` along the last dim.

    Returns:
        ``(...)``.

    Raises:
        ValueError: if ``p`` is a scalar or has negative entries.

    >>> entropy(torch.tensor([0.5, 0.5, 0.0]))  # log 2
    tensor(0.6931)
    >>> entropy(torch.tensor([[1.0, 0.0], [0.25, 0.75]]))
    tensor([0.0000, 0.5623])
    """
    p = _check("p", p)
    return 0.0 - _plogp(p).sum(-1)  # 0.0 - x, not -x: a certain outcome has entropy +0, not -0


def cross_entropy(p: Tensor, q: Tensor) -> Tensor:
    """Cross-entropy ``H(p, q) = -Σ_k p_k log q_k`` in nats (not ``torch.nn.functional.cross_entropy``,
    which takes logits and class indices).

    Terms with ``p_k = 0`` are 0 (also when ``q_k = 0``); ``+inf`` when ``q_k = 0`` where ``p_k > 0``.
    ``H(p, q) = H(p) + KL(p ‖ q) ≥ H(p)``.

    Args:
        p, q: probabilities ``(..., K)``; leading dims broadcast.

    Returns:
        ``(...)``.

    Raises:
        ValueError: if either has negative entries, or their last dims differ.

    >>> cross_entropy(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]))  # log 2
    tensor(0.6931)
    >>> cross_entropy(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]))
    tensor(inf)
    """
    p, q = _check_pair(p, q)
    return 0.0 - _plogq(p, q).sum(-1)  # +0, not -0, for H(p, p) of a certain outcome


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Kullback-Leibler divergence ``KL(p ‖ q) = Σ_k p_k log(p_k / q_k)`` in nats.

    Each term is ``p_k log p_k - p_k log q_k``, 0 where ``p_k = 0`` (also ``0 log(0/0) = 0``);
    ``+inf`` when ``q_k = 0`` where ``p_k > 0``. ``KL ≥ 0``, with equality iff ``p = q``; it is not
    symmetric (see the module docstring for forward vs reverse). Matches
    ``scipy.stats.entropy(p, q)`` on normalised inputs.

    Args:
        p, q: probabilities ``(..., K)``; leading dims broadcast.

    Returns:
        ``(...)``.

    Raises:
        ValueError: if either has negative entries, or their last dims differ.

    >>> u = torch.full((4,), 0.25)
    >>> kl_divergence(torch.tensor([1.0, 0.0, 0.0, 0.0]), u)  # log 4
    tensor(1.3863)
    >>> kl_divergence(u, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    tensor(inf)
    >>> kl_divergence(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.5, 0.5, 0.0]))
    tensor(0.)
    """
    p, q = _check_pair(p, q)
    return (_plogp(p) - _plogq(p, q)).sum(-1)


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence ``JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m)``, ``m = ½(p + q)``, in nats
    (Lin, 1991).

    Symmetric and always finite (``m_k > 0`` wherever ``p_k > 0`` or ``q_k > 0``):
    ``0 ≤ JS ≤ ln 2``, 0 iff ``p = q``, ``ln 2`` iff the supports are disjoint. It is the square of
    ``scipy.spatial.distance.jensenshannon(p, q)`` (natural base), and the divergence the original
    GAN's optimal-D value measures: ``V(D*, G) = 2 JS(p_data, p_g) - log 4`` (Goodfellow et al.,
    2014). The value is not clamped, so it may exceed ``ln 2`` or fall below 0 by rounding.

    Args:
        p, q: probabilities ``(..., K)``; leading dims broadcast.

    Returns:
        ``(...)``.

    Raises:
        ValueError: if either has negative entries, or their last dims differ.

    >>> js_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))  # disjoint: ln 2
    tensor(0.6931)
    >>> js_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]))
    tensor(0.)
    """
    p, q = _check_pair(p, q)
    m = 0.5 * (p + q)  # (..., K)
    kl_pm = (_plogp(p) - _plogq(p, m)).sum(-1)
    kl_qm = (_plogp(q) - _plogq(q, m)).sum(-1)
    return 0.5 * (kl_pm + kl_qm)
