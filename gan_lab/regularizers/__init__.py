"""Regularizers (penalty terms on D or G) and constraints (weight clipping), by name."""

from __future__ import annotations

from gan_lab.registry import Registry
from gan_lab.regularizers.base import Constraint, PenaltyInputs, Regularizer
from gan_lab.regularizers.clipping import WeightClipping
from gan_lab.regularizers.gradient_penalty import DRAGAN, R1, R2, WGANGP, OneSidedGP
from gan_lab.regularizers.image import PerceptualLoss, PixelLoss, SobelEdgeLoss, StyleLoss

#: name -> Regularizer or Constraint class; add one with ``@register`` (under its ``name``)
REGULARIZERS: Registry[Regularizer | Constraint] = Registry(
    "regularizer",
    base=(Regularizer, Constraint),
    entries=(
        WGANGP,
        OneSidedGP,
        DRAGAN,
        R1,
        R2,
        WeightClipping,
        PixelLoss,
        PerceptualLoss,
        StyleLoss,
        SobelEdgeLoss,
    ),
)

#: ``@register`` adds a Regularizer or Constraint class under ``cls.name`` (a taken name is refused)
register = REGULARIZERS.register


def get_regularizer(reg: str | Regularizer | Constraint) -> Regularizer | Constraint:
    """Build a regularizer from its name with default weights, or pass an instance through.

    >>> get_regularizer("r1")
    R1(weight=10.0, every=1)
    """
    return REGULARIZERS.get(reg)


__all__ = [
    "DRAGAN",
    "R1",
    "R2",
    "REGULARIZERS",
    "WGANGP",
    "Constraint",
    "OneSidedGP",
    "PenaltyInputs",
    "PerceptualLoss",
    "PixelLoss",
    "Regularizer",
    "SobelEdgeLoss",
    "StyleLoss",
    "WeightClipping",
    "get_regularizer",
    "register",
]
