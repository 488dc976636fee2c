"""Studies: an objectives × seeds grid, its runs, and the comparison report.

    spec.py          the study file: load_study, StudySpec / RunSpec, select, plan_jobs / Job
    jobs.py          running it: run_study (validate every run, then fit), fit_job, worker_count,
                     run_jobs (side by side on a CPU), study_main (`gan-lab study`)
    report.py        its files and report: read_rows, read_meta, check_study_folder, fmt_mean_se,
                     write_report, merge_parts, report_main (`gan-lab report`), REPORTS, and
                     EVALUATORS (the evaluator classes by name: study.json names, never imports)
    mode_report.py   how the report shows mode coverage (protocol, samples.png, coverage.png)
    sr_report.py     how the report shows the SR metrics (protocol, grids.png, psnr.png)
    image_report.py  how the report shows image metrics and the stacked-digits mode count
                     (protocols with the feature network, samples.png, fd.png, modes.png, kl.png)

Output, in ``runs/<name>/`` (``runs/<name>-2/`` ... when it exists, so that no earlier study is
overwritten): ``results.csv``, ``history.csv``, ``study.json``, ``report.md``, the evaluators'
figures, and one folder per run (config, checkpoint, metrics.csv, W&B files, artifacts); see
:mod:`gan_lab.study.report`.
"""

from gan_lab.study import image_report, mode_report, sr_report  # noqa: F401  (register the evaluators' reports)
from gan_lab.study.jobs import run_study, study_main
from gan_lab.study.report import (
    EVALUATORS,
    REPORTS,
    EvaluatorReport,
    check_study_folder,
    fmt_mean_se,
    merge_parts,
    read_meta,
    read_rows,
    register_evaluator,
    report_main,
    write_report,
)
from gan_lab.study.spec import RunSpec, StudySpec, load_study, select

__all__ = [
    "EVALUATORS",
    "REPORTS",
    "EvaluatorReport",
    "RunSpec",
    "StudySpec",
    "check_study_folder",
    "fmt_mean_se",
    "load_study",
    "merge_parts",
    "read_meta",
    "read_rows",
    "register_evaluator",
    "report_main",
    "run_study",
    "select",
    "study_main",
    "write_report",
]
