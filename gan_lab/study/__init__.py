"""Studies: an objectives × seeds grid, its runs, and the comparison report.

    spec.py          the study file: load_study, StudySpec / RunSpec, select
    plan.py          its plan: plan_study (every job's `gan-lab fit` command, entries, seeds,
                     folders), build_jobs (every job built and checked first), plan.json
    jobs.py          running it: run_study (plan, build, fit, rows, report), fit_job, job_rows,
                     worker_count, run_jobs (side by side on a CPU), study_main (`gan-lab study`)
    report.py        its files and report: read_study, check_study_folder, fmt_mean_se,
                     write_report, merge_parts, report_main (`gan-lab report`), and EVALUATORS
                     (the evaluator classes by name: study.json names, never imports)
    workspace.py     the study's W&B workspace (dashboard.json), built by ``gan-lab dashboard``

The evaluators and their report sections live in :mod:`gan_lab.evaluators` (and
:mod:`gan_lab.paired` for the SR metrics); the study imports them, never the other way round.

An evaluator is one plug-in: its class (:class:`~gan_lab.evaluators.base.ScheduledEvaluator`)
schedules, computes and logs, and names its report section (``report_section()``); registering
the class in :data:`EVALUATORS` is all a study needs.

Output, in ``runs/<name>/`` (``runs/<name>-2/`` ... when it exists, so that no earlier study is
overwritten): ``plan.json``, ``results.csv``, ``history.csv``, ``study.json``, ``report.md``, the
evaluators' figures, and one folder per run (config, checkpoint, metrics.csv, W&B files,
artifacts); see :mod:`gan_lab.study.report`.
"""

from gan_lab.evaluators.section import EvaluatorReport
from gan_lab.study.jobs import run_study, study_main
from gan_lab.study.plan import StudyPlan, build_jobs, plan_study
from gan_lab.study.report import (
    EVALUATORS,
    check_study_folder,
    fmt_mean_se,
    merge_parts,
    read_meta,
    read_rows,
    read_study,
    register_evaluator,
    report_main,
    write_report,
)
from gan_lab.study.spec import RunSpec, StudySpec, load_study, select

__all__ = [
    "EVALUATORS",
    "EvaluatorReport",
    "RunSpec",
    "StudyPlan",
    "StudySpec",
    "build_jobs",
    "check_study_folder",
    "fmt_mean_se",
    "load_study",
    "merge_parts",
    "plan_study",
    "read_meta",
    "read_rows",
    "read_study",
    "register_evaluator",
    "report_main",
    "run_study",
    "select",
    "study_main",
    "write_report",
]
