"""Adversarial objectives: pure per-sample functions of D's logits, and a registry by name."""

from __future__ import annotations

from gan_lab.losses.objectives import (
    Hinge,
    LeastSquares,
    Minimax,
    NonSaturating,
    Objective,
    Relativistic,
    Wasserstein,
)
from gan_lab.registry import Registry

#: name -> Objective class; add one with ``@OBJECTIVES.register`` (under its ``name``)
OBJECTIVES: Registry[Objective] = Registry(
    "objective",
    base=Objective,
    entries=(Minimax, NonSaturating, Wasserstein, Hinge, LeastSquares, Relativistic),
)


def get_objective(objective: str | Objective) -> Objective:
    """Return an :class:`Objective` from its name (``"hinge"``) or pass an instance through.

    >>> get_objective("hinge")
    Hinge()
    >>> get_objective("hing")
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: unknown objective 'hing'; valid objectives: hinge, least_squares, minimax, non_saturating, relativistic, wasserstein
    """
    return OBJECTIVES.get(objective)


__all__ = [
    "OBJECTIVES",
    "Hinge",
    "LeastSquares",
    "Minimax",
    "NonSaturating",
    "Objective",
    "Relativistic",
    "Wasserstein",
    "get_objective",
]
