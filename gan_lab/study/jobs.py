"""Running a study: every run validated first, then the jobs fitted, the rows collected.

:func:`run_study` parses, instantiates and preflights every run before anything is written (a bad
name or an impossible combination ends the study with one line and exit code 2 and no folder),
then fits the jobs and writes ``results.csv``, ``history.csv`` and ``study.json`` as they finish,
and the report (:mod:`gan_lab.study.report`). ``gan-lab study`` is :func:`study_main`.

A job is one ``gan-lab fit`` (an objective's ensemble of seeds, or one seed). :func:`fit_job` fits
it with the study's loggers and turns its evaluators' histories into rows; what it returns is plain
data (:class:`JobResult`), so that it can come back from another process. The evaluators are the
:class:`~gan_lab.callbacks.evaluation.ScheduledEvaluator` callbacks of the run (one or several,
e.g. mode coverage and image metrics, the same classes in every run of the study); with several,
their columns are prefixed with their names (:func:`gan_lab.study.report.column_prefixes`).

On a CPU, a study's runs of small nets each use one intra-op thread (:mod:`gan_lab.threads`), which
leaves the other cores idle in a sequential study. :func:`worker_count` gives as many worker
processes as the cores hold runs of that thread count; :func:`run_jobs` then fits the jobs in a
spawned process pool, longest first (``max_g_steps × n_critic``), and collects the results in the
study's job order. Each job is parsed, seeded and fitted in its worker as ``gan-lab fit`` would do
it in a fresh process, so a job's numbers do not depend on where or beside what it ran (a test
compares a parallel study with a sequential one). On a GPU, under DDP, or with ``--jobs 1`` the
jobs run in this process, one after another.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from gan_lab.callbacks.guard import TrainingDiverged
from gan_lab.errors import ConfigError, bad_input_in, check_int, fail, writable_folder
from gan_lab.study.report import (
    HISTORY_KEYS,
    RESULT_KEYS,
    StudyEvaluator,
    check_published_metrics,
    column_prefixes,
    evaluators_meta,
    write_csv,
    write_report,
)
from gan_lab.study.spec import StudySpec, load_study, new_study_dir, plan_jobs, select


@dataclass
class JobResult:
    """What one fitted job contributes to the study (plain data: it may come from a worker)."""

    history: list[dict]
    results: list[dict]
    runs: list[dict]  # study.json's entries for the run (one per entry of a mixed job)
    info: list[dict]  # each evaluator's facts (the same for every job of a study)
    weights: dict[str, str] = field(default_factory=dict)  # pretrained files used: path -> sha256


class StudyProgress(Callback):
    """Reports the module's new G steps to ``advance(label, n)`` (a study-wide progress bar)."""

    def __init__(self, advance: Callable[[str, int], None], label: str) -> None:
        self.advance, self.label, self.seen = advance, label, 0

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if pl_module.g_steps > self.seen:
            self.advance(self.label, pl_module.g_steps - self.seen)
            self.seen = pl_module.g_steps


def job_name(spec, job) -> str:
    return job.label if job.seed_index is None else f"{job.label}/seed{spec.seed + job.seed_index}"


def fit_job(
    spec, job, cli, study_dir, wandb: bool, lead: bool, advance, say, known=(), media=None
) -> JobResult:
    """Fit ``job`` (its ``cli`` built with ``run=False``) with the study's CSV logger and, with
    ``wandb``, one W&B run per seed (:class:`gan_lab.dashboard.SeedRunsLogger`, media as ``media``
    says), and return its rows. A run that diverges is a result (its rows say where, its W&B runs
    are marked), not a crash. ``known``: pretrained files already hashed for the study (not read again)."""
    from gan_lab.runs import RunCSVLogger, data_name, finish_wandb

    model, trainer = cli.model, cli.trainer
    name = job_name(spec, job)
    entries, per_entry = job.runs, (model.members or 1) // len(job.runs)  # a mixed job: S members each
    loggers = [RunCSVLogger(str(job.run_dir), name="", version="")]
    seed_runs = None
    if wandb:
        from gan_lab.dashboard.facts import run_facts
        from gan_lab.dashboard.seed_runs import SeedRunsLogger
        from gan_lab.dashboard.workspace import study_group

        facts = run_facts(model, data_name(cli.datamodule), study=spec.name, objective=job.label)
        mixed = len(entries) > 1
        own = [
            {"objective": entries[k // per_entry].label, "loss": entries[k // per_entry].objective}
            for k in range(model.members or 1)
        ]
        seed_runs = SeedRunsLogger(
            job.run_dir,
            seeds=model.run_seeds,
            facts={**facts, "args": job.args},
            group=study_group(study_dir),
            name=study_group(study_dir) if mixed else f"{study_group(study_dir)}/{job.label}",
            tags=model.regularizer_names if mixed else [job.run.objective, *model.regularizer_names],
            media=media,
            member_facts=own if mixed else None,
        )
        loggers.append(seed_runs)
    trainer.loggers = loggers
    trainer.callbacks.append(StudyProgress(advance, name))
    t0 = time.perf_counter()
    status = "ok"
    try:
        trainer.fit(model, cli.datamodule)
    except TrainingDiverged as e:  # a result, not a crash: record it and go on
        status = f"diverged at g_steps={model.g_steps}"
        say(f"{name}: {e}")
    wall = time.perf_counter() - t0
    evaluators = find_evaluators(trainer)
    for evaluator in evaluators:
        if not evaluator.history:  # diverged before its first evaluation
            evaluator.evaluate_without_logging(trainer, model)
        if lead and len(entries) == 1:
            evaluator.save_artifacts(job.run_dir)
        elif lead:  # a mixed job: each entry's members in a folder of its own, as its own job's
            for j, entry in enumerate(entries):
                members = range(j * per_entry, (j + 1) * per_entry)
                evaluator.save_artifacts(job.run_dir.parent / entry.label, members=members)
    if seed_runs is not None:
        final_summary(seed_runs, evaluators, status, wall, model.g_steps)
    for logger in loggers:
        logger.finalize("success")
    finish_wandb(trainer)
    every, final = evaluation_rows(evaluators)
    regs = "+".join(model.regularizer_names) or "-"

    def keyed(r: dict) -> dict:
        """A row under its entry's label, ``member`` its index among that entry's seeds."""
        if job.seed_index is not None:
            return {**r, "objective": job.label, "member": job.seed_index, "seed": spec.seed + job.seed_index}
        entry, member = divmod(r["member"], per_entry)
        return {**r, "objective": entries[entry].label, "member": member}

    history = [keyed(r) for r in every]
    results = [
        {
            "study": spec.name,
            "regularizers": regs,
            "n_critic": model.n_critic,
            **keyed(r),
            "wall_time_s": round(wall, 2),
            "status": status,
        }
        for r in final
    ]
    runs = [
        {
            "label": entry.label,
            "objective": entry.objective,
            # a mixed job's entry: its artifacts' folder; the fit's own folder is ``trained_in``
            "run_dir": str(
                (job.run_dir if len(entries) == 1 else job.run_dir.parent / entry.label).relative_to(
                    study_dir
                )
            ),
            **({"trained_in": str(job.run_dir.relative_to(study_dir))} if len(entries) > 1 else {}),
            "args": job.args,
            "wall_time_s": round(wall, 2),
            # intra-op threads of a CPU run (gan_lab.threads) and why; absent on a GPU
            "cpu_threads": model.hparams.get("cpu_threads_used"),
            "cpu_threads_reason": getattr(model, "cpu_threads_reason", None),
        }
        for entry in entries
    ]
    infos = [evaluator.info(trainer) for evaluator in evaluators]
    return JobResult(history, results, runs, infos, pretrained_weights(model, known))


def final_summary(seed_runs, evaluators: Sequence, status: str, wall: float, g_steps: int) -> None:
    """Each seed's W&B summary: its final metrics under their logged keys (``<NAME>/<metric>``,
    the values of its ``results.csv`` row), ``status`` and ``wall_time_s``; a diverged job's runs
    are marked (:meth:`~gan_lab.dashboard.SeedRunsLogger.mark_diverged`)."""
    values: dict[str, list] = {}
    for evaluator in evaluators:
        last = max(r["g_steps"] for r in evaluator.history)
        rows = sorted((r for r in evaluator.history if r["g_steps"] == last), key=lambda r: r["member"])
        for m in evaluator.METRICS:
            values[f"{evaluator.NAME}/{m}"] = [r[m] for r in rows]
    n = seed_runs.members
    values = {k: v for k, v in values.items() if len(v) == n}
    seed_runs.set_summary({**values, "status": [status] * n, "wall_time_s": [round(wall, 2)] * n})
    if status != "ok":
        seed_runs.mark_diverged(status, g_steps)


def evaluation_rows(evaluators: Sequence) -> tuple[list[dict], list[dict]]:
    """The rows of a run's evaluators: every evaluation's and the final one's, one per (G step,
    member) with ``member``, ``seed``, ``g_steps`` and the metrics of every evaluator (prefixed
    with its name when there are several, NaN at a G step where one did not evaluate). The final
    rows hold each evaluator's last evaluation (the same G step, unless the run diverged between
    two evaluators' schedules: then ``g_steps`` is the later one).

    >>> from types import SimpleNamespace as E
    >>> a = E(NAME="a", METRICS=("x",), history=[{"g_steps": g, "member": 0, "seed": 3, "x": g} for g in (2, 4)])
    >>> b = E(NAME="b", METRICS=("y",), history=[{"g_steps": 4, "member": 0, "seed": 3, "y": 1.0}])
    >>> every, final = evaluation_rows([a, b])
    >>> every
    [{'member': 0, 'seed': 3, 'g_steps': 2, 'a/x': 2, 'b/y': nan}, {'member': 0, 'seed': 3, 'g_steps': 4, 'a/x': 4, 'b/y': 1.0}]
    >>> final == every[1:], evaluation_rows([a])[0][0]
    (True, {'member': 0, 'seed': 3, 'g_steps': 2, 'x': 2})
    """
    prefixes = column_prefixes([e.NAME for e in evaluators])
    columns = [prefix + m for e, prefix in zip(evaluators, prefixes) for m in e.METRICS]
    every: dict[tuple[int, int], dict] = {}
    final: dict[int, dict] = {}
    for evaluator, prefix in zip(evaluators, prefixes):
        last = max(r["g_steps"] for r in evaluator.history)
        for r in evaluator.history:
            key = {"member": r["member"], "seed": r["seed"], "g_steps": r["g_steps"]}
            values = {prefix + m: r[m] for m in evaluator.METRICS}
            every.setdefault((r["g_steps"], r["member"]), key).update(values)
            if r["g_steps"] == last:
                row = final.setdefault(r["member"], key.copy())
                row.update(values, g_steps=max(row["g_steps"], last))

    def complete(row: dict) -> dict:
        return {**row, **{c: row.get(c, math.nan) for c in columns}}

    return [complete(every[k]) for k in sorted(every)], [complete(final[k]) for k in sorted(final)]


def find_evaluators(trainer) -> list:
    """The evaluator callbacks of a run (:class:`~gan_lab.callbacks.evaluation.ScheduledEvaluator`),
    in ``trainer.callbacks`` order.

    Raises:
        ConfigError: there is none, or two share a ``NAME`` (their columns would collide), or one of
            several has no ``NAME``.
    """
    from gan_lab.callbacks.evaluation import ScheduledEvaluator

    found = [cb for cb in trainer.callbacks if isinstance(cb, ScheduledEvaluator)]
    if not found:
        raise ConfigError(
            "a study needs an evaluator callback in trainer.callbacks (gan_lab.callbacks.ModeCoverageEvaluator "
            "for toy mixtures, gan_lab.callbacks.sr_eval.SRMetricsEvaluator for super-resolution)"
        )
    names = [type(e).NAME for e in found]
    if len(found) > 1 and (len(set(names)) < len(names) or not all(names)):
        kinds = ", ".join(f"{type(e).__name__} ({type(e).NAME or 'no NAME'})" for e in found)
        raise ConfigError(
            f"the evaluators of a study need distinct names (their columns are prefixed with them): {kinds}; "
            "keep one evaluator of each kind"
        )
    return found


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


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(clis, setting: int | None, cores: int | None = None) -> int:
    """How many jobs run at once: ``setting`` (``--jobs``) when given; else, for single-device CPU
    runs, as many as ``cores`` hold at the runs' thread count (at most one per job); else 1.

    >>> class Fake:  # two CPU jobs of one-thread nets on 2 cores
    ...     def __init__(self):
    ...         import types
    ...         self.trainer = types.SimpleNamespace(num_devices=1, num_nodes=1)
    ...         self.trainer.strategy = types.SimpleNamespace(root_device=types.SimpleNamespace(type="cpu"))
    ...         self.model = types.SimpleNamespace(G=types.SimpleNamespace(cpu_threads=1), D=object(), cpu_threads=None)
    >>> worker_count([Fake(), Fake(), Fake()], None, cores=2), worker_count([Fake()], None, cores=8)
    (2, 1)
    >>> worker_count([Fake(), Fake()], 1, cores=8)
    1
    """
    from gan_lab.threads import choose_cpu_threads

    if setting is not None:
        return min(check_int("--jobs", setting), max(1, len(clis)))
    cores = available_cores() if cores is None else cores
    threads = 0
    for cli in clis:
        trainer = cli.trainer
        if trainer.strategy.root_device.type != "cpu" or trainer.num_devices * trainer.num_nodes > 1:
            return 1
        model = cli.model
        threads = max(threads, choose_cpu_threads([model.G, model.D], model.cpu_threads).threads)
    return max(1, min(len(clis), cores // max(threads, 1)))


def _cost(cli) -> int:
    """A job's relative length: its G steps times its D steps per G step."""
    return (cli.model.max_g_steps or 0) * cli.model.n_critic


def _worker_fit(spec, job, study_dir, wandb: bool, progress, media=None) -> JobResult:
    """In a worker process: parse, seed and build the job as ``gan-lab fit`` would, then fit it."""
    from gan_lab.console import quiet_lightning
    from gan_lab.fit import build_cli

    quiet_lightning()
    cli = build_cli(job.args, run=False)
    return fit_job(
        spec,
        job,
        cli,
        study_dir,
        wandb,
        lead=True,
        advance=lambda label, n: progress.put(("advance", label, n)),
        say=lambda line: progress.put(("say", line, 0)),
        media=media,
    )


def run_jobs(
    spec,
    jobs: Sequence,
    clis: Sequence,
    study_dir,
    wandb: bool,
    lead: bool,
    workers: int,
    bar,
    done,
    known,
    media=None,
):
    """Fit every job, ``workers`` at a time, and call ``done(index, JobResult)`` in job order as
    the results come in (a job's results wait for those of the jobs before it). ``known``: the
    study's dict of hashed pretrained files, which sequential jobs skip."""

    def advance(label: str, n: int) -> None:
        bar.update(n)
        bar.set_postfix_str(label, refresh=False)

    if workers <= 1:
        for i, (job, cli) in enumerate(zip(jobs, clis)):
            done(i, fit_job(spec, job, cli, study_dir, wandb, lead, advance, bar.write, known, media))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    context = mp.get_context("spawn")  # a fresh interpreter per worker, as `gan-lab fit` would be
    with context.Manager() as manager:
        progress = manager.Queue()
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set():
                try:
                    kind, a, n = progress.get(timeout=0.1)
                except queue.Empty:
                    continue
                advance(a, n) if kind == "advance" else bar.write(a)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                order = sorted(range(len(jobs)), key=lambda i: -_cost(clis[i]))  # longest first
                futures = {
                    i: pool.submit(_worker_fit, spec, jobs[i], study_dir, wandb, progress, media)
                    for i in order
                }
                for i in range(len(jobs)):
                    done(i, futures[i].result())
        finally:
            stop.set()
            reader.join()
            while not progress.empty():  # what came in after the reader stopped
                kind, a, n = progress.get()
                advance(a, n) if kind == "advance" else bar.write(a)


def _check_writable(out: str) -> None:
    if not writable_folder(out):
        raise ConfigError(f"output folder {out!r} is not writable; pass --out with a folder you can write")


def launch_rank() -> int:
    """This process's global rank as the launcher set it (torchrun: RANK, SLURM: SLURM_PROCID)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def run_study(
    spec: StudySpec,
    extra: list[str] | None = None,
    wandb: bool = True,
    study_dir: Path | None = None,
    jobs_setting: int | None = None,
    media=None,
) -> Path:
    """Validate every run, then fit them (one after another, or side by side on a CPU: see
    :func:`run_jobs`; ``jobs_setting``: ``--jobs``) and write the report. Returns the folder.

    With ``wandb``, every seed is a W&B run (media as ``media``, a
    :class:`~gan_lab.dashboard.media.MediaSettings`, says; default: on), and after the report the
    study's closing run (results table, figures) is logged and ``dashboard.json`` written
    (:mod:`gan_lab.dashboard`).

    ``study_dir`` (default: a new folder under ``spec.out``) must not exist yet: a study never
    writes into an earlier one."""
    import torch
    from jsonargparse import ArgumentError
    from tqdm.auto import tqdm

    from gan_lab.fit import build_cli, preflight

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
    jobs, clis, classes = plan_jobs(spec, study_dir, extra), [], []
    for job in jobs:
        try:
            cli = build_cli(job.args, run=False)
        except (ValueError, TypeError, ArgumentError) as e:
            cause = bad_input_in(e)
            if cause is None:
                raise
            raise ConfigError(f"{job.label}: {cause}") from None
        kinds = [type(e) for e in find_evaluators(cli.trainer)]
        if not clis:
            classes = kinds  # the first run's, which every run must have
        elif kinds != classes:
            raise ConfigError(
                "every run of a study must use the same evaluator callbacks, in the same order; "
                f"{jobs[0].label}: {', '.join(c.__name__ for c in classes)}, "
                f"{job.label}: {', '.join(c.__name__ for c in kinds)}"
            )
        clis.append(cli)
    for cli in clis:
        preflight(cli.model, cli.datamodule, cli.trainer)
    # the published rows name this study's metric columns (before any fit: a typo stops it here)
    prefixes = column_prefixes([c.NAME for c in classes])
    published_columns = [
        StudyEvaluator(c, {}, prefix, len(classes) > 1) for c, prefix in zip(classes, prefixes)
    ]
    check_published_metrics(published_columns, spec.published, spec.source)

    # 2. Fit, one job after another; results.csv grows as jobs finish.
    study_dir.mkdir(parents=True, exist_ok=not lead)
    prefixes = column_prefixes([c.NAME for c in classes])
    metrics = [prefix + m for c, prefix in zip(classes, prefixes) for m in c.METRICS]
    result_fields = [*RESULT_KEYS, *metrics, "wall_time_s", "status"]
    history_fields = [*HISTORY_KEYS, *metrics]
    meta = {
        "study": spec.name,
        "source": spec.source,
        "command": "gan-lab study " + " ".join([spec.source, *extra]),
        "seeds": spec.seeds,
        "seed": spec.seed,
        "ensemble": spec.ensemble,
        "note": spec.note,
        "published": spec.published,
        "labels": [r.label for r in spec.runs],  # the study file's order: the report's rows
        **evaluators_meta(classes, [{} for _ in classes]),  # the facts come with the first job
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
        meta["runs"].extend(job_result.runs)
        meta.update(evaluators_meta(classes, job_result.info))
        if lead:
            meta["weights"].update(job_result.weights)
            write_csv(study_dir / "results.csv", result_fields, results)
            write_csv(study_dir / "history.csv", history_fields, history)

    weights = meta.setdefault("weights", {})
    run_jobs(spec, jobs, clis, study_dir, wandb, lead, workers, bar, done, weights, media)
    bar.close()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if lead:
        (study_dir / "study.json").write_text(json.dumps(meta, indent=2))
        write_report(study_dir)
        if wandb:
            from gan_lab.dashboard.study_run import log_study_run
            from gan_lab.dashboard.workspace import study_group, write_definition

            log_study_run(study_dir, study_group(study_dir), spec.name)
            write_definition(study_dir)
    return study_dir


def study_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="gan-lab study", description="Run an objectives × seeds study.", allow_abbrev=False
    )
    parser.add_argument("study_file")
    parser.add_argument("--out", default=None, help="parent folder of the study folder (default: runs)")
    parser.add_argument(
        "--no-wandb", action="store_true", help="skip W&B logging (CSV is written regardless)"
    )
    parser.add_argument(
        "--no-media", action="store_true", help="no W&B media at the evaluations (scatters, image grids)"
    )
    parser.add_argument("--media-size", type=int, default=256, help="W&B media: longest side, pixels")
    parser.add_argument(
        "--media-count",
        type=int,
        default=None,
        help="W&B media: samples per scatter / images per grid (default: all samples, 64 images)",
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
        from gan_lab.dashboard.media import MediaSettings

        media = MediaSettings(not args.no_media, args.media_size, args.media_count)
        spec = select(load_study(args.study_file, args.out), args.only)
        target = Path(args.study_dir) / "parts" / args.only if args.study_dir else None
        study_dir = run_study(
            spec,
            [*args.overrides, *unknown],
            wandb=not args.no_wandb,
            study_dir=target,
            jobs_setting=args.jobs,
            media=media,
        )
    except ConfigError as e:
        return fail(e)
    print(f"study written to {study_dir}/ (report.md, results.csv, history.csv, figures)")
    definition = study_dir / "dashboard.json"
    if not args.no_wandb and definition.is_file():
        from gan_lab.dashboard.workspace import describe, read_definition

        print(describe(read_definition(definition), definition))
    return 0
