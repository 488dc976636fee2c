"""Adversarial objectives: pure per-sample functions of D's logits, and a registry by name."""

from __future__ import annotations

from gan_lab.errors import check_choice
from gan_lab.losses.objectives import (
    Hinge,
    LeastSquares,
    Minimax,
    NonSaturating,
    Objective,
    Relativistic,
    Wasserstein,
)

OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (Minimax, NonSaturating, Wasserstein, Hinge, LeastSquares, Relativistic)
}


def get_objective(objective: str | Objective) -> Objective:
    """Return an :class:`Objective` from its name (``"hinge"``) or pass an instance through.

    >>> get_objective("hinge")
    Hinge()
    """
    if isinstance(objective, Objective):
        return objective
    check_choice("objective", objective, OBJECTIVES)
    return OBJECTIVES[objective]()


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
