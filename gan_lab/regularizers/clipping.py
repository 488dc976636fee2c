"""Weight clipping (Arjovsky, Chintala & Bottou, 2017): a post-step constraint, not a loss term."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.regularizers.base import Constraint


def clip_weights_(net: nn.Module, clip: float) -> None:
    """Clamp every parameter of ``net`` into ``[-clip, clip]`` in place."""
    with torch.no_grad():
        for p in net.parameters():
            p.clamp_(-clip, clip)


class WeightClipping(Constraint):
    """Clamp D's parameters into ``[-clip, clip]`` after each D step (0.01 in the WGAN paper)."""

    name = "weight_clipping"
    player = "D"
    enforces_lipschitz = True  # D is K-Lipschitz for a K set by the clip (WGAN's own constraint)

    def __init__(self, clip: float = 0.01) -> None:
        super().__init__()
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
            raise ConfigError(f"weight_clipping clip must be a number > 0, got {clip!r}")
        self.clip = float(clip)

    def apply_(self, net: nn.Module) -> None:
        clip_weights_(net, self.clip)

    def project(self, name: str, p: torch.Tensor) -> torch.Tensor:
        """``clamp(p, -clip, clip)``, out of place (its gradient is 0 where it clamps)."""
        return p.clamp(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"clip={self.clip}"
