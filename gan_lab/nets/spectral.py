"""Spectral normalisation (Miyato et al., ICLR 2018) that is seeded and stays float32 under autocast.

``W_SN = W / σ(W)``, with σ(W) the largest singular value of ``W`` reshaped to ``(out, in·k·k)``,
estimated by one power iteration per training forward (torch's
``torch.nn.utils.parametrizations.spectral_norm``, used as is). Two additions:

- **seeded**: torch draws the power iteration's start vectors ``u``, ``v`` from the global RNG;
  :func:`spectral_norm_` draws them from a seed taken from the net's own ``torch.Generator``, so
  that a net built with the same seed is the same net (buffers included), whatever ran before.
- **float32 under autocast**: on CUDA, autocast runs ``torch.mv`` (the power iteration and
  ``σ = uᵀWv``) in float16 / bfloat16, which puts a ~1e-3 / ~1e-2 relative error into σ and into
  ``u``, ``v`` at every step. :class:`SNConv2d` and :class:`SNLinear` compute their normalised
  weight with autocast off (float32), then run the convolution / matmul under the caller's autocast
  as usual.

>>> g = torch.Generator().manual_seed(0)
>>> conv = spectral_norm_(SNConv2d(3, 8, 3, padding=1), g)
>>> with torch.autocast("cpu", dtype=torch.bfloat16):
...     y = conv(torch.randn(2, 3, 8, 8))
>>> y.dtype, float32_weight(conv).dtype
(torch.bfloat16, torch.float32)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def spectral_norm_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Register torch's spectral norm on ``module.weight`` (in place; returns ``module``), with
    the power iteration's start vectors drawn from a seed that ``generator`` gives (one draw).

    Call it *after* initialising the weight: registration runs 15 power iterations on it."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):  # the global CPU stream is restored afterwards
        torch.default_generator.manual_seed(seed)
        spectral_norm(module)
    return module


def float32_weight(module: nn.Module) -> Tensor:
    """``module.weight`` computed with autocast off: for a spectrally normalised module, the power
    iteration (training mode) and ``W / σ`` run in the weight's own dtype (float32)."""
    if not parametrize.is_parametrized(module, "weight"):
        return module.weight
    device_type = module.parametrizations.weight.original.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        return module.weight


class SNConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose (spectrally normalised) weight is computed in float32 under autocast
    (:func:`float32_weight`); register the norm with :func:`spectral_norm_`. Zero padding only."""

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, float32_weight(self), self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class SNLinear(nn.Linear):
    """``nn.Linear`` whose (spectrally normalised) weight is computed in float32 under autocast."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, float32_weight(self), self.bias)
