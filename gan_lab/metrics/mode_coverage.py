"""Mode coverage on toy Gaussian mixtures: the PacGAN / VEEGAN evaluation protocol.

The protocol (Srivastava et al., 2017, "VEEGAN", sec. 5.1; Lin et al., 2018, "PacGAN", sec. 4.1),
for a mixture of ``K`` Gaussians with means ``μ_1..μ_K`` and a common std ``σ`` (ring8: 8 means on
the unit circle, ``σ = 0.01``; grid25: ``{-4,-2,0,2,4}²``, ``σ = 0.05``):

1. Assign each generated sample ``x`` to its nearest mean, ``k(x) = argmin_k ||x - μ_k||_2``
   (Euclidean; a tie goes to the lowest index).
2. ``x`` is *high quality* (HQ) if ``||x - μ_k(x)||_2 / σ < 3`` (strict), decided in float64 (the
   exact values of float32 samples and means; float32 arithmetic misplaces samples within an ulp or
   two of the threshold).
3. Mode ``k`` is *covered* if at least one HQ sample is assigned to it.

Reported per run (per ensemble member):

    modes        #{k : c_k ≥ 1}                       c_k = number of HQ samples assigned to mode k
    hq_fraction  Σ_k c_k / N                          N = number of samples, HQ or not
    reverse_kl   KL(p̂ ‖ u) = Σ_k p̂_k log(K p̂_k)      p̂_k = c_k / Σ_j c_j,  u = uniform over K
    js           JS(p̂, u)                             in nats, see gan_lab.divergences

``reverse_kl`` is *reverse* because ``p̂`` is the model's distribution over modes and ``u`` the
data's: it is 0 when the HQ samples are spread evenly over all modes and ``log K`` when they all
sit on one mode. Non-HQ samples lower ``hq_fraction`` but are left out of ``p̂``. When a run has
**no** HQ sample, ``p̂`` is undefined (0/0) and ``reverse_kl`` and ``js`` are **NaN** (``modes``
is 0, ``hq_fraction`` 0); :func:`mean_and_se` skips them, so report how many runs that was.
Samples that are NaN or inf (a diverged generator) count in ``N`` but are never HQ.

The code is a functional core, :func:`mode_counts` -> :func:`coverage_from_counts` (composed in
:func:`mode_coverage`), and :class:`ModeCoverage`, a ``torchmetrics.Metric`` that only sums the
counts over ``update`` calls (and over DDP processes) and hands them to the same function.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from gan_lab.divergences import js_divergence, kl_divergence
from gan_lab.errors import ConfigError, check_int

__all__ = [
    "HQ_THRESHOLD",
    "ModeCoverage",
    "coverage_from_counts",
    "mean_and_se",
    "mode_counts",
    "mode_coverage",
]

HQ_THRESHOLD = 3.0
"""A sample is high quality if its distance to the nearest mean is below this many stds."""


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def _check_means(means: Tensor) -> Tensor:
    means = torch.as_tensor(means)
    if means.dim() != 2 or means.shape[0] < 1 or means.shape[1] < 1:
        raise ConfigError(f"mixture means must have shape (K, d) with K, d >= 1, got {tuple(means.shape)}")
    if not means.is_floating_point():
        means = means.to(torch.get_default_dtype())
    if not bool(torch.isfinite(means).all()):
        raise ConfigError("mixture means must be finite")
    return means


def _check_std(std: float) -> float:
    if isinstance(std, Tensor) and std.numel() == 1:
        std = std.item()
    if isinstance(std, bool) or not isinstance(std, numbers.Real) or not 0 < std < math.inf:
        raise ConfigError(f"the mixture component std must be a finite number > 0, got {std!r}")
    return float(std)


def _check_samples(samples: Tensor, d: int) -> Tensor:
    samples = torch.as_tensor(samples)
    if samples.dim() < 2 or samples.shape[-1] != d:
        raise ValueError(
            f"samples must have shape (N, {d}) or (E, N, {d}) to match the means (K, {d}), "
            f"got {tuple(samples.shape)}"
        )
    return samples


def _result_dtype(means: Tensor) -> torch.dtype:
    """float64 when the means are float64, float32 otherwise (never half: counts up to 2^24 exact)."""
    return torch.float64 if means.dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------------------


def mode_counts(samples: Tensor, means: Tensor, std: float) -> tuple[Tensor, Tensor]:
    """Per-mode counts of high-quality samples: steps 1-2 of the protocol (module docstring).

    ``c_k = #{x : argmin_j ||x - μ_j|| = k  and  ||x - μ_k|| / σ < 3}``.

    Args:
        samples: ``(N, d)`` for one run, ``(E, N, d)`` for an ensemble of ``E`` seeds (any leading
            dims work). Detached; distances are computed exactly (no ``||a||² + ||b||² - 2ab``
            shortcut) and compared with ``3σ`` in float64, whatever the samples' dtype.
        means: mixture means ``(K, d)``.
        std: the std ``σ`` of every mixture component.

    Returns:
        ``hq_counts`` of shape ``(..., K)`` (int64) and ``n_total`` of shape ``(...)`` (int64, the
        number of samples ``N``, HQ or not).

    Raises:
        ValueError: if ``samples`` does not end in ``(N, d)``.
        ConfigError: if ``means`` is not ``(K, d)`` and finite, or ``std`` is not > 0.

    >>> means = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    >>> samples = torch.tensor([[0.0, 0.0], [0.01, 0.0], [0.99, 0.0], [0.5, 0.5]])
    >>> mode_counts(samples, means, std=0.01)  # the last sample is 0.7 (70 std) from both means
    (tensor([2, 1]), tensor(4))
    """
    means = _check_means(means)
    return _mode_counts(_check_samples(samples, means.shape[1]), means, _check_std(std))


def _mode_counts(samples: Tensor, means: Tensor, std: float) -> tuple[Tensor, Tensor]:
    """:func:`mode_counts` without the input checks (the metric checks once, in ``__init__``)."""
    samples = samples.detach()
    device = samples.device
    # float64 (on the CPU where the device has none): float32 arithmetic puts samples within an ulp
    # or two of 3 std on the wrong side of the threshold
    work = torch.device("cpu") if device.type == "mps" else device
    x = samples.to(device=work, dtype=torch.float64)  # (..., N, d)
    mu = means.to(device=work, dtype=torch.float64)  # (K, d)
    *lead, n, _ = x.shape
    hq_counts = torch.zeros(*lead, means.shape[0], dtype=torch.long, device=work)  # (..., K)
    n_total = torch.full(lead, n, dtype=torch.long, device=device)  # (...)
    if n == 0:
        return hq_counts.to(device), n_total
    dist = torch.cdist(x, mu, compute_mode="donot_use_mm_for_euclid_dist")  # (..., N, K)
    nearest_dist, nearest = dist.min(dim=-1)  # (..., N), (..., N); NaN samples give NaN distances
    hq = nearest_dist / std < HQ_THRESHOLD  # (..., N); False for NaN / inf
    hq_counts.scatter_add_(-1, nearest, hq.long())
    return hq_counts.to(device), n_total


def coverage_from_counts(
    hq_counts: Tensor, n_total: Tensor, dtype: torch.dtype = torch.float32
) -> dict[str, Tensor]:
    """The protocol's four numbers from HQ counts per mode (step 3 and the report).

    Args:
        hq_counts: ``(..., K)`` HQ samples assigned to each mode.
        n_total: ``(...)`` all samples, HQ or not.
        dtype: floating dtype of the results.

    Returns:
        ``{"modes", "hq_fraction", "reverse_kl", "js"}``, each of shape ``(...)``; ``reverse_kl``
        and ``js`` are NaN where there is no HQ sample, ``hq_fraction`` is NaN where ``n_total`` is 0.

    >>> out = coverage_from_counts(torch.tensor([4, 0, 0, 0]), torch.tensor(5))
    >>> {k: round(v.item(), 4) for k, v in out.items()}  # reverse KL = log 4
    {'modes': 1.0, 'hq_fraction': 0.8, 'reverse_kl': 1.3863, 'js': 0.3804}
    """
    k = hq_counts.shape[-1]
    counts = hq_counts.to(dtype)  # (..., K)
    n_hq = counts.sum(-1)  # (...)
    modes = (hq_counts > 0).sum(-1).to(dtype)
    hq_fraction = n_hq / n_total.to(dtype)
    p_hat = counts / n_hq.clamp_min(1.0).unsqueeze(-1)  # (..., K); all zeros where n_hq = 0
    uniform = torch.full((k,), 1.0 / k, dtype=dtype, device=counts.device)  # (K,)
    nan = torch.full_like(n_hq, math.nan)
    defined = n_hq > 0
    return {
        "modes": modes,
        "hq_fraction": hq_fraction,
        "reverse_kl": torch.where(defined, kl_divergence(p_hat, uniform), nan),
        "js": torch.where(defined, js_divergence(p_hat, uniform), nan),
    }


def mode_coverage(samples: Tensor, means: Tensor, std: float) -> dict[str, Tensor]:
    """Mode coverage of generated samples on a Gaussian mixture (PacGAN / VEEGAN protocol).

    See the module docstring for the protocol and the four outputs.

    Args:
        samples: ``(N, d)`` for one run, or ``(E, N, d)`` for an ensemble of ``E`` seeds.
        means: mixture means ``(K, d)``.
        std: the std ``σ`` of every mixture component.

    Returns:
        ``{"modes", "hq_fraction", "reverse_kl", "js"}``, each of shape ``()`` for ``(N, d)`` input
        and ``(E,)`` for ``(E, N, d)``; float64 if ``means`` is float64, else float32.
        ``reverse_kl`` and ``js`` are NaN for a run without any HQ sample.

    Raises:
        ValueError: if ``samples`` does not end in ``(N, d)``.
        ConfigError: if ``means`` is not ``(K, d)`` and finite, or ``std`` is not > 0.

    >>> angles = 2 * math.pi * torch.arange(8) / 8
    >>> ring8 = torch.stack([angles.cos(), angles.sin()], dim=-1)  # (8, 2)
    >>> samples = ring8[torch.tensor([0, 0, 1, 2])]  # 3 of the 8 modes, counts 2, 1, 1
    >>> out = mode_coverage(samples, ring8, std=0.01)
    >>> {k: round(v.item(), 4) for k, v in out.items()}
    {'modes': 3.0, 'hq_fraction': 1.0, 'reverse_kl': 1.0397, 'js': 0.2981}
    """
    means = _check_means(means)
    hq_counts, n_total = mode_counts(samples, means, std)
    return coverage_from_counts(hq_counts, n_total, dtype=_result_dtype(means))


def mean_and_se(values: Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean over the finite entries: the papers' "mean ± s.e. over
    trials" (e.g. PacGAN's tables over 10 trials), here over the members of a seed ensemble.

    ``mean = Σ v_i / n``, ``se = s / √n`` with ``s² = Σ (v_i - mean)² / (n - 1)`` (ddof = 1, as
    ``scipy.stats.sem``), over the ``n`` finite entries (NaN and ±inf are skipped: e.g. the
    reverse KL of a run without HQ samples). ``se`` is NaN when ``n < 2``, and ``mean`` too when
    ``n = 0``.

    Args:
        values: any shape; flattened. Computed in float64.

    Returns:
        ``(mean, se)`` as Python floats.

    >>> mean_and_se(torch.tensor([6.0, 8.0, 7.0, float("nan")]))  # s = 1, n = 3
    (7.0, 0.5773502691896258)
    >>> mean_and_se(torch.tensor([5.0]))
    (5.0, nan)
    """
    v = torch.as_tensor(values).detach().to(device="cpu", dtype=torch.float64).flatten()
    v = v[torch.isfinite(v)]
    n = v.numel()
    mean = v.mean().item() if n > 0 else math.nan
    se = (v.std(correction=1) / math.sqrt(n)).item() if n > 1 else math.nan
    return mean, se


# --------------------------------------------------------------------------------------------------
# Metric
# --------------------------------------------------------------------------------------------------


class ModeCoverage(Metric):
    """Mode coverage on a Gaussian mixture (PacGAN / VEEGAN protocol), per ensemble member.

    ``update`` adds the HQ counts of a batch of generated samples; ``compute`` returns the four
    numbers of :func:`mode_coverage` for everything seen since the last ``reset``, each of shape
    ``(E,)`` (``()`` when ``members == 1``: torchmetrics squeezes one-element results). Accumulating
    over several ``update`` calls (or DDP processes) gives the same result as one call on all the
    samples, because only counts are stored (states ``hq_counts (E, K)`` and ``n_total (E,)``,
    both summed across processes).

    The means are a non-persistent buffer: they follow ``.to(device)`` and stay out of the
    metric states and of checkpoints (they are configuration, rebuilt with the module). Like the
    states, they keep their dtype under ``.half()`` / ``.to(dtype)`` (torchmetrics' rule), so a
    ``16-true`` run does not round the means.

    Args:
        means: mixture means ``(K, d)``.
        std: the std ``σ`` of every mixture component.
        members: ensemble size ``E``.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        ConfigError: for bad ``means``, ``std`` or ``members``.

    >>> angles = 2 * math.pi * torch.arange(8) / 8
    >>> ring8 = torch.stack([angles.cos(), angles.sin()], dim=-1)  # (8, 2)
    >>> metric = ModeCoverage(ring8, std=0.01, members=2)
    >>> metric.update(torch.stack([ring8, ring8[:1].expand(8, 2)]))  # (E=2, N=8, d=2)
    >>> out = metric.compute()
    >>> out["modes"], out["reverse_kl"]  # member 0 covers all 8 modes, member 1 only one
    (tensor([8., 1.]), tensor([0.0000, 2.0794]))
    """

    is_differentiable = False
    higher_is_better = None  # more modes and HQ is better, lower KL / JS is better
    full_state_update = False

    means: Tensor
    hq_counts: Tensor
    n_total: Tensor

    def __init__(self, means: Tensor, std: float, members: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        means = _check_means(means)
        check_int("members (the ensemble size E)", members)
        self.std = _check_std(std)
        self.members = members
        self.register_buffer("means", means.detach().clone(), persistent=False)  # (K, d)
        k = means.shape[0]
        self.add_state("hq_counts", default=torch.zeros(members, k, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_total", default=torch.zeros(members, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, samples: Tensor) -> None:
        """Add a batch: ``(E, N, d)`` with ``E = members``, or ``(N, d)`` when ``members == 1``.

        Raises:
            ValueError: for any other shape.
        """
        samples = torch.as_tensor(samples)
        e, d = self.members, self.means.shape[1]
        if samples.dim() == 2 and e == 1:
            samples = samples.unsqueeze(0)  # (1, N, d)
        if samples.dim() != 3 or samples.shape[0] != e or samples.shape[-1] != d:
            allowed = f"(N, {d}) or (1, N, {d})" if e == 1 else f"(E, N, {d}) with E = members = {e}"
            raise ValueError(
                f"ModeCoverage.update expects samples of shape {allowed}, got {tuple(samples.shape)}"
            )
        hq_counts, n_total = _mode_counts(samples, self.means, self.std)  # (E, K), (E,)
        self.hq_counts += hq_counts
        self.n_total += n_total

    def compute(self) -> dict[str, Tensor]:
        """``{"modes", "hq_fraction", "reverse_kl", "js"}``, each of shape ``(E,)``.

        With ``members == 1`` torchmetrics squeezes them to shape ``()``, the shape that
        :func:`mode_coverage` gives for ``(N, d)`` samples.
        """
        return coverage_from_counts(self.hq_counts, self.n_total, dtype=_result_dtype(self.means))

    def _apply(self, fn, *args: Any, **kwargs: Any):
        """Move the means with the module (``.to(device)``, ``.cuda()``) but keep their dtype."""
        means = self.means  # the original values, before any rounding to a lower precision
        this = super()._apply(fn, *args, **kwargs)
        if this.means.dtype != means.dtype:
            this.means = means.to(this.means.device)
        return this

    def extra_repr(self) -> str:
        return f"K={self.means.shape[0]}, std={self.std}, members={self.members}"
