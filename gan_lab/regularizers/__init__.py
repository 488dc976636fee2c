"""Regularizers (penalty terms on D or G) and constraints (weight clipping), by name."""

from __future__ import annotations

from gan_lab.errors import check_choice
from gan_lab.regularizers.base import Constraint, PenaltyInputs, Regularizer
from gan_lab.regularizers.clipping import WeightClipping
from gan_lab.regularizers.gradient_penalty import DRAGAN, R1, R2, WGANGP, OneSidedGP
from gan_lab.regularizers.image import PerceptualLoss, PixelLoss, SobelEdgeLoss, StyleLoss

REGULARIZERS: dict[str, type[Regularizer] | type[Constraint]] = {
    cls.name: cls
    for cls in (
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
    )
}


def register(cls):
    """Add a Regularizer or Constraint class to the registry under ``cls.name``."""
    REGULARIZERS[cls.name] = cls
    return cls


def get_regularizer(reg: str | Regularizer | Constraint) -> Regularizer | Constraint:
    """Build a regularizer from its name with default weights, or pass an instance through.

    >>> get_regularizer("r1")
    R1(weight=10.0, every=1)
    """
    if isinstance(reg, (Regularizer, Constraint)):
        return reg
    check_choice("regularizer", reg, REGULARIZERS)
    return REGULARIZERS[reg]()


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
