"""A feature net for the image-evaluator tests: a fixed random projection of the flattened image,
through the lab's FeatureNet protocol (found by class path, as a user's own net would be)."""

from __future__ import annotations

import torch
from torch import Tensor

from gan_lab.metrics.features import FeatureNet


class RandomProjection(FeatureNet):
    """``x (B, C, H, W) -> tanh(x.flatten(1) @ W) (B, dim)``, ``W`` seeded (``seed``)."""

    name = "random_projection"
    distance_name = "FD on random-projection features"

    def __init__(self, in_features: int = 3 * 16 * 16, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(in_features, dim, generator=g) / in_features**0.5)
        self.dim, self.weights_hash, self.weights_path = dim, f"seed{seed}", None
        self.freeze()

    def input_handling(self) -> str:
        return "flattened, no resize"

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x.flatten(1) @ self.weight)


class MeanDigit(FeatureNet):
    """A stand-in digit classifier: the digit of a channel is round(5 · (mean + 1)) clipped to 0..9,
    so an image whose channel k is the constant ``d_k / 5 − 1`` reads as the triple (d_1, d_2, d_3)."""

    name = "mean_digit"

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.dim, self.weights_hash, self.channels = channels, "none", channels
        self.freeze()

    def input_handling(self) -> str:
        return "channel means"

    def forward(self, x: Tensor) -> Tensor:
        return x.mean((2, 3))

    def classify(self, x: Tensor) -> Tensor:
        return (5 * (x.mean((2, 3)) + 1)).round().clamp(0, 9).long()  # (B, C)
