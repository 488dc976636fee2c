"""Tests of the super-resolution nets (gan_lab.paired.nets): SRResNet and PatchDiscriminator.

References: ``F.interpolate(..., mode="bicubic")`` for the bicubic skip and the paired D's
upsampled condition; autograd for per-sample independence (the gradient of sample i's logit with
respect to sample j is exactly zero, which a BatchNorm would break).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from gan_lab.errors import ConfigError
from gan_lab.paired.nets import PatchDiscriminator, SRResNet
from gan_lab.regularizers import WGANGP, PenaltyInputs


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def small_G(**kw) -> SRResNet:
    return SRResNet(**{"channels": 3, "width": 8, "blocks": 2, **kw})


def small_D(**kw) -> PatchDiscriminator:
    return PatchDiscriminator(**{"channels": 3, "width": 8, "n_layers": 2, **kw})


# --------------------------------------------------------------------------------------------------
# SRResNet
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "channels"), [(4, 3), (2, 3), (8, 1), (4, 1)])
def test_generator_upscales_by_its_scale(scale, channels):
    G = small_G(scale=scale, channels=channels)
    out = G(torch.randn(2, channels, 12, 10))
    assert out.shape == (2, channels, 12 * scale, 10 * scale)


def test_generator_is_deterministic_without_noise():
    G = small_G()
    assert G.z_dim == 0
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(G(x), G(x, None))
    torch.testing.assert_close(G(x, torch.empty(3, 0)), G(x))
    with pytest.raises(ValueError, match="z_dim = 0"):
        G(x, torch.randn(3, 4))


def test_tanh_output_lies_in_open_unit_interval():
    G = small_G(output="tanh")
    out = G(10 * torch.randn(2, 3, 8, 8))
    assert out.abs().max() < 1.0


def test_untrained_bicubic_skip_generator_is_bicubic_upsampling():
    G = small_G(output="identity", bicubic_skip=True)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    ref = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False)
    torch.testing.assert_close(G(x), ref)


def test_bicubic_skip_generator_trains_away_from_bicubic():
    G = small_G(output="identity", bicubic_skip=True)
    x, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 32, 32)
    (G(x) - target).abs().mean().backward()
    assert G.tail.weight.grad.abs().sum() > 0  # the zero-initialised tail still learns


def test_upsampling_starts_without_checkerboard():
    """ICNR: each pixel-shuffle stage starts as nearest-neighbour upsampling of one conv."""
    G = small_G()
    h = torch.randn(2, G.width, 6, 6)
    for k in range(0, len(G.upsample), 3):
        h = G.upsample[k : k + 3](h)  # conv, PixelShuffle(2), PReLU
        torch.testing.assert_close(h, F.interpolate(h[..., ::2, ::2], scale_factor=2, mode="nearest"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 3}, "power of 2"),
        ({"scale": 1}, "scale"),
        ({"width": 0}, "width"),
        ({"blocks": -1}, "blocks"),
        ({"output": "sigmoid"}, "output"),
        ({"output": "tanh", "bicubic_skip": True}, "identity"),
    ],
)
def test_generator_refuses_bad_configs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        small_G(**kwargs)


def test_generator_refuses_wrong_channel_count():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        small_G()(torch.randn(2, 1, 8, 8))


# --------------------------------------------------------------------------------------------------
# PatchDiscriminator
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_discriminator_returns_the_mean_patch_logit_per_sample(n_layers):
    D = small_D(n_layers=n_layers)
    x = torch.randn(4, 3, 64, 64)
    logits = D(x)
    patches = D.patch_logits(x)
    assert logits.shape == (4,)
    assert patches.shape[:2] == (4, 1) and patches.shape[-1] > 1  # a map of patches, not one logit
    torch.testing.assert_close(logits, patches.mean(dim=(1, 2, 3)))


def test_default_discriminator_gives_a_6x6_patch_map_on_64px():
    # 64×64 input, 3 strided layers: 32, 16, 8, then 7 and 6 patches per side.
    D = PatchDiscriminator(channels=3, width=8)
    assert D.patch_logits(torch.randn(1, 3, 64, 64)).shape == (1, 1, 6, 6)


@pytest.mark.parametrize("sn", [False, True])
@pytest.mark.parametrize("paired", [False, True])
def test_discriminator_has_no_normalisation_layer(sn, paired):
    D = small_D(spectral_norm=sn, paired=paired)
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
    assert not [m for m in D.modules() if isinstance(m, norms)]


@pytest.mark.parametrize("sn", [False, True])
@pytest.mark.parametrize("paired", [False, True])
def test_each_logit_depends_on_its_own_sample_only(sn, paired):
    D = small_D(spectral_norm=sn, paired=paired).train()
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    cond = torch.randn(3, 3, 8, 8, requires_grad=True) if paired else None
    logits = D(x, cond) if paired else D(x)
    (grad_x,) = torch.autograd.grad(logits[1], x, retain_graph=True)
    assert grad_x[1].abs().sum() > 0
    assert grad_x[0].abs().max() == 0 and grad_x[2].abs().max() == 0
    if paired:
        (grad_c,) = torch.autograd.grad(logits[1], cond)
        assert grad_c[1].abs().sum() > 0
        assert grad_c[0].abs().max() == 0 and grad_c[2].abs().max() == 0


def test_logits_do_not_depend_on_batch_composition():
    D = small_D(paired=True).eval()
    x, c = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(D(x, c)[:2], D(x[:2], c[:2]))


def test_paired_discriminator_concatenates_the_bicubic_condition():
    D = small_D(paired=True)
    x, c = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 8, 8)
    up = F.interpolate(c, size=(32, 32), mode="bicubic", align_corners=False)
    ref = D.net(torch.cat([x, up], dim=1)).mean(dim=(1, 2, 3))
    torch.testing.assert_close(D(x, c), ref)
    assert not torch.allclose(D(x, c), D(x, torch.randn(2, 3, 8, 8)))  # the condition matters


def test_paired_and_unpaired_calls_are_checked():
    with pytest.raises(ValueError, match="condition is None"):
        small_D(paired=True)(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="unpaired"):
        small_D()(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="samples"):
        small_D(paired=True)(torch.randn(2, 3, 32, 32), torch.randn(3, 3, 8, 8))


def test_spectral_norm_wraps_every_conv_and_bounds_its_norm():
    D = small_D(spectral_norm=True).train()
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(parametrize.is_parametrized(m, "weight") for m in convs)
    with torch.no_grad():
        for _ in range(15):  # power iterations, one per forward in train mode
            D(torch.randn(1, 3, 16, 16))
        D.eval()
        sigmas = [float(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)) for m in convs]
    assert sigmas == pytest.approx([1.0] * len(convs), abs=0.05)


def test_wgan_gp_penalty_is_per_sample_on_the_paired_discriminator():
    D = small_D(paired=True)
    real, fake, cond = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32), torch.randn(3, 3, 8, 8)
    inputs = PenaltyInputs(lambda x: D(x, cond), real, fake, condition=cond)
    penalty = WGANGP().penalty(inputs)
    assert penalty.shape == (3,) and torch.isfinite(penalty).all()
    penalty.sum().backward()
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs)


def test_generator_and_discriminator_compose_as_a_paired_gan():
    G, D = small_G(), small_D(paired=True)
    lr = torch.randn(2, 3, 16, 16)
    out = G(lr)
    assert out.shape == (2, 3, 64, 64)
    assert D(out, lr).shape == (2,)
