"""Tests of weight clipping (gan_lab.regularizers.clipping): a post-step constraint on D."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.regularizers import Constraint, WeightClipping, get_regularizer
from gan_lab.regularizers.clipping import clip_weights_


def _net(scale: float = 1.0) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(scale * torch.randn_like(p))
    return net


def test_defaults_and_registry():
    clip = get_regularizer("weight_clipping")
    assert isinstance(clip, WeightClipping) and isinstance(clip, Constraint)
    assert clip.clip == 0.01  # the WGAN paper's c
    assert clip.player == "D"
    assert clip.name == "weight_clipping"
    assert repr(clip) == "WeightClipping(clip=0.01)"


@pytest.mark.parametrize("c", [0.01, 0.5])
def test_clamps_every_parameter_and_keeps_inside_values(c):
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    assert any((p.abs() > c).any() for p in before)  # something to clip
    WeightClipping(c).apply_(net)
    for p, p0 in zip(net.parameters(), before):
        assert p.min() >= -c and p.max() <= c
        inside = p0.abs() <= c
        assert torch.equal(p[inside], p0[inside])  # untouched inside [-c, c]
        torch.testing.assert_close(p[~inside], c * p0[~inside].sign(), rtol=0, atol=0)  # to the edge


def test_is_a_projection():
    net = _net()
    clip = WeightClipping(0.1)
    clip.apply_(net)
    once = [p.detach().clone() for p in net.parameters()]
    clip.apply_(net)
    for p, p1 in zip(net.parameters(), once):
        assert torch.equal(p, p1)


def test_leaves_small_net_unchanged_and_keeps_autograd_state():
    net = _net(scale=1e-3)
    before = [p.detach().clone() for p in net.parameters()]
    WeightClipping(0.01).apply_(net)
    for p, p0 in zip(net.parameters(), before):
        assert torch.equal(p, p0)
        assert p.requires_grad and p.is_leaf


def test_module_equals_function():
    """``WeightClipping(c).apply_`` (the class's own path) and ``clip_weights_(net, c)`` (the
    functional core) both give every parameter ``min(max(p, -c), c)``, computed here out of place
    from the weights before, elementwise with ``torch.where`` (not ``clamp``)."""
    c = 0.05
    a, b = _net(), _net()
    before = [p.detach().clone() for p in a.parameters()]
    expected = [torch.where(p0 > c, c, torch.where(p0 < -c, -c, p0)) for p0 in before]
    assert any((p0 < -c).any() for p0 in before) and any((p0 > c).any() for p0 in before)  # both sides
    WeightClipping(c).apply_(a)
    clip_weights_(b, c)
    for (name, pa), pb, e in zip(a.named_parameters(), b.parameters(), expected, strict=True):
        for path, p in (("WeightClipping.apply_", pa), ("clip_weights_", pb)):
            wrong = int((p != e).sum())
            assert not wrong, f"{path}: {wrong} of {e.numel()} entries of {name} are not clamp(p, -c, c)"


@pytest.mark.parametrize("clip", [0, 0.0, -0.01, float("nan"), "0.01", None, True])
def test_bad_clip_raises(clip):
    with pytest.raises(ConfigError, match="clip"):
        WeightClipping(clip)
