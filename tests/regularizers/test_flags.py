"""What every registered regularizer declares to the module: ``needs_input_grad`` (its penalty
takes D's input gradient: per-sample gradients, no SyncBatchNorm) and ``enforces_lipschitz`` (it
constrains D's Lipschitz constant as WGAN's critic needs)."""

from __future__ import annotations

import pytest
import torch

from gan_lab.regularizers import REGULARIZERS, PenaltyInputs, Regularizer, get_regularizer

#: name -> (needs_input_grad, enforces_lipschitz). R1, R2 and DRAGAN take input gradients only at or
#: around the data: they do not make WGAN's critic Lipschitz. Weight clipping bounds it without any
#: input gradient.
FLAGS = {
    "wgan_gp": (True, True),
    "one_sided_gp": (True, True),
    "dragan": (True, False),
    "r1": (True, False),
    "r2": (True, False),
    "weight_clipping": (False, True),
    "pixel": (False, False),
    "perceptual": (False, False),
    "style": (False, False),
    "sobel_edge": (False, False),
}
#: the terms that load VGG16 on use: left out of the behavioural check below (they never call D)
VGG_TERMS = {"perceptual", "style"}


def test_every_registered_regularizer_is_in_the_table():
    assert set(REGULARIZERS) == set(FLAGS)


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_flags(name):
    cls, reg = REGULARIZERS[name], get_regularizer(name)
    assert (cls.needs_input_grad, cls.enforces_lipschitz) == FLAGS[name]
    assert (reg.needs_input_grad, reg.enforces_lipschitz) == FLAGS[name]


@pytest.mark.parametrize(
    "name", [n for n, cls in REGULARIZERS.items() if issubclass(cls, Regularizer) and n not in VGG_TERMS]
)
def test_needs_input_grad_is_what_the_penalty_does(name):
    """The penalty calls D on an input that requires grad iff ``needs_input_grad``."""
    calls: list[bool] = []
    w = torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def D(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.requires_grad)
        return (x * w).flatten(1).sum(1)  # (B,)

    gen = torch.Generator().manual_seed(1)
    real, fake, target = (torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1 for _ in range(3))
    reg = get_regularizer(name)
    penalty = reg.penalty(PenaltyInputs(D=D, real=real, fake=fake, target=target))
    assert penalty.shape == (4,)
    assert any(calls) is reg.needs_input_grad
    if reg.needs_input_grad:  # through the input gradient, the penalty reaches D's parameters
        (grad,) = torch.autograd.grad(penalty.sum(), w)
        assert grad.abs().sum() > 0
