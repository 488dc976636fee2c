"""Images from a fixed noise set, each DDP rank its share: what the image evaluators score.

An image evaluator scores ``N`` samples ``G(z_i)``, ``i = 0 … N−1``, from the fixed noise set
:func:`gan_lab.seeding.fixed_noise` ``(N, z_dim)`` (one seed for every run, member and evaluation,
so that curves are comparable). Under DDP rank ``r`` of ``W`` generates the samples ``i ≡ r (mod W)``
(:func:`rank_share`), and the evaluators' torchmetrics states (sums or concatenations) gather the
shares: every sample is scored exactly once, whatever the world size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_lab.seeding import fixed_noise


def rank_share(n: int, rank: int = 0, world: int = 1) -> Tensor:
    """Indices of the samples rank ``rank`` of ``world`` generates: ``rank, rank + world, …``.

    >>> rank_share(5, 0, 2).tolist(), rank_share(5, 1, 2).tolist()
    ([0, 2, 4], [1, 3])
    """
    return torch.arange(int(rank), int(n), int(world))


def rank_of(trainer) -> tuple[int, int]:
    """``(global_rank, world_size)`` of a trainer (``(0, 1)`` without one)."""
    if trainer is None:
        return 0, 1
    return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))


@torch.no_grad()
def generate_fixed(
    pl_module, n: int, noise_seed: int, batch_size: int, use_ema: bool = True, rank: int = 0, world: int = 1
):
    """Yield this rank's share of ``G(z)`` for the fixed noise set, ``(b, C, H, W)`` float32 batches
    clamped to ``[-1, 1]`` (as images are saved), in index order; G in eval mode (``G_ema`` when kept
    and ``use_ema``)."""
    z = fixed_noise(n, pl_module.G.z_dim, noise_seed)[rank_share(n, rank, world)]  # (n_r, z_dim)
    for start in range(0, z.shape[0], batch_size):
        batch = z[start : start + batch_size].to(pl_module.device)
        yield pl_module.generate(batch, ema=use_ema).float().clamp_(-1.0, 1.0)


def features_of(net, images, batch_size: int, device, logits: bool = False) -> tuple[Tensor, Tensor | None]:
    """``net``'s features ``(N, d)`` (and logits, when asked for) of ``images`` — a tensor
    ``(N, C, H, W)`` or an iterable of such batches — computed ``batch_size`` at a time on ``device``."""
    batches = images.split(batch_size) if isinstance(images, Tensor) else images
    feats, outs = [], []
    with torch.no_grad():
        for x in batches:
            x = x.to(device)
            if logits:
                f, y = net.features_and_logits(x)
                outs.append(y.float())
            else:
                f = net(x)
            feats.append(f.float())
    if not feats:
        return torch.empty(0), None
    return torch.cat(feats), (torch.cat(outs) if logits else None)
