"""A study's closing W&B run: its per-seed results as a ``wandb.Table`` and its report figures.

One run per study, in the study's group with job type ``report`` (the workspace's runset, made of
the per-seed runs, leaves it out), written into ``<study>/wandb``: ``results`` (the rows of
``results.csv``, one per objective × seed) and ``figures/<name>`` (each PNG of the study folder:
``samples.png``, ``coverage.png``, ...).
"""

from __future__ import annotations

import csv
from pathlib import Path

from gan_lab.dashboard.seed_runs import REPORT_JOB


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


def log_study_run(study_dir: Path, group: str, study: str, project: str = "gan_lab") -> str:
    """Log the study's results table and figures as one run; returns its id."""
    import wandb

    study_dir = Path(study_dir)
    with open(study_dir / "results.csv", newline="") as f:
        reader = csv.reader(f)
        header, *rows = list(reader)
    run = wandb.init(
        dir=str(study_dir),
        project=project,
        group=group,
        job_type=REPORT_JOB,
        name=f"{group}/report",
        config={"study": study},
        reinit="create_new",
    )
    table = wandb.Table(columns=header, data=[[cell(v) for v in row] for row in rows])
    figures = {f"figures/{p.stem}": wandb.Image(str(p)) for p in sorted(study_dir.glob("*.png"))}
    run.log({"results": table, **figures})
    run.finish()
    return run.id
