"""One-sided label smoothing (Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 3.4):
D's target on real samples is 0.9 instead of 1; G's loss is the non-saturating one."""

import torch.nn.functional as F
from torch import Tensor

from gan_lab.losses import Objective


class SmoothedNonSaturating(Objective):
    name = "smoothed_non_saturating"

    def __init__(self, real_target: float = 0.9):
        self.real_target = real_target

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # -t log D(x) - (1 - t) log(1 - D(x)) - log(1 - D(G(z))), per sample, in stable form:
        # -log sigmoid(r) = softplus(-r), -log(1 - sigmoid(r)) = softplus(r)
        t = self.real_target
        return t * F.softplus(-real_logits) + (1 - t) * F.softplus(real_logits) + F.softplus(fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return F.softplus(-fake_logits)  # -log D(G(z))
