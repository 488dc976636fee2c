"""Kernel distance between two sets of features: the unbiased MMD² with a cubic polynomial kernel
(KID when the features are Inception-v3 pool3; Bińkowski et al., 2018, "Demystifying MMD GANs").

With the kernel ``k(x, y) = (γ xᵀy + c)^p`` (defaults ``p = 3``, ``γ = 1/d``, ``c = 1``) and two
subsets ``X = {x_1..x_m}`` (real) and ``Y = {y_1..y_m}`` (fake) of ``m`` samples each, the
unbiased estimator of MMD² is

    MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m−1)) Σ_{i≠j} k(y_i, y_j) − 2/m² Σ_{i,j} k(x_i, y_j)

It is averaged over ``subsets`` random draws of ``m = subset_size`` samples per side, each draw
without replacement (``randperm(n)[:m]``, real then fake, as torchmetrics' ``KernelInceptionDistance``
draws them); the result is ``(mean, std)`` over the draws, std with ddof 0 as torchmetrics and
torch-fidelity report it. Being unbiased, the estimate can be slightly negative for two samples of
one distribution. Kernels and sums are float64.

The draws come from a ``torch.Generator`` (CPU, so the same seed draws the same subsets on every
device). :class:`KernelDistance` first puts the samples of each side in a canonical order
(:func:`canonical_sort`), so its result does not depend on the order in which batches arrived
(e.g. the rank order of a DDP gather).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_lab.errors import ConfigError, check_int
from gan_lab.metrics.feature_sets import FeatureSetsMetric

__all__ = [
    "KernelDistance",
    "canonical_sort",
    "kernel_inception_distance",
    "polynomial_mmd2",
]


def _direction(d: int, device: torch.device) -> Tensor:
    """The fixed random direction ``(d,)`` (float64) of :func:`canonical_sort`'s keys."""
    return torch.randn(d, generator=torch.Generator().manual_seed(20180101), dtype=torch.float64).to(device)


def canonical_sort(x: Tensor) -> Tensor:
    """The rows of ``x`` in an order that depends only on the multiset of rows, not on their order.

    Rows are sorted by their projection on a fixed random direction (float64). Where two
    different rows have keys within ``1e-10 · max |key|`` of each other (a tie, or a near tie that
    rounding could turn around depending on where a row sits in the matrix), all rows are sorted
    lexicographically instead: exact, and rare for continuous features. Equal rows are
    interchangeable, so their ties do not matter.

    Args:
        x: ``(N, d)``.

    Returns:
        ``(N, d)``, a permutation of the rows.

    >>> canonical_sort(torch.tensor([[2.0, 0.0], [1.0, 0.0]])).equal(canonical_sort(torch.tensor([[1.0, 0.0], [2.0, 0.0]])))
    True
    """
    n, d = x.shape
    if n < 2:
        return x
    key = x.to(torch.float64) @ _direction(d, x.device)  # (N,)
    order = torch.argsort(key, stable=True)
    xs, ks = x[order], key[order]
    tol = 1e-10 * float(ks.abs().max()) if bool(torch.isfinite(ks).all()) else 0.0
    tied = torch.nonzero(ks[1:] - ks[:-1] <= tol).flatten()  # sorted positions i, i + 1 (near) tied
    if tied.numel() and bool((xs[tied] != xs[tied + 1]).any()):
        rows = x.detach().cpu().to(torch.float64).numpy()
        order = torch.from_numpy(np.lexsort(rows.T[::-1]).copy()).to(x.device)  # first column primary
        return x[order]
    return xs


def _kernel(a: Tensor, b: Tensor, degree: int, gamma: float, coef0: float) -> Tensor:
    return (gamma * (a @ b.T) + coef0) ** degree


def polynomial_mmd2(
    real: Tensor, fake: Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> Tensor:
    """The unbiased MMD² between ``m`` real and ``n`` fake samples with the polynomial kernel
    ``(γ xᵀy + c)^degree``, in float64 (Bińkowski et al., 2018, eq. 3; Gretton et al., 2012, Lemma 6):

        MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j)

    (the module docstring's form when ``m = n``, the only case KID draws, as torchmetrics and
    torch-fidelity do; both of those assume it, with ``m`` for every term).

    Args:
        real: ``(m, d)``, ``m ≥ 2``.
        fake: ``(n, d)``, ``n ≥ 2``.
        degree, gamma, coef0: the kernel; ``gamma=None`` means ``1/d``.

    Returns:
        float64 scalar.

    Raises:
        ConfigError: fewer than 2 samples on a side, or ``d = 0``.
        ValueError: features that are not 2-D or of different dims.

    >>> x = torch.tensor([[1.0], [-1.0]])
    >>> polynomial_mmd2(x, x, degree=1, gamma=1.0, coef0=0.0)  # k = xy: -2/2 - 2/2 - 2·0/4
    tensor(-2., dtype=torch.float64)
    >>> polynomial_mmd2(x, torch.tensor([[1.0], [1.0], [1.0]]), degree=1, gamma=1.0, coef0=0.0)  # -1 + 1 - 0
    tensor(0., dtype=torch.float64)
    """
    x, y = _check_sides(real, fake)
    x, y = x.to(torch.float64), y.to(torch.float64)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ConfigError(
            f"the unbiased MMD² needs at least 2 samples per side, got {m} real / {n} fake; raise the number of samples"
        )
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    k_xx = _kernel(x, x, degree, gamma, coef0)
    k_yy = _kernel(y, y, degree, gamma, coef0)
    k_xy = _kernel(x, y, degree, gamma, coef0)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.sum() / (m * n)


def _check_sides(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Both sides as detached tensors ``(N, d)``, ``(M, d)`` with ``d ≥ 1``."""
    real, fake = torch.as_tensor(real).detach(), torch.as_tensor(fake).detach()
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake features must be (N, d) and (M, d), got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if real.shape[1] == 0:
        raise ConfigError("the features have 0 dimensions (shape (N, 0)); pass features (N, d) with d >= 1")
    return real, fake


def _check_kernel(subsets: int, subset_size: int, degree: int, gamma: float | None, coef0: float) -> None:
    check_int("KID subsets", subsets)
    check_int("KID subset_size", subset_size, minimum=2)
    check_int("KID degree", degree)
    if gamma is not None and (
        isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0
    ):
        raise ConfigError(f"KID gamma must be a number > 0 or None (1/d), got {gamma!r}")
    if isinstance(coef0, bool) or not isinstance(coef0, (int, float)) or not 0 <= coef0 < math.inf:
        raise ConfigError(f"KID coef0 must be a number >= 0, got {coef0!r}")


def _check_counts(n_real: int, n_fake: int, subset_size: int) -> None:
    if n_real < subset_size or n_fake < subset_size:
        raise ConfigError(
            f"KID needs at least {subset_size} samples per side, got {n_real} real / {n_fake} fake; "
            "lower subset_size or raise n"
        )


def kernel_inception_distance(
    real: Tensor,
    fake: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """KID: mean and std (ddof 0) of the unbiased polynomial-kernel MMD² over random subsets
    (Bińkowski et al., 2018; module docstring).

    Args:
        real, fake: features ``(N, d)`` and ``(M, d)``, ``N, M ≥ subset_size``.
        subsets: number of subset draws.
        subset_size: ``m``, samples per side in each draw (without replacement).
        degree, gamma, coef0: the kernel ``(γ xᵀy + c)^degree``; ``gamma=None`` means ``1/d``.
        generator: a CPU ``torch.Generator`` for the draws (default: torch's global one).

    Returns:
        ``(mean, std)``, float64 scalars; NaN when any feature is not finite.

    Raises:
        ConfigError: bad kernel arguments, fewer than ``subset_size`` samples on a side, or ``d = 0``
            (before any work).
        ValueError: features that are not 2-D or of different dims.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 8, generator=g)
    >>> mean, std = kernel_inception_distance(x, x + 2, subsets=10, subset_size=100, generator=g)
    >>> bool(mean > 10 * std)
    True
    """
    _check_kernel(subsets, subset_size, degree, gamma, coef0)
    real, fake = _check_sides(real, fake)
    _check_counts(real.shape[0], fake.shape[0], subset_size)
    if not bool(torch.isfinite(real).all() and torch.isfinite(fake).all()):
        nan = torch.tensor(math.nan, dtype=torch.float64)
        return nan, nan.clone()
    scores = torch.empty(subsets, dtype=torch.float64)
    for s in range(subsets):
        real_idx = torch.randperm(real.shape[0], generator=generator)[:subset_size]
        fake_idx = torch.randperm(fake.shape[0], generator=generator)[:subset_size]
        x, y = real[real_idx.to(real.device)], fake[fake_idx.to(fake.device)]
        scores[s] = polynomial_mmd2(x, y, degree, gamma, coef0).cpu()
    return scores.mean(), scores.std(correction=0)


class KernelDistance(FeatureSetsMetric):
    """KID (on Inception pool3 features; a kernel distance on any features) as a torchmetrics Metric.

    States: the real and fake features, lists concatenated across processes
    (``dist_reduce_fx="cat"``). The real side may instead be a fixed reference tensor
    (constructor ``reference=`` or :meth:`set_reference`), a buffer kept across ``reset``.
    ``compute`` sorts each side canonically (:func:`canonical_sort`) and draws the subsets with a
    generator seeded ``seed`` each time, so it is deterministic and independent of the order of
    the samples (and of the DDP rank order).

    Args:
        subsets, subset_size, degree, gamma, coef0: as :func:`kernel_inception_distance`.
        seed: seed of the subset draws.
        reference: fixed real features ``(N, d)``.
        kwargs: passed to ``torchmetrics.Metric``.

    >>> g = torch.Generator().manual_seed(0)
    >>> metric = KernelDistance(subsets=5, subset_size=50)
    >>> metric.update(torch.randn(100, 4, generator=g), real=True)
    >>> metric.update(torch.randn(100, 4, generator=g) + 3)
    >>> mean, std = metric.compute()
    >>> bool(mean > 10 * std)
    True
    """

    is_differentiable = False
    higher_is_better = False
    LABEL = "KernelDistance"

    def __init__(
        self,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        gamma: float | None = None,
        coef0: float = 1.0,
        seed: int = 0,
        reference: Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(reference, **kwargs)
        _check_kernel(subsets, subset_size, degree, gamma, coef0)
        check_int("KID seed", seed, minimum=0)
        self.subsets, self.subset_size, self.degree = subsets, subset_size, degree
        self.gamma, self.coef0, self.seed = gamma, coef0, seed

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` over the subsets, float64 scalars.

        Raises:
            ConfigError: no real features, or fewer than ``subset_size`` samples on a side.
        """
        real, fake = self.sides(fake_required=False)
        _check_counts(real.shape[0], fake.shape[0], self.subset_size)
        generator = torch.Generator().manual_seed(self.seed)
        return kernel_inception_distance(
            canonical_sort(real),
            canonical_sort(fake),
            self.subsets,
            self.subset_size,
            self.degree,
            self.gamma,
            self.coef0,
            generator,
        )

    def extra_repr(self) -> str:
        return (
            f"subsets={self.subsets}, subset_size={self.subset_size}, degree={self.degree}, seed={self.seed}"
        )
