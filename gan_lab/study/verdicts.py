"""Statistics over seeds and verdicts in words: what a study's report says about its entries.

Small pure functions on the seed values of one metric (1-D arrays, one value per seed), every test
and interval from :mod:`scipy.stats`; :mod:`gan_lab.study.report` reads the study's files and calls
them. With a fixed ``seed`` for every resampling, a report is the same each time it is written.

Per entry (:func:`summarize`): mean, s.e. (ddof 1) and a bootstrap confidence interval of the mean
(:func:`bootstrap_ci`: BCa, percentile where BCa is undefined, ``[v, v]`` when every seed has the
value ``v``), at the final evaluation and on each seed's mean over its last K evaluations
(:func:`last_k_means`), so that one noisy snapshot decides nothing.

Per pair of entries, on a metric (:func:`compare_entries`): a two-sided permutation test of the
difference of means (:func:`permutation_p`; exact when every split of the seeds can be
enumerated), Holm's step-down adjustment over the pairs (:func:`holm`), the difference of means with
its bootstrap interval (:func:`difference_ci`), Hedges' g (:func:`hedges_g`), and what the study
could have detected: the smallest permutation p its seed counts allow (:func:`min_permutation_p`),
the seeds per entry it would need to separate any pair (:func:`seeds_needed`) and the smallest true
difference a t-test would find with 80 % power (:func:`detectable_difference`). The sentences are
generated from these numbers (:func:`verdict_sentence`, :func:`floor_sentence`), never typed.

Which direction is better is a property of the metric, said by the evaluator's report section
(``HIGHER_IS_BETTER`` and, where "has a higher <header> than" reads badly, ``PHRASES`` on its
:class:`~gan_lab.evaluators.section.EvaluatorReport`); a metric it does not name gets "higher" /
"lower" without "better" (:func:`direction`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: the significance level of the verdicts (study.json's ``alpha`` overrides it)
ALPHA = 0.05
#: the evaluations per seed averaged for the verdicts (study.json's ``last_k`` overrides it)
LAST_K = 4
#: the confidence level of every interval
CONFIDENCE = 0.95
#: how the report names it
CI_NAME = f"{CONFIDENCE * 100:g} % CI"
#: resamples of every bootstrap, and of a permutation test that cannot enumerate its splits
N_RESAMPLES = 9999
#: the seed of every resampling (a report is deterministic)
SEED = 0
#: the power at which :func:`detectable_difference` states the smallest detectable difference
POWER = 0.8


def direction(metric: str, section: object = None) -> bool | None:
    """Whether a higher ``metric`` is better, as the evaluator's report section says
    (``HIGHER_IS_BETTER``); None where it does not say.

    >>> from gan_lab.evaluators.mode_report import ModeCoverageReport
    >>> direction("modes", ModeCoverageReport()), direction("reverse_kl", ModeCoverageReport())
    (True, False)
    >>> class Section:
    ...     HIGHER_IS_BETTER = {"spread": True}
    >>> direction("spread", Section()), direction("other", Section()), direction("modes")
    (True, None, None)
    """
    own = getattr(section, "HIGHER_IS_BETTER", None) or {}
    return bool(own[metric]) if metric in own else None


def _finite(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


# --------------------------------------------------------------------------------------------------
# One entry: mean, s.e., bootstrap CI; the last-K average
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was computed: ``BCa``, ``percentile`` (BCa undefined for
    this sample), ``degenerate`` (every resample gives the same value: ``[v, v]``) or ``undefined``
    (fewer than two seeds: NaN bounds)."""

    low: float
    high: float
    method: str


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, confidence: float, n_resamples: int, seed: int):
    """``scipy.stats.bootstrap`` with BCa, and the percentile method where BCa is undefined."""
    from scipy import stats

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa warns where it is undefined: we fall back
            ci = stats.bootstrap(
                samples,
                statistic,
                paired=False,
                vectorized=True,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method=method,
                rng=np.random.default_rng(seed),
            ).confidence_interval
        if math.isfinite(ci.low) and math.isfinite(ci.high):
            return Interval(float(ci.low), float(ci.high), method)
    return Interval(math.nan, math.nan, "undefined")


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _difference_of_means(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def bootstrap_ci(
    values: Sequence[float], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> Interval:
    """Bootstrap confidence interval of the mean of ``values`` (one per seed; NaN / inf left out).

    ``scipy.stats.bootstrap`` (Efron & Tibshirani 1993, ch. 14) with the bias-corrected and
    accelerated (BCa) method, ``n_resamples`` resamples drawn by ``numpy.random.default_rng(seed)``;
    the percentile method where BCa is undefined (its acceleration is 0/0). Every value equal:
    ``[v, v]`` (``degenerate``); fewer than two values: NaN bounds (``undefined``). With a handful of
    seeds a bootstrap interval is narrower than it should be (the resamples can only recombine the
    seeds there are): read it with the seed count.

    >>> bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    Interval(low=1.5, high=3.5, method='BCa')
    >>> bootstrap_ci([3.0, 3.0, 3.0]), bootstrap_ci([3.0]).method
    (Interval(low=3.0, high=3.0, method='degenerate'), 'undefined')
    """
    v = _finite(values)
    if v.size < 2:
        return Interval(math.nan, math.nan, "undefined")
    if np.all(v == v[0]):
        return Interval(float(v[0]), float(v[0]), "degenerate")
    return _bootstrap((v,), _mean, confidence, n_resamples, seed)


@dataclass(frozen=True)
class Summary:
    """One entry's values of one metric over its seeds: ``n`` finite values, their mean, s.e.
    (ddof 1; NaN with one value) and the bootstrap interval of the mean."""

    n: int
    mean: float
    se: float
    ci: Interval


def summarize(values: Sequence[float], **bootstrap) -> Summary:
    """:class:`Summary` of ``values`` (NaN / inf left out; ``bootstrap``: :func:`bootstrap_ci`'s
    options). ``se = s / √n``, ``s`` the sample s.d. (ddof 1), as ``scipy.stats.sem``.

    >>> s = summarize([6.0, 8.0, 7.0, float("nan")])
    >>> s.n, s.mean, round(s.se, 4), s.ci.method
    (3, 7.0, 0.5774, 'BCa')
    """
    from scipy import stats

    v = _finite(values)
    mean = float(v.mean()) if v.size else math.nan
    se = float(stats.sem(v)) if v.size > 1 else math.nan
    return Summary(int(v.size), mean, se, bootstrap_ci(v, **bootstrap))


def last_k_means(
    rows: Sequence[Mapping], metric: str, k: int = LAST_K
) -> dict[tuple[str, int], tuple[float, int]]:
    """Each seed's mean of ``metric`` over its last ``k`` evaluations.

    ``rows``: history rows (``objective``, ``member``, ``g_steps``, ``metric``), those of one
    evaluator's evaluations. Per ``(objective, member)``, its rows are ordered by ``g_steps``; the
    evaluation of the untrained G (``g_steps`` 0) is left out unless it is the only one; the last
    ``k`` (all of them when there are fewer) are averaged over their finite values (NaN when none
    is). Returns ``{(objective, member): (mean, evaluations averaged)}``.

    >>> rows = [{"objective": "a", "member": 0, "g_steps": g, "m": v} for g, v in ((0, 0.0), (2, 1.0), (4, 3.0), (6, 8.0))]
    >>> last_k_means(rows, "m", k=2), last_k_means(rows, "m", k=4)
    ({('a', 0): (5.5, 2)}, {('a', 0): (4.0, 3)})
    """
    by_seed: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for r in rows:
        by_seed.setdefault((r["objective"], int(r["member"])), []).append(
            (int(r["g_steps"]), float(r[metric]))
        )
    out = {}
    for key, evaluations in by_seed.items():
        evaluations.sort(key=lambda e: e[0])
        trained = [e for e in evaluations if e[0] > 0] or evaluations
        last = trained[-k:]
        finite = [v for _, v in last if math.isfinite(v)]
        out[key] = (float(np.mean(finite)) if finite else math.nan, len(last))
    return out


# --------------------------------------------------------------------------------------------------
# Two entries: permutation test, Holm, effect size, what the seeds allow
# --------------------------------------------------------------------------------------------------


def permutations_count(n1: int, n2: int) -> int:
    """The distinct splits of ``n1 + n2`` seeds into groups of ``n1`` and ``n2``: C(n1 + n2, n1).

    >>> permutations_count(4, 4), permutations_count(3, 5)
    (70, 56)
    """
    return math.comb(n1 + n2, n1)


def permutation_p(
    a: Sequence[float], b: Sequence[float], n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> float:
    """Two-sided p-value of a permutation test of ``mean(a) − mean(b)`` (independent samples).

    ``scipy.stats.permutation_test`` with ``permutation_type='independent'``: the seeds' values
    are pooled and split into groups of ``len(a)`` and ``len(b)``; ``p = min(1, 2 min(P(T ≤ t),
    P(T ≥ t)))`` over the splits. Exact (every split enumerated) when there are at most
    ``n_resamples`` of them (:func:`permutations_count`), else ``n_resamples`` random splits
    (``numpy.random.default_rng(seed)``; p then counts the observed split, scipy's ``+1``). NaN
    values are left out; NaN (no test) when either side has fewer than two values.

    >>> permutation_p([1, 2, 3, 4], [5, 6, 7, 8]) == 2 / 70  # the observed split is the extreme one
    True
    >>> permutation_p([1.0], [2.0, 3.0])
    nan
    """
    from scipy import stats

    x, y = _finite(a), _finite(b)
    if x.size < 2 or y.size < 2:  # scipy's test needs two a side
        return math.nan
    result = stats.permutation_test(
        (x, y),
        _difference_of_means,
        permutation_type="independent",
        alternative="two-sided",
        vectorized=True,
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def min_permutation_p(n1: int, n2: int, n_resamples: int = N_RESAMPLES) -> float:
    """The smallest two-sided p-value :func:`permutation_p` can give with ``n1`` and ``n2`` seeds:
    ``2 / C(n1 + n2, n1)`` for an exact test (the observed split the most extreme one in its tail,
    no ties), ``2 / (n_resamples + 1)`` for a randomized one; at most 1.

    >>> min_permutation_p(4, 4), min_permutation_p(2, 2)
    (0.02857142857142857, 0.3333333333333333)
    >>> min_permutation_p(10, 10)  # 184,756 splits: randomized
    0.0002
    """
    count = permutations_count(n1, n2)
    return min(1.0, 2 / count if count <= n_resamples else 2 / (n_resamples + 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979, Scand. J. Statist. 6:65–70), in the order given.

    With the ``m`` p-values sorted, ``p_(1) ≤ … ≤ p_(m)``:
    ``p̃_(i) = min(1, max_{j ≤ i} (m − j + 1) p_(j))``. Rejecting where ``p̃ ≤ α`` is Holm's
    procedure: it controls the family-wise error rate at ``α`` (the chance of any false "different"
    among the ``m`` pairs), with no assumption on how the tests depend on each other. NaN entries
    (pairs without a test) stay NaN and do not count in ``m``.

    >>> [round(p, 6) for p in holm([0.01, 0.04, 0.03, 0.005])]  # sorted: 0.005·4, 0.01·3, 0.03·2, 0.04·1 (running max)
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = tested.size
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for j, index in enumerate(order):  # j = 0 ... m − 1: factor m − j
        running = max(running, (m - j) * p[index])
        out[index] = min(1.0, running)
    return [float(v) for v in out]


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    """The pooled standard deviation ``s_p = √(((n₁ − 1) s₁² + (n₂ − 1) s₂²) / (n₁ + n₂ − 2))``
    (ddof 1 in each sample); NaN when ``n₁ + n₂ < 3``.

    >>> pooled_sd([1, 2, 3], [2, 4, 6])  # s₁² = 1, s₂² = 4: √((2 + 8) / 4)
    1.5811388300841898
    """
    x, y = _finite(a), _finite(b)
    df = x.size + y.size - 2
    if df < 1:
        return math.nan
    ss = (x.size - 1) * (x.var(ddof=1) if x.size > 1 else 0.0) + (y.size - 1) * (
        y.var(ddof=1) if y.size > 1 else 0.0
    )
    return float(math.sqrt(ss / df))


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Hedges' g of ``a`` against ``b``: Cohen's ``d = (mean(a) − mean(b)) / s_p`` (:func:`pooled_sd`)
    times the small-sample correction ``J(ν) = Γ(ν/2) / (√(ν/2) Γ((ν − 1)/2))``, ``ν = n₁ + n₂ − 2``
    (Hedges 1981; ``J ≈ 1 − 3 / (4ν − 1)``). ±inf when ``s_p = 0`` and the means differ, NaN when they
    do not or ``ν < 2``.

    >>> round(hedges_g([1, 2, 3], [2, 4, 6]), 4)  # d = −2 / 1.5811, J(4) = 0.7979
    -1.0093
    """
    from scipy import special

    x, y = _finite(a), _finite(b)
    df = x.size + y.size - 2
    if df < 2:
        return math.nan
    delta, sd = float(x.mean() - y.mean()), pooled_sd(x, y)
    if sd == 0:
        return math.copysign(math.inf, delta) if delta else math.nan
    j = math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return j * delta / sd


def difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Bootstrap confidence interval of ``mean(a) − mean(b)``: ``scipy.stats.bootstrap`` on the two
    samples, resampled independently (``paired=False``), BCa (percentile where BCa is undefined);
    ``[Δ, Δ]`` when each sample is constant; NaN bounds when either has fewer than two values.

    >>> difference_ci([1, 2, 3, 4], [5, 6, 7, 9])
    Interval(low=-6.25, high=-2.5, method='BCa')
    >>> difference_ci([1, 1], [5, 5])
    Interval(low=-4.0, high=-4.0, method='degenerate')
    """
    x, y = _finite(a), _finite(b)
    if x.size < 2 or y.size < 2:
        return Interval(math.nan, math.nan, "undefined")
    if np.all(x == x[0]) and np.all(y == y[0]):
        delta = float(x[0] - y[0])
        return Interval(delta, delta, "degenerate")
    return _bootstrap((x, y), _difference_of_means, confidence, n_resamples, seed)


def detectable_difference(n1: int, n2: int, sd: float, alpha: float, power: float = POWER) -> float:
    """The smallest true difference of means that a two-sided two-sample t-test at level ``alpha``
    detects with probability ``power``, given ``n1``, ``n2`` seeds and the s.d. ``sd``.

    ``Δ* = δ · sd · √(1/n₁ + 1/n₂)``, ``δ`` the noncentrality at which
    ``P(|T| > t_{1−α/2, ν}) = power`` for ``T ~ nct(ν = n₁ + n₂ − 2, δ)`` (``scipy.stats.nct``,
    ``scipy.stats.t``; solved by ``scipy.optimize.brentq``). The permutation test of the verdicts
    has the same large-sample power; this is its usual approximation. NaN when ``ν < 1`` or ``sd``
    is not finite.

    >>> round(detectable_difference(4, 4, 1.0, 0.05), 3)  # 2.38 s.d. with 4 seeds a side
    2.381
    """
    from scipy import optimize, stats

    df = n1 + n2 - 2
    if df < 1 or not math.isfinite(sd):
        return math.nan
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(ncp: float) -> float:
        reach = stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp)
        return float(reach) - power

    high = 1.0
    while shortfall(high) < 0:
        high *= 2
        if high > 1e9:
            return math.nan
    ncp = optimize.brentq(shortfall, 0.0, high, xtol=1e-10)
    return float(ncp * sd * math.sqrt(1 / n1 + 1 / n2))


def seeds_needed(pairs: int, alpha: float, n_resamples: int = N_RESAMPLES) -> int | None:
    """The fewest seeds per entry (the same for every entry) with which Holm over ``pairs`` pairs
    could reject at all: its first step needs ``p ≤ α / pairs``, and the smallest permutation p of
    ``n`` against ``n`` seeds is :func:`min_permutation_p` ``(n, n)``. A floor, not a promise: it is
    reached only when every seed of one entry beats every seed of the other. None when no ``n``
    reaches it (``pairs`` too many for ``n_resamples``).

    >>> seeds_needed(15, 0.05), seeds_needed(1, 0.05), seeds_needed(3, 0.05)
    (6, 4, 5)
    """
    if pairs < 1:
        return None
    for n in range(2, 10_000):
        p = min_permutation_p(n, n, n_resamples)
        if pairs * p <= alpha:
            return n
        if permutations_count(n, n) > n_resamples:  # randomized from here on: p no longer falls
            return None
    return None


@dataclass(frozen=True)
class Comparison:
    """Two entries ``a`` and ``b`` compared on one metric's seed values: ``delta = mean(a) −
    mean(b)`` with its interval, the permutation ``p``, Holm's ``p_holm`` over the study's pairs,
    Hedges' ``g``, the smallest permutation p these seed counts allow (``floor``) and the smallest
    difference detectable with 80 % power at Holm's first-step level α/m (``detectable``; NaN where
    ``floor`` is above that level, or the s.d. is undefined)."""

    a: str
    b: str
    n_a: int
    n_b: int
    delta: float
    ci: Interval
    p: float
    p_holm: float
    g: float
    floor: float
    detectable: float
    alpha: float

    @property
    def distinguishable(self) -> bool:
        """``p_holm ≤ alpha`` (Holm's procedure rejects "no difference")."""
        return math.isfinite(self.p_holm) and self.p_holm <= self.alpha

    def swapped(self) -> Comparison:
        """The same comparison as ``b`` against ``a`` (Δ, its interval and g change sign)."""
        ci = Interval(-self.ci.high, -self.ci.low, self.ci.method)
        return Comparison(
            self.b, self.a, self.n_b, self.n_a, -self.delta, ci, self.p, self.p_holm, -self.g,
            self.floor, self.detectable, self.alpha,
        )  # fmt: skip


def compare_entries(
    samples: Mapping[str, Sequence[float]],
    alpha: float = ALPHA,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> list[Comparison]:
    """Every pair of entries (``samples``: label -> its seed values, in the report's order; pairs
    ``(a, b)`` with ``a`` listed first), each with :func:`permutation_p`, :func:`holm` over the
    pairs that have a test, :func:`difference_ci`, :func:`hedges_g` and, at Holm's first-step level
    ``α / m``, :func:`detectable_difference` from the pair's :func:`pooled_sd`.

    >>> (c,) = compare_entries({"x": [5, 6, 7, 8], "y": [1, 2, 3, 4]})
    >>> c.delta, round(c.p, 4), c.p_holm == c.p, c.distinguishable
    (4.0, 0.0286, True, True)
    """
    labels = list(samples)
    values = {k: _finite(v) for k, v in samples.items()}
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    ps = [permutation_p(values[a], values[b], n_resamples, seed) for a, b in pairs]
    adjusted = holm(ps)
    m = sum(math.isfinite(p) for p in ps)
    out = []
    for (a, b), p, p_holm in zip(pairs, ps, adjusted):
        x, y = values[a], values[b]
        floor = min_permutation_p(x.size, y.size, n_resamples) if x.size and y.size else math.nan
        level = alpha / max(m, 1)
        reachable = math.isfinite(floor) and floor <= level
        detectable = detectable_difference(x.size, y.size, pooled_sd(x, y), level) if reachable else math.nan
        delta = float(x.mean() - y.mean()) if x.size and y.size else math.nan
        ci = difference_ci(x, y, n_resamples=n_resamples, seed=seed)
        out.append(
            Comparison(
                a=a,
                b=b,
                n_a=int(x.size),
                n_b=int(y.size),
                delta=delta,
                ci=ci,
                p=p,
                p_holm=p_holm,
                g=hedges_g(x, y),
                floor=floor,
                detectable=detectable,
                alpha=alpha,
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# In words
# --------------------------------------------------------------------------------------------------


def fmt_p(p: float) -> str:
    """``= 0.029``, ``< 0.001`` or ``= 1.000``: a p-value after its name.

    >>> fmt_p(2 / 70), fmt_p(1e-5), fmt_p(float("nan"))
    ('= 0.029', '< 0.001', 'undefined')
    """
    if not math.isfinite(p):
        return "undefined"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def fmt_number(value: float, scale: float = 1.0, digits: int = 2) -> str:
    """A value on the report's scale; ``∞`` / ``−∞``, ``undefined`` for NaN.

    >>> fmt_number(0.0123, 100, 1), fmt_number(-float("inf")), fmt_number(float("nan"))
    ('1.2', '-∞', 'undefined')
    """
    if math.isnan(value):
        return "undefined"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value * scale:.{digits}f}"


def fmt_interval(ci: Interval, scale: float = 1.0, digits: int = 2) -> str:
    """``[low, high]`` on the report's scale, with ``†`` for a percentile interval; ``—`` when
    undefined.

    >>> fmt_interval(Interval(0.5, 0.75, "BCa"), 100, 1), fmt_interval(Interval(1, 2, "percentile"))
    ('[50.0, 75.0]', '[1.00, 2.00]†')
    """
    if ci.method == "undefined":
        return "—"
    mark = "†" if ci.method == "percentile" else ""
    return f"[{fmt_number(ci.low, scale, digits)}, {fmt_number(ci.high, scale, digits)}]{mark}"


def short_header(header: str) -> str:
    """A table header without its unit: ``reverse KL (nats)`` -> ``reverse KL``.

    >>> short_header("PSNR (dB)"), short_header("HQ %")
    ('PSNR', 'HQ %')
    """
    return header.split(" (")[0]


def oriented(c: Comparison, higher_is_better: bool | None) -> Comparison:
    """``c`` with the better entry first (the higher one when the direction is unknown)."""
    if higher_is_better is None:
        higher_is_better = True
    first_better = c.delta > 0 if higher_is_better else c.delta < 0
    return c if first_better or c.delta == 0 else c.swapped()


def verdict_sentence(
    c: Comparison,
    metric: str,
    header: str,
    scale: float = 1.0,
    digits: int = 2,
    higher_is_better=None,
    phrases: tuple[str, str] | None = None,
) -> str:
    """The verdict on one pair in words: distinguishable pairs name the better entry first
    (higher first when the direction is unknown), with Δ (the first's mean − the second's), its
    CI, Holm's p and Hedges' g; the others say so, in the report's order, with the smallest
    difference the study could have detected.

    >>> c = compare_entries({"minimax": [5, 5, 6, 6], "wasserstein": [8, 8, 8, 7]})[0]
    >>> more = ("covers more modes than", "covers fewer modes than")
    >>> verdict_sentence(c, "modes", "modes covered", higher_is_better=True, phrases=more)
    '**wasserstein** covers more modes than **minimax** (Δ = 2.25, 95 % CI [1.50, 2.75], p_Holm = 0.029, g = 3.62).'
    >>> c = compare_entries({"hinge": [5, 7, 6, 8], "minimax": [6, 5, 7, 7]})[0]
    >>> verdict_sentence(c, "fd", "FD", higher_is_better=False)
    'hinge and minimax are not distinguishable on FD (Δ = 0.25, 95 % CI [-1.00, 1.75], p = 1.000, p_Holm = 1.000); the smallest difference detectable here (80 % power): 2.71.'
    """
    c = oriented(c, higher_is_better) if c.distinguishable else c
    name = short_header(header)
    numbers = f"Δ = {fmt_number(c.delta, scale, digits)}, {CI_NAME} {fmt_interval(c.ci, scale, digits)}"
    if not math.isfinite(c.p):
        return f"{c.a} and {c.b} cannot be compared on {name} (fewer than two seeds with a value on a side)."
    if c.distinguishable:
        more, less = phrases or (f"has a higher {name} than", f"has a lower {name} than")
        verb = more if c.delta > 0 else less
        return f"**{c.a}** {verb} **{c.b}** ({numbers}, p_Holm {fmt_p(c.p_holm)}, g = {fmt_number(c.g)})."
    if math.isfinite(c.detectable):
        could = (
            f"the smallest difference detectable here (80 % power): {fmt_number(c.detectable, scale, digits)}"
        )
    else:
        could = (
            f"no difference of any size is detectable with {c.n_a} against {c.n_b} seeds (p ≥ {c.floor:.2g})"
        )
    return (
        f"{c.a} and {c.b} are not distinguishable on {name} "
        f"({numbers}, p {fmt_p(c.p)}, p_Holm {fmt_p(c.p_holm)}); {could}."
    )


def floor_sentence(comparisons: Sequence[Comparison], alpha: float, n_resamples: int = N_RESAMPLES) -> str:
    """A sentence when the seed counts alone rule out every verdict: Holm's first step needs some
    pair's ``p ≤ α / m``, and no pair's smallest achievable permutation p reaches it. Says the
    seeds per entry it would need (:func:`seeds_needed`); ``""`` when some pair could be separated.

    >>> cs = compare_entries({"a": [1, 2, 3, 4], "b": [5, 6, 7, 8], "c": [9, 10, 11, 12]})
    >>> floor_sentence(cs, 0.05)
    'This study cannot separate any pair at α = 0.05 with 4 seeds per entry: the smallest two-sided permutation p of 4 against 4 seeds is 2/70 = 0.029, and Holm over 3 pairs needs p ≤ 0.05/3 = 0.017 for its first rejection; it would need ≥ 5 seeds per entry.'
    >>> floor_sentence(cs[:1], 0.05)
    ''
    """
    tested = [c for c in comparisons if math.isfinite(c.p)]
    m = len(tested)
    if not m or min(c.floor for c in tested) * m <= alpha:
        return ""
    best = min(tested, key=lambda c: c.floor)
    counts = sorted({c.n_a for c in tested} | {c.n_b for c in tested})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    splits = permutations_count(best.n_a, best.n_b)
    floor = f"2/{splits} = {best.floor:.2g}" if splits <= n_resamples else f"{best.floor:.2g}"
    level = (
        f"Holm over {m} pairs needs p ≤ {alpha:g}/{m} = {alpha / m:.2g} for its first rejection"
        if m > 1
        else f"one pair needs p ≤ {alpha:g}"
    )
    needed = seeds_needed(m, alpha, n_resamples)
    need = f"it would need ≥ {needed} seeds per entry" if needed else "no seed count reaches it"
    return (
        f"This study cannot separate any pair at α = {alpha:g} with {seeds} seeds per entry: the smallest "
        f"two-sided permutation p of {best.n_a} against {best.n_b} seeds is {floor}, and {level}; {need}."
    )
