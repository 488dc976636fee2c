"""Mode-collapse remedies as D-side layers and operations: packing, minibatch standard deviation,
LinearMaxout.

- **Packing** (PacGAN; Lin, Khetan, Fanti & Oh, NeurIPS 2018): D judges *packs* of ``m`` samples
  concatenated along features (toy, ``(…, N, d) -> (…, N/m, m·d)``) or channels (images,
  ``(N, C, H, W) -> (N/m, m·C, H, W)``). Consecutive samples form a pack, so each sample is in
  exactly one pack; ``m = 1`` returns the tensor itself.
- **Minibatch standard deviation** (Karras, Aila, Laine & Lehtinen, ICLR 2018, sec. 3): the standard
  deviation of every feature over a group of samples, averaged into one number per group, appended
  to each sample of the group as one more feature (channel).
- **LinearMaxout** (Goodfellow, Warde-Farley, Mirza, Courville & Bengio, ICML 2013): ``k`` affine
  pieces per unit, ``h_i = max_j (x W_{ij} + b_{ij})``; PacGAN's 2D discriminator uses 5 pieces.

>>> x = torch.arange(12.0).reshape(6, 2)        # 6 samples of 2 features
>>> pack(x, 3, batch_dim=0)                      # 2 packs of 3 samples
tensor([[ 0.,  1.,  2.,  3.,  4.,  5.],
        [ 6.,  7.,  8.,  9., 10., 11.]])
>>> torch.equal(unpack(pack(x, 3, 0), 3, 0), x)
True
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_lab.errors import ConfigError, check_int
from gan_lab.nets.ensemble import EnsembleLinear

# --------------------------------------------------------------------------------------------------
# Packing
# --------------------------------------------------------------------------------------------------


def pack(x: Tensor, m: int, batch_dim: int) -> Tensor:
    """Packs of ``m`` consecutive samples, concatenated along the feature / channel dim.

    ``x``: ``(*lead, N, F, *rest)`` with the batch at ``batch_dim`` (0 for ``(N, C, H, W)``, 1 for
    an ensemble's ``(E, N, d)``); returns ``(*lead, N/m, m·F, *rest)``: pack ``j`` holds samples
    ``j·m … j·m + m − 1``, their features side by side (a reshape of contiguous memory). ``m = 1``
    returns ``x`` itself.

    Raises:
        ConfigError: ``N`` is not a multiple of ``m``.
    """
    if m == 1:
        return x
    n = x.shape[batch_dim]
    if n % m:
        raise ConfigError(f"a batch of {n} samples cannot be split into packs of {m}; use a multiple of {m}")
    shape = x.shape
    return x.reshape(*shape[:batch_dim], n // m, m * shape[batch_dim + 1], *shape[batch_dim + 2 :])


def unpack(x: Tensor, m: int, batch_dim: int) -> Tensor:
    """The inverse of :func:`pack`: ``(*lead, P, m·F, *rest) -> (*lead, P·m, F, *rest)``."""
    if m == 1:
        return x
    shape = x.shape
    return x.reshape(
        *shape[:batch_dim], shape[batch_dim] * m, shape[batch_dim + 1] // m, *shape[batch_dim + 2 :]
    )


# --------------------------------------------------------------------------------------------------
# Minibatch standard deviation
# --------------------------------------------------------------------------------------------------


def minibatch_stddev(x: Tensor, group_size: int | None = 4, batch_dim: int = 0, eps: float = 1e-8) -> Tensor:
    """Karras et al. (2018)'s minibatch standard deviation, appended as one more feature.

    ``x``: ``(*lead, N, C, *spatial)`` with the batch at ``batch_dim``. Samples are split into
    groups as ProGAN / StyleGAN do (``x.reshape(G, N/G, …)``: sample ``n`` is in group
    ``n mod N/G``); per group, ``s = mean_{c, spatial} sqrt(Var_group(x) + eps)`` (the population
    variance over the ``G`` samples of the group), and ``s`` is appended to every sample of the group
    as a constant channel: returns ``(*lead, N, C + 1, *spatial)``. ``group_size`` None: one group
    of the whole batch (per leading index, e.g. per ensemble member).

    Raises:
        ConfigError: ``N`` is not a multiple of the group size.

    >>> x = torch.tensor([[0.0, 2.0], [2.0, 4.0]])  # 2 samples, 2 features: std 1 in each
    >>> minibatch_stddev(x, group_size=None)
    tensor([[0., 2., 1.],
            [2., 4., 1.]])
    """
    n = x.shape[batch_dim]
    g = n if group_size is None else min(int(group_size), n)
    if n % g:
        raise ConfigError(
            f"minibatch standard deviation: a batch of {n} samples cannot be split into groups of {g}; "
            f"use a batch that is a multiple of {g}"
        )
    y = x.unflatten(batch_dim, (g, n // g))  # (*lead, G, N/G, C, *spatial)
    var = y.var(dim=batch_dim, unbiased=False)  # (*lead, N/G, C, *spatial)
    s = (var + eps).sqrt().flatten(batch_dim + 1).mean(-1)  # (*lead, N/G)
    s = s.unsqueeze(batch_dim).expand(*x.shape[:batch_dim], g, n // g).flatten(batch_dim, batch_dim + 1)
    feature = s.reshape(*s.shape, 1, *([1] * (x.dim() - batch_dim - 2)))  # (*lead, N, 1, 1...)
    feature = feature.expand(*x.shape[: batch_dim + 1], 1, *x.shape[batch_dim + 2 :])
    return torch.cat([x, feature.to(x.dtype)], dim=batch_dim + 1)


class MinibatchStdDev(nn.Module):
    """:func:`minibatch_stddev` as a layer: ``(*lead, N, C, *spatial) -> (*lead, N, C + 1, *spatial)``.

    Args:
        group_size: samples per group (ProGAN: 4); None: the whole batch.
        batch_dim: where the batch is (0 for images ``(N, C, H, W)``, 1 for the toy ensemble ``(E, N, C)``).

    The layer makes D's output for one sample depend on the others of its group, so a gradient
    penalty's ``∇ₓ Σ D(x)`` is no longer exactly per sample (ProGAN uses it with WGAN-GP all the same).
    """

    mixes_samples = True

    def __init__(self, group_size: int | None = 4, batch_dim: int = 0) -> None:
        super().__init__()
        if group_size is not None:
            check_int("minibatch std group_size", group_size, hint=" or null (the whole batch)")
        self.group_size, self.batch_dim = group_size, batch_dim

    def forward(self, x: Tensor) -> Tensor:
        return minibatch_stddev(x, self.group_size, self.batch_dim)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, batch_dim={self.batch_dim}"


# --------------------------------------------------------------------------------------------------
# LinearMaxout
# --------------------------------------------------------------------------------------------------


def maxout(x: Tensor, pieces: int) -> Tensor:
    """``(…, out·pieces) -> (…, out)``: the maximum over each unit's ``pieces`` consecutive entries.

    >>> maxout(torch.tensor([1.0, 5.0, -2.0, 3.0, 0.0, -1.0]), 3)
    tensor([5., 3.])
    """
    return x.unflatten(-1, (x.shape[-1] // pieces, pieces)).amax(-1)


class LinearMaxout(nn.Module):
    """E stacked maxout layers: ``h_{e,i} = max_j (x_e W_{e,ij} + b_{e,ij})``, ``j < pieces``.

    Shapes: ``(E, B, in_features) -> (E, B, out_features)``; one :class:`EnsembleLinear` to
    ``out_features · pieces`` (unit ``i``'s pieces are columns ``i·pieces … i·pieces + pieces − 1``)
    then :func:`maxout`. The input gradient is per sample (the max picks one piece per sample and
    unit), so every gradient penalty applies.
    """

    def __init__(self, members: int, in_features: int, out_features: int, pieces: int = 5) -> None:
        super().__init__()
        check_int("maxout pieces", pieces)
        self.members, self.in_features, self.out_features, self.pieces = (
            members,
            in_features,
            out_features,
            pieces,
        )
        self.linear = EnsembleLinear(members, in_features, out_features * pieces)

    def reset_parameters(self, generators: list[torch.Generator], init: str = "uniform") -> None:
        self.linear.reset_parameters(generators, init)

    def forward(self, x: Tensor) -> Tensor:
        return maxout(self.linear(x), self.pieces)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


def mixes_samples(net: nn.Module) -> bool:
    """Whether ``net`` holds a layer whose output for one sample depends on other samples
    (:class:`MinibatchStdDev`; BatchNorm is checked where it matters, in :mod:`gan_lab.checks`)."""
    return any(getattr(m, "mixes_samples", False) for m in net.modules())


__all__ = ["LinearMaxout", "MinibatchStdDev", "maxout", "minibatch_stddev", "mixes_samples", "pack", "unpack"]
