"""Run an objectives × seeds grid and write the comparison report.

A study file (YAML) names a base config, the objectives to compare (each with optional override
configs and arguments), the number of seeds and the arguments common to every run::

    name: ring8-demo
    base: ../toy/ring8.yaml          # paths are relative to the study file
    seeds: 4                          # ensemble members: one run per objective trains all seeds
    seed: 0                           # member k uses seed + k
    args: [--model.max_g_steps=1000]  # applied to every run
    objectives:
      - objective: hinge
      - objective: wasserstein
        configs: [../toy/objectives/wasserstein.yaml]

Every run is parsed and instantiated through the same LightningCLI as ``gan-lab fit`` *before*
any of them starts, so a bad name or an impossible combination ends the study with one line and
exit code 2 and no run folder. Output, in ``runs/<name>/`` (``runs/<name>-2/`` ... when it exists,
so that no earlier study is overwritten):

    results.csv    one row per objective × seed: the evaluator's final metrics, wall time
    history.csv    the same metrics at every evaluation (G steps)
    study.json     the command, versions, every run's arguments, the evaluator and its facts
    report.md      objective table (mean ± s.e. over seeds), protocol, figures
    *.png          the evaluator's figures: for toy mixtures samples.png (final samples of each
                   objective over the mixture means) and coverage.png (modes covered against G
                   steps, mean ± s.e. band per objective)
    <objective>/   the run's own folder: config, checkpoint, metrics.csv, W&B files, artifacts

The study is generic over its evaluator callback (the one in trainer.callbacks that has
``history``, ``METRICS``, ``save_artifacts``, ``info``, ``study_figures`` and ``protocol``).
Seed-ensemble nets train all seeds in one run (``ensemble: true``, the default); other nets
(``ensemble: false``) train one run per seed.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gan_lab.cli import fail
from gan_lab.errors import ConfigError, check_int

#: Columns of results.csv before and after the evaluator's metrics.
RESULT_KEYS = ["study", "objective", "regularizers", "n_critic", "member", "seed", "g_steps"]
HISTORY_KEYS = ["objective", "member", "seed", "g_steps"]


@dataclass
class RunSpec:
    objective: str
    configs: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    label: str = ""


@dataclass
class StudySpec:
    name: str
    base: str
    seeds: int
    seed: int
    args: list[str]
    runs: list[RunSpec]
    out: str
    source: str
    ensemble: bool = True


def _as_str_list(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of strings, got {value!r}")
    return list(value)


def load_study(path: str, out: str | None = None) -> StudySpec:
    """Read and check a study file; relative config paths resolve against its folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"study file {path!r} not found; pass a YAML file such as experiments/studies/ring8.yaml"
        )
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"study file {path!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"study file {path!r} must be a mapping with name, base, seeds, objectives")
    known = {"name", "base", "seeds", "seed", "args", "objectives", "out", "ensemble"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in study file {path!r}; valid keys: {sorted(known)}"
        )
    for key in ("name", "base", "objectives"):
        if key not in raw:
            raise ConfigError(f"study file {path!r} lacks {key!r}")
    name = raw["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"study name must be a non-empty string without '/', got {name!r}")
    seeds, seed = raw.get("seeds", 4), raw.get("seed", 0)
    check_int("study seeds", seeds, hint=" (ensemble members)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"study seed must be an integer, got {seed!r}")
    ensemble = raw.get("ensemble", True)
    if not isinstance(ensemble, bool):
        raise ConfigError(f"study ensemble must be true or false, got {ensemble!r}")

    def resolve(f: str) -> str:
        q = (p.parent / f) if not os.path.isabs(f) else Path(f)
        if not q.is_file():
            raise ConfigError(f"config file {f!r} named in {path!r} not found (looked at {q})")
        return str(q)

    runs = []
    if not isinstance(raw["objectives"], list) or not raw["objectives"]:
        raise ConfigError("study objectives must be a non-empty list")
    for item in raw["objectives"]:
        item = {"objective": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("objective"), str):
            raise ConfigError(f"each study objective needs an 'objective' name, got {item!r}")
        extra = set(item) - {"objective", "configs", "args", "label"}
        if extra:
            raise ConfigError(f"unknown key(s) {sorted(extra)} for objective {item['objective']!r}")
        runs.append(
            RunSpec(
                objective=item["objective"],
                configs=[resolve(c) for c in _as_str_list(item.get("configs"), "configs")],
                args=_as_str_list(item.get("args"), "args"),
                label=item.get("label") or item["objective"],
            )
        )
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError(
            f"study runs need distinct labels, got {labels}; add 'label:' to repeated objectives"
        )
    return StudySpec(
        name=name,
        base=resolve(raw["base"]),
        seeds=seeds,
        seed=seed,
        args=_as_str_list(raw.get("args"), "args"),
        runs=runs,
        out=out or raw.get("out") or "runs",
        source=str(p),
        ensemble=ensemble,
    )


@dataclass
class Job:
    """One fit: an objective's run of all seeds (ensemble) or of one seed."""

    run: RunSpec
    seed_index: int | None  # None: every seed as an ensemble member
    run_dir: Path
    args: list[str]

    @property
    def label(self) -> str:
        return self.run.label


def run_args(
    spec: StudySpec, run: RunSpec, run_dir: Path, extra: list[str], seed_index: int | None
) -> list[str]:
    """The ``gan-lab fit`` arguments of one job (without the subcommand)."""
    args = ["--config", spec.base]
    for c in run.configs:
        args += ["--config", c]
    args.append(f"--model.objective={run.objective}")
    if seed_index is None:
        args += [
            f"--model.seed={spec.seed}",
            f"--model.generator.init_args.members={spec.seeds}",
            f"--model.discriminator.init_args.members={spec.seeds}",
        ]
    else:
        args += [f"--model.seed={spec.seed + seed_index}", f"--seed_everything={spec.seed + seed_index}"]
    return [
        *args,
        *spec.args,
        *run.args,
        *extra,
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run_dir}",
    ]


def plan_jobs(spec: StudySpec, study_dir: Path, extra: list[str]) -> list[Job]:
    """One job per objective (ensemble), or per objective × seed (one net per run)."""
    jobs = []
    for run in spec.runs:
        if spec.ensemble:
            run_dir = study_dir / run.label
            jobs.append(Job(run, None, run_dir, run_args(spec, run, run_dir, extra, None)))
        else:
            for k in range(spec.seeds):
                run_dir = study_dir / run.label / f"seed{spec.seed + k}"
                jobs.append(Job(run, k, run_dir, run_args(spec, run, run_dir, extra, k)))
    return jobs


def new_study_dir(out: str, name: str) -> Path:
    """``out/name``, or ``out/name-2``, ``-3`` ... : never an existing folder."""
    base = Path(out) / name
    candidate, k = base, 2
    while candidate.exists():
        candidate = Path(f"{base}-{k}")
        k += 1
    return candidate


def _check_writable(out: str) -> None:
    from gan_lab.cli import writable_folder

    if not writable_folder(out):
        raise ConfigError(f"output folder {out!r} is not writable; pass --out with a folder you can write")


def find_evaluator(trainer):
    """The callback that the study reads (a :class:`~gan_lab.callbacks.evaluation.ScheduledEvaluator`)."""
    from gan_lab.callbacks.evaluation import ScheduledEvaluator

    for cb in trainer.callbacks:
        if isinstance(cb, ScheduledEvaluator):
            return cb
    raise ConfigError(
        "a study needs an evaluator callback in trainer.callbacks (gan_lab.callbacks.ModeCoverageEvaluator "
        "for toy mixtures, gan_lab.callbacks.sr_eval.SRMetricsEvaluator for super-resolution)"
    )


def _import(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def launch_rank() -> int:
    """This process's global rank as the launcher set it (torchrun: RANK, SLURM: SLURM_PROCID)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def select(spec: StudySpec, only: str | None) -> StudySpec:
    """The study reduced to the entry labelled ``only`` (one task of a job array)."""
    if only is None:
        return spec
    labels = [r.label for r in spec.runs]
    if only not in labels:
        raise ConfigError(
            f"--only {only!r} is not an entry of {spec.source}; its entries: {', '.join(labels)}"
        )
    return StudySpec(**{**spec.__dict__, "runs": [r for r in spec.runs if r.label == only]})


def run_study(
    spec: StudySpec,
    extra: list[str] | None = None,
    wandb: bool = True,
    study_dir: Path | None = None,
    jobs_setting: int | None = None,
) -> Path:
    """Validate every run, then fit them (one after another, or side by side on a CPU: see
    :mod:`gan_lab.jobs`; ``jobs_setting``: ``--jobs``) and write the report. Returns the folder.

    ``study_dir`` (default: a new folder under ``spec.out``) must not exist yet: a study never
    writes into an earlier one."""
    import torch
    from jsonargparse import ArgumentError
    from tqdm.auto import tqdm

    from gan_lab.cli import bad_input_in, build_cli, preflight
    from gan_lab.jobs import JobResult, run_jobs, worker_count

    extra = list(extra or [])
    # Under DDP every process runs this function; only global rank 0 checks and writes files.
    lead = launch_rank() == 0
    if study_dir is None:
        _check_writable(spec.out)
        study_dir = new_study_dir(spec.out, spec.name)
    elif lead and study_dir.exists():
        raise ConfigError(f"{study_dir} exists already; a study never writes into an earlier one")
    else:
        _check_writable(str(study_dir))

    # 1. Parse and instantiate every run before anything is written.
    jobs, clis = plan_jobs(spec, study_dir, extra), []
    for job in jobs:
        try:
            cli = build_cli(job.args, run=False)
        except (ValueError, TypeError, ArgumentError) as e:
            cause = bad_input_in(e)
            if cause is None:
                raise
            raise ConfigError(f"{job.label}: {cause}") from None
        evaluator = find_evaluator(cli.trainer)
        clis.append(cli)
    evaluator_cls = type(evaluator)
    for cli in clis:
        if not isinstance(find_evaluator(cli.trainer), evaluator_cls):
            raise ConfigError("every run of a study must use the same evaluator callback")
        preflight(cli.model, cli.datamodule, cli.trainer)

    # 2. Fit, one job after another; results.csv grows as jobs finish.
    study_dir.mkdir(parents=True, exist_ok=not lead)
    metrics = list(evaluator_cls.METRICS)
    result_fields = [*RESULT_KEYS, *metrics, "wall_time_s", "status"]
    history_fields = [*HISTORY_KEYS, *metrics]
    meta = {
        "study": spec.name,
        "source": spec.source,
        "command": "gan-lab study " + " ".join([spec.source, *extra]),
        "seeds": spec.seeds,
        "seed": spec.seed,
        "ensemble": spec.ensemble,
        "evaluator": f"{evaluator_cls.__module__}.{evaluator_cls.__qualname__}",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "runs": [],
    }
    results, history = [], []
    total = sum(cli.model.max_g_steps or 0 for cli in clis)
    workers = worker_count(clis, jobs_setting)
    meta["workers"] = workers
    bar = tqdm(
        total=total or None,
        desc=spec.name if workers == 1 else f"{spec.name} ({workers} at a time)",
        unit="G step",
        dynamic_ncols=True,
        file=sys.stderr,
        disable=not lead,
    )

    def done(index: int, job_result: JobResult) -> None:
        """Add a job's rows (in job order) and rewrite the CSV files: they grow as jobs finish."""
        history.extend(job_result.history)
        results.extend(job_result.results)
        meta["runs"].append(job_result.run)
        meta["info"] = job_result.info
        if lead:
            meta["weights"].update(job_result.weights)
            _write_csv(study_dir / "results.csv", result_fields, results)
            _write_csv(study_dir / "history.csv", history_fields, history)

    run_jobs(spec, jobs, clis, study_dir, wandb, lead, workers, bar, done, meta.setdefault("weights", {}))
    bar.close()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if lead:
        (study_dir / "study.json").write_text(json.dumps(meta, indent=2))
        write_report(study_dir)
    return study_dir


def pretrained_weights(model, known=()) -> dict[str, str]:
    """``{path: sha256 prefix}`` of every pretrained file the run's regularizers loaded (VGG16), so
    that a report says which weights its perceptual figures come from; paths in ``known`` (hashed
    for an earlier run of the study) are not read again."""
    import hashlib

    out = {}
    for reg in getattr(model, "penalties", []):
        vgg = reg._vgg.module if hasattr(reg, "_vgg") else None
        path = getattr(vgg, "path", None)
        if path is not None and str(path) not in known and Path(path).is_file():
            with open(path, "rb") as f:  # streamed: the VGG16 file is ~528 MB
                out[str(path)] = hashlib.file_digest(f, "sha256").hexdigest()[:16]
    return out


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


#: Columns of results.csv / history.csv kept as text; of the others these are integers, the rest floats.
TEXT_COLUMNS = frozenset({"study", "objective", "regularizers", "status"})
INT_COLUMNS = frozenset({"member", "seed", "g_steps", "n_critic"})

#: What to do about a damaged study file (the end of every such error line).
REDO = "restore the file, or run the study again (gan-lab study)"


def _parse_cell(path: Path, line: int, column: str, value: str):
    if column in TEXT_COLUMNS:
        return value
    try:
        return int(value) if column in INT_COLUMNS else float(value)
    except ValueError:
        kind = "an integer" if column in INT_COLUMNS else "a number"
        raise ConfigError(f"{path}, line {line}, column {column}: {value!r} is not {kind}; {REDO}") from None


def read_rows(path: Path, required: Sequence[str] = ()) -> list[dict]:
    """Rows of results.csv / history.csv with ints and floats restored.

    Raises:
        ConfigError: one line naming the file (and the line) when it cannot be read, is not UTF-8
            text, has no header, lacks one of the ``required`` columns, has a row with more or fewer
            fields than its header (a truncated file), or a value that is not a number in a numeric
            column (every column but :data:`TEXT_COLUMNS`; :data:`INT_COLUMNS` are integers).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames
            raw = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not a CSV text file (not UTF-8 at byte {e.start}); {REDO}") from None
    except csv.Error as e:
        raise ConfigError(f"{path} is not a readable CSV file ({e}); {REDO}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    if not fields:
        raise ConfigError(f"{path} is empty (no header line); {REDO}")
    missing = [c for c in required if c not in fields]
    if missing:
        header = ",".join(fields)
        header = header if len(header) <= 60 else header[:57] + "..."
        raise ConfigError(
            f"{path} lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(its header: {header!r}); {REDO}"
        )
    rows = []
    for i, (line, row) in enumerate(raw):
        if None in row:  # DictReader keeps the fields past the header's under the key None
            raise ConfigError(
                f"{path}, line {line}: {len(fields) + len(row[None])} fields, more fields than the "
                f"header's {len(fields)}; {REDO}"
            )
        absent = [k for k, v in row.items() if v is None]
        if absent:
            have = len(fields) - len(absent)
            why = "the file is truncated" if i == len(raw) - 1 else "the row is damaged"
            raise ConfigError(
                f"{path}, line {line}: only {have} of the header's {len(fields)} fields ({why}); {REDO}"
            )
        rows.append({k: _parse_cell(path, line, k, v) for k, v in row.items()})
    return rows


#: Keys of study.json that the report reads.
META_KEYS = (
    "study", "command", "started", "finished", "torch", "python",
    "seeds", "seed", "ensemble", "evaluator", "runs", "info",
)  # fmt: skip


def read_meta(path: Path) -> dict:
    """study.json, checked for what the report reads (one-line :class:`ConfigError` otherwise)."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not a JSON text file (not UTF-8 at byte {e.start}); {REDO}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {REDO}"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(meta, dict):
        raise ConfigError(
            f"{path} must hold a JSON object (the study's facts), not a {type(meta).__name__}; {REDO}"
        )
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ConfigError(
            f"{path} lacks the key{'s' if len(missing) > 1 else ''} {', '.join(missing)}; {REDO}"
        )

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key, kind, ok in (
        ("seeds", "an integer >= 1", is_int(meta["seeds"]) and meta["seeds"] >= 1),
        ("seed", "an integer", is_int(meta["seed"])),
        ("ensemble", "true or false", isinstance(meta["ensemble"], bool)),
        ("evaluator", "a class path", isinstance(meta["evaluator"], str) and "." in meta["evaluator"]),
        ("info", "an object", isinstance(meta["info"], dict)),
        ("weights", "an object", isinstance(meta.get("weights", {}), dict)),
        (
            "runs",
            "a list of objects with label, run_dir and wall_time_s",
            isinstance(meta["runs"], list)
            and all(
                isinstance(r, dict)
                and isinstance(r.get("label"), str)
                and isinstance(r.get("run_dir"), str)
                and isinstance(r.get("wall_time_s"), (int, float))
                for r in meta["runs"]
            ),
        ),
    ):
        if not ok:
            raise ConfigError(f"{path}: {key!r} must be {kind}, got {meta.get(key)!r:.60}; {REDO}")
    return meta


def check_study_folder(study_dir: Path) -> None:
    """Every file :func:`write_report` reads, checked before it writes anything: study.json (its
    evaluator importable, its facts fitting the evaluator's protocol), results.csv and history.csv
    (the evaluator's metric columns, numbers where numbers belong, at least one row), and a run
    folder in study.json for every objective of results.csv. Raises a one-line :class:`ConfigError`."""
    study_dir = Path(study_dir)
    meta_path = study_dir / "study.json"
    meta = read_meta(meta_path)
    from gan_lab.callbacks.evaluation import ScheduledEvaluator

    try:
        evaluator_cls = _import(meta["evaluator"])
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            f"{meta_path} names the evaluator {meta['evaluator']!r}, which cannot be imported "
            f"({type(e).__name__}: {e}); {REDO}"
        ) from None
    if not (isinstance(evaluator_cls, type) and issubclass(evaluator_cls, ScheduledEvaluator)):
        raise ConfigError(
            f"{meta_path}: the evaluator {meta['evaluator']!r} is not an evaluator callback; {REDO}"
        )
    try:
        evaluator_cls.protocol(meta["info"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(
            f"{meta_path}: its 'info' does not fit {evaluator_cls.__name__} ({type(e).__name__}: {e}); {REDO}"
        ) from None
    metrics = list(evaluator_cls.METRICS)
    runs = {r["label"]: r["run_dir"] for r in meta["runs"]}
    for name, keys in (("results.csv", RESULT_KEYS), ("history.csv", HISTORY_KEYS)):
        path = study_dir / name
        rows = read_rows(path, required=[*keys, *metrics])
        if not rows:
            raise ConfigError(f"{path} has no rows (only a header); {REDO}")
        if name == "results.csv":
            for label in dict.fromkeys(r["objective"] for r in rows):
                if label not in runs:
                    raise ConfigError(
                        f"{path} has rows of objective {label!r}, which study.json does not list among "
                        f"its runs ({', '.join(runs)}); {REDO}"
                    )
                if not (study_dir / runs[label]).is_dir():
                    raise ConfigError(
                        f"the run folder {study_dir / runs[label]} of {label!r} (study.json) does not exist; {REDO}"
                    )


def fmt_mean_se(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± s.e.`` over the finite values, with ``(n=k/N)`` when some are undefined.

    >>> fmt_mean_se([1.0, 2.0, 3.0])
    '2.00 ± 0.58'
    >>> fmt_mean_se([1.0, float("nan")], digits=1)
    '1.0 (n=1/2)'
    """
    import torch

    from gan_lab.metrics import mean_and_se

    t = torch.tensor(values, dtype=torch.float64) * scale
    mean, se = mean_and_se(t)
    n_ok = int(torch.isfinite(t).sum())
    if n_ok == 0:
        return "undefined"
    text = f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"
    if n_ok < len(values):
        text += f" (n={n_ok}/{len(values)})"
    return text


def write_report(study_dir: Path) -> Path:
    """Write ``report.md`` and the evaluator's figures from the study's own files."""
    study_dir = Path(study_dir)
    meta = json.loads((study_dir / "study.json").read_text())
    results = read_rows(study_dir / "results.csv")
    history = read_rows(study_dir / "history.csv")
    evaluator_cls = _import(meta["evaluator"])
    labels = list(dict.fromkeys(r["objective"] for r in results))
    run_dirs = {}
    for r in meta["runs"]:
        run_dirs.setdefault(r["label"], study_dir / r["run_dir"])
    figures = evaluator_cls.study_figures(
        study_dir, [(lab, run_dirs[lab]) for lab in labels], results, history, meta["info"]
    )
    n = meta["seeds"]
    seeds = f"seed {meta['seed']}" if n == 1 else f"seeds {meta['seed']}..{meta['seed'] + n - 1}"
    how = (
        "together as ensemble members of one run (each member an independent run)"
        if meta["ensemble"]
        else "as separate runs"
    )
    headers = [h for h, _, _ in evaluator_cls.METRICS.values()]
    lines = [
        f"# Study `{meta['study']}`",
        "",
        f"Command: `{meta['command']}`; started {meta['started']}, finished {meta['finished']}; "
        f"torch {meta['torch']}, python {meta['python']}.",
        "",
        f"Each configuration trains {n} seed{'s' if n > 1 else ''} ({seeds}) {how}. "
        + (
            "Figures are the mean ± standard error over seeds at the final evaluation"
            if n > 1
            else "With one seed there is no standard error: figures are that seed's final evaluation"
        )
        + "; per-seed values are in `results.csv`, every evaluation in `history.csv`.",
        "",
        evaluator_cls.protocol(meta["info"]),
        "",
        *[f"Pretrained weights: `{p}` (sha256 {h}…)." for p, h in meta.get("weights", {}).items()],
        "",
        "| objective | regularizers | n_critic | G steps | " + " | ".join(headers) + " | wall time (s) |",
        "|---" * (5 + len(headers)) + "|",
    ]
    for lab in labels:
        rows = [r for r in results if r["objective"] == lab]
        cells = [
            fmt_mean_se([r[m] for r in rows], scale=scale, digits=digits)
            for m, (_, scale, digits) in evaluator_cls.METRICS.items()
        ]
        wall = sum(x["wall_time_s"] for x in meta["runs"] if x["label"] == lab)
        first = rows[0]
        lines.append(
            f"| {lab} | {first['regularizers']} | {first['n_critic']} | {first['g_steps']} | "
            + " | ".join(cells)
            + f" | {wall:.1f} |"
        )
    diverged = sorted({(r["objective"], r["status"]) for r in results if r.get("status", "ok") != "ok"})
    if diverged:
        lines += ["", "Diverged (the divergence guard stopped them; figures are from their last evaluation):"]
        lines += [f"- {lab}: {status}" for lab, status in diverged]
    lines.append("")
    for caption, filename in figures:
        lines += [f"![{caption}]({filename})", ""]
    path = study_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def merge_parts(study_dir: Path) -> None:
    """Join the entries that job-array tasks wrote into ``study_dir/parts/<label>/`` into one study:
    results.csv, history.csv and study.json at the top, as if one process had run them all."""
    parts = sorted(p for p in (study_dir / "parts").iterdir() if (p / "study.json").is_file())
    if not parts:
        raise ConfigError(f"{study_dir}/parts holds no finished entry")
    metas = [json.loads((p / "study.json").read_text()) for p in parts]
    meta = {**metas[0], "runs": [], "weights": {}}
    meta["started"] = min(m["started"] for m in metas)
    meta["finished"] = max(m["finished"] for m in metas)
    meta["command"] = metas[0]["command"].split(" --only")[0] + " (job array: one task per entry)"
    for p, m in zip(parts, metas):
        for run in m["runs"]:
            meta["runs"].append({**run, "run_dir": str((p / run["run_dir"]).relative_to(study_dir))})
        meta["weights"].update(m.get("weights", {}))
    for name in ("results.csv", "history.csv"):
        fields, rows = None, []
        for p in parts:
            with open(p / name, newline="") as f:
                reader = csv.DictReader(f)
                fields = fields or reader.fieldnames
                rows.extend(reader)
        _write_csv(study_dir / name, fields, rows)
    (study_dir / "study.json").write_text(json.dumps(meta, indent=2))


def study_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gan-lab study", description="Run an objectives × seeds study.")
    parser.add_argument("study_file")
    parser.add_argument("--out", default=None, help="parent folder of the study folder (default: runs)")
    parser.add_argument(
        "--no-wandb", action="store_true", help="skip W&B logging (CSV is written regardless)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra arguments for every run, e.g. --model.max_g_steps=200"
    )
    parser.add_argument("--only", default=None, help="run only the entry with this label (a job-array task)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="fits at a time (default: on a CPU, as many as the cores hold at the runs' thread count; else 1)",
    )
    parser.add_argument(
        "--study-dir",
        default=None,
        help="with --only: the shared study folder; the entry writes DIR/parts/LABEL/, and "
        "`gan-lab report DIR` merges the parts",
    )
    args, unknown = parser.parse_known_args(argv)
    try:
        if args.study_dir and not args.only:
            raise ConfigError("--study-dir goes with --only (one entry of a job array); without it use --out")
        spec = select(load_study(args.study_file, args.out), args.only)
        target = Path(args.study_dir) / "parts" / args.only if args.study_dir else None
        study_dir = run_study(
            spec,
            [*args.overrides, *unknown],
            wandb=not args.no_wandb,
            study_dir=target,
            jobs_setting=args.jobs,
        )
    except ConfigError as e:
        return fail(e)
    print(f"study written to {study_dir}/ (report.md, results.csv, history.csv, figures)")
    return 0


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="gan-lab report", description="Rewrite a study's report from its files."
    )
    parser.add_argument("study_dir")
    args = parser.parse_args(argv)
    d = Path(args.study_dir)
    if (d / "parts").is_dir() and not (d / "study.json").exists():
        try:
            merge_parts(d)
        except ConfigError as e:
            return fail(e)
    missing = [f for f in ("study.json", "results.csv", "history.csv") if not (d / f).is_file()]
    if missing:
        return fail(f"{args.study_dir!r} is not a finished study folder (missing {', '.join(missing)})")
    try:
        check_study_folder(d)  # before write_report rewrites any figure or report.md
    except ConfigError as e:
        return fail(e)
    print(write_report(d))
    return 0
