"""Writing a study's report from its files: ``results.csv``, ``history.csv``, ``study.json``.

The files (in ``runs/<name>/``):

    plan.json      every job with its command, seeds, folder and state (:mod:`gan_lab.study.plan`)
    results.csv    one row per objective × seed: the evaluators' final metrics, wall time, status
    history.csv    the same metrics at every evaluation (G steps)
    study.json     the command, versions, every run's arguments, the evaluators and their facts
    report.md      per evaluator: its protocol, the objective table (mean ± s.e. over seeds), the
                   statistics over seeds (bootstrap CIs, last-K means) and the verdicts, figures
    *.png          the evaluators' figures (mode coverage: mode_samples.png, mode_coverage.png)

A study runs one or several evaluators (the :class:`~gan_lab.evaluators.base.ScheduledEvaluator`
callbacks of its runs). Each metric column is the evaluator's name and the metric's
(``mode/modes``, ``sr/psnr``), each figure file starts with the evaluator's name
(``mode_samples.png``), study.json's ``evaluator`` is the list of their registered names and
``info`` maps each name to its facts; history rows where an evaluator did not evaluate hold NaN in
its columns. A folder written before that (one evaluator: its name, its facts as ``info``, its
columns unprefixed) is read as if it were written so (:func:`read_study`).

The evaluator classes are found by name in :data:`EVALUATORS` (the lab's are registered here, one
line each; a user's by :func:`register_evaluator`, or when a study first runs it), never imported
from what a file says: nothing in a study folder can make ``gan-lab report`` or ``gan-lab
dashboard`` import or run code. A study.json written before the registry names an evaluator by
its class path; that is accepted only when it is, as a string, the ``module.QualName`` of a
registered evaluator.

How the report shows an evaluator (its table's headers and scales, the protocol paragraph, its
figures) is the evaluator's report section, found from its class
(:meth:`~gan_lab.evaluators.base.ScheduledEvaluator.report_section`, an
:class:`~gan_lab.evaluators.section.EvaluatorReport`). Beside each evaluator's table the report prints the
published rows of the study file's ``published`` key (:func:`published_table`: the source's values
and ours side by side, flagging rows whose ``mean ± s.e.`` intervals do not overlap) and flags every
configuration whose metrics are still moving at the end of training (:func:`still_moving`: "not
converged", beside its row). After the table come its statistics over seeds and, for the
evaluator's ``PRIMARY`` metric, the verdicts on every pair of entries (:func:`study_statistics`,
:func:`statistics_section`; the tests and intervals are :mod:`gan_lab.study.verdicts`'s, at
study.json's ``alpha`` and on the mean of each seed's last ``last_k`` evaluations, defaults 0.05 and
4); :func:`summary_lines` is their short form at the end of ``gan-lab study``. A study file's
``note`` is printed under the title. The report is
computed from the files alone, never from W&B: ``gan-lab report DIR`` (:func:`report_main`) checks
them (:func:`check_study_folder`) and rewrites it, after merging the ``parts/<label>/`` folders of a
job-array study (:func:`merge_parts`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gan_lab.errors import ConfigError, fail
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.evaluators.image import ImageMetricsEvaluator
from gan_lab.evaluators.mode import ModeCoverageEvaluator
from gan_lab.evaluators.section import REDO, EvaluatorReport
from gan_lab.evaluators.stacked import StackedModeEvaluator
from gan_lab.files import write_whole
from gan_lab.metrics import mean_and_se
from gan_lab.paired.evaluator import SRMetricsEvaluator
from gan_lab.registry import Registry
from gan_lab.study.spec import check_published
from gan_lab.study.verdicts import (
    ALPHA,
    CI_NAME,
    LAST_K,
    N_RESAMPLES,
    SEED,
    Comparison,
    Summary,
    compare_entries,
    direction,
    floor_sentence,
    fmt_interval,
    fmt_number,
    fmt_p,
    last_k_means,
    oriented,
    summarize,
    verdict_sentence,
)

#: Columns of results.csv before and after the evaluators' metrics.
RESULT_KEYS = ["study", "objective", "regularizers", "n_critic", "member", "seed", "g_steps"]
HISTORY_KEYS = ["objective", "member", "seed", "g_steps"]


# --------------------------------------------------------------------------------------------------
# The evaluators a study may name
# --------------------------------------------------------------------------------------------------

#: The evaluator classes by ``NAME``: what study.json names and the report looks up (never imports).
#: A new evaluator of the lab is one line here; its class names its own report section.
EVALUATORS: Registry = Registry("evaluator", key="NAME")
EVALUATORS.register(ModeCoverageEvaluator)
EVALUATORS.register(ImageMetricsEvaluator)
EVALUATORS.register(StackedModeEvaluator)
EVALUATORS.register(SRMetricsEvaluator)


def register_evaluator(cls: type) -> type:
    """Register the evaluator class ``cls`` under its ``NAME`` (nothing when it is registered
    already; a class of the same ``module.QualName`` defined again, a re-run notebook cell, takes
    the name over); returns ``cls``, so that it works as a class decorator.

    Raises:
        ConfigError: ``cls`` is not a :class:`~gan_lab.evaluators.base.ScheduledEvaluator`
            subclass, or its ``NAME`` is another class's (one line naming that class).
    """
    if not (isinstance(cls, type) and issubclass(cls, ScheduledEvaluator)):
        raise ConfigError(f"{cls!r} is not an evaluator callback (a ScheduledEvaluator subclass)")
    name = getattr(cls, "NAME", None)
    held = EVALUATORS[name] if name in EVALUATORS else None  # noqa: SIM401 (get() builds one)
    if held is not cls:
        again = held is not None and class_path(held) == class_path(cls)
        EVALUATORS.register(cls, name=name, replace=again)  # refuses a NAME another class holds
    return cls


def class_path(cls: type) -> str:
    """``module.QualName`` of a class: how a study.json written before :data:`EVALUATORS` named it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def evaluators_meta(classes: Sequence[type], infos: Sequence[dict]) -> dict:
    """study.json's ``evaluator`` (each class's registered name, a list) and ``info`` (each one's
    facts by name). A class not registered yet (a user's evaluator, imported by the user's own
    config) is registered here, so that the report finds it by name.

    Raises:
        ConfigError: a class whose ``NAME`` another registered evaluator holds.
    """
    names = [register_evaluator(c).NAME for c in classes]
    return {"evaluator": names, "info": dict(zip(names, infos))}


@dataclass(frozen=True)
class StudyEvaluator:
    """One evaluator of a study: its class and its facts (``info``); its columns are
    ``<NAME>/<metric>``, its figure files ``<NAME>_<figure>.png``."""

    cls: type
    info: dict

    @property
    def name(self) -> str:
        return self.cls.NAME

    @property
    def prefix(self) -> str:
        return f"{self.name}/"

    @property
    def metrics(self) -> list[str]:
        return list(self.cls.METRICS)

    @property
    def columns(self) -> list[str]:
        return [self.prefix + m for m in self.metrics]

    @property
    def report(self) -> EvaluatorReport:
        """Its report section, as its class names it."""
        return self.cls.report_section()

    @property
    def file_prefix(self) -> str:
        return f"{self.name}_"

    def rows(self, rows: list[dict], evaluated_only: bool = False) -> list[dict]:
        """``rows`` with this evaluator's metrics under their own names (the others' left out);
        ``evaluated_only``: without the rows where it did not evaluate (all its metrics NaN)."""
        out = []
        for r in rows:
            values = {m: r[self.prefix + m] for m in self.metrics}
            if evaluated_only and all(math.isnan(v) for v in values.values()):
                continue
            out.append({**{k: v for k, v in r.items() if "/" not in k}, **values})  # "/": metrics
        return out


def evaluator_class(name: object, where: object = "study.json") -> type:
    """The registered evaluator class that a file (``where``) names: its name in
    :data:`EVALUATORS`, or, in a file written before the registry, exactly the ``module.QualName``
    of a registered evaluator. Nothing is imported.

    Raises:
        ConfigError: one line naming ``where``, the name and the valid names.

    >>> evaluator_class("mode").__name__, evaluator_class("gan_lab.evaluators.mode.ModeCoverageEvaluator").__name__
    ('ModeCoverageEvaluator', 'ModeCoverageEvaluator')
    >>> evaluator_class("this.X")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: study.json names the evaluator 'this.X', which is not a registered evaluator (names in a study folder are looked up, never imported, so it cannot be imported); valid evaluators: image, mode, ...
    """
    try:
        return EVALUATORS.lookup(name, old_paths=True)
    except ConfigError:
        shown = name if isinstance(name, str) else repr(name)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ConfigError(
            f"{where} names the evaluator {shown!r}, which is not a registered evaluator (names in a "
            "study folder are looked up, never imported, so it cannot be imported); valid evaluators: "
            f"{', '.join(sorted(EVALUATORS))}"
        ) from None


def evaluator_names(value: object, where: object = "study.json") -> list:
    """study.json's ``evaluator`` as a list (a folder written before lists holds one name).

    Raises:
        ConfigError: neither a name nor a non-empty list.

    >>> evaluator_names("mode"), evaluator_names(["mode", "sr"])
    (['mode'], ['mode', 'sr'])
    """
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where}: 'evaluator' must be a list of evaluator names, got {value!r:.60}; {REDO}"
        )
    return value


def study_evaluators(meta: dict, meta_path: Path | None = None) -> list[StudyEvaluator]:
    """The evaluators that study.json names, looked up in :data:`EVALUATORS`, with their facts (a
    folder written before lists: its one evaluator's facts are ``info`` itself).

    Raises:
        ConfigError: (one line naming ``meta_path``) an evaluator that is not registered, or facts
            that do not fit its report's protocol.
    """
    where = meta_path or "study.json"
    one = isinstance(meta["evaluator"], str)
    classes = []
    for name in evaluator_names(meta["evaluator"], where):
        try:
            classes.append(evaluator_class(name, where))
        except ConfigError as e:
            raise ConfigError(f"{e}; {REDO}") from None
    entries = []
    for cls in classes:
        info = meta["info"] if one else meta["info"].get(cls.NAME)
        try:
            if not isinstance(info, dict):
                raise TypeError(f"no facts (an object) for {cls.NAME!r}")
            cls.report_section().protocol(info)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(
                f"{where}: its 'info' does not fit {cls.__name__} ({type(e).__name__}: {e}); {REDO}"
            ) from None
        entries.append(StudyEvaluator(cls, info))
    return entries


# --------------------------------------------------------------------------------------------------
# Reading and checking the files
# --------------------------------------------------------------------------------------------------


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    """``rows`` under the header ``fields``, written whole (:func:`gan_lab.files.write_whole`)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    write_whole(path, text.getvalue())


#: Columns of results.csv / history.csv kept as text; of the others these are integers, the rest floats.
TEXT_COLUMNS = frozenset({"study", "objective", "regularizers", "status"})
INT_COLUMNS = frozenset({"member", "seed", "g_steps", "n_critic"})


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


def _evaluator_names(value) -> bool:
    """A name, or a non-empty list of them (study.json's ``evaluator``)."""
    values = value if isinstance(value, list) and value else [value]
    return all(isinstance(v, str) and v for v in values)


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
        ("evaluator", "an evaluator name or a list of them", _evaluator_names(meta["evaluator"])),
        ("info", "an object", isinstance(meta["info"], dict)),
        ("weights", "an object", isinstance(meta.get("weights", {}), dict)),
        (
            "alpha",
            "a number between 0 and 1 (the verdicts' significance level)",
            isinstance(meta.get("alpha", ALPHA), (int, float))
            and not isinstance(meta.get("alpha", ALPHA), bool)
            and 0 < meta.get("alpha", ALPHA) < 1,
        ),
        (
            "last_k",
            "an integer >= 1 (the evaluations per seed the verdicts average)",
            is_int(meta.get("last_k", LAST_K)) and meta.get("last_k", LAST_K) >= 1,
        ),
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


@dataclass
class StudyFiles:
    """A study folder's files as the report reads them: study.json (``meta``), its evaluators, the
    rows of results.csv and history.csv (metric columns ``<NAME>/<metric>``), and the published
    rows (keys resolved to those columns) and note."""

    meta: dict
    entries: list[StudyEvaluator]
    results: list[dict]
    history: list[dict]
    published: list[dict]
    note: str


def read_study(study_dir: Path) -> StudyFiles:
    """Read and check study.json (its evaluators registered, their facts fitting their protocols),
    results.csv and history.csv (the evaluators' metric columns, numbers where numbers belong) and
    the published rows (each key a metric column). A folder written before columns were always
    prefixed (study.json naming one evaluator, not a list) has its columns read under their
    prefixed names.

    Raises:
        ConfigError: one line naming the file and what is wrong.
    """
    study_dir = Path(study_dir)
    meta_path = study_dir / "study.json"
    meta = read_meta(meta_path)
    entries = study_evaluators(meta, meta_path)
    unprefixed = isinstance(meta["evaluator"], str)
    rename = {m: e.prefix + m for e in entries for m in e.metrics} if unprefixed else {}
    rows = {}
    for name, keys in (("results.csv", RESULT_KEYS), ("history.csv", HISTORY_KEYS)):
        columns = [c for e in entries for c in (e.metrics if unprefixed else e.columns)]
        found = read_rows(study_dir / name, required=[*keys, *columns])
        rows[name] = [{rename.get(k, k): v for k, v in r.items()} for r in found] if rename else found
    published, note = study_file_extras(meta)
    published = resolve_published(published, entries, meta_path)
    return StudyFiles(meta, entries, rows["results.csv"], rows["history.csv"], published, note)


def check_study_folder(study_dir: Path) -> StudyFiles:
    """Every file :func:`write_report` reads, checked before it writes anything: the files
    :func:`read_study` reads, at least one row in each CSV, a run folder in study.json for every
    objective of results.csv, and the run folders' files that the evaluators' figures read
    (:meth:`~gan_lab.evaluators.section.EvaluatorReport.check_files`). Raises a one-line
    :class:`ConfigError`; returns what it read."""
    study_dir = Path(study_dir)
    files = read_study(study_dir)
    for name, rows in (("results.csv", files.results), ("history.csv", files.history)):
        if not rows:
            raise ConfigError(f"{study_dir / name} has no rows (only a header); {REDO}")
    runs = {r["label"]: r["run_dir"] for r in files.meta["runs"]}
    labels = list(dict.fromkeys(r["objective"] for r in files.results))
    for label in labels:
        if label not in runs:
            raise ConfigError(
                f"{study_dir / 'results.csv'} has rows of objective {label!r}, which study.json does not "
                f"list among its runs ({', '.join(runs)}); {REDO}"
            )
        if not (study_dir / runs[label]).is_dir():
            raise ConfigError(
                f"the run folder {study_dir / runs[label]} of {label!r} (study.json) does not exist; {REDO}"
            )
    first: dict[str, str] = {}  # the run folder write_report draws from: the first listed
    for r in files.meta["runs"]:
        first.setdefault(r["label"], r["run_dir"])
    for entry in files.entries:
        entry.report.check_files([(label, study_dir / first[label]) for label in labels])
    return files


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


def fmt_mean_se(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± s.e.`` over the finite values, with ``(n=k/N)`` when some are undefined.

    >>> fmt_mean_se([1.0, 2.0, 3.0])
    '2.00 ± 0.58'
    >>> fmt_mean_se([1.0, float("nan")], digits=1)
    '1.0 (n=1/2)'
    """
    import torch

    t = torch.tensor(values, dtype=torch.float64) * scale
    mean, se = mean_and_se(t)
    n_ok = int(torch.isfinite(t).sum())
    if n_ok == 0:
        return "undefined"
    text = f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"
    if n_ok < len(values):
        text += f" (n={n_ok}/{len(values)})"
    return text


#: The share of training over which :func:`still_moving` looks back: the last quarter.
LOOK_BACK = 0.25


def _mean_se(values: list[float]) -> tuple[float, float]:
    import torch

    mean, se = mean_and_se(torch.tensor(values, dtype=torch.float64))
    return float(mean), (float(se) if math.isfinite(se) else 0.0)


def still_moving(
    history: list[dict], metric: str, settled: float | None = None
) -> tuple[int, int, float] | None:
    """``(from_step, to_step, change)`` when ``metric``'s mean over seeds still moves at the end of
    training, else None.

    The mean over seeds at the last evaluation is compared with the one at the last evaluation at or
    before ``(1 − LOOK_BACK)`` of the final G step (the start of the last quarter). It is "still
    moving" when the change exceeds both twice its standard error (from the s.e. over seeds at the two
    points) and ``settled`` (in the metric's units; None: 5 % of the larger magnitude of the two
    means). Fewer than two evaluations, or non-finite means: None (nothing to judge).

    >>> rows = [{"g_steps": g, "seed": s, "hq": v + 0.01 * s} for g, v in ((100, 0.2), (300, 0.5), (400, 0.8)) for s in (0, 1)]
    >>> still_moving(rows, "hq", settled=0.02)
    (300, 400, 0.30000000000000004)
    >>> still_moving(rows, "hq", settled=0.5) is None
    True
    """
    by_step: dict[int, list[float]] = {}
    for r in history:
        value = float(r[metric])
        if math.isfinite(value):
            by_step.setdefault(int(r["g_steps"]), []).append(value)
    steps = sorted(by_step)
    if len(steps) < 2:
        return None
    end = steps[-1]
    start = max((s for s in steps[:-1] if s <= (1 - LOOK_BACK) * end), default=steps[-2])
    (m1, se1), (m0, se0) = _mean_se(by_step[end]), _mean_se(by_step[start])
    change = m1 - m0
    tolerance = settled if settled is not None else 0.05 * max(abs(m0), abs(m1))
    if not math.isfinite(change) or abs(change) <= max(2 * math.hypot(se0, se1), tolerance):
        return None
    return start, end, change


def convergence_note(entry: StudyEvaluator, history: list[dict]) -> str:
    """ "not converged: HQ % +12.3 over G steps 1125→1500" for one configuration's evaluation rows
    (the evaluator's metrics under their own names), "unknown (one evaluation)" with fewer than two
    evaluations, or "" when every table metric has settled."""
    report = entry.report
    if len({int(r["g_steps"]) for r in history}) < 2:
        return "unknown (one evaluation)"
    moving = []
    for metric, (header, scale, digits) in report.table(entry.metrics, entry.info).items():
        found = still_moving(history, metric, report.SETTLED.get(metric))
        if found is not None:
            start, end, change = found
            moving.append((header, f"{change * scale:+.{digits}f}", start, end))
    if not moving:
        return ""
    start, end = moving[0][2], moving[0][3]
    return "not converged: " + ", ".join(f"{h} {c}" for h, c, _, _ in moving) + f" over G steps {start}→{end}"


def _table(
    entry: StudyEvaluator, labels: list[str], results: list[dict], history: list[dict], meta: dict
) -> list[str]:
    """The evaluator's objective table: mean ± s.e. over seeds of each metric, wall time, and
    "not converged" beside a configuration whose metrics still move at the end."""
    table = entry.report.table(entry.metrics, entry.info)
    headers = [h for h, _, _ in table.values()]
    lines = [
        "| objective | regularizers | n_critic | G steps | "
        + " | ".join(headers)
        + " | wall time (s) | converged |",
        "|---" * (6 + len(headers)) + "|",
    ]
    for lab in labels:
        rows = [r for r in results if r["objective"] == lab]
        cells = [
            fmt_mean_se([r[entry.prefix + m] for r in rows], scale=scale, digits=digits)
            for m, (_, scale, digits) in table.items()
        ]
        own = [x for x in meta["runs"] if x["label"] == lab]
        wall = sum(x["wall_time_s"] for x in own)
        shared = "*" if any("trained_in" in x for x in own) else ""
        first = rows[0]
        note = convergence_note(entry, [r for r in history if r["objective"] == lab]) or "yes"
        lines.append(
            f"| {lab} | {first['regularizers']} | {first['n_critic']} | {first['g_steps']} | "
            + " | ".join(cells)
            + f" | {wall:.1f}{shared} | {note} |"
        )
    mixed = list(
        dict.fromkeys(x["trained_in"] for x in meta["runs"] if "trained_in" in x and x["label"] in labels)
    )
    if mixed:
        lines += [
            "",
            "\\* trained side by side as one mixed ensemble, one process ("
            + "; ".join(f"`{m}`" for m in mixed)
            + "): each member is the run of its objective and seed, and the wall time is the whole fit's.",
        ]
    return lines


# --------------------------------------------------------------------------------------------------
# Published rows beside ours
# --------------------------------------------------------------------------------------------------


def study_file_extras(meta: dict) -> tuple[list[dict], str]:
    """``(published, note)`` of the study: study.json's ``published`` / ``note`` when it holds them,
    else the study file's (study.json's ``source``) when that file still exists and parses."""
    import yaml

    if "published" in meta or "note" in meta:
        return meta.get("published") or [], meta.get("note") or ""
    source = Path(str(meta.get("source", "")))
    if not source.is_file():
        return [], ""
    try:
        raw = yaml.safe_load(source.read_text())
        published = check_published(raw.get("published"), str(source)) if isinstance(raw, dict) else []
    except (yaml.YAMLError, ConfigError, OSError):
        return [], ""
    note = raw.get("note") if isinstance(raw, dict) else ""
    return published, " ".join(note.split()) if isinstance(note, str) else ""


def published_metrics(entry: StudyEvaluator, row: dict) -> dict[str, float | list]:
    """The values of a published row (keys resolved: :func:`resolve_published`) that belong to
    ``entry``, under the metric's own name."""
    return {m: row[entry.prefix + m] for m in entry.metrics if entry.prefix + m in row}


def resolve_published(published: list[dict], entries: Sequence[StudyEvaluator], where) -> list[dict]:
    """The published rows with every metric key a column of the study's evaluators: a column
    (``mode/modes``) as it is, a metric's bare name (``modes``) as the column of the one evaluator
    that has it.

    Raises:
        ConfigError: (one line naming ``where``) a key that is no column nor a metric of the
            study's evaluators, or the bare name of a metric that several of them have.

    >>> from gan_lab.evaluators import ModeCoverageEvaluator
    >>> rows = [{"source": "S", "rows": [{"label": "GAN", "modes": 6.3, "mode/js": 0.1}]}]
    >>> resolve_published(rows, [StudyEvaluator(ModeCoverageEvaluator, {})], "s.yaml")[0]["rows"]
    [{'label': 'GAN', 'mode/modes': 6.3, 'mode/js': 0.1}]
    """
    columns = [c for e in entries for c in e.columns]
    owners: dict[str, list[str]] = {}
    for e in entries:
        for m in e.metrics:
            owners.setdefault(m, []).append(e.prefix + m)
    out = []
    for source in published:
        rows = []
        for row in source["rows"]:
            resolved = {}
            for key, value in row.items():
                if key in ("label", "compare") or key in columns:
                    resolved[key] = value
                elif len(owners.get(key, ())) == 1:
                    resolved[owners[key][0]] = value
                else:
                    what = (
                        f"the metric of several evaluators ({', '.join(owners[key])}): name its column"
                        if key in owners
                        else f"not a metric column of this study ({', '.join(sorted(columns))})"
                    )
                    raise ConfigError(
                        f"{where}: published row {row['label']!r} of {source['source']!r} has {key!r}, which is {what}"
                    )
            rows.append(resolved)
        out.append({"source": source["source"], "rows": rows})
    return out


def _interval(value) -> tuple[float, float]:
    mean, se = (value[0], value[1]) if isinstance(value, (list, tuple)) else (value, 0.0)
    return float(mean) - float(se), float(mean) + float(se)


def intervals_overlap(a, b) -> bool:
    """Whether ``mean ± s.e.`` intervals overlap (a bare number is a point).

    >>> intervals_overlap([6.3, 0.5], [7.0, 0.25]), intervals_overlap([6.3, 0.5], 7.0), intervals_overlap(1, 1)
    (True, False, True)
    """
    (lo_a, hi_a), (lo_b, hi_b) = _interval(a), _interval(b)
    return max(lo_a, lo_b) <= min(hi_a, hi_b)


def _fmt_published(value, scale: float, digits: int) -> str:
    if isinstance(value, (list, tuple)):
        return f"{value[0] * scale:.{digits}f} ± {value[1] * scale:.{digits}f}"
    return f"{value * scale:.{digits}f}"


def published_table(entry: StudyEvaluator, source: dict, labels: list[str], results: list[dict]) -> list[str]:
    """One source's rows that belong to ``entry``, each followed by our row it compares with
    (``compare``, else the study entry of the same label), and a last column naming the metrics
    whose intervals do not overlap. ``results``: the final rows with ``entry``'s metrics under their
    own names (:meth:`StudyEvaluator.rows`). Empty when no row of the source has this evaluator's metrics."""
    table = entry.report.table(entry.metrics, entry.info)
    rows = [(row, published_metrics(entry, row)) for row in source["rows"]]
    rows = [(row, values) for row, values in rows if values]
    if not rows:
        return []
    lines = [
        f"Published: {source['source']}, beside this study (published values as the source gives them, "
        "mean ± s.e.; ours: mean ± s.e. over seeds at the final evaluation).",
        "",
        "| row | " + " | ".join(h for h, _, _ in table.values()) + " | intervals |",
        "|---" * (2 + len(table)) + "|",
    ]
    for row, values in rows:
        cells = [
            _fmt_published(values[m], scale, digits) if m in values else "—"
            for m, (_, scale, digits) in table.items()
        ]
        ours_label = row.get("compare", row["label"])
        ours = [r for r in results if r["objective"] == ours_label] if ours_label in labels else []
        flag = "" if ours else "(no row of ours to compare)"
        lines.append(f"| {row['label']} (published) | " + " | ".join(cells) + f" | {flag} |")
        if not ours:
            continue
        our_cells, apart = [], []
        for m, (header, scale, digits) in table.items():
            values_m = [r[m] for r in ours]
            our_cells.append(fmt_mean_se(values_m, scale=scale, digits=digits))
            finite = [v for v in values_m if math.isfinite(v)]
            if m in values and finite and not intervals_overlap(values[m], list(_mean_se(finite))):
                apart.append(header)
        flag = f"**do not overlap: {', '.join(apart)}**" if apart else "overlap"
        lines.append(f"| {row['label']} (ours: `{ours_label}`) | " + " | ".join(our_cells) + f" | {flag} |")
    return [*lines, ""]


# --------------------------------------------------------------------------------------------------
# Statistics over seeds and the verdicts (gan_lab.study.verdicts)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricStatistics:
    """One metric of one evaluator over the study's entries (``labels``, the report's order): per
    entry its :class:`~gan_lab.study.verdicts.Summary` at the final evaluation (``final``) and over
    each seed's mean of its last ``k`` evaluations (``last``; ``averaged``: the fewest evaluations
    a seed of the entry had to average, ``k`` unless it had fewer), and, for the evaluator's
    primary metric, every pair's :class:`~gan_lab.study.verdicts.Comparison` on the last-K means."""

    entry: StudyEvaluator
    metric: str
    header: str
    scale: float
    digits: int
    k: int
    alpha: float
    final: dict[str, Summary]
    last: dict[str, Summary]
    averaged: dict[str, int]
    comparisons: list[Comparison]
    higher_is_better: bool | None

    @property
    def column(self) -> str:
        return self.entry.prefix + self.metric

    @property
    def primary(self) -> bool:
        return self.metric == getattr(self.entry.cls, "PRIMARY", "")

    def verdicts(self) -> list[str]:
        """Each pair's verdict in words (:func:`~gan_lab.study.verdicts.verdict_sentence`)."""
        return [
            verdict_sentence(
                c,
                self.metric,
                self.header,
                self.scale,
                self.digits,
                self.higher_is_better,
                getattr(self.entry.report, "PHRASES", {}).get(self.metric),
            )
            for c in self.comparisons
        ]

    def floor(self) -> str:
        """The sentence saying the seed counts rule out every verdict, or ``""``."""
        return floor_sentence(self.comparisons, self.alpha)


def study_alpha(meta: dict) -> float:
    """The verdicts' significance level: study.json's ``alpha``, else :data:`~gan_lab.study.verdicts.ALPHA`."""
    return float(meta.get("alpha", ALPHA))


def study_last_k(meta: dict) -> int:
    """The evaluations per seed the verdicts average: study.json's ``last_k``, else
    :data:`~gan_lab.study.verdicts.LAST_K`."""
    return int(meta.get("last_k", LAST_K))


def report_labels(files: StudyFiles) -> list[str]:
    """The entries of results.csv in the study file's order (study.json's ``labels``)."""
    labels = list(dict.fromkeys(r["objective"] for r in files.results))
    order = {label: k for k, label in enumerate(files.meta.get("labels") or [])}
    labels.sort(key=lambda label: order.get(label, len(order)))
    return labels


def study_statistics(files: StudyFiles) -> list[MetricStatistics]:
    """Every table metric of every evaluator of the study, over its entries' seeds (the evaluator's
    primary metric first): final and last-K summaries, and the primary metric's pairwise
    comparisons on the last-K means (:func:`~gan_lab.study.verdicts.compare_entries`, at study.json's
    ``alpha``). Deterministic: every resampling has a fixed seed."""
    labels = report_labels(files)
    alpha, k = study_alpha(files.meta), study_last_k(files.meta)
    out = []
    for entry in files.entries:
        table = entry.report.table(entry.metrics, entry.info)
        primary = getattr(entry.cls, "PRIMARY", "")
        metrics = sorted(table, key=lambda m: m != primary)  # stable: the primary first
        results = entry.rows(files.results)
        evaluated = entry.rows(files.history, evaluated_only=True)
        for metric in metrics:
            header, scale, digits = table[metric]
            means = last_k_means(evaluated, metric, k)
            final, last, averaged, samples = {}, {}, {}, {}
            for label in labels:
                final[label] = summarize([r[metric] for r in results if r["objective"] == label])
                own = sorted((member, value) for (lab, member), value in means.items() if lab == label)
                samples[label] = [mean for _, (mean, _) in own]
                last[label] = summarize(samples[label])
                averaged[label] = min((used for _, (_, used) in own), default=0)
            comparisons = compare_entries(samples, alpha) if metric == primary else []
            out.append(
                MetricStatistics(
                    entry=entry,
                    metric=metric,
                    header=header,
                    scale=scale,
                    digits=digits,
                    k=k,
                    alpha=alpha,
                    final=final,
                    last=last,
                    averaged=averaged,
                    comparisons=comparisons,
                    higher_is_better=direction(metric, entry.report),
                )
            )
    return out


def _fmt_summary(s: Summary, scale: float, digits: int) -> str:
    if s.n == 0:
        return "undefined"
    if s.n == 1:
        return f"{fmt_number(s.mean, scale, digits)} (one seed)"
    return f"{fmt_number(s.mean, scale, digits)} ± {fmt_number(s.se, scale, digits)}"


def _better_word(higher_is_better: bool | None) -> str:
    return {True: "higher is better", False: "lower is better", None: "no better direction known"}[
        higher_is_better
    ]


def statistics_section(stats: Sequence[MetricStatistics], labels: list[str]) -> list[str]:
    """The report's statistics of one evaluator (``stats``: its metrics): the per-entry table of
    final and last-K means with their bootstrap CIs, then the verdicts on its primary metric (the
    pairs' table and each pair in words)."""
    if not stats:
        return []
    k = stats[0].k
    lines = [
        f"### Over seeds: {CI_NAME}s and the last {k} evaluations",
        "",
        f"Per entry, over its seeds: the final evaluation, and each seed's mean over its last K = {k} "
        "evaluations (the untrained G at G step 0 is never among them) so that one noisy snapshot decides "
        f"nothing; mean ± s.e. and the {CI_NAME} of the mean by bootstrap (`scipy.stats.bootstrap`, BCa, "
        f"{N_RESAMPLES:,} resamples, seed {SEED}; † the percentile interval where BCa is undefined; "
        "[v, v] when every seed has the value v). With a few seeds a bootstrap CI is narrower than it "
        "should be: read it with the seed count.",
        "",
        f"| metric | entry | seeds | final | final {CI_NAME} | last {k} | last {k} {CI_NAME} |",
        "|---" * 7 + "|",
    ]
    for st in stats:
        for i, label in enumerate(labels):
            final, last = st.final[label], st.last[label]
            fewer = f" (last {st.averaged[label]})" if 0 < st.averaged[label] < k else ""
            lines.append(
                f"| {st.header if i == 0 else ''} | {label} | {final.n} | "
                f"{_fmt_summary(final, st.scale, st.digits)} | {fmt_interval(final.ci, st.scale, st.digits)} | "
                f"{_fmt_summary(last, st.scale, st.digits)}{fewer} | "
                f"{fmt_interval(last.ci, st.scale, st.digits)} |"
            )
    for st in stats:
        if st.primary:
            lines += ["", *verdicts_section(st)]
    return lines


def verdicts_section(st: MetricStatistics) -> list[str]:
    """The verdicts on one metric: how they are taken, the pairs' table, each pair in words, and
    what the seed counts could not separate."""
    k, n_pairs = st.k, len(st.comparisons)
    lines = [
        f"### Verdicts on {st.header} (`{st.column}`, the primary metric; {_better_word(st.higher_is_better)})",
        "",
    ]
    if not n_pairs:
        return [*lines, "One entry: nothing to compare.", ""]
    if not any(math.isfinite(c.p) for c in st.comparisons):
        seeds = sorted({s.n for s in st.last.values()})
        return [
            *lines,
            "No pair can be tested: a permutation test needs at least two seeds with a value on each side "
            f"(this study has {'–'.join(map(str, (seeds[0], seeds[-1]) if len(seeds) > 1 else seeds))} per entry); "
            "run more seeds.",
            "",
        ]
    splits = sorted({math.comb(c.n_a + c.n_b, c.n_a) for c in st.comparisons})
    exact = all(n <= N_RESAMPLES for n in splits)
    how = (
        f"exact: all {splits[0]:,} splits of the seeds" if exact and len(splits) == 1
        else "exact: every split of the seeds enumerated" if exact
        else f"{N_RESAMPLES:,} random splits where there are more, seed {SEED}"
    )  # fmt: skip
    lines += [
        f"Every pair of entries is compared on its seeds' last-{k} means: a two-sided permutation test "
        f"of the difference of means (`scipy.stats.permutation_test`, independent samples; {how}), its "
        f"p-values adjusted by Holm's step-down over the {n_pairs} pair{'s' if n_pairs > 1 else ''} "
        f"(p_Holm), at α = {st.alpha:g}. Δ = the first entry's mean − the second's, with its {CI_NAME} "
        "(bootstrap of the two samples, BCa); g = Hedges' g (Δ over the pooled s.d., small-sample "
        "corrected). Detectable Δ: the smallest true difference that a two-sided t-test at Holm's "
        "first-step level α/m would detect with 80 % power, δ·s_p·√(1/n₁ + 1/n₂), s_p the pooled s.d. and "
        "δ solving P(|T| > t*) = 0.8 for T ~ noncentral t(ν = n₁ + n₂ − 2, δ), t* the quantile of t(ν) "
        "at 1 − α/(2m) (`scipy.stats.nct`, `scipy.stats.t`); — where the permutation test cannot reach "
        "α/m with these seeds (its smallest p is 2 / C(n₁ + n₂, n₁)).",
        "",
        f"| pair | Δ | {CI_NAME} of Δ | p | p_Holm | g | detectable Δ | verdict |",
        "|---" * 8 + "|",
    ]
    for c in st.comparisons:
        c = oriented(c, st.higher_is_better) if c.distinguishable else c
        if c.distinguishable:
            verdict = f"**{c.a} {'better' if st.higher_is_better is not None else 'higher'}**"
        else:
            verdict = "not distinguishable" if math.isfinite(c.p) else "no test"
        lines.append(
            f"| {c.a} − {c.b} | {fmt_number(c.delta, st.scale, st.digits)} | "
            f"{fmt_interval(c.ci, st.scale, st.digits)} | {fmt_p(c.p).lstrip('= ')} | "
            f"{fmt_p(c.p_holm).lstrip('= ')} | {fmt_number(c.g)} | "
            f"{fmt_number(c.detectable, st.scale, st.digits) if math.isfinite(c.detectable) else '—'} | {verdict} |"
        )
    lines += ["", *(f"- {v}" for v in st.verdicts())]
    floor = st.floor()
    return [*lines, *(["", floor] if floor else []), ""]


def summary_lines(stats: Sequence[MetricStatistics]) -> list[str]:
    """The end of ``gan-lab study`` in the terminal: per primary metric, each entry's last-K mean
    with its CI, the pairs found different in words, a count of the others, and the seed floor."""
    lines = []
    for st in (s for s in stats if s.primary):
        width = max(len(label) for label in st.last)
        lines.append(
            f"{st.header} ({st.column}; {_better_word(st.higher_is_better)}): mean of each seed's "
            f"last {st.k} evaluations, {CI_NAME} over seeds"
        )
        for label, s in st.last.items():
            lines.append(
                f"  {label:<{width}}  {fmt_number(s.mean, st.scale, st.digits) if s.n else 'undefined'} "
                f"{fmt_interval(s.ci, st.scale, st.digits)}  ({s.n} seed{'s' if s.n != 1 else ''})"
            )
        verdicts = [v.replace("**", "") for c, v in zip(st.comparisons, st.verdicts()) if c.distinguishable]
        lines += [f"  {v}" for v in verdicts]
        tested = sum(math.isfinite(c.p) for c in st.comparisons)
        rest = tested - len(verdicts)
        if rest:
            lines.append(
                f"  {rest} of {len(st.comparisons)} pair{'s' if len(st.comparisons) > 1 else ''} not "
                f"distinguishable at α = {st.alpha:g} "
                "(report.md lists them)"
            )
        if tested < len(st.comparisons):
            lines.append(
                f"  {len(st.comparisons) - tested} pairs without a test (fewer than two seeds a side)"
            )
        floor = st.floor()
        lines += [f"  {floor}"] if floor else []
    return lines


def study_summary(study_dir: Path) -> str:
    """:func:`summary_lines` of a finished study folder (read from its files), as one text."""
    return "\n".join(summary_lines(study_statistics(read_study(study_dir))))


def write_report(study_dir: Path, files: StudyFiles | None = None) -> Path:
    """Write ``report.md`` and the evaluators' figures from the study's own files (``files``: as
    :func:`read_study` or :func:`check_study_folder` read them already). One section per evaluator:
    its protocol, its table (with the published rows beside it), its statistics over seeds and
    verdicts (:func:`statistics_section`) and its figures."""
    study_dir = Path(study_dir)
    files = files or read_study(study_dir)
    meta, results, history = files.meta, files.results, files.history
    labels = report_labels(files)  # the study file's order
    run_dirs = {}
    for r in meta["runs"]:
        run_dirs.setdefault(r["label"], study_dir / r["run_dir"])
    runs = [(lab, run_dirs[lab]) for lab in labels]
    n = meta["seeds"]
    seeds = f"seed {meta['seed']}" if n == 1 else f"seeds {meta['seed']}..{meta['seed'] + n - 1}"
    how = (
        "together as ensemble members of one run (each member an independent run)"
        if meta["ensemble"]
        else "as separate runs"
    )
    lines = [
        f"# Study `{meta['study']}`",
        "",
        f"Command: `{meta['command']}`; started {meta['started']}, finished {meta['finished']}; "
        f"torch {meta['torch']}, python {meta['python']}.",
        "",
        *([files.note, ""] if files.note else []),
        f"Each configuration trains {n} seed{'s' if n > 1 else ''} ({seeds}) {how}. "
        + (
            "Figures are the mean ± standard error over seeds at the final evaluation"
            if n > 1
            else "With one seed there is no standard error: figures are that seed's final evaluation"
        )
        + "; per-seed values are in `results.csv`, every evaluation in `history.csv`.",
        "",
    ]
    weights = [f"Pretrained weights: `{p}` (sha256 {h}…)." for p, h in meta.get("weights", {}).items()]
    lines += [*weights, ""] if weights else []
    stats = study_statistics(files)
    sections = []
    for entry in files.entries:  # every figure drawn first, then the text
        evaluated = entry.rows(history, evaluated_only=True)
        figures = entry.report.figures(
            study_dir, runs, entry.rows(results), evaluated, entry.info, file_prefix=entry.file_prefix
        )
        sections.append((entry, evaluated, figures))
    for entry, evaluated, figures in sections:
        lines += [f"## {entry.cls.__name__} (`{entry.prefix}` columns)", ""]
        protocol = entry.report.protocol(entry.info)
        lines += [protocol, ""] if protocol else []
        lines += _table(entry, labels, results, evaluated, meta)
        notes = entry.report.notes(entry.rows(results), entry.info)
        lines += ["", notes] if notes else []
        for source in files.published:
            extra = published_table(entry, source, labels, entry.rows(results))
            lines += ["", *extra[:-1]] if extra else []
        lines.append("")
        lines += statistics_section([st for st in stats if st.entry is entry], labels)
        lines += [line for caption, name in figures for line in (f"![{caption}]({name})", "")]
    diverged = sorted({(r["objective"], r["status"]) for r in results if r.get("status", "ok") != "ok"})
    if diverged:
        lines.append("Diverged (the divergence guard stopped them; figures are from their last evaluation):")
        lines += [f"- {lab}: {status}" for lab, status in diverged]
        lines.append("")
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
        write_csv(study_dir / name, fields, rows)
    write_whole(study_dir / "study.json", json.dumps(meta, indent=2))


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
        files = check_study_folder(d)  # before write_report rewrites any figure or report.md
        path = write_report(d, files)
    except ConfigError as e:
        return fail(e)
    print(path)
    return 0
