"""Inception Score from classifier logits (Salimans et al., 2016, "Improved Techniques for Training
GANs"; Inception-v3's 1008 logits as torch-fidelity's ``logits_unbiased``, or any classifier's).

For one split of ``n`` samples with class posteriors ``p(y|x)`` and marginal
``p(y) = (1/n) Σ_x p(y|x)``:

    IS = exp( (1/n) Σ_x KL(p(y|x) ‖ p(y)) ),    KL = Σ_y p(y|x) (log p(y|x) − log p(y))

The ``N`` samples are cut into ``splits`` contiguous splits ``[i·N // splits, (i+1)·N // splits)``
(the original code's and torch-fidelity's boundaries); the result is the mean and std (ddof 0,
as both report it) of the per-split scores. ``log p(y|x)`` is ``log_softmax`` of the logits and
``log p(y)`` a ``logsumexp`` of it (no log of an underflowed 0), all in float64. IS lies in
``[1, C]`` for ``C`` classes: 1 when every posterior is the same, ``C`` when each sample is
certain of its class and the classes are used equally often.

:func:`inception_score` splits the logits in the order given (shuffle them first if that order
means something, e.g. class-sorted data); :class:`InceptionScore` puts them in a canonical order
and shuffles with a fixed seed, so its result depends only on the set of samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from gan_lab.errors import ConfigError, check_int
from gan_lab.metrics.feature_sets import gather_features
from gan_lab.metrics.kid import canonical_sort

__all__ = ["InceptionScore", "inception_score"]


def inception_score(logits: Tensor, splits: int = 10) -> tuple[Tensor, Tensor]:
    """Inception Score ``exp(E_x KL(p(y|x) ‖ p(y)))`` per split: mean and std (ddof 0) over splits.

    Args:
        logits: ``(N, C)`` classifier logits (not probabilities), ``N ≥ splits``.
        splits: number of contiguous splits (module docstring).

    Returns:
        ``(mean, std)``, float64 scalars.

    Raises:
        ConfigError: ``splits < 1`` or fewer samples than splits.
        ValueError: ``logits`` not 2-D.

    >>> inception_score(torch.zeros(10, 5), splits=2)  # every posterior uniform: IS 1
    (tensor(1., dtype=torch.float64), tensor(0., dtype=torch.float64))
    >>> confident = 100.0 * torch.eye(4).repeat(2, 1)  # (8, 4), each class twice
    >>> [round(v.item(), 6) for v in inception_score(confident, splits=2)]
    [4.0, 0.0]
    """
    check_int("IS splits", splits)
    logits = torch.as_tensor(logits).detach()
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(logits.shape)}")
    n = logits.shape[0]
    if n < splits:
        raise ConfigError(
            f"the Inception Score needs at least one sample per split, got {n} samples for {splits} splits"
        )
    log_p = torch.log_softmax(logits.to(torch.float64), dim=1)  # (N, C)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]  # (n_i, C)
        log_marginal = torch.logsumexp(part, dim=0) - math.log(part.shape[0])  # (C,)
        kl = (part.exp() * (part - log_marginal)).sum(1)  # (n_i,)
        scores.append(kl.mean().exp())
    scores_t = torch.stack(scores).cpu()
    return scores_t.mean(), scores_t.std(correction=0)


class InceptionScore(Metric):
    """Inception Score (Salimans et al., 2016) over logits accumulated by ``update``.

    State: the logits, a list concatenated across processes (``dist_reduce_fx="cat"``).
    ``compute`` sorts them canonically and shuffles them with a generator seeded ``seed`` before
    cutting the splits, so the result depends neither on the order of the samples nor on the DDP
    rank order, and the splits are a random partition (not, say, one class per split).

    Args:
        splits: number of splits.
        seed: seed of the shuffle.
        kwargs: passed to ``torchmetrics.Metric``.

    >>> metric = InceptionScore(splits=1)
    >>> metric.update(100.0 * torch.eye(4))  # four confident samples, one per class
    >>> metric.update(100.0 * torch.eye(4))
    >>> [round(v.item(), 6) for v in metric.compute()]  # IS = number of classes
    [4.0, 0.0]
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    logits: list[Tensor]

    def __init__(self, splits: int = 10, seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("dist_sync_fn", gather_features)  # a rank may hold no samples
        super().__init__(**kwargs)
        self.splits = check_int("IS splits", splits)
        self.seed = check_int("IS seed", seed, minimum=0)
        self.add_state("logits", default=[], dist_reduce_fx="cat")

    def update(self, logits: Tensor) -> None:
        """Add a batch of logits ``(B, C)``."""
        logits = torch.as_tensor(logits).detach()
        if logits.dim() != 2:
            raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
        self.logits.append(logits)

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` over the splits, float64 scalars."""
        if not isinstance(self.logits, Tensor) and len(self.logits) == 0:
            raise ConfigError("InceptionScore has no samples: call update(logits) first")
        logits = canonical_sort(dim_zero_cat(self.logits))
        order = torch.randperm(logits.shape[0], generator=torch.Generator().manual_seed(self.seed))
        return inception_score(logits[order.to(logits.device)], self.splits)

    def extra_repr(self) -> str:
        return f"splits={self.splits}, seed={self.seed}"
