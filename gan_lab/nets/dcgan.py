"""DCGAN generator and discriminator (Radford, Metz & Chintala, ICLR 2016) for 16, 28, 32, 64 px.

G: ``z (B, z_dim) -> (B, C, s, s)`` in ``[-1, 1]``: a linear layer to ``(ngf·2^(n−1), s₀, s₀)``,
then ``n`` stride-2 4×4 transposed convolutions that halve the channels and double the side,
BatchNorm + ReLU between them (``batch_norm=False``: ReLU only), tanh last.
D: ``x (B, C, s, s) -> logits (B,)``: ``n`` stride-2 4×4 convolutions (``ndf·2^k`` channels,
LeakyReLU(0.2)), then an ``s₀×s₀`` convolution to one logit. D has no BatchNorm (its samples must
not see each other, for per-sample gradient penalties) and no sigmoid (the losses take raw logits);
``spectral_norm=True`` normalises every D layer (Miyato et al., 2018; :mod:`gan_lab.nets.spectral`).

======  ====  ===  ==================================  ===================
size    s₀    n    G (channels at each side)           as in
======  ====  ===  ==================================  ===================
16      4     2    2ngf@4 → ngf@8 → C@16
28      7     2    2ngf@7 → ngf@14 → C@28              the MNIST DCGANs
32      4     3    4ngf@4 → 2ngf@8 → ngf@16 → C@32
64      4     4    8ngf@4 → 4ngf@8 → … → C@64          Radford et al., fig. 1
======  ====  ===  ==================================  ===================

Weights start from N(0, 0.02) as in the paper (BatchNorm scales from N(1, 0.02), biases 0), drawn
layer by layer from the net's own seeded stream (:mod:`gan_lab.seeding`, streams ``G`` / ``D``).
The 32 px nets are those of earlier versions of this module: same layers, names and draws.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_lab.errors import ConfigError, check_int
from gan_lab.nets.spec import RecordsInit
from gan_lab.nets.spectral import SNConv2d, spectral_norm_
from gan_lab.seeding import member_generators, member_seeds

#: image side -> (side s₀ of the first feature map, number n of stride-2 layers)
SIZES: dict[int, tuple[int, int]] = {16: (4, 2), 28: (7, 2), 32: (4, 3), 64: (4, 4)}


def check_size(net: str, size) -> tuple[int, int]:
    """``(s₀, n)`` of an image side in :data:`SIZES`, else one ConfigError line."""
    if isinstance(size, bool) or size not in SIZES:
        raise ConfigError(
            f"{net} size must be one of {', '.join(map(str, SIZES))} (the image side in pixels), got {size!r}"
        )
    return SIZES[size]


def check_images(net: str, x: Tensor, channels: int, size: int) -> None:
    """Refuse anything but ``(B, channels, size, size)`` with one ConfigError line."""
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise ConfigError(
            f"{net} expects (B, {channels}, {size}, {size}) images, got {tuple(x.shape)}; "
            "set its in_channels and size to the data's"
        )


def check_noise(net: str, z: Tensor, z_dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != z_dim:
        raise ConfigError(f"{net} expects noise of shape (B, {z_dim}), got {tuple(z.shape)}")


def dcgan_init_(net: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN's initialisation: conv / linear weights ~ N(0, 0.02), BatchNorm γ ~ N(1, 0.02), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()


class DCGANGenerator(RecordsInit, nn.Module):
    """``z (B, z_dim) -> x (B, out_channels, size, size)``, tanh output.

    Args:
        z_dim: noise dimension.
        ngf: channels before the last layer (the first map has ``ngf·2^(n−1)``).
        out_channels: image channels (1 or 3, or any other count).
        size: image side, one of :data:`SIZES` (16, 28, 32, 64).
        batch_norm: BatchNorm after the projection and every hidden transposed convolution.
        seed: the weights are drawn from stream ``G`` of this seed.

    >>> DCGANGenerator(z_dim=8, ngf=4)(torch.randn(2, 8)).shape
    torch.Size([2, 3, 32, 32])
    >>> DCGANGenerator(z_dim=8, ngf=4, out_channels=1, size=28)(torch.randn(2, 8)).shape
    torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        z_dim: int = 128,
        ngf: int = 64,
        out_channels: int = 3,
        size: int = 32,
        batch_norm: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_int("DCGAN 'z_dim'", z_dim)
        check_int("DCGAN 'ngf'", ngf)
        check_int("DCGAN 'out_channels'", out_channels)
        s0, n = check_size("DCGANGenerator", size)
        self.z_dim, self.out_channels, self.ngf, self.size = z_dim, out_channels, ngf, size
        self.start = (ngf * 2 ** (n - 1), s0)  # (channels, side) of the first feature map

        def up(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            return [*layers, nn.ReLU()]

        c0 = self.start[0]
        self.project = nn.Linear(z_dim, c0 * s0 * s0)
        stem: list[nn.Module] = [nn.BatchNorm2d(c0)] if batch_norm else []
        hidden = [m for k in range(n - 1) for m in up(c0 >> k, c0 >> (k + 1))]  # side s0·2^(k+1)
        self.net = nn.Sequential(
            *stem,
            nn.ReLU(),
            *hidden,
            nn.ConvTranspose2d(ngf, out_channels, 4, 2, 1),  # (B, C, size, size)
            nn.Tanh(),
        )
        dcgan_init_(self, member_generators(member_seeds(seed, 1, "G"))[0])

    def forward(self, z: Tensor) -> Tensor:
        check_noise("DCGANGenerator", z, self.z_dim)
        c0, s0 = self.start
        x = self.project(z).view(z.shape[0], c0, s0, s0)  # (B, c0, s0, s0)
        return self.net(x)


class DCGANDiscriminator(RecordsInit, nn.Module):
    """``x (B, in_channels, size, size) -> logits (B,)``; no BatchNorm, no sigmoid.

    Args:
        in_channels: image channels.
        ndf: channels of the first convolution (doubled by each further stride-2 layer).
        size: image side, one of :data:`SIZES` (16, 28, 32, 64).
        spectral_norm: spectral normalisation on every layer (float32 under autocast).
        seed: the weights (and the power iteration's start vectors) come from stream ``D``.

    >>> DCGANDiscriminator(ndf=4)(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    >>> DCGANDiscriminator(in_channels=1, ndf=4, size=64, spectral_norm=True)(torch.randn(2, 1, 64, 64)).shape
    torch.Size([2])
    """

    def __init__(
        self, in_channels: int = 3, ndf: int = 64, size: int = 32, spectral_norm: bool = False, seed: int = 0
    ) -> None:
        super().__init__()
        check_int("DCGAN 'in_channels'", in_channels)
        check_int("DCGAN 'ndf'", ndf)
        s0, n = check_size("DCGANDiscriminator", size)
        self.in_channels, self.ndf, self.size = in_channels, ndf, size
        self.spectral_norm = bool(spectral_norm)
        conv = SNConv2d if self.spectral_norm else nn.Conv2d
        layers: list[nn.Module] = []
        c_in = in_channels
        for k in range(n):  # side size / 2^(k+1)
            layers += [conv(c_in, ndf << k, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in = ndf << k
        self.net = nn.Sequential(*layers, conv(c_in, 1, s0, 1, 0))  # (B, 1, 1, 1)
        generator = member_generators(member_seeds(seed, 1, "D"))[0]
        dcgan_init_(self, generator)
        if self.spectral_norm:
            for m in self.net:
                if isinstance(m, nn.Conv2d):
                    spectral_norm_(m, generator)

    def forward(self, x: Tensor) -> Tensor:
        check_images("DCGANDiscriminator", x, self.in_channels, self.size)
        return self.net(x).flatten()  # (B,)
