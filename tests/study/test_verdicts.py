"""Statistics in every study report (gan_lab.study.verdicts, called by gan_lab.study.report): the
tests and intervals are scipy's on the seeds' values, Holm's adjustment is the formula, the
verdicts are taken on each seed's last-K mean, and the report, the end of `gan-lab study` and the
study's W&B run say the same. Each test names the mutation that makes it fail."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_reports import MODE_INFO, RING8

from gan_lab.cli import main
from gan_lab.study import verdicts as V
from gan_lab.study.report import HISTORY_KEYS, RESULT_KEYS, read_study, study_statistics

COLUMNS = ["mode/modes", "mode/hq_fraction", "mode/reverse_kl", "mode/js"]
STEPS = (0, 100, 200, 300, 400, 500)  # 0: the untrained G, never among the last K


def write_mode_study(folder: Path, curves: dict[str, list[list[float]]], **meta_extra) -> Path:
    """A finished ring8 mode-coverage study as `gan-lab study` writes it (study.json, results.csv,
    history.csv, a run folder per entry with its final samples), nothing trained: ``curves`` maps
    each entry to its seeds' ``mode/modes`` at the G steps :data:`STEPS` (the other metrics fixed)."""
    history, results, runs = [], [], []
    for label, seeds in curves.items():
        run = folder / label
        run.mkdir(parents=True)
        samples = np.asarray(RING8, dtype=np.float32)[None].repeat(len(seeds), 0)  # (seeds, 8, 2)
        np.save(run / "final_samples.npy", samples)
        runs.append({"label": label, "run_dir": label, "wall_time_s": 1.0})
        for k, curve in enumerate(seeds):
            assert len(curve) == len(STEPS)
            for g, v in zip(STEPS, curve):
                values = dict(zip(COLUMNS, (v, 0.9, 0.1, 0.05)))
                history.append({"objective": label, "member": k, "seed": 7 + k, "g_steps": g, **values})
            results.append({"study": "tiny", "regularizers": "-", "n_critic": 1, **history[-1], "wall_time_s": 1.0,
                            "status": "ok"})  # fmt: skip
    meta = {
        "study": "tiny", "source": "", "command": "gan-lab study tiny.yaml", "seeds": len(seeds), "seed": 7,
        "ensemble": True, "note": "", "published": [], "labels": list(curves), "evaluator": ["mode"],
        "info": {"mode": MODE_INFO}, "started": "2025-01-01 00:00:00", "finished": "2025-01-01 00:01:00",
        "torch": "2", "python": "3", "runs": runs, "weights": {}, **meta_extra,
    }  # fmt: skip
    (folder / "study.json").write_text(json.dumps(meta, indent=2))
    for name, keys, rows in (
        ("results.csv", [*RESULT_KEYS, *COLUMNS, "wall_time_s", "status"], results),
        ("history.csv", [*HISTORY_KEYS, *COLUMNS], history),
    ):
        with open(folder / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    return folder


def curves_ending(lasts: list[list[float]], start: float = 1.0) -> list[list[float]]:
    """Seeds whose curves end with ``lasts`` (each: the values at G steps 200..500); step 0 and 100
    at ``start`` (steps 0 and 100 are not among the last 4)."""
    return [[start, start, *last] for last in lasts]


#: a planted difference: wasserstein's seeds cover ~3 modes more than minimax's and hinge's, which
#: are the same up to noise. The final snapshot (last value) differs from the last-4 mean.
PLANTED = {
    "minimax": curves_ending(
        [[5, 5, 6, 4], [5, 6, 5, 5], [4, 5, 5, 6], [5, 5, 4, 5], [6, 5, 5, 5], [5, 4, 6, 5]]
    ),
    "hinge": curves_ending(
        [[5, 6, 5, 5], [4, 5, 5, 5], [5, 5, 6, 5], [6, 5, 4, 4], [5, 5, 5, 6], [5, 6, 5, 4]]
    ),
    "wasserstein": curves_ending(
        [[8, 8, 7, 8], [8, 7, 8, 8], [7, 8, 8, 8], [8, 8, 8, 7], [8, 8, 8, 8], [7, 8, 8, 7]]
    ),
}


def last4(label: str) -> list[float]:
    """Each seed's mean of its last 4 evaluations, by hand."""
    return [sum(curve[-4:]) / 4 for curve in PLANTED[label]]


# --------------------------------------------------------------------------------------------------
# The tests and intervals are scipy's
# --------------------------------------------------------------------------------------------------


def _difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def test_the_permutation_p_of_4_against_4_is_the_exact_2_in_70():
    """Mutation: a one-sided alternative (1/70 or 1), or n_resamples below 70 (not exact)."""
    assert V.permutation_p([1, 2, 3, 4], [5, 6, 7, 8]) == 2 / 70
    assert V.permutation_p([5, 6, 7, 8], [1, 2, 3, 4]) == 2 / 70
    assert V.permutations_count(4, 4) == 70 and V.min_permutation_p(4, 4) == 2 / 70
    assert V.permutation_p([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([5.0, 6.0, 5.5, 7.0], [4.0, 6.5, 3.0, 5.0]),  # 70 splits: exact
        ([5.0, 6.0, 5.5, 7.0, 6.2], [4.0, 6.5, 3.0]),  # 56 splits: exact
        (list(np.linspace(0, 1, 10)), list(np.linspace(0.3, 1.3, 10))),  # 184,756 splits: 9,999 random
    ],
)
def test_permutation_p_is_scipys_on_the_same_values_and_rng(a, b):
    """Mutation: another rng seed or n_resamples (the randomized case), another statistic."""
    expected = stats.permutation_test(
        (np.array(a), np.array(b)),
        _difference,
        permutation_type="independent",
        alternative="two-sided",
        vectorized=True,
        n_resamples=9999,
        rng=np.random.default_rng(0),
    ).pvalue
    assert V.permutation_p(a, b) == expected


def test_bootstrap_cis_are_scipys_bca_with_the_fixed_rng():
    """Mutation: the percentile method, another seed or n_resamples, paired=True."""
    values = np.array([4.75, 5.25, 5.0, 6.0, 4.5])
    expected = stats.bootstrap(
        (values,), np.mean, method="BCa", n_resamples=9999, rng=np.random.default_rng(0)
    )
    ci = V.bootstrap_ci(values)
    assert (ci.low, ci.high, ci.method) == (*expected.confidence_interval, "BCa")

    a, b = np.array([7.5, 7.75, 8.0, 7.25]), np.array([5.0, 4.75, 5.5, 5.25, 5.0])
    expected = stats.bootstrap(
        (a, b), _difference, paired=False, method="BCa", n_resamples=9999, rng=np.random.default_rng(0)
    )
    ci = V.difference_ci(a, b)
    assert (ci.low, ci.high, ci.method) == (*expected.confidence_interval, "BCa")
    assert ci.low < a.mean() - b.mean() < ci.high


def test_degenerate_and_undefined_intervals():
    """Every seed the same value: [v, v], not BCa's NaN (mutation: no degenerate case); one seed:
    undefined (mutation: a bootstrap of one value)."""
    assert V.bootstrap_ci([3.0, 3.0, 3.0, 3.0]) == V.Interval(3.0, 3.0, "degenerate")
    assert V.difference_ci([8.0, 8.0, 8.0], [5.0, 5.0]) == V.Interval(3.0, 3.0, "degenerate")
    assert V.bootstrap_ci([3.0]).method == "undefined" and math.isnan(V.bootstrap_ci([3.0]).low)
    assert V.bootstrap_ci([3.0, float("nan"), 3.5]) == V.bootstrap_ci([3.0, 3.5])  # NaN left out
    one_constant = V.difference_ci([3.0, 3.0, 3.0], [1.0, 2.0, 4.0])  # one side constant: BCa still
    assert one_constant.method == "BCa" and one_constant.low < 3.0 - 7 / 3 < one_constant.high


def test_where_bca_is_undefined_the_percentile_interval_is_scipys(monkeypatch):
    """Mutation: no fallback (NaN bounds), or a fallback that is not scipy's percentile interval."""
    real = stats.bootstrap

    def bca_undefined(*args, method="BCa", **kwargs):
        result = real(*args, method=method, **kwargs)
        if method == "BCa":
            result.confidence_interval = type(result.confidence_interval)(math.nan, math.nan)
        return result

    values = [4.75, 5.25, 5.0, 6.0]
    expected = real(
        (np.array(values),), np.mean, method="percentile", n_resamples=9999, rng=np.random.default_rng(0)
    )
    monkeypatch.setattr(stats, "bootstrap", bca_undefined)
    ci = V.bootstrap_ci(values)
    assert (ci.low, ci.high, ci.method) == (*expected.confidence_interval, "percentile")
    assert V.fmt_interval(ci).endswith("†")


# --------------------------------------------------------------------------------------------------
# Holm, effect size, what the seeds allow: by hand
# --------------------------------------------------------------------------------------------------


def test_holm_by_hand():
    """p = (0.01, 0.04, 0.03, 0.005, 0.2), m = 5, sorted 0.005, 0.01, 0.03, 0.04, 0.2:
    5·0.005 = 0.025; 4·0.01 = 0.04; 3·0.03 = 0.09; 2·0.04 = 0.08 -> 0.09 (the running max);
    1·0.2 = 0.2. Mutations: Bonferroni (m·p), no running max, no cap at 1, NaN counted in m."""
    assert V.holm([0.01, 0.04, 0.03, 0.005, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.2])
    assert V.holm([0.7, 0.6]) == [1.0, 1.0]  # 2·0.6 = 1.2 -> 1; 0.7 -> max(1, 0.7)
    assert V.holm([0.02, float("nan"), 0.01]) == pytest.approx([0.02, math.nan, 0.02], nan_ok=True)  # m = 2
    assert V.holm([0.3]) == [0.3] and V.holm([]) == []


def test_hedges_g_and_the_detectable_difference_by_hand():
    """g = J·d with J(ν) = Γ(ν/2) / (√(ν/2) Γ((ν−1)/2)); the detectable difference gives the power it
    claims. Mutations: d without J, the s.d. of one side only, alpha / 2 twice, a one-sided power."""
    a, b = [7.0, 8.0, 8.0, 9.0], [5.0, 6.0, 4.0, 5.0]  # means 8, 5; variances 2/3, 2/3
    d = 3 / math.sqrt(2 / 3)
    j = math.gamma(3) / (math.sqrt(3) * math.gamma(2.5))  # ν = 6
    assert V.hedges_g(a, b) == pytest.approx(j * d) and V.hedges_g(b, a) == pytest.approx(-j * d)
    assert j == pytest.approx(1 - 3 / (4 * 6 - 1), abs=2e-3)  # Hedges' approximation
    assert V.hedges_g([1.0, 1.0], [2.0, 2.0]) == -math.inf

    sd, alpha = 1.5, 0.05 / 3
    delta = V.detectable_difference(5, 7, sd, alpha)
    ncp = delta / (sd * math.sqrt(1 / 5 + 1 / 7))
    critical = stats.t.ppf(1 - alpha / 2, 10)
    power = stats.nct.sf(critical, 10, ncp) + stats.nct.cdf(-critical, 10, ncp)
    assert power == pytest.approx(0.8, abs=1e-8)
    assert V.detectable_difference(4, 4, 3.0, 0.05) == pytest.approx(
        3 * V.detectable_difference(4, 4, 1.0, 0.05)
    )
    assert math.isnan(V.detectable_difference(1, 1, 1.0, 0.05))  # ν = 0


def test_what_the_seed_counts_allow_by_hand():
    """Holm over 15 pairs needs p ≤ 0.05/15 = 0.00333 first: 5 seeds a side give 2/252 = 0.0079
    (no), 6 give 2/924 = 0.00216 (yes). Mutations: one-sided floor (1/C), Holm's last step (α) for
    its first, C(n1 + n2, n1) miscounted."""
    assert V.min_permutation_p(5, 5) == 2 / 252 and V.min_permutation_p(6, 6) == 2 / 924
    assert V.seeds_needed(15, 0.05) == 6
    assert V.seeds_needed(1, 0.05) == 4  # 2/70 ≤ 0.05 (3 seeds: 2/20 = 0.1)
    assert V.min_permutation_p(1, 1) == 1.0


def test_last_k_by_hand():
    """Each seed's own last K evaluations, step 0 left out, NaN skipped. Mutations: the first K, K+1,
    step 0 counted, the mean over seeds taken before the last K, NaN not skipped."""
    rows = [
        {"objective": "a", "member": m, "g_steps": g, "x": v}
        for m, curve in enumerate([[0, 1, 2, 3, 4, 5, 6], [9, 9, 1, 1, float("nan"), 3, 5]])
        for g, v in zip((0, 10, 20, 30, 40, 50, 60), curve)
    ]
    rows.reverse()  # the order of the rows does not matter, their G steps do
    means = V.last_k_means(rows, "x", k=4)
    assert means == {("a", 0): ((3 + 4 + 5 + 6) / 4, 4), ("a", 1): ((1 + 3 + 5) / 3, 4)}
    assert V.last_k_means(rows, "x", k=10)[("a", 0)] == ((1 + 2 + 3 + 4 + 5 + 6) / 6, 6)  # fewer: all trained
    only_start = [{"objective": "a", "member": 0, "g_steps": 0, "x": 2.0}]
    assert V.last_k_means(only_start, "x") == {("a", 0): (2.0, 1)}


# --------------------------------------------------------------------------------------------------
# A study's report: verdicts in words, on the last-K means
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """The planted study, reported by `gan-lab report`."""
    study = write_mode_study(tmp_path_factory.mktemp("planted") / "tiny", PLANTED)
    assert main(["report", str(study)]) == 0
    return study


def _bullets(report: str) -> list[str]:
    return [line[2:] for line in report.splitlines() if line.startswith("- ")]


def test_the_planted_difference_is_a_verdict_and_the_null_pair_is_not(planted):
    """wasserstein covers more modes than minimax and hinge; minimax and hinge are not
    distinguishable. Mutations: verdicts on the final snapshot (another Δ), no Holm (p_Holm = p),
    the better entry not named first, "distinguishable" for any p ≤ α before adjustment."""
    report = (planted / "report.md").read_text()
    bullets = _bullets(report)
    assert len(bullets) == 3
    ws, mm, hi = last4("wasserstein"), last4("minimax"), last4("hinge")
    p = {pair: V.permutation_p(*pair_values) for pair, pair_values in
         {("minimax", "hinge"): (mm, hi), ("minimax", "wasserstein"): (mm, ws), ("hinge", "wasserstein"): (hi, ws)}.items()}  # fmt: skip
    p_holm = dict(zip(p, V.holm(list(p.values()))))
    assert p_holm[("minimax", "wasserstein")] == 3 * 2 / 924  # the extreme split: 2/924, times 3 pairs

    delta = np.mean(ws) - np.mean(mm)
    ci = V.difference_ci(ws, mm)
    g = V.hedges_g(ws, mm)
    assert (
        f"**wasserstein** covers more modes than **minimax** (Δ = {delta:.2f}, 95 % CI [{ci.low:.2f}, {ci.high:.2f}], "
        f"p_Holm = {p_holm[('minimax', 'wasserstein')]:.3f}, g = {g:.2f})."
    ) in bullets
    assert any(b.startswith("**wasserstein** covers more modes than **hinge** (Δ = ") for b in bullets)
    final_delta = np.mean([c[-1] for c in PLANTED["wasserstein"]]) - np.mean(
        [c[-1] for c in PLANTED["minimax"]]
    )
    assert f"Δ = {final_delta:.2f}" != f"Δ = {delta:.2f}"  # the snapshot would say another Δ

    null = next(b for b in bullets if b.startswith("minimax and hinge"))
    assert null.startswith(
        f"minimax and hinge are not distinguishable on modes covered (Δ = {np.mean(mm) - np.mean(hi):.2f}, "
    )
    assert f"p = {p[('minimax', 'hinge')]:.3f}, p_Holm = {p_holm[('minimax', 'hinge')]:.3f})" in null
    sd = V.pooled_sd(mm, hi)
    assert null.endswith(
        f"the smallest difference detectable here (80 % power): {V.detectable_difference(6, 6, sd, 0.05 / 3):.2f}."
    )
    assert "cannot separate any pair" not in report  # 6 seeds, 3 pairs: 3·2/924 ≤ 0.05


def test_the_report_table_holds_the_final_and_last_k_means_with_cis(planted):
    """The last-4 cell is the mean ± s.e. of the seeds' own last-4 means, by hand, and its CI is
    scipy's; the final cell the last evaluation's. Mutations: last-K over the pooled rows, K = 5,
    the CI of the final values in the last-K column."""
    report = (planted / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| modes covered | minimax |"))
    mm, final = last4("minimax"), [c[-1] for c in PLANTED["minimax"]]
    ci, ci_final = V.bootstrap_ci(mm), V.bootstrap_ci(final)
    se = float(np.std(mm, ddof=1) / math.sqrt(6))
    assert row == (
        f"| modes covered | minimax | 6 | {np.mean(final):.2f} ± {np.std(final, ddof=1) / math.sqrt(6):.2f} | "
        f"[{ci_final.low:.2f}, {ci_final.high:.2f}] | {np.mean(mm):.2f} ± {se:.2f} | [{ci.low:.2f}, {ci.high:.2f}] |"
    )
    assert "### Verdicts on modes covered (`mode/modes`, the primary metric; higher is better)" in report
    assert "exact: all 924 splits of the seeds" in report and "K = 4" in report
    assert "| HQ % | minimax | 6 | 90.0 ± 0.0 | [90.0, 90.0] |" in report  # a constant metric: [v, v]


def test_the_report_is_the_same_each_time(planted, tmp_path):
    """Every resampling has a fixed seed. Mutation: an unseeded rng."""
    again = write_mode_study(tmp_path / "tiny", PLANTED)
    assert main(["report", str(again)]) == 0
    assert (again / "report.md").read_text() == (planted / "report.md").read_text()


def test_four_seeds_cannot_separate_fifteen_pairs(tmp_path):
    """With 4 seeds and 6 entries even a planted 3-mode gap is no verdict: the smallest permutation
    p is 2/70 and Holm over 15 pairs needs 0.0033; the report says so and how many seeds it would
    need. Mutations: Holm's α for its first step, a one-sided floor, "distinguishable" on the raw p."""
    lasts = [[5, 5, 6, 4], [5, 6, 5, 5], [4, 5, 5, 6], [5, 5, 4, 5]]
    curves = {
        label: curves_ending(lasts)
        for label in ("minimax", "non_saturating", "hinge", "least_squares", "relativistic")
    }
    curves["wasserstein"] = curves_ending([[8, 8, 7, 8], [8, 7, 8, 8], [7, 8, 8, 8], [8, 8, 8, 7]])
    study = write_mode_study(tmp_path / "tiny", curves)
    assert main(["report", str(study)]) == 0
    report = (study / "report.md").read_text()
    assert (
        "This study cannot separate any pair at α = 0.05 with 4 seeds per entry: the smallest two-sided "
        "permutation p of 4 against 4 seeds is 2/70 = 0.029, and Holm over 15 pairs needs p ≤ 0.05/15 = "
        "0.0033 for its first rejection; it would need ≥ 6 seeds per entry."
    ) in report
    bullets = _bullets(report)
    assert len(bullets) == 15 and all("are not distinguishable" in b for b in bullets)
    gap = next(b for b in bullets if b.startswith("minimax and wasserstein"))
    assert "p = 0.029, p_Holm = 0.429" in gap  # 15 · 2/70, capped by nothing
    assert gap.endswith("no difference of any size is detectable with 4 against 4 seeds (p ≥ 0.029).")


def test_one_seed_per_entry_is_no_test(tmp_path):
    """scipy's permutation test needs two values a side: one seed per entry gives no p, one line
    saying so, and no CI (mutation: no guard, and the report crashes)."""
    study = write_mode_study(
        tmp_path / "tiny",
        {"minimax": curves_ending([[5, 5, 5, 5]]), "wasserstein": curves_ending([[8, 8, 8, 8]])},
    )
    assert main(["report", str(study)]) == 0
    report = (study / "report.md").read_text()
    assert (
        "No pair can be tested: a permutation test needs at least two seeds with a value on each side (this study has 1 per entry)"
        in report
    )
    assert "| modes covered | minimax | 1 | 5.00 (one seed) | — | 5.00 (one seed) | — |" in report
    assert V.permutation_p([5.0], [8.0, 7.0]) != V.permutation_p([5.0], [8.0, 7.0])  # NaN


def test_alpha_and_k_come_from_study_json(tmp_path, capsys):
    """study.json's ``alpha`` and ``last_k`` (defaults 0.05 and 4); a bad one is one line, exit 2.
    Mutations: the default alpha always, K ignored, no check of the values."""
    study = write_mode_study(tmp_path / "strict", PLANTED, alpha=0.001, last_k=2)
    assert main(["report", str(study)]) == 0
    report = (study / "report.md").read_text()
    assert "at α = 0.001" in report and "K = 2" in report and "| last 2 |" in report
    assert not any(b.startswith("**") for b in _bullets(report))  # p_Holm 0.0065 > 0.001
    assert "This study cannot separate any pair at α = 0.001 with 6 seeds per entry" in report
    (stat,) = [s for s in study_statistics(read_study(study)) if s.primary]
    assert stat.last["minimax"].mean == pytest.approx(np.mean([sum(c[-2:]) / 2 for c in PLANTED["minimax"]]))

    for bad in ({"alpha": 1.5}, {"alpha": "0.05"}, {"last_k": 0}):
        folder = write_mode_study(tmp_path / f"bad{len(list(tmp_path.iterdir()))}", PLANTED, **bad)
        capsys.readouterr()
        assert main(["report", str(folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "study.json" in err and next(iter(bad)) in err
        assert not (folder / "report.md").exists()


# --------------------------------------------------------------------------------------------------
# The same numbers at the end of `gan-lab study` and in the study's W&B run
# --------------------------------------------------------------------------------------------------


def test_the_end_of_a_study_prints_the_last_k_means_and_the_verdicts(planted, tmp_path, monkeypatch, capsys):
    """`gan-lab study` ends with each primary metric's last-K means and CIs and the pairs found
    different (the study itself stood in for by the planted folder). Mutation: the summary not
    printed, or printed from the final snapshot."""
    import gan_lab.study.jobs as jobs

    base = Path(__file__).resolve().parents[1] / "configs" / "tiny_ring8.yaml"
    (tmp_path / "study.yaml").write_text(
        f"name: tiny\nbase: {base}\nseeds: 6\nobjectives: [minimax, hinge, wasserstein]\n"
    )
    monkeypatch.setattr(jobs, "run_study", lambda *args, **kwargs: planted)
    assert main(["study", str(tmp_path / "study.yaml"), "--no-wandb"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == "modes covered (mode/modes; higher is better): mean of each seed's last 4 evaluations, 95 % CI over seeds"
    )
    ci = V.bootstrap_ci(last4("wasserstein"))
    assert (
        f"  wasserstein  {np.mean(last4('wasserstein')):.2f} [{ci.low:.2f}, {ci.high:.2f}]  (6 seeds)" in out
    )
    assert any(line.startswith("  wasserstein covers more modes than minimax (Δ = ") for line in out)
    assert "  1 of 3 pairs not distinguishable at α = 0.05 (report.md lists them)" in out
    assert out[-1].startswith("study written to ")


def test_the_study_run_logs_the_same_statistics_and_verdicts(planted, tmp_path):
    """The study's W&B run (offline) holds ``statistics`` and ``verdicts`` tables with the report's
    numbers. Mutation: a table left out, or computed with other settings than the report's."""
    import shutil

    from wandb_offline import inspect_run

    from gan_lab.study.wandb_run import STATISTICS_COLUMNS, VERDICTS_COLUMNS, log_study_run

    study = tmp_path / "tiny"
    shutil.copytree(planted, study)
    log_study_run(study, "tiny", "tiny")
    (path,) = study.glob("wandb/offline-run-*/run-*.wandb")
    run = inspect_run(path)
    assert run["config"]["alpha"] == 0.05 and run["config"]["last_k"] == 4
    (row,) = run["history"]
    tables = {}
    for name in ("statistics", "verdicts"):
        (file,) = study.glob("wandb/offline-run-*/files/" + row[name]["path"])
        tables[name] = json.loads(file.read_text())
    assert tables["statistics"]["columns"] == STATISTICS_COLUMNS
    assert tables["verdicts"]["columns"] == VERDICTS_COLUMNS
    verdicts = [dict(zip(VERDICTS_COLUMNS, r)) for r in tables["verdicts"]["data"]]
    assert [(v["a"], v["b"], v["distinguishable"]) for v in verdicts] == [
        ("minimax", "hinge", False), ("minimax", "wasserstein", True), ("hinge", "wasserstein", True),
    ]  # fmt: skip
    mm, ws = last4("minimax"), last4("wasserstein")
    assert verdicts[1]["p"] == V.permutation_p(mm, ws) and verdicts[1]["p_holm"] == pytest.approx(3 * 2 / 924)
    assert verdicts[1]["delta"] == pytest.approx(np.mean(mm) - np.mean(ws))
    assert verdicts[1]["verdict"] in (planted / "report.md").read_text().replace("**", "")
    statistics = [dict(zip(STATISTICS_COLUMNS, r)) for r in tables["statistics"]["data"]]
    (wass,) = [s for s in statistics if s["metric"] == "modes" and s["entry"] == "wasserstein"]
    ci = V.bootstrap_ci(ws)
    assert (wass["last_k_mean"], wass["last_k_ci_low"], wass["last_k_ci_high"]) == pytest.approx(
        (np.mean(ws), ci.low, ci.high)
    )
    assert wass["seeds"] == 6 and wass["last_k"] == 4 and wass["primary"] is True


def test_the_docs_example_verdicts_are_what_the_report_writes(planted):
    """docs/guide/statistics.md quotes the planted study's verdicts; they are generated, not typed:
    a change of wording or numbers in the report fails here until the page quotes it again."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "statistics.md").read_text()
    quoted = [line for line in page.splitlines() if line.startswith("- ") and "(Δ = " in line]
    assert len(quoted) == 3
    written = _bullets((planted / "report.md").read_text())
    for line in quoted:
        assert line[2:] in written, line
