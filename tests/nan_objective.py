"""A test objective that turns NaN at a chosen D step (importable by class path in tests)."""

from gan_lab.losses import NonSaturating


class NaNFromStep(NonSaturating):
    """Non-saturating, but D's loss is NaN from its ``step``-th call on."""

    name = "nan_from_step"

    def __init__(self, step: int = 3) -> None:
        self.step, self.calls = step, 0

    def d_loss(self, real_logits, fake_logits):
        loss = super().d_loss(real_logits, fake_logits)
        self.calls += 1
        return loss * float("nan") if self.calls > self.step else loss
