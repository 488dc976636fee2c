"""A user's own objective for the study tests (importable by class path, as a user's module is):
a margin hinge, hinge with the margin ``m`` an argument."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from gan_lab.losses import Objective


class MarginHinge(Objective):
    """Hinge with margin ``margin``: D loss ``relu(m - r) + relu(m + f)``, G loss ``-f``
    (``margin = 1`` is the lab's ``hinge``)."""

    name = "margin_hinge"

    def __init__(self, margin: float = 1.0) -> None:
        self.margin = float(margin)

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(self.margin - real_logits) + F.relu(self.margin + fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits
