"""Fréchet distance between Gaussians fitted to two sets of features (FID when the features are
Inception-v3's 2048-d pool3 activations).

The Fréchet (2-Wasserstein) distance between ``N(μ1, Σ1)`` and ``N(μ2, Σ2)`` (Dowson & Landau,
1982) is

    d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)

and FID (Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium") is ``d²`` between the Gaussians fitted to Inception pool3 features of real and
generated images. This module works on any features ``(N, d)``: the evaluator names the result
FID only for Inception features (with a digit classifier's features it is "FD on digit features").

The trace of the matrix square root is computed as

    Tr((Σ1 Σ2)^½) = Σ_i √λ_i(M),    M = Σ1^½ Σ2 Σ1^½ = Fᵀ Σ2 F  (up to similarity),  Σ1 = F Fᵀ

(``Σ1 Σ2`` and ``Σ1^½ Σ2 Σ1^½`` are similar when Σ1 is invertible, and by continuity their
eigenvalues agree also when it is singular). Why this is stable: ``F`` and the eigenvalues of
``M`` come from *symmetric* eigendecompositions (``torch.linalg.eigh`` / ``eigvalsh``), which are
backward stable and whose eigenvalues are perfectly conditioned (Weyl: a perturbation ``E`` moves
each eigenvalue by at most ``‖E‖₂``); they are real by construction. ``scipy.linalg.sqrtm(Σ1 @ Σ2)``
(pytorch-fid) works on the *non-symmetric* product, whose Schur-based square root can return
complex values and loses accuracy for the (near-)singular covariances of N ≤ d samples, which is
why pytorch-fid adds ``1e-6 · I`` on failure. The one inaccuracy left is the square root of
eigenvalues that should be 0 but come out at rounding level ``δ`` (adding ``√δ`` each): negative
ones are clamped to 0, and the null space of the lower-rank covariance is dropped before the
second eigendecomposition (:func:`trace_sqrt_product`). All of it runs in float64.

Features with a NaN or an infinity give a NaN distance, as KID and precision / recall / density /
coverage do (:mod:`gan_lab.metrics.kid`, :mod:`gan_lab.metrics.prdc`): an evaluator logs only
finite values, and ``gan-lab metrics`` refuses such features in one line, naming how many.

Functional core: :func:`gaussian_statistics`, :func:`statistics_from_sums`,
:func:`frechet_distance`; :class:`FrechetDistance` is a ``torchmetrics.Metric`` over it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from gan_lab.errors import ConfigError, check_int

__all__ = [
    "FrechetDistance",
    "frechet_distance",
    "gaussian_statistics",
    "statistics_from_sums",
    "trace_sqrt_product",
]


def _features(features: Tensor, name: str = "features") -> Tensor:
    features = torch.as_tensor(features)
    if features.dim() != 2:
        raise ValueError(f"{name} must have shape (N, d), got {tuple(features.shape)}")
    _check_dim(features.shape[1])
    return features.detach()


def _check_dim(d: int) -> None:
    if d == 0:
        raise ConfigError("the features have 0 dimensions (shape (N, 0)); pass features (N, d) with d >= 1")


def _finite(*tensors: Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _nan(device: torch.device) -> Tensor:
    return torch.tensor(float("nan"), dtype=torch.float64, device=device)


def _check_n(n: int) -> None:
    if n < 2:
        raise ConfigError(
            f"a Fréchet distance needs at least 2 samples per side to estimate a covariance, got {n}; "
            "raise the number of samples"
        )


def gaussian_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance of features, in float64.

    ``μ = (1/N) Σ_i x_i``, ``Σ = (1/(N−1)) Σ_i (x_i − μ)(x_i − μ)ᵀ`` (the centred form).

    Args:
        features: ``(N, d)``, ``N ≥ 2``.

    Returns:
        ``mu (d,)`` and ``sigma (d, d)``, float64, on the features' device.

    Raises:
        ValueError: if ``features`` is not 2-D.
        ConfigError: if ``N < 2`` or ``d = 0``.

    >>> mu, sigma = gaussian_statistics(torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]]))
    >>> mu, sigma
    (tensor([2., 1.], dtype=torch.float64), tensor([[4., 0.],
            [0., 0.]], dtype=torch.float64))
    """
    x = _features(features).to(torch.float64)
    _check_n(x.shape[0])
    mu = x.mean(0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu, 0.5 * (sigma + sigma.T)


def statistics_from_sums(total: Tensor, outer: Tensor, n: int | Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance from summed sufficient statistics (what :class:`FrechetDistance`
    accumulates over batches and processes).

    ``μ = s / N``, ``Σ = (S − N μ μᵀ) / (N − 1)`` with ``s = Σ_i x_i`` and ``S = Σ_i x_i x_iᵀ``,
    in float64 (as torchmetrics' FID; the cancellation in ``S − N μμᵀ`` costs about
    ``‖μ‖² / var`` of float64's 16 digits, harmless for network features).

    Args:
        total: ``(d,)``, the sum of the samples.
        outer: ``(d, d)``, the sum of their outer products.
        n: the number of samples, ``≥ 2``.

    Returns:
        ``mu (d,)`` and ``sigma (d, d)``, float64.

    >>> x = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]], dtype=torch.float64)
    >>> statistics_from_sums(x.sum(0), x.T @ x, 3)[1]
    tensor([[4., 0.],
            [0., 0.]], dtype=torch.float64)
    """
    n = int(n)
    _check_n(n)
    total, outer = total.to(torch.float64), outer.to(torch.float64)
    mu = total / n
    sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
    return mu, 0.5 * (sigma + sigma.T)


def _check_gaussian(mu: Tensor, sigma: Tensor, which: str) -> tuple[Tensor, Tensor]:
    mu, sigma = torch.as_tensor(mu), torch.as_tensor(sigma)
    if mu.dim() != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"mu{which} must be (d,) and sigma{which} (d, d), got {tuple(mu.shape)} and {tuple(sigma.shape)}"
        )
    _check_dim(mu.shape[0])
    return mu.detach().to(torch.float64), sigma.detach().to(torch.float64)


def _range_factor(sigma: Tensor) -> Tensor:
    """``F = V_r diag(√w_r)`` (``(d, r)``, ``F Fᵀ = Σ``) over the eigenvalues ``w`` of ``Σ`` above its
    rounding level ``d · ε · max w``; the others are numerically 0 and dropped."""
    w, v = torch.linalg.eigh(0.5 * (sigma + sigma.T))
    tol = sigma.shape[0] * torch.finfo(torch.float64).eps * w.abs().max()
    keep = w > tol
    return v[:, keep] * w[keep].sqrt()


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """``Tr((Σ1 Σ2)^½)`` for symmetric PSD ``Σ1, Σ2`` (module docstring: why this form is stable).

    With ``Σ1 = F Fᵀ``, ``F = V_r diag(√w_r)`` from ``eigh(Σ1)``, the eigenvalues of
    ``Fᵀ Σ2 F`` (``r × r``) are the non-zero eigenvalues of ``Σ1^½ Σ2 Σ1^½``, so
    ``Tr((Σ1 Σ2)^½) = Σ_i √λ_i(Fᵀ Σ2 F)``. Eigenvalues of ``Σ1`` below its rounding level
    (``d · ε · λ_max``) are dropped: kept, each would add up to ``√(ε λ_max(Σ1) λ_max(Σ2))`` of
    rounding noise through the square root, which adds up for the rank-deficient covariances of
    ``N ≤ d`` samples. The factor is taken of whichever matrix has the lower numerical rank (the
    trace is symmetric in the two).

    Args:
        sigma1, sigma2: ``(d, d)`` symmetric PSD; computed in float64.

    Returns:
        float64 scalar; NaN when an entry of ``sigma1`` or ``sigma2`` is not finite.

    >>> trace_sqrt_product(torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([9.0, 1.0])))
    tensor(5., dtype=torch.float64)
    """
    s1, s2 = torch.as_tensor(sigma1).to(torch.float64), torch.as_tensor(sigma2).to(torch.float64)
    if s1.dim() != 2 or s1.shape[0] != s1.shape[1] or s1.shape != s2.shape:
        raise ValueError(
            f"sigma1 and sigma2 must be (d, d) each, got {tuple(s1.shape)} and {tuple(s2.shape)}"
        )
    _check_dim(s1.shape[0])
    if not _finite(s1, s2):  # eigh would fail with a misleading "failed to converge"
        return _nan(s1.device)
    f1, f2 = _range_factor(s1), _range_factor(s2)
    f, other = (f1, s2) if f1.shape[1] <= f2.shape[1] else (f2, s1)
    m = f.T @ other @ f  # (r, r)
    eigenvalues = torch.linalg.eigvalsh(0.5 * (m + m.T))
    return eigenvalues.clamp_min(0).sqrt().sum()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """Squared Fréchet distance ``‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1 Σ2)^½)`` between two Gaussians
    (Dowson & Landau, 1982; FID of Heusel et al., 2017, on Inception pool3 statistics).

    Symmetric in its two Gaussians, 0 for identical ones (up to rounding: it may come out a few
    ulps below 0; it is not clamped).

    Args:
        mu1, mu2: means ``(d,)``.
        sigma1, sigma2: covariances ``(d, d)``, symmetric PSD (e.g. from :func:`gaussian_statistics`).

    Returns:
        float64 scalar tensor; NaN when any entry of the statistics is not finite (features with a
        NaN or an infinity), as :func:`~gan_lab.metrics.kid.kernel_inception_distance` and
        :func:`~gan_lab.metrics.prdc.prdc` give NaN for them.

    Raises:
        ValueError: for shapes that do not match.
        ConfigError: for ``d = 0``.

    >>> mu = torch.zeros(2)
    >>> frechet_distance(mu, torch.diag(torch.tensor([1.0, 4.0])), mu + 1, torch.diag(torch.tensor([9.0, 1.0])))
    tensor(7., dtype=torch.float64)
    """
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "1")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two Gaussians have different dims: {mu1.shape[0]} and {mu2.shape[0]}")
    diff = mu1 - mu2  # non-finite statistics: NaN through trace_sqrt_product, as KID's and PRDC's
    return diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)


class FrechetDistance(Metric):
    """Squared Fréchet distance between the Gaussians of fake features and of a reference (real)
    set; FID when the features are Inception-v3 pool3 (the evaluator names it).

    The fake side is kept as summed sufficient statistics ``Σx (d,)``, ``Σxxᵀ (d, d)`` and the
    count (float64 / int64 states, ``dist_reduce_fx="sum"``), so the result does not depend on the
    order of the samples nor on how they were split into ``update`` calls or DDP processes (up to
    float64 rounding of the sums). The real side is either

    - fixed: ``mu``/``sigma`` given to the constructor or to :meth:`set_reference` (e.g. cached
      reference statistics); kept as float64 buffers, not reset by :meth:`reset`, not in the state
      dict (configuration, rebuilt with the metric); or
    - accumulated: ``update(features, real=True)`` into its own summed states (reset with the rest).

    Args:
        num_features: the feature dim ``d``; may be left out when ``mu`` is given.
        mu, sigma: a fixed reference Gaussian ``(d,)``, ``(d, d)``.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        ConfigError: without ``num_features`` and ``mu``, or when they disagree.

    >>> metric = FrechetDistance(num_features=2)
    >>> metric.update(torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]), real=True)
    >>> metric.update(torch.tensor([[1.0, 1.0], [3.0, 1.0], [1.0, 3.0], [3.0, 3.0]]))
    >>> round(metric.compute().item(), 9)  # same covariance, means (1, 1) apart: ‖Δμ‖² = 2
    2.0
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    fake_sum: Tensor
    fake_outer: Tensor
    fake_n: Tensor
    real_sum: Tensor
    real_outer: Tensor
    real_n: Tensor
    ref_mu: Tensor | None
    ref_sigma: Tensor | None

    def __init__(
        self,
        num_features: int | None = None,
        mu: Tensor | None = None,
        sigma: Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_features is None:
            if mu is None:
                raise ConfigError("FrechetDistance needs num_features (the feature dim d) or a reference mu")
            num_features = int(torch.as_tensor(mu).shape[-1])
        d = check_int("num_features (the feature dim d)", num_features)
        self.num_features = d
        for side in ("fake", "real"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.register_buffer("ref_mu", None, persistent=False)
        self.register_buffer("ref_sigma", None, persistent=False)
        if (mu is None) != (sigma is None):
            raise ConfigError("FrechetDistance: give both mu and sigma of the reference, or neither")
        if mu is not None:
            self.set_reference(mu, sigma)

    def set_reference(self, mu: Tensor, sigma: Tensor) -> None:
        """Fix the reference Gaussian ``(mu (d,), sigma (d, d))`` (kept in float64 across ``reset``).

        Raises:
            ConfigError: if the shapes do not match ``num_features``.
        """
        mu, sigma = torch.as_tensor(mu), torch.as_tensor(sigma)
        d = self.num_features
        if mu.shape != (d,) or sigma.shape != (d, d):
            raise ConfigError(
                f"the reference statistics must be mu ({d},) and sigma ({d}, {d}) for {d}-d features, got "
                f"{tuple(mu.shape)} and {tuple(sigma.shape)}; were they computed with another feature net?"
            )
        self.ref_mu = mu.detach().to(device=self.device, dtype=torch.float64).clone()
        self.ref_sigma = sigma.detach().to(device=self.device, dtype=torch.float64).clone()

    def update(self, features: Tensor, real: bool = False) -> None:
        """Add a batch of features ``(B, d)``: fake by default, real with ``real=True``.

        Raises:
            ValueError: for another shape, or real features when a fixed reference is set.
        """
        x = _features(features)
        if x.shape[1] != self.num_features:
            raise ValueError(f"features must be (B, {self.num_features}), got {tuple(x.shape)}")
        if real and self.ref_mu is not None:
            raise ValueError(
                "this FrechetDistance has a fixed reference (set_reference); do not update it with real=True"
            )
        x = x.to(device=self.device, dtype=torch.float64)
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + x.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + x.T @ x)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + x.shape[0])

    def reference(self) -> tuple[Tensor, Tensor]:
        """The real side's ``(mu, sigma)``: the fixed reference, or the accumulated real features'.

        Raises:
            ConfigError: when there is neither.
        """
        if self.ref_mu is not None:
            return self.ref_mu, self.ref_sigma
        if int(self.real_n) == 0:
            raise ConfigError(
                "FrechetDistance has no reference: call set_reference(mu, sigma) or update(features, real=True)"
            )
        return statistics_from_sums(self.real_sum, self.real_outer, self.real_n)

    def compute(self) -> Tensor:
        """The squared Fréchet distance, a float64 scalar (NaN when a feature was not finite).

        Raises:
            ConfigError: no reference, or fewer than 2 samples on a side.
        """
        mu_real, sigma_real = self.reference()
        mu_fake, sigma_fake = statistics_from_sums(self.fake_sum, self.fake_outer, self.fake_n)
        return frechet_distance(mu_fake, sigma_fake, mu_real, sigma_real)

    def _apply(self, fn, *args: Any, **kwargs: Any):
        """Move the reference with the metric (``.to(device)``) but keep it in float64."""
        mu, sigma = self.ref_mu, self.ref_sigma
        this = super()._apply(fn, *args, **kwargs)
        if mu is not None and this.ref_mu.dtype != torch.float64:
            this.ref_mu = mu.to(this.ref_mu.device)
            this.ref_sigma = sigma.to(this.ref_sigma.device)
        return this

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, fixed_reference={self.ref_mu is not None}"
