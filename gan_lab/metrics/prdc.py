"""Improved precision and recall (Kynkäänniemi et al., 2019, k = 3) and density and coverage
(Naeem et al., 2020, k = 5) from exact k-nearest-neighbour radii, computed in chunks.

With real features ``r_1..r_N``, fake features ``f_1..f_M``, ``NND_k(x)`` the distance from ``x`` to
its k-th nearest *other* sample of its own set, ``B̄(x, ρ) = {y : ‖y − x‖ ≤ ρ}`` the closed ball and
``B(x, ρ) = {y : ‖y − x‖ < ρ}`` the open one:

    precision = (1/M) Σ_j 1[∃ i: f_j ∈ B̄(r_i, NND_k(r_i))]      fake inside the real manifold
    recall    = (1/N) Σ_i 1[∃ j: r_i ∈ B̄(f_j, NND_k(f_j))]      real inside the fake manifold
    density   = 1/(kM) Σ_j Σ_i 1[f_j ∈ B(r_i, NND_k(r_i))]      (may exceed 1)
    coverage  = (1/N) Σ_i 1[min_j ‖r_i − f_j‖ < NND_k(r_i)]     real whose ball holds a fake

Ties (a distance exactly equal to a radius: discrete or duplicated features) follow each metric's
authors' code. Precision and recall use closed balls (``≤``), as Kynkäänniemi et al.'s code does
(``distance_batch <= self.D``). Density and coverage use open balls (``<``), as Naeem et al.'s
``prdc`` package does (``compute_prdc``; it also compares precision and recall with ``<``, which
this module does not follow). With ``<``, a set scored against an identical copy of itself gets
density exactly 1 when the k-th neighbour distances are not tied (each real ball holds its own copy
and the k − 1 nearer neighbours, never the k-th, which sits on the boundary), and a real sample with
a duplicate (radius 0) has an empty ball. "Other" is by index: a sample is not its own neighbour,
but its duplicate is, at distance 0.

Distances. Squared distances are computed blockwise by the Gram form
``‖a‖² + ‖b‖² − 2 aᵀb`` in float64 (one matmul per block, fast on any device), clamped at 0, after
translating every point by the same centre (the first real sample): the rounding error of the Gram
form grows with ``(‖a‖ + ‖b‖)²``, and the translation, which keeps distances, brings the norms down
to the spread of the data (for float32 features the translated float64 coordinates are the exact
differences). Identical rows (found once by exact row hashes, :func:`_duplicate_ids`) are set
to distance exactly 0. So: duplicates are exactly at 0; points with few significant bits (integers, halves: every
product and sum exact in float64) get their exact distances, ties included; otherwise the squared
distance is within about ``d · 2⁻⁵³ (‖a − c‖ + ‖b − c‖)²`` of the true one. Comparisons are made on
squared distances (no square-root rounding).

Memory: both sides are cut into chunks of ``chunk`` rows; each block holds a ``chunk × chunk``
float64 matrix and a boolean mask or two (``s.topk`` keeps only k columns per block for the
running k smallest), so about ``(8 + 2) · chunk²`` bytes, plus ``chunk × d`` float64 chunks, the
inputs and O(N + M) vectors (radii, ids, flags). Three passes: real × real (radii for both k),
fake × fake, fake × real.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from gan_lab.errors import ConfigError, check_int
from gan_lab.metrics.feature_sets import FeatureSetsMetric

__all__ = [
    "DEFAULT_CHUNK",
    "PRDC",
    "density_coverage",
    "knn_radii",
    "prdc",
    "precision_recall",
]

DEFAULT_CHUNK = 2048
"""Rows per chunk: a block is 2048² float64 = 32 MiB (about 40 MiB of work memory in all)."""


class _Points:
    """One side's features, translated by a common centre, handed out in float64 chunks."""

    def __init__(self, x: Tensor, center: Tensor, ids: Tensor | None) -> None:
        self.x, self.center, self.ids, self.n = x, center, ids, x.shape[0]

    def chunk(self, start: int, end: int) -> tuple[Tensor, Tensor]:
        a = self.x[start:end].to(torch.float64) - self.center  # (c, d)
        return a, (a * a).sum(1)  # (c, d), (c,)


def _sq_dists(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> Tensor:
    """Squared distances ``(c_a, c_b)`` by the Gram form in float64, clamped at 0."""
    (xa, na), (xb, nb) = a, b
    return torch.addmm(na[:, None] + nb[None, :], xa, xb.T, alpha=-2).clamp_min_(0)


def _block(p: _Points, p0: int, p1: int, a: tuple[Tensor, Tensor], q: _Points, q0: int, q1: int) -> Tensor:
    s = _sq_dists(a, q.chunk(q0, q1))
    if p.ids is not None:
        s.masked_fill_(p.ids[p0:p1, None] == q.ids[None, q0:q1], 0.0)  # identical rows: exactly 0
    return s


def _ranges(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def _knn_sq_radii(p: _Points, ks: list[int], chunk: int) -> dict[int, Tensor]:
    """Squared distance to the k-th nearest other sample, for each k in ``ks``: one pass."""
    kmax = max(ks)
    out = torch.empty(p.n, kmax, dtype=torch.float64, device=p.x.device)
    for r0, r1 in _ranges(p.n, chunk):
        a = p.chunk(r0, r1)
        best = torch.full((r1 - r0, kmax), math.inf, dtype=torch.float64, device=p.x.device)
        for c0, c1 in _ranges(p.n, chunk):
            s = _block(p, r0, r1, a, p, c0, c1)
            lo, hi = max(r0, c0), min(r1, c1)
            if lo < hi:  # the block holds the diagonal: a sample is not its own neighbour
                i = torch.arange(lo, hi, device=s.device)
                s[i - r0, i - c0] = math.inf
            block_best = s.topk(min(kmax, s.shape[1]), dim=1, largest=False).values  # (c, ≤ k)
            best = torch.cat([best, block_best], dim=1).topk(kmax, dim=1, largest=False).values  # ascending
        out[r0:r1] = best
    return {k: out[:, k - 1] for k in ks}


def _check_pair(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    real, fake = torch.as_tensor(real).detach(), torch.as_tensor(fake).detach()
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake features must be (N, d) and (M, d), got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    _check_dim(real.shape[1])
    return real, fake


def _check_dim(d: int) -> None:
    if d == 0:
        raise ConfigError("the features have 0 dimensions (shape (N, 0)); pass features (N, d) with d >= 1")


def _check_k(k: int, label: str) -> int:
    return check_int(f"the {label} neighbourhood size k", k)


def _check_enough(n: int, k: int, side: str) -> None:
    if n <= k:
        raise ConfigError(
            f"k-NN radii with k={k} need more than {k} {side} samples (the k-th nearest other one), got {n}; "
            "raise the number of samples"
        )


def _row_hashes(x: Tensor, chunk_elements: int = 1 << 22) -> Tensor:
    """An int64 hash per row of the float64 values (``-0.0`` counted as ``0.0``), in exact integer
    arithmetic: each value's 64 bits as four 16-bit pieces times fixed 31-bit multipliers, summed
    (at most ``2^47 · 4d < 2^63`` for ``d < 2^14``, so nothing overflows). Rows chunked so that
    about ``chunk_elements`` pieces are held at a time."""
    n, d = x.shape
    g = torch.Generator().manual_seed(2019)
    mult = torch.randint(0, 2**31, (d, 4), generator=g, dtype=torch.long).to(x.device)  # (d, 4)
    shifts = torch.tensor([0, 16, 32, 48], device=x.device)
    out = torch.empty(n, dtype=torch.long, device=x.device)
    rows = max(1, chunk_elements // max(1, 4 * d))
    for r0, r1 in _ranges(n, rows):
        bits = (x[r0:r1].to(torch.float64) + 0.0).view(torch.long)  # (c, d); + 0.0 turns -0.0 into 0.0
        pieces = (bits[..., None] >> shifts) & 0xFFFF  # (c, d, 4), each in [0, 2^16)
        out[r0:r1] = (pieces * mult).sum((1, 2))
    return out


def _duplicate_ids(sides: list[Tensor], chunk: int) -> Tensor:
    """Ids over the rows of all ``sides`` (stacked): equal ids exactly for equal rows.

    Rows are grouped by :func:`_row_hashes` (O(N) memory, unlike ``torch.unique(dim=0)``, which
    sorts a copy of all the features), and every row is then compared with its group's first row;
    only if a hash collision put different rows together does it fall back to ``torch.unique``.
    """
    if sides[0].shape[1] >= 2**14:  # the hash sums could overflow: group exactly
        return torch.unique(torch.cat([x.to(torch.float64) for x in sides]), dim=0, return_inverse=True)[1]
    hashes = torch.cat([_row_hashes(x) for x in sides])  # (N_total,)
    _, ids = torch.unique(hashes, return_inverse=True)
    total = hashes.shape[0]
    first = torch.full((int(ids.max()) + 1,), total, dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, ids, torch.arange(total, device=ids.device), reduce="amin")
    rep = first[ids]  # (N_total,): the first row with the same hash
    offsets = [0]
    for x in sides:
        offsets.append(offsets[-1] + x.shape[0])

    def rows(index: Tensor) -> Tensor:
        out = torch.empty(index.shape[0], sides[0].shape[1], dtype=torch.float64, device=index.device)
        for x, lo, hi in zip(sides, offsets[:-1], offsets[1:], strict=True):
            inside = (index >= lo) & (index < hi)
            out[inside] = x[index[inside] - lo].to(torch.float64)
        return out

    for i0, i1 in _ranges(total, chunk):
        here = torch.arange(i0, i1, device=ids.device)
        if bool((rows(here) != rows(rep[i0:i1])).any()):  # a hash collision: group exactly instead
            both = torch.cat([x.to(torch.float64) for x in sides])
            return torch.unique(both, dim=0, return_inverse=True)[1]
    return ids


def _prepare(real: Tensor, fake: Tensor | None, chunk: int) -> tuple[_Points, _Points | None]:
    device = torch.device("cpu") if real.device.type == "mps" else real.device  # float64
    real = real.to(device)
    fake = fake.to(device) if fake is not None else None
    sides = [real] if fake is None else [real, fake]
    ids = _duplicate_ids(sides, chunk) if real.shape[0] > 0 else None
    center = real[0].to(torch.float64)
    n = real.shape[0]
    rp = _Points(real, center, None if ids is None else ids[:n])
    fp = None if fake is None else _Points(fake, center, None if ids is None else ids[n:])
    return rp, fp


def knn_radii(features: Tensor, k: int, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Distance from each sample to its k-th nearest *other* sample of the same set (exact k-NN).

    Self is excluded by index; a duplicate of a sample is a neighbour at distance 0. Computed in
    ``chunk × chunk`` blocks (module docstring: distances and memory).

    Args:
        features: ``(N, d)``, ``N > k``.
        k: the neighbour rank, ``≥ 1``.
        chunk: rows per block.

    Returns:
        ``(N,)`` float64.

    Raises:
        ConfigError: ``k`` or ``chunk`` not a positive integer, ``N ≤ k``, or ``d = 0``.

    >>> knn_radii(torch.tensor([[0.0], [1.0], [3.0], [3.0]]), k=1)
    tensor([1., 1., 0., 0.], dtype=torch.float64)
    >>> knn_radii(torch.tensor([[0.0], [1.0], [3.0], [3.0]]), k=2)
    tensor([3., 2., 2., 2.], dtype=torch.float64)
    """
    k = _check_k(k, "k-NN")
    chunk = check_int("chunk", chunk)
    x = torch.as_tensor(features).detach()
    if x.dim() != 2:
        raise ValueError(f"features must be (N, d), got {tuple(x.shape)}")
    _check_dim(x.shape[1])
    _check_enough(x.shape[0], k, "")
    p, _ = _prepare(x, None, chunk)
    return _knn_sq_radii(p, [k], chunk)[k].sqrt()


def _nan_result(keys: tuple[str, ...], device: torch.device) -> dict[str, Tensor]:
    return {key: torch.tensor(math.nan, dtype=torch.float64, device=device) for key in keys}


def _prdc(real: Tensor, fake: Tensor, k_pr: int | None, k_dc: int | None, chunk: int) -> dict[str, Tensor]:
    """The four numbers (or the pair of each k given) after the checks."""
    chunk = check_int("chunk", chunk)
    real, fake = _check_pair(real, fake)
    ks_real = [k for k in (k_pr, k_dc) if k is not None]
    for k in ks_real:
        _check_enough(real.shape[0], k, "real")
    if k_pr is not None:
        _check_enough(fake.shape[0], k_pr, "fake")
    if fake.shape[0] == 0:  # density / coverage alone: a mean over no fake samples
        raise ConfigError("density and coverage need at least 1 fake sample, got 0; pass generated features")
    keys = (("precision", "recall") if k_pr is not None else ()) + (
        ("density", "coverage") if k_dc is not None else ()
    )
    if not bool(torch.isfinite(real).all() and torch.isfinite(fake).all()):
        return _nan_result(keys, real.device)
    rp, fp = _prepare(real, fake, chunk)
    device = rp.x.device
    n, m = rp.n, fp.n
    real_r2 = _knn_sq_radii(rp, sorted(set(ks_real)), chunk)
    fake_r2 = _knn_sq_radii(fp, [k_pr], chunk)[k_pr] if k_pr is not None else None
    precise = torch.zeros(m, dtype=torch.bool, device=device)  # fake inside some real ball (k_pr)
    recalled = torch.zeros(n, dtype=torch.bool, device=device)  # real inside some fake ball (k_pr)
    dense = torch.zeros(m, dtype=torch.long, device=device)  # real balls (k_dc) holding each fake
    covered = torch.zeros(n, dtype=torch.bool, device=device)  # real ball (k_dc) holding some fake
    for f0, f1 in _ranges(m, chunk):
        a = fp.chunk(f0, f1)
        for r0, r1 in _ranges(n, chunk):
            s = _block(fp, f0, f1, a, rp, r0, r1)  # (c_fake, c_real)
            if k_pr is not None:  # closed balls, as Kynkäänniemi et al.'s code
                precise[f0:f1] |= (s <= real_r2[k_pr][None, r0:r1]).any(1)
                recalled[r0:r1] |= (s <= fake_r2[f0:f1, None]).any(0)
            if k_dc is not None:
                inside = s < real_r2[k_dc][None, r0:r1]  # open balls, as Naeem et al.'s prdc
                dense[f0:f1] += inside.sum(1)
                covered[r0:r1] |= inside.any(0)
    out = {}
    if k_pr is not None:
        out["precision"] = precise.to(torch.float64).mean()
        out["recall"] = recalled.to(torch.float64).mean()
    if k_dc is not None:
        out["density"] = dense.sum().to(torch.float64) / (k_dc * m)
        out["coverage"] = covered.to(torch.float64).mean()
    return out


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk: int = DEFAULT_CHUNK) -> dict[str, Tensor]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN balls (module docstring).

    Args:
        real, fake: features ``(N, d)``, ``(M, d)``, both ``> k`` samples.
        k: neighbourhood size (the paper's 3).
        chunk: rows per block.

    Returns:
        ``{"precision", "recall"}``, float64 scalars; NaN when any feature is not finite.

    Raises:
        ConfigError: ``k`` or ``chunk`` not a positive integer, ``N ≤ k`` or ``M ≤ k``, ``d = 0``.

    >>> real = torch.tensor([[0.0], [1.0], [2.0]])
    >>> out = precision_recall(real, torch.tensor([[0.5], [1.5], [10.0]]), k=1)
    >>> out["precision"].item(), out["recall"].item()  # 10 is outside; every real is within 1 of a fake
    (0.6666666666666666, 1.0)
    """
    return _prdc(real, fake, _check_k(k, "precision/recall"), None, chunk)


def density_coverage(real: Tensor, fake: Tensor, k: int = 5, chunk: int = DEFAULT_CHUNK) -> dict[str, Tensor]:
    """Density and coverage (Naeem et al., 2020) with k-NN balls around the real samples.

    Args:
        real, fake: features ``(N, d)`` (``N > k``), ``(M, d)``.
        k: neighbourhood size (the paper's 5).
        chunk: rows per block.

    Returns:
        ``{"density", "coverage"}``, float64 scalars; NaN when any feature is not finite.

    Raises:
        ConfigError: ``k`` or ``chunk`` not a positive integer, ``N ≤ k``, no fake sample (``M = 0``),
            ``d = 0``.

    >>> real = torch.tensor([[0.0], [1.0], [2.0]])
    >>> out = density_coverage(real, torch.tensor([[0.0], [0.0]]), k=1)
    >>> out["density"].item(), out["coverage"].item()  # each fake inside the ball of 0, on that of 1
    (1.0, 0.3333333333333333)
    """
    return _prdc(real, fake, None, _check_k(k, "density/coverage"), chunk)


def prdc(
    real: Tensor, fake: Tensor, k_pr: int = 3, k_dc: int = 5, chunk: int = DEFAULT_CHUNK
) -> dict[str, Tensor]:
    """Precision and recall (k = ``k_pr``) and density and coverage (k = ``k_dc``) in three passes.

    Args:
        real, fake: features ``(N, d)``, ``(M, d)``.
        k_pr, k_dc: the neighbourhood sizes.
        chunk: rows per block.

    Returns:
        ``{"precision", "recall", "density", "coverage"}``, float64 scalars.

    Raises:
        ConfigError: a ``k`` or ``chunk`` that is not a positive integer, too few samples (``N ≤ k``
            on either side), or features of 0 dimensions.
        ValueError: features that are not 2-D or of different dims.
    """
    return _prdc(real, fake, _check_k(k_pr, "precision/recall"), _check_k(k_dc, "density/coverage"), chunk)


class PRDC(FeatureSetsMetric):
    """Precision, recall, density and coverage over features accumulated by ``update``.

    States: real and fake features, lists concatenated across processes (``dist_reduce_fx="cat"``);
    the real side may instead be a fixed reference tensor (``reference=`` or :meth:`set_reference`,
    a buffer kept across ``reset``). The result depends only on the sets of samples, not on their
    order or on how they were split into updates.

    Args:
        k_pr, k_dc, chunk: as :func:`prdc`.
        reference: fixed real features ``(N, d)``.
        kwargs: passed to ``torchmetrics.Metric``.

    >>> metric = PRDC(k_pr=1, k_dc=1)
    >>> metric.update(torch.tensor([[0.0], [1.0], [2.0]]), real=True)
    >>> metric.update(torch.tensor([[0.5], [1.5], [10.0]]))
    >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}
    {'precision': 0.6667, 'recall': 1.0, 'density': 1.3333, 'coverage': 1.0}
    """

    is_differentiable = False
    higher_is_better = True
    LABEL = "PRDC"

    def __init__(
        self,
        k_pr: int = 3,
        k_dc: int = 5,
        chunk: int = DEFAULT_CHUNK,
        reference: Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(reference, **kwargs)
        self.k_pr = _check_k(k_pr, "precision/recall")
        self.k_dc = _check_k(k_dc, "density/coverage")
        self.chunk = check_int("chunk", chunk)

    def compute(self) -> dict[str, Tensor]:
        """``{"precision", "recall", "density", "coverage"}``, float64 scalars."""
        real, fake = self.sides()
        return prdc(real, fake, self.k_pr, self.k_dc, self.chunk)

    def extra_repr(self) -> str:
        return f"k_pr={self.k_pr}, k_dc={self.k_dc}, chunk={self.chunk}"
