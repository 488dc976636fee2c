"""Super-resolution nets: a small residual ×4 generator and a patch discriminator.

:class:`SRResNet` follows SRResNet (Ledig et al., "Photo-Realistic Single Image Super-Resolution
Using a Generative Adversarial Network", CVPR 2017, fig. 4) at a CPU-friendly size, without its
BatchNorm (as EDSR, Lim et al. 2017, which found it hurts SR): a head conv, ``blocks`` residual
blocks ``x + conv(PReLU(conv(x)))``, a long skip over the blocks, ``log2(scale)`` stages of
``conv -> PixelShuffle(2) -> PReLU`` (Shi et al., CVPR 2016; ICNR-initialised, Aitken et al. 2017)
and a tail conv::

    condition (B, C, H, W) -> head -> blocks (+ skip) -> [conv, shuffle ×2] × log2(s) -> tail -> (B, C, sH, sW)

:class:`PatchDiscriminator` is pix2pix's PatchGAN (Isola et al., CVPR 2017): strided 4×4 convs with
LeakyReLU(0.2) that give one logit per overlapping patch (70×70 receptive field with the default 3
strided layers), averaged into one logit per sample.

Both are plain ``nn.Module`` s; :class:`~gan_lab.module.GANModule` composes them in a paired run,
``paired: {...}`` (G is called ``G(condition, None)`` since ``z_dim = 0``) and, for a ``paired``
D, ``paired: {d_conditional: true}`` (D is called ``D(x, condition)``; :class:`~gan_lab.settings.Paired`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from gan_lab.errors import ConfigError, check_choice, check_int

OUTPUTS = ("tanh", "identity")


def _check_images(x: Tensor, channels: int, what: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{what}: expected images (B, {channels}, H, W), got shape {tuple(x.shape)}")


def upsample_bicubic(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic upsampling of ``x (B, C, h, w)`` to ``size`` (``align_corners=False``, no clamp)."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def icnr_(weight: Tensor, factor: int = 2) -> Tensor:
    """ICNR init of a conv feeding ``PixelShuffle(factor)`` (Aitken et al., 2017): the
    ``factor²`` sub-pixel kernels of each output channel start equal (Kaiming-uniform, as
    ``nn.Conv2d``), so that the shuffled output starts as a nearest-neighbour upsampling of one
    convolution, free of checkerboard artifacts.

    >>> w = icnr_(torch.empty(8, 3, 3, 3))  # 2 channels × 4 sub-pixels
    >>> torch.equal(w[0], w[3]) and not torch.equal(w[0], w[4])
    True
    """
    out_ch = weight.shape[0] // factor**2
    base = torch.empty(out_ch, *weight.shape[1:])
    nn.init.kaiming_uniform_(base, a=math.sqrt(5))
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(factor**2, dim=0))  # (out·f², in, k, k)
    return weight


class ResidualBlock(nn.Module):
    """``x + conv(PReLU(conv(x)))``, 3×3 convs, no normalisation (EDSR)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """A small SRResNet: ``(B, C, H, W)`` low-res condition -> ``(B, C, sH, sW)`` in ``[-1, 1]``.

    Args:
        channels: image channels ``C`` (in and out): 3, or 1 for grayscale.
        width: feature channels of the body (64 in SRResNet; 32 is enough on a CPU).
        blocks: residual blocks (16 in SRResNet).
        scale: upscaling factor, a power of 2; one ``PixelShuffle(2)`` stage per factor 2.
        output: ``"tanh"`` squashes the output into ``(-1, 1)``; ``"identity"`` leaves it linear.
        bicubic_skip: add the bicubic upsampling of the condition to the output, so the net learns
            the residual (VDSR, Kim et al. 2016). The tail conv then starts at zero, so that an
            untrained G *is* bicubic upsampling. Needs ``output="identity"`` (tanh would distort the
            bicubic image); outputs may then leave ``[-1, 1]`` slightly.

    ``z_dim = 0``: G is deterministic, ``forward(condition, z=None)``.

    Raises:
        ConfigError: a size < 1, a scale that is not a power of 2, an unknown output, or
            ``bicubic_skip`` with ``output="tanh"``.

    >>> G = SRResNet(channels=3, width=8, blocks=1)
    >>> G(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 3, 64, 64])
    """

    z_dim = 0

    def __init__(
        self,
        channels: int = 3,
        width: int = 32,
        blocks: int = 4,
        scale: int = 4,
        output: str = "tanh",
        bicubic_skip: bool = False,
    ) -> None:
        super().__init__()
        self.channels = check_int("SRResNet channels", channels)
        self.width = check_int("SRResNet width", width)
        self.blocks = check_int("SRResNet blocks", blocks, 0)
        self.scale = check_int("SRResNet scale", scale, 2)
        if self.scale & (self.scale - 1):
            raise ConfigError(f"SRResNet scale must be a power of 2 (2, 4, 8, ...), got {scale!r}")
        check_choice("SRResNet output", output, OUTPUTS)
        if bicubic_skip and output != "identity":
            raise ConfigError(
                "SRResNet bicubic_skip adds the residual to the bicubic image; use output: identity"
            )
        self.output, self.bicubic_skip = output, bool(bicubic_skip)

        self.head = nn.Sequential(nn.Conv2d(channels, width, 5, padding=2), nn.PReLU(width))
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.body_tail = nn.Conv2d(width, width, 3, padding=1)
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(self.scale))):
            ups += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.upsample = nn.Sequential(*ups)
        for m in self.upsample:
            if isinstance(m, nn.Conv2d):
                icnr_(m.weight, 2)
                nn.init.zeros_(m.bias)  # equal sub-pixel biases too
        self.tail = nn.Conv2d(width, channels, 5, padding=2)
        if self.bicubic_skip:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, condition: Tensor, z: Tensor | None = None) -> Tensor:
        """``condition (B, C, H, W)`` -> ``(B, C, scale·H, scale·W)``; ``z`` must be None (z_dim = 0)."""
        if z is not None and z.numel() > 0:
            raise ValueError(f"SRResNet takes no noise (z_dim = 0), got z of shape {tuple(z.shape)}")
        _check_images(condition, self.channels, "SRResNet")
        h = self.head(condition)  # (B, width, H, W)
        h = h + self.body_tail(self.body(h))  # long skip over the residual blocks
        out = self.tail(self.upsample(h))  # (B, C, sH, sW)
        if self.bicubic_skip:
            size = (condition.shape[-2] * self.scale, condition.shape[-1] * self.scale)
            return out + upsample_bicubic(condition, size)
        return torch.tanh(out) if self.output == "tanh" else out

    def extra_repr(self) -> str:
        return f"z_dim=0, scale={self.scale}, output={self.output!r}, bicubic_skip={self.bicubic_skip}"


class PatchDiscriminator(nn.Module):
    """PatchGAN: one logit per overlapping patch, averaged to one logit per sample, ``(B,)``.

    Layers: ``conv4×4/2 (width) -> LReLU``, then ``n_layers - 1`` of ``conv4×4/2 (width·2^k) ->
    LReLU``, one ``conv4×4/1 -> LReLU`` and a ``conv4×4/1`` to one channel: a ``(B, 1, h, w)`` map
    of patch logits (receptive field 70×70 for ``n_layers=3``, 34×34 for 2). The map is *averaged
    over patches before the objective*: the objectives take per-sample logits, so the sample's
    logit is the mean patch logit. (pix2pix instead applies the loss to each patch and averages
    the losses; for the linear Wasserstein objective both agree.)

    No normalisation layer at all: every sample's logit depends on that sample alone, so per-sample
    gradient penalties (WGAN-GP, R1) are exact. ``spectral_norm=True`` wraps every conv in spectral
    normalisation (Miyato et al., ICLR 2018).

    Args:
        channels: image channels ``C``.
        width: channels of the first conv (64 in pix2pix); doubled per strided layer, capped at 8×.
        n_layers: strided convs (3 in pix2pix).
        paired: judge ``(x, condition)`` pairs: ``forward(x, condition)`` upsamples the low-res
            condition bicubically to ``x``'s size and concatenates it to ``x`` (``2C`` channels in).
            Use with ``GANModule(paired=Paired(d_conditional=True))``.
        spectral_norm: spectral normalisation on every conv.

    >>> D = PatchDiscriminator(channels=3, width=8, n_layers=2)
    >>> D(torch.zeros(5, 3, 64, 64)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        channels: int = 3,
        width: int = 64,
        n_layers: int = 3,
        paired: bool = False,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.channels = check_int("PatchDiscriminator channels", channels)
        check_int("PatchDiscriminator width", width)
        check_int("PatchDiscriminator n_layers", n_layers)
        self.paired, self.spectral_norm = bool(paired), bool(spectral_norm)
        sn = _spectral_norm if self.spectral_norm else (lambda m: m)
        in_ch = 2 * channels if self.paired else channels
        layers: list[nn.Module] = [sn(nn.Conv2d(in_ch, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        ch = width
        for k in range(1, n_layers):
            out = width * min(2**k, 8)
            layers += [sn(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            ch = out
        out = width * min(2**n_layers, 8)
        layers += [sn(nn.Conv2d(ch, out, 4, 1, 1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(out, 1, 4, 1, 1))]
        self.net = nn.Sequential(*layers)

    def patch_logits(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """The map of patch logits ``(B, 1, h, w)`` (before averaging)."""
        _check_images(x, self.channels, "PatchDiscriminator")
        if self.paired:
            if condition is None:
                raise ValueError("a paired PatchDiscriminator is called D(x, condition); condition is None")
            _check_images(condition, self.channels, "PatchDiscriminator condition")
            if condition.shape[0] != x.shape[0]:
                raise ValueError(
                    f"PatchDiscriminator: x has {x.shape[0]} samples but condition {condition.shape[0]}"
                )
            x = torch.cat([x, upsample_bicubic(condition, tuple(x.shape[-2:]))], dim=1)  # (B, 2C, H, W)
        elif condition is not None:
            raise ValueError("this PatchDiscriminator is unpaired (paired=False); call D(x)")
        return self.net(x)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """Per-sample logits ``(B,)``: the mean of the patch logits."""
        return self.patch_logits(x, condition).mean(dim=(1, 2, 3))

    def extra_repr(self) -> str:
        return f"paired={self.paired}, spectral_norm={self.spectral_norm}"
