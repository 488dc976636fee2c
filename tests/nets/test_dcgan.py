"""DCGAN at 16, 28, 32 and 64 px (gan_lab.nets.dcgan), with optional spectral norm on D.

References: a hand-built copy of the 32 px layer stack as it was before sizes were added (same
layers, names and init draws), and numbers frozen from that code; ``torch.linalg.matrix_norm(ord=2)``
for spectral norm; each sample alone for per-sample gradient penalties.
"""

from __future__ import annotations

import math

import pytest
import torch
from random_images import all_finite, tiny_fit
from torch import nn
from torch.nn.utils import parametrize

from gan_lab.errors import ConfigError
from gan_lab.nets import DCGANDiscriminator, DCGANGenerator
from gan_lab.nets.spec import build_net, net_spec
from gan_lab.regularizers import WGANGP, PenaltyInputs

SIZES = [16, 28, 32, 64]


# --------------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", SIZES)
def test_shapes_at_every_size(size, channels):
    G = DCGANGenerator(z_dim=8, ngf=4, out_channels=channels, size=size)
    D = DCGANDiscriminator(in_channels=channels, ndf=4, size=size)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D(x).shape == (3,)
    assert (G.z_dim, G.out_channels, G.size, D.in_channels, D.size) == (8, channels, size, channels, size)
    # one stride-2 layer per doubling from the first map (7 px for 28, else 4 px), as the table says
    doublings = round(math.log2(size / (7 if size == 28 else 4)))
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == doublings
    assert sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in D.modules()) == doublings
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())


# --------------------------------------------------------------------------------------------------
# The 32 px nets of before
# --------------------------------------------------------------------------------------------------


class OldGenerator(nn.Module):
    """The 32 px DCGANGenerator before sizes were added, rebuilt by hand: its layers in its order,
    initialised N(0, 0.02) / BatchNorm γ ~ N(1, 0.02) from ``Generator().manual_seed(seed)``."""

    def __init__(self, z_dim: int, ngf: int, out_channels: int, batch_norm: bool, seed: int) -> None:
        super().__init__()
        self.ngf = ngf
        bn = (lambda c: [nn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
        self.project = nn.Linear(z_dim, 4 * ngf * 16)
        self.net = nn.Sequential(
            *bn(4 * ngf),
            nn.ReLU(),
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=not batch_norm),
            *bn(2 * ngf),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=not batch_norm),
            *bn(ngf),
            nn.ReLU(),
            nn.ConvTranspose2d(ngf, out_channels, 4, 2, 1),
            nn.Tanh(),
        )
        _old_init(self, seed)

    def forward(self, z):
        return self.net(self.project(z).view(-1, 4 * self.ngf, 4, 4))


class OldDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int, seed: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * ndf, 1, 4, 1, 0),
        )
        _old_init(self, seed + 1_000_003)  # the D stream's offset

    def forward(self, x):
        return self.net(x).flatten()


def _old_init(net: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0.0, 0.02, generator=g)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.02, generator=g)
                m.bias.zero_()


def _assert_same_net(new: nn.Module, old: nn.Module, x: torch.Tensor) -> None:
    a, b = new.state_dict(), old.state_dict()
    assert list(a) == list(b)  # same names: old checkpoints load
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(new(x), old(x))


@pytest.mark.parametrize(("channels", "batch_norm", "seed"), [(3, True, 0), (1, False, 5), (3, True, 7)])
def test_32px_nets_are_the_layer_stacks_of_before(channels, batch_norm, seed):
    G = DCGANGenerator(z_dim=8, ngf=4, out_channels=channels, batch_norm=batch_norm, seed=seed)
    _assert_same_net(G, OldGenerator(8, 4, channels, batch_norm, seed), torch.randn(3, 8))
    D = DCGANDiscriminator(in_channels=channels, ndf=4, seed=seed)
    _assert_same_net(D, OldDiscriminator(channels, 4, seed), torch.randn(3, channels, 32, 32))


def test_32px_defaults_match_numbers_frozen_from_the_code_before():
    """Computed once with the 32 px-only module (z, x from seeded generators, train mode)."""
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    x = DCGANGenerator(z_dim=8, ngf=4, seed=3)(z)
    assert x.double().sum().item() == pytest.approx(-37.4931520063019, rel=1e-5)
    assert x[0, 0, 0, 1:4].tolist() == pytest.approx(
        [-0.004809037782251835, 0.010254843160510063, -0.008286703377962112], rel=1e-4
    )
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    logits = DCGANDiscriminator(ndf=4, seed=3)(images)
    assert logits.tolist() == pytest.approx([-1.5406175180032733e-06, 0.00043458628351800144], rel=1e-3)
    G = DCGANGenerator()  # the full-size defaults: z 128, ngf 64
    assert sum(p.double().sum().item() for p in G.parameters()) == pytest.approx(422.58225736832844, rel=1e-9)
    assert G.project.weight[0, :3].tolist() == pytest.approx(
        [-0.022516796365380287, -0.023047203198075294, -0.005011571571230888], rel=1e-6
    )


# --------------------------------------------------------------------------------------------------
# Spectral norm, per-sample penalties, seeding, specs
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [28, 64])
def test_spectral_norm_makes_every_layer_1_lipschitz(size):
    D = DCGANDiscriminator(in_channels=1, ndf=4, size=size, spectral_norm=True).train()
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == (3 if size == 28 else 5) and all(
        parametrize.is_parametrized(m, "weight") for m in convs
    )
    with torch.no_grad():
        raw = [
            float(torch.linalg.matrix_norm(m.parametrizations.weight.original.flatten(1), ord=2))
            for m in convs
        ]
    assert max(raw) < 0.5  # N(0, 0.02) weights: far from 1 before normalisation
    with torch.no_grad():
        for _ in range(30):  # one power iteration per forward in train mode
            D(torch.randn(2, 1, size, size))
    D.eval()
    with torch.no_grad():
        sigmas = [float(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)) for m in convs]
    assert sigmas == pytest.approx([1.0] * len(convs), abs=0.02)


@pytest.mark.parametrize(("size", "spectral_norm"), [(16, False), (28, True), (64, False)])
def test_wgan_gp_is_per_sample(size, spectral_norm):
    """Sample i's penalty (its own gradient norm at its own ε) does not depend on the other samples:
    the batch's per-sample penalties equal each sample's penalty alone. (Eval mode for spectral
    norm: in train mode every call moves the power iteration.)"""
    D = DCGANDiscriminator(in_channels=3, ndf=4, size=size, spectral_norm=spectral_norm)
    D.train(not spectral_norm)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 3, size, size, generator=g), torch.randn(4, 3, size, size, generator=g)
    eps = torch.rand(4, generator=g)

    def penalty(i: slice) -> torch.Tensor:
        rand = lambda shape: eps[i].reshape(shape)  # noqa: E731
        return WGANGP().penalty(PenaltyInputs(D, real[i], fake[i], rand=rand))

    together = penalty(slice(None))
    alone = torch.cat([penalty(slice(i, i + 1)) for i in range(4)])
    assert together.shape == (4,) and bool((together > 0).all())
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-7)


def test_seeded_whatever_the_global_rng():
    def build(global_seed: int, seed: int):
        torch.manual_seed(global_seed)
        nets = (
            DCGANGenerator(z_dim=8, ngf=4, size=16, seed=seed),
            DCGANDiscriminator(ndf=4, size=16, spectral_norm=True, seed=seed),
        )
        return [net.state_dict() for net in nets]

    a, b, c = build(1, 4), build(2, 4), build(1, 5)
    for x, y, z in zip(a, b, c):
        assert all(torch.equal(x[k], y[k]) for k in x)  # incl. the power iteration's u, v buffers
        drawn = [k for k in x if "weight" in k and x[k].numel() > 1]  # (the last layer's u is ±1)
        assert drawn and all(not torch.equal(x[k], z[k]) for k in drawn)  # another seed: other draws
    buffers = [k for k in a[1] if k.endswith(("._u", "._v"))]
    assert len(buffers) == 6 and sum(not torch.equal(a[1][k], c[1][k]) for k in buffers) == 5


def test_spectral_norm_draws_nothing_from_the_global_rng():
    """u, v come from the net's seed: the global stream after building is the plain D's."""
    states = []
    for sn in (False, True):
        torch.manual_seed(0)
        DCGANDiscriminator(ndf=4, size=16, spectral_norm=sn)
        states.append(torch.get_rng_state())
    assert torch.equal(*states)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_rebuilt_from_its_spec(spectral_norm):
    """What `gan-lab sample` and checkpoints do: net_spec -> build_net -> load_state_dict."""
    G = DCGANGenerator(z_dim=8, ngf=4, out_channels=1, size=28, seed=2)
    D = DCGANDiscriminator(in_channels=1, ndf=4, size=28, spectral_norm=spectral_norm, seed=2)
    assert net_spec(G)["init_args"] == {
        "z_dim": 8, "ngf": 4, "out_channels": 1, "size": 28, "batch_norm": True, "seed": 2
    }  # fmt: skip
    for net, x in ((G, torch.randn(3, 8)), (D, torch.randn(3, 1, 28, 28))):
        with torch.no_grad():
            net.train()(x)  # moves BatchNorm statistics / the power iteration away from the init
        copy = build_net(net_spec(net))
        copy.load_state_dict(net.state_dict())
        assert torch.equal(copy.eval()(x), net.eval()(x))


def test_spectral_norm_weights_are_float32_under_autocast():
    """The power iteration and W / σ run with autocast off (on CUDA, autocast would run torch.mv in
    float16 / bfloat16); the convolutions themselves still run in bfloat16."""
    D = DCGANDiscriminator(ndf=4, size=16, spectral_norm=True)
    seen = []
    for m in D.modules():
        if parametrize.is_parametrized(m, "weight"):
            m.parametrizations.weight[0].register_forward_hook(
                lambda mod, args, out: seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
            )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = D(torch.randn(2, 3, 16, 16))
    assert logits.dtype == torch.bfloat16
    assert len(seen) == 3 and set(seen) == {(False, torch.float32)}


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("net", [DCGANGenerator, DCGANDiscriminator])
@pytest.mark.parametrize("size", [24, 0, "32", True])
def test_unsupported_size_is_refused(net, size):
    with pytest.raises(ConfigError, match=r"size must be one of 16, 28, 32, 64 .*got"):
        net(size=size)


def test_wrong_inputs_are_refused_in_one_line():
    D = DCGANDiscriminator(in_channels=1, ndf=4, size=28)
    for x in (torch.randn(2, 1, 32, 32), torch.randn(2, 3, 28, 28), torch.randn(1, 28, 28)):
        with pytest.raises(ConfigError, match=r"expects \(B, 1, 28, 28\) images, got .*in_channels and size"):
            D(x)
    with pytest.raises(ConfigError, match=r"expects noise of shape \(B, 8\)"):
        DCGANGenerator(z_dim=8, ngf=4)(torch.randn(2, 9))


# --------------------------------------------------------------------------------------------------
# Training in the module
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "channels", "spectral_norm", "objective", "regularizers"),
    [
        (28, 1, False, "wasserstein", ["wgan_gp"]),
        (64, 3, True, "hinge", []),
        (16, 1, False, "non_saturating", ["r1"]),
    ],
)
def test_fits_in_the_module(size, channels, spectral_norm, objective, regularizers):
    """A few steps of GANModule on random images of the nets' shape: every loss term finite at
    every step, the counters right, and every parameter of G and D moved."""
    G = DCGANGenerator(z_dim=8, ngf=4, out_channels=channels, size=size)
    D = DCGANDiscriminator(in_channels=channels, ndf=4, size=size, spectral_norm=spectral_norm)
    before = {net: [p.detach().clone() for p in net.parameters()] for net in (G, D)}
    module, rows, _ = tiny_fit(G, D, batches=3, objective=objective, regularizers=regularizers)
    assert (module.d_steps, module.g_steps) == (3, 3)
    assert all_finite(rows) and len(rows) == 3, rows
    last_bias = f"net.{len(D.net) - 1}.bias"
    for net in (G, D):
        for (name, p), p0 in zip(net.named_parameters(), before[net], strict=True):
            assert bool(torch.isfinite(p).all()), f"{type(net).__name__}.{name}"
            if net is D and name == last_bias and objective in ("wasserstein", "hinge"):
                # A shift of every logit cancels in the Wasserstein loss (mean D(fake) − mean D(real))
                # and in the hinge loss while the logits lie inside its margins; no gradient penalty
                # sees it: the output bias gets a zero gradient.
                assert torch.equal(p, p0) or objective == "hinge"
                continue
            assert not torch.equal(p, p0), f"{type(net).__name__}.{name} did not move"


def test_the_module_builds_image_nets_with_its_seed():
    # `--model.seed S` (a study's seed S) is the run's seed for the nets' weights too: the module
    # builds G and D again with it (mutation caught: per-seed runs of a study all starting from one
    # init, as when the nets' own `seed` stayed 0)
    from gan_lab.module import GANModule
    from gan_lab.nets.spec import net_spec

    G, D = DCGANGenerator(z_dim=8, ngf=4, size=16), DCGANDiscriminator(ndf=4, size=16)
    m = GANModule(G, D, objective="hinge", seed=3)
    want_g = DCGANGenerator(z_dim=8, ngf=4, size=16, seed=3).state_dict()
    want_d = DCGANDiscriminator(ndf=4, size=16, seed=3).state_dict()
    assert all(torch.equal(m.G.state_dict()[k], v) for k, v in want_g.items())
    assert all(torch.equal(m.D.state_dict()[k], v) for k, v in want_d.items())
    assert m.hparams["generator"] == net_spec(m.G) and m.hparams["generator"]["init_args"]["seed"] == 3
    same = GANModule(G, D, objective="hinge", seed=0)  # already seeded 0: the very nets
    assert same.G is G and same.D is D
