"""DCGAN-style generator and discriminator for 32×32 images (Radford, Metz & Chintala, 2016).

G: ``z (B, z_dim) -> (B, C, 32, 32)`` in ``[-1, 1]``: a linear layer to ``(4·ngf, 4, 4)``, then three
stride-2 4×4 transposed convolutions (4 → 8 → 16 → 32), BatchNorm + ReLU between them, tanh last.
D: ``x (B, C, 32, 32) -> logits (B,)``: three stride-2 4×4 convolutions (32 → 16 → 8 → 4) with
LeakyReLU(0.2), then a 4×4 convolution to one logit. D has no BatchNorm (its samples must not see
each other, for per-sample gradient penalties) and no sigmoid (the losses take raw logits).
Weights start from N(0, 0.02) as in the paper (BatchNorm scales from N(1, 0.02)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_lab.errors import ConfigError, check_int
from gan_lab.nets.spec import RecordsInit
from gan_lab.seeding import member_generators, member_seeds


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
    """``z (B, z_dim) -> x (B, out_channels, 32, 32)``, tanh output.

    >>> DCGANGenerator(z_dim=8, ngf=4)(torch.randn(2, 8)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self, z_dim: int = 128, ngf: int = 64, out_channels: int = 3, batch_norm: bool = True, seed: int = 0
    ) -> None:
        super().__init__()
        check_int("DCGAN 'z_dim'", z_dim)
        check_int("DCGAN 'ngf'", ngf)
        check_int("DCGAN 'out_channels'", out_channels)
        self.z_dim, self.out_channels, self.ngf = z_dim, out_channels, ngf

        def up(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            return [*layers, nn.ReLU()]

        self.project = nn.Linear(z_dim, 4 * ngf * 4 * 4)
        stem: list[nn.Module] = [nn.BatchNorm2d(4 * ngf)] if batch_norm else []
        self.net = nn.Sequential(
            *stem,
            nn.ReLU(),
            *up(4 * ngf, 2 * ngf),  # (B, 2ngf, 8, 8)
            *up(2 * ngf, ngf),  # (B, ngf, 16, 16)
            nn.ConvTranspose2d(ngf, out_channels, 4, 2, 1),  # (B, C, 32, 32)
            nn.Tanh(),
        )
        dcgan_init_(self, member_generators(member_seeds(seed, 1, "G"))[0])

    def forward(self, z: Tensor) -> Tensor:
        x = self.project(z).view(z.shape[0], 4 * self.ngf, 4, 4)  # (B, 4ngf, 4, 4)
        return self.net(x)


class DCGANDiscriminator(RecordsInit, nn.Module):
    """``x (B, in_channels, 32, 32) -> logits (B,)``; no BatchNorm, no sigmoid.

    >>> DCGANDiscriminator(ndf=4)(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, seed: int = 0) -> None:
        super().__init__()
        check_int("DCGAN 'in_channels'", in_channels)
        check_int("DCGAN 'ndf'", ndf)
        self.in_channels, self.ndf = in_channels, ndf
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 4, 2, 1),  # (B, ndf, 16, 16)
            nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),  # (B, 2ndf, 8, 8)
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1),  # (B, 4ndf, 4, 4)
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * ndf, 1, 4, 1, 0),  # (B, 1, 1, 1)
        )
        dcgan_init_(self, member_generators(member_seeds(seed, 1, "D"))[0])

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"DCGANDiscriminator expects (B, {self.in_channels}, 32, 32) images, got {tuple(x.shape)}"
            )
        return self.net(x).flatten()  # (B,)
