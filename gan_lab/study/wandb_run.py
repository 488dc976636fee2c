"""A study's closing W&B run: its per-seed results and its report's statistics as W&B tables, and
its report figures.

One run per study, in the study's group with job type ``report`` (the workspace's runset, made of
the per-seed runs, leaves it out), written into ``<study>/wandb``: ``results`` (the rows of
``results.csv``, one per objective × seed), ``statistics`` and ``verdicts`` (the numbers of the
report's statistics, :func:`statistics_tables`) and ``figures/<name>`` (each PNG of the study
folder: ``samples.png``, ``coverage.png``, ...). The run's config holds the study's name and the
verdicts' ``alpha`` and ``last_k``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gan_lab.dashboard.seed_runs import REPORT_JOB
from gan_lab.study.report import read_study, study_alpha, study_last_k, study_statistics


def cell(value: str):
    """A results.csv cell as a number where it is one (ints stay ints).

    >>> cell("3"), cell("0.25"), cell("nan") != cell("nan"), cell("ok")
    (3, 0.25, True, 'ok')
    """
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


#: columns of the ``statistics`` table: one row per evaluator × metric × entry, in the metric's units
STATISTICS_COLUMNS = [
    "evaluator", "metric", "primary", "entry", "seeds",
    "final_mean", "final_se", "final_ci_low", "final_ci_high", "final_ci_method",
    "last_k", "last_k_averaged", "last_k_mean", "last_k_se", "last_k_ci_low", "last_k_ci_high", "last_k_ci_method",
]  # fmt: skip
#: columns of the ``verdicts`` table: one row per pair of entries on each evaluator's primary metric
#: (``delta = mean(a) − mean(b)`` of the seeds' last-K means)
VERDICTS_COLUMNS = [
    "evaluator", "metric", "a", "b", "seeds_a", "seeds_b", "delta", "delta_ci_low", "delta_ci_high",
    "p", "p_holm", "alpha", "hedges_g", "detectable_delta", "min_p", "distinguishable", "verdict",
]  # fmt: skip


def statistics_tables(stats) -> tuple[list[list], list[list]]:
    """The rows of the ``statistics`` and ``verdicts`` tables (:data:`STATISTICS_COLUMNS`,
    :data:`VERDICTS_COLUMNS`) from the report's statistics
    (:func:`gan_lab.study.report.study_statistics`): the numbers ``report.md`` prints, unscaled."""
    statistics, verdicts = [], []
    for st in stats:
        name = st.entry.name
        for label in st.final:
            f, last = st.final[label], st.last[label]
            statistics.append(
                [name, st.metric, st.primary, label, f.n, f.mean, f.se, f.ci.low, f.ci.high, f.ci.method,
                 st.k, st.averaged[label], last.mean, last.se, last.ci.low, last.ci.high, last.ci.method]
            )  # fmt: skip
        for c, words in zip(st.comparisons, st.verdicts()):
            verdicts.append(
                [name, st.metric, c.a, c.b, c.n_a, c.n_b, c.delta, c.ci.low, c.ci.high, c.p, c.p_holm,
                 c.alpha, c.g, c.detectable, c.floor, c.distinguishable, words.replace("**", "")]
            )  # fmt: skip
    return statistics, verdicts


def log_study_run(study_dir: Path, group: str, study: str, project: str = "gan_lab") -> str:
    """Log the study's results table, its report's statistics and verdicts (read from the study's
    files and computed as ``report.md`` computes them) and its figures as one run; returns its id."""
    import wandb

    study_dir = Path(study_dir)
    with open(study_dir / "results.csv", newline="") as f:
        reader = csv.reader(f)
        header, *rows = list(reader)
    files = read_study(study_dir)
    statistics, verdicts = statistics_tables(study_statistics(files))
    run = wandb.init(
        dir=str(study_dir.resolve()),  # absolute: W&B's service has a working directory of its own
        project=project,
        group=group,
        job_type=REPORT_JOB,
        name=f"{group}/report",
        config={"study": study, "alpha": study_alpha(files.meta), "last_k": study_last_k(files.meta)},
        reinit="create_new",
    )
    tables = {
        "results": wandb.Table(columns=header, data=[[cell(v) for v in row] for row in rows]),
        "statistics": wandb.Table(columns=STATISTICS_COLUMNS, data=statistics),
        "verdicts": wandb.Table(columns=VERDICTS_COLUMNS, data=verdicts),
    }
    figures = {f"figures/{p.stem}": wandb.Image(str(p)) for p in sorted(study_dir.glob("*.png"))}
    run.log({**tables, **figures})
    run.finish()
    return run.id
