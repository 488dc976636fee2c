"""SN-ResNet generator and discriminator for CIFAR-10 (Miyato et al., "Spectral Normalization for
Generative Adversarial Networks", ICLR 2018, appendix B, table 4: the "ResNet" of their CIFAR runs).

At ``size=32`` (the paper's net; Mimicry's ``sngan_32`` with ``nz=128, ngf=256, ndf=128``)::

    G: z (B, 128) -> linear -> (256, 4, 4) -> GBlock up ×3 (256 ch: 8, 16, 32)
                  -> BN -> ReLU -> conv3×3 (C) -> tanh                     -> (B, C, 32, 32)
    D: x (B, C, 32, 32) -> optimized DBlock down (128 ch, 16) -> DBlock down (8) -> DBlock -> DBlock
                  -> ReLU -> global sum pooling -> SN linear               -> logits (B,)

- ``GBlock``: ``x -> BN -> ReLU -> up -> conv3×3 -> BN -> ReLU -> conv3×3``, plus the shortcut
  ``up -> conv1×1``; ``up`` is nearest-neighbour ×2 (Chainer's ``unpooling_2d`` in the authors'
  code; Mimicry uses bilinear).
- ``DBlock``: ``x -> ReLU -> conv3×3 -> ReLU -> conv3×3 [-> avgpool2]``, plus the shortcut
  ``conv1×1 [-> avgpool2]`` when it downsamples or changes the width (identity otherwise).
- optimized first ``DBlock`` (no ReLU on the image): ``conv3×3 -> ReLU -> conv3×3 -> avgpool2``,
  shortcut ``avgpool2 -> conv1×1``.
- Every conv and linear of D is spectrally normalised (``torch.nn.utils.parametrizations
  .spectral_norm``, one power iteration per training forward, float32 under autocast:
  :mod:`gan_lab.nets.spectral`); D has no BatchNorm (per-sample gradient penalties stay exact).
  G has BatchNorm and no spectral norm.

Initialisation as the reference code (the authors' Chainer code; Mimicry): Xavier (Glorot) uniform
with gain √2 on the residual 3×3 convs, gain 1 on the shortcut 1×1 convs, on G's linear and last
conv, and on D's linear; biases 0 (Chainer's default; Mimicry leaves PyTorch's); BatchNorm γ = 1,
β = 0. Every draw comes from the net's own seeded stream (:mod:`gan_lab.seeding`, ``G`` / ``D``).

Other sizes use the same blocks (not from the paper): G starts at 4×4 (7×7 for 28) and upsamples
to ``size``; D always has 4 blocks and downsamples to 8×8 (7×7 for 28):

======  =====================  ===========================
size    G blocks (up)          D blocks (down / not)
======  =====================  ===========================
16      2: 4 → 8 → 16          opt↓, –, –, –  (16 → 8)
28      2: 7 → 14 → 28         opt↓, ↓, –, –  (28 → 14 → 7)
32      3: 4 → … → 32          opt↓, ↓, –, –  (32 → 16 → 8)
64      4: 4 → … → 64          opt↓, ↓, ↓, –  (64 → … → 8)
======  =====================  ===========================
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lab.errors import ConfigError, check_int
from gan_lab.nets.dcgan import check_images, check_noise
from gan_lab.nets.spec import RecordsInit
from gan_lab.nets.spectral import SNConv2d, SNLinear, spectral_norm_
from gan_lab.seeding import member_generators, member_seeds

#: image side -> (G's first side, G's up-blocks, D's down-sampling blocks); D has 4 blocks in all
SIZES: dict[int, tuple[int, int, int]] = {16: (4, 2, 1), 28: (7, 2, 2), 32: (4, 3, 2), 64: (4, 4, 3)}
D_BLOCKS = 4


def _check_size(net: str, size) -> tuple[int, int, int]:
    if isinstance(size, bool) or size not in SIZES:
        raise ConfigError(
            f"{net} size must be one of {', '.join(map(str, SIZES))} (the image side in pixels), got {size!r}"
        )
    return SIZES[size]


def _xavier_(layer: nn.Module, gain: float, generator: torch.Generator) -> None:
    nn.init.xavier_uniform_(layer.weight, gain, generator=generator)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def upsample(x: Tensor) -> Tensor:
    """Nearest-neighbour ×2: ``(B, C, H, W) -> (B, C, 2H, 2W)``."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """Up-sampling residual block of G: ``(B, c_in, H, W) -> (B, c_out, 2H, 2W)``."""

    def __init__(self, c_in: int, c_out: int, generator: torch.Generator) -> None:
        super().__init__()
        self.b1, self.c1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.b2, self.c2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.c_sc = nn.Conv2d(c_in, c_out, 1, 1, 0)
        for conv, gain in ((self.c1, math.sqrt(2)), (self.c2, math.sqrt(2)), (self.c_sc, 1.0)):
            _xavier_(conv, gain, generator)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(upsample(F.relu(self.b1(x))))
        h = self.c2(F.relu(self.b2(h)))
        return h + self.c_sc(upsample(x))


class DBlock(nn.Module):
    """Residual block of D: ``(B, c_in, H, W) -> (B, c_out, H/2, W/2)`` (``down``) or ``(…, H, W)``;
    ``optimized``: the first block, on the image (no ReLU before the first conv; pooling before
    the shortcut's conv)."""

    def __init__(
        self, c_in: int, c_out: int, generator: torch.Generator, down: bool = False, optimized: bool = False
    ) -> None:
        super().__init__()
        self.down, self.optimized = bool(down or optimized), bool(optimized)
        hidden = c_out if optimized else c_in
        self.c1, self.c2 = SNConv2d(c_in, hidden, 3, 1, 1), SNConv2d(hidden, c_out, 3, 1, 1)
        learnable = self.optimized or self.down or c_in != c_out
        self.c_sc = SNConv2d(c_in, c_out, 1, 1, 0) if learnable else None
        for conv, gain in ((self.c1, math.sqrt(2)), (self.c2, math.sqrt(2)), (self.c_sc, 1.0)):
            if conv is not None:
                _xavier_(conv, gain, generator)
                spectral_norm_(conv, generator)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(x if self.optimized else F.relu(x))
        h = self.c2(F.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.c_sc is None:
            return h + x
        if self.optimized:
            return h + self.c_sc(F.avg_pool2d(x, 2))
        s = self.c_sc(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class SNResNetGenerator(RecordsInit, nn.Module):
    """``z (B, z_dim) -> x (B, out_channels, size, size)``, tanh output (module docstring).

    Args:
        z_dim: noise dimension (128 in the paper).
        ngf: channels of every block (256 in the paper).
        out_channels: image channels.
        size: image side, one of :data:`SIZES` (32 is the paper's net).
        seed: the weights are drawn from stream ``G`` of this seed.

    >>> SNResNetGenerator(z_dim=8, ngf=8)(torch.randn(2, 8)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self, z_dim: int = 128, ngf: int = 256, out_channels: int = 3, size: int = 32, seed: int = 0
    ) -> None:
        super().__init__()
        check_int("SNResNet 'z_dim'", z_dim)
        check_int("SNResNet 'ngf'", ngf)
        check_int("SNResNet 'out_channels'", out_channels)
        s0, n_up, _ = _check_size("SNResNetGenerator", size)
        self.z_dim, self.ngf, self.out_channels, self.size, self.s0 = z_dim, ngf, out_channels, size, s0
        generator = member_generators(member_seeds(seed, 1, "G"))[0]
        self.l1 = nn.Linear(z_dim, s0 * s0 * ngf)
        _xavier_(self.l1, 1.0, generator)
        self.blocks = nn.Sequential(*[GBlock(ngf, ngf, generator) for _ in range(n_up)])
        self.b5 = nn.BatchNorm2d(ngf)
        self.c5 = nn.Conv2d(ngf, out_channels, 3, 1, 1)
        _xavier_(self.c5, 1.0, generator)

    def forward(self, z: Tensor) -> Tensor:
        check_noise("SNResNetGenerator", z, self.z_dim)
        h = self.l1(z).view(z.shape[0], self.ngf, self.s0, self.s0)  # (B, ngf, s0, s0)
        h = self.blocks(h)  # (B, ngf, size, size)
        return torch.tanh(self.c5(F.relu(self.b5(h))))


class SNResNetDiscriminator(RecordsInit, nn.Module):
    """``x (B, in_channels, size, size) -> logits (B,)``; spectral norm everywhere, no BatchNorm.

    Args:
        in_channels: image channels.
        ndf: channels of every block (128 in the paper).
        size: image side, one of :data:`SIZES`.
        seed: the weights and the power iteration's start vectors come from stream ``D``.

    >>> SNResNetDiscriminator(in_channels=1, ndf=8, size=28)(torch.randn(2, 1, 28, 28)).shape
    torch.Size([2])
    """

    def __init__(self, in_channels: int = 3, ndf: int = 128, size: int = 32, seed: int = 0) -> None:
        super().__init__()
        check_int("SNResNet 'in_channels'", in_channels)
        check_int("SNResNet 'ndf'", ndf)
        _, _, n_down = _check_size("SNResNetDiscriminator", size)
        self.in_channels, self.ndf, self.size = in_channels, ndf, size
        generator = member_generators(member_seeds(seed, 1, "D"))[0]
        blocks = [DBlock(in_channels, ndf, generator, optimized=True)]
        blocks += [DBlock(ndf, ndf, generator, down=k < n_down) for k in range(1, D_BLOCKS)]
        self.blocks = nn.Sequential(*blocks)
        self.l5 = SNLinear(ndf, 1)
        _xavier_(self.l5, 1.0, generator)
        spectral_norm_(self.l5, generator)

    def forward(self, x: Tensor) -> Tensor:
        check_images("SNResNetDiscriminator", x, self.in_channels, self.size)
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling: (B, ndf)
        return self.l5(h).flatten()  # (B,)
