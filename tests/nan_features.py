"""A feature net for `gan-lab metrics` tests: :class:`~fake_features.RandomProjection` whose features
are NaN for every image with a white top-left pixel (a stand-in for a feature net that breaks on
some inputs)."""

from __future__ import annotations

import torch
from fake_features import RandomProjection
from torch import Tensor


class NanOnWhiteCorner(RandomProjection):
    """``RandomProjection``, with NaN in feature 0 of images whose pixel (0, 0) is 1 in every channel."""

    name = "nan_on_white_corner"

    def forward(self, x: Tensor) -> Tensor:
        out = super().forward(x)
        white = (x[:, :, 0, 0] == 1.0).all(1)  # (B,)
        out[white, 0] = torch.nan
        return out
