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
from gan_lab.losses.per_member import PerMember
from gan_lab.registry import Registry

#: name -> Objective class; add one with ``@OBJECTIVES.register`` (under its ``name``)
OBJECTIVES: Registry[Objective] = Registry(
    "objective",
    base=Objective,
    entries=(Minimax, NonSaturating, Wasserstein, Hinge, LeastSquares, Relativistic),
)


def get_objective(objective: str | Objective | list[str | Objective]) -> Objective:
    """Return an :class:`Objective` from its name (``"hinge"``) or pass an instance through; a list
    of two or more is a mixed ensemble's :class:`PerMember` (one name in a list: that objective).

    >>> get_objective(["hinge", "minimax"])
    PerMember(hinge, minimax)

    >>> get_objective("hinge")
    Hinge()
    >>> get_objective("hing")
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: unknown objective 'hing'; valid objectives: hinge, least_squares, minimax, non_saturating, relativistic, wasserstein
    """
    if isinstance(objective, (list, tuple)):
        parts = [OBJECTIVES.get(o) for o in objective]
        return parts[0] if len(parts) == 1 else PerMember(parts)
    return OBJECTIVES.get(objective)


__all__ = [
    "OBJECTIVES",
    "Hinge",
    "LeastSquares",
    "Minimax",
    "NonSaturating",
    "Objective",
    "PerMember",
    "Relativistic",
    "Wasserstein",
    "get_objective",
]
