"""SN-ResNet for CIFAR-10 (gan_lab.nets.resnet; Miyato et al. 2018, table 4).

References: parameter counts computed by hand from the paper's table; ``torch.linalg.matrix_norm``
for spectral norm; Xavier-uniform's bound and variance for the initialisation; each sample alone
for per-sample gradient penalties; the plain-format run for channels_last.
"""

from __future__ import annotations

import math

import pytest
import torch
from random_images import all_finite, tiny_fit
from torch import nn
from torch.nn.utils import parametrize

from gan_lab.errors import ConfigError
from gan_lab.nets import SNResNetDiscriminator, SNResNetGenerator
from gan_lab.nets.spec import build_net, net_spec
from gan_lab.regularizers import WGANGP, PenaltyInputs
from gan_lab.settings import Speed

SIZES = [16, 28, 32, 64]


def small(channels=3, size=32, seed=0):
    return (
        SNResNetGenerator(z_dim=8, ngf=8, out_channels=channels, size=size, seed=seed),
        SNResNetDiscriminator(in_channels=channels, ndf=8, size=size, seed=seed),
    )


def _sides(net: nn.Module, x: torch.Tensor) -> list[int]:
    """The spatial side after each residual block of ``net`` on input ``x``."""
    sides: list[int] = []
    hooks = [b.register_forward_hook(lambda m, a, out: sides.append(out.shape[-1])) for b in net.blocks]
    net(x)
    for h in hooks:
        h.remove()
    return sides


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", SIZES)
def test_shapes_at_every_size(size, channels):
    G, D = small(channels, size)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D(x).shape == (3,)
    assert (G.z_dim, G.out_channels, G.size, D.in_channels, D.size) == (8, channels, size, channels, size)
    bottom = 7 if size == 28 else 4
    assert _sides(G, torch.randn(2, 8)) == [
        bottom * 2**k for k in range(1, round(math.log2(size / bottom)) + 1)
    ]
    down = [
        size // 2**k for k in range(1, round(math.log2(size / (7 if size == 28 else 8))) + 1)
    ]  # to 8 (7) px
    assert _sides(D, x) == down + [down[-1]] * (4 - len(down))


def test_cifar10_nets_have_the_papers_parameter_counts():
    """Miyato et al. table 4 at 32 px, z 128, G 256 and D 128 channels, counted by hand:
    G: linear 128→4·4·256; 3 × [BN, conv3×3, BN, conv3×3, conv1×1 shortcut]; BN; conv3×3 → 3.
    D: optimized block (3→128, 1×1 shortcut); down block (1×1 shortcut); 2 blocks (identity); linear."""
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    g_block = 2 * 2 * 256 + 2 * conv(256, 256, 3) + conv(256, 256, 1)
    g = (128 * 4096 + 4096) + 3 * g_block + 2 * 256 + conv(256, 3, 3)
    d_block = 2 * conv(128, 128, 3)
    d = (
        conv(3, 128, 3)
        + conv(128, 128, 3)
        + conv(3, 128, 1)
        + d_block
        + conv(128, 128, 1)
        + 2 * d_block
        + 129
    )
    G, D = SNResNetGenerator(), SNResNetDiscriminator()
    assert sum(p.numel() for p in G.parameters()) == g == 4_276_739
    assert sum(p.numel() for p in D.parameters()) == d == 1_053_825
    assert [b.c_sc is None for b in D.blocks] == [False, False, True, True]  # identity shortcuts
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    assert not any(parametrize.is_parametrized(m) for m in G.modules())


def test_generator_blocks_upsample_by_nearest_neighbour():
    """With the residual branch silenced (c2 = 0), a GBlock is its shortcut conv1×1(up(x)): under
    nearest-neighbour ×2 every 2×2 patch of the output is one value (bilinear would blend them)."""
    G, _ = small(size=16)
    block = G.blocks[0]
    with torch.no_grad():
        block.c2.weight.zero_()
        block.c2.bias.zero_()
        y = block(torch.randn(2, 8, 4, 4))  # (2, 8, 8, 8)
    patches = y.unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)  # (2, 8, 4, 4, 4): each 2×2 patch
    assert y.shape == (2, 8, 8, 8) and patches.std(-1).max() == 0
    assert y.std() > 0


def test_discriminator_blocks_are_pre_activation():
    """A DBlock after the first sees its input through a ReLU: with an identity shortcut,
    block(x) − x depends on relu(x) only. The optimized first block sees the raw image."""
    _, D = small(size=16)
    x = torch.randn(2, 8, 8, 8)
    D.eval()
    with torch.no_grad():
        plain = D.blocks[2]
        assert plain.c_sc is None
        torch.testing.assert_close(plain(x) - x, plain(x.relu()) - x.relu())
        first = D.blocks[0]
        residual = lambda im: first(im) - first.c_sc(torch.nn.functional.avg_pool2d(im, 2))  # noqa: E731
        image = torch.randn(2, 3, 16, 16)
        assert not torch.allclose(residual(image), residual(image.relu()), atol=1e-4)


def test_spectral_norm_on_every_layer_of_D_makes_it_1_lipschitz():
    _, D = small(size=16)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3 + 2 + 2 + 2 + 1  # opt (c1, c2, sc), 3 blocks at 16 px (no shortcut conv), l5
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    D.train()
    with torch.no_grad():
        for _ in range(30):  # one power iteration per forward in train mode
            D(torch.randn(2, 3, 16, 16))
        D.eval()
        sigmas = [float(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)) for m in layers]
    assert sigmas == pytest.approx([1.0] * len(layers), abs=0.02)


def test_xavier_uniform_init_with_the_reference_gains_and_zero_biases():
    """Residual 3×3 convs gain √2, shortcuts / linears / G's last conv gain 1 (the reference code);
    |w| ≤ gain·√(6 / (fan_in + fan_out)) and Var w = gain² · 2 / (fan_in + fan_out)."""
    G, D = SNResNetGenerator(ngf=64), SNResNetDiscriminator(ndf=64)

    def weight(m):
        return m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight

    checked = 0
    for net in (G, D):
        for name, m in net.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            w = weight(m).detach()
            rf = w[0, 0].numel() if w.dim() == 4 else 1
            fan_in, fan_out = w.shape[1] * rf, w.shape[0] * rf
            gain = math.sqrt(2) if name.endswith((".c1", ".c2")) else 1.0
            bound = gain * math.sqrt(6 / (fan_in + fan_out))
            assert w.abs().max() <= bound, name
            if w.numel() >= 1000:
                assert w.var().item() == pytest.approx(bound**2 / 3, rel=0.1), name
            assert m.bias is None or not m.bias.any(), name
            checked += 1
    assert checked == (1 + 3 * 3 + 1) + (3 + 3 + 2 + 2 + 1)


def test_wgan_gp_is_per_sample():
    """Sample i's penalty does not depend on the other samples (D in eval mode: in train mode each
    call moves the power iteration)."""
    _, D = small(size=16)
    D.eval()
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 3, 16, 16, generator=g), torch.randn(4, 3, 16, 16, generator=g)
    eps = torch.rand(4, generator=g)

    def penalty(i: slice) -> torch.Tensor:
        rand = lambda shape: eps[i].reshape(shape)  # noqa: E731
        return WGANGP().penalty(PenaltyInputs(D, real[i], fake[i], rand=rand))

    together = penalty(slice(None))
    alone = torch.cat([penalty(slice(i, i + 1)) for i in range(4)])
    assert together.shape == (4,) and bool((together > 0).all())
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-7)


def test_seeded_and_rebuilt_from_its_spec():
    torch.manual_seed(1)
    a = small(size=16, seed=3)
    torch.manual_seed(2)
    b = small(size=16, seed=3)
    c = small(size=16, seed=4)
    for x, y, z in zip(a, b, c):
        sx, sy, sz = x.state_dict(), y.state_dict(), z.state_dict()
        assert all(torch.equal(sx[k], sy[k]) for k in sx)  # whatever the global RNG did before
        assert any(not torch.equal(sx[k], sz[k]) for k in sx)
    G, D = a
    assert net_spec(D)["init_args"] == {"in_channels": 3, "ndf": 8, "size": 16, "seed": 3}
    for net, x in ((G, torch.randn(3, 8)), (D, torch.randn(3, 3, 16, 16))):
        with torch.no_grad():
            net.train()(x)  # BatchNorm statistics / the power iteration move away from the init
        copy = build_net(net_spec(net))
        copy.load_state_dict(net.state_dict())
        assert torch.equal(copy.eval()(x), net.eval()(x))


def test_spectral_norm_weights_are_float32_under_autocast():
    _, D = small(size=16)
    seen = []
    for m in D.modules():
        if parametrize.is_parametrized(m, "weight"):
            m.parametrizations.weight[0].register_forward_hook(
                lambda mod, args, out: seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
            )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        D(torch.randn(2, 3, 16, 16))
    assert len(seen) == 10 and set(seen) == {(False, torch.float32)}


@pytest.mark.parametrize("net", [SNResNetGenerator, SNResNetDiscriminator])
def test_bad_sizes_and_inputs_are_refused(net):
    with pytest.raises(ConfigError, match=r"size must be one of 16, 28, 32, 64"):
        net(size=48)
    with pytest.raises(ConfigError, match=r"SNResNet '(ngf|ndf)'"):
        net(**({"ngf": 0} if net is SNResNetGenerator else {"ndf": 0}))
    G, D = small(channels=1, size=28)
    with pytest.raises(ConfigError, match=r"SNResNetDiscriminator expects \(B, 1, 28, 28\) images"):
        D(torch.randn(2, 1, 32, 32))
    with pytest.raises(ConfigError, match=r"SNResNetGenerator expects noise of shape \(B, 8\)"):
        G(torch.randn(2, 8, 1))


# --------------------------------------------------------------------------------------------------
# Training in the module: precisions, channels_last
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "objective", "regularizers", "channels"),
    [
        ("32-true", "hinge", [], 3),
        ("bf16-mixed", "non_saturating", ["r1"], 1),
        ("16-mixed", "wasserstein", ["wgan_gp"], 3),
    ],
)
def test_fits_in_the_module(precision, objective, regularizers, channels):
    """A few steps of GANModule on random images under each precision: every loss term finite at
    every step, every parameter moved (16-mixed: 6 steps, as the GradScaler skips the first steps
    while it lowers its scale from 2^16), the power iteration's buffers float32."""
    G, D = small(channels=channels, size=16)
    before = {net: [p.detach().clone() for p in net.parameters()] for net in (G, D)}
    steps = 6 if precision == "16-mixed" else 3
    module, rows, _ = tiny_fit(G, D, steps, precision, objective=objective, regularizers=regularizers)
    assert (module.d_steps, module.g_steps) == (steps, steps)
    assert all_finite(rows) and len(rows) == steps, rows
    for net in (G, D):
        for (name, p), p0 in zip(net.named_parameters(), before[net], strict=True):
            assert bool(torch.isfinite(p).all()), name
            if net is D and name == "l5.bias" and objective in ("wasserstein", "hinge"):
                continue  # a shift of all logits cancels in these losses (inside hinge's margins)
            assert not torch.equal(p, p0), f"{type(net).__name__}.{name} did not move"
    buffers = [b for k, b in D.named_buffers() if k.endswith("._u")]
    assert buffers and all(b.dtype == torch.float32 for b in buffers)


def test_channels_last_trains_the_same():
    """channels_last changes the memory format of weights and batches, not the training: the
    weights after 3 steps are the plain run's (to float32 summation-order noise)."""

    def fit(channels_last: bool):
        module, rows, _ = tiny_fit(
            *small(size=16), 3, objective="hinge", speed=Speed(channels_last=channels_last)
        )
        return module, rows

    (plain, _), (fast, rows) = fit(False), fit(True)
    assert all_finite(rows)
    conv = fast.D.blocks[1].c1
    assert conv.parametrizations.weight.original.is_contiguous(memory_format=torch.channels_last)
    a, b = plain.state_dict(), fast.state_dict()
    assert a.keys() == b.keys()
    # G's conv / linear biases that feed a BatchNorm get a zero gradient in exact arithmetic (the
    # batch mean removes them): Adam turns their rounding noise into lr-sized steps of random sign,
    # and the running means they shift follow. Everything else must agree.
    layers = [n for n, m in plain.G.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    noise = {f"G.{n}.bias" for n in layers if n != "c5"} | {k for k in a if k.endswith("running_mean")}
    assert len(noise) == (1 + 2 * 3) + 2 * 2 + 1  # l1, 2 blocks × 3 convs; 2 blocks × 2 BNs, b5
    for k in a:
        if k not in noise:
            torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4, msg=k)
