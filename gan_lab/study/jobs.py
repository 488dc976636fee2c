"""Running a study: its plan built and checked, then the jobs fitted, the rows collected.

:func:`run_study` plans the study (:func:`gan_lab.study.plan.plan_study`: every job's ``gan-lab
fit`` command), builds and preflights every job before anything is written
(:func:`gan_lab.study.plan.build_jobs`: a bad name or an impossible combination ends the study with
one line and exit code 2 and no folder), writes the plan (``plan.json``), then fits the jobs and
writes ``results.csv``, ``history.csv`` and ``study.json`` as they finish, and the report
(:mod:`gan_lab.study.report`). ``gan-lab study`` is :func:`study_main`.

:func:`fit_job` fits one job with the study's loggers and returns what the fit produced
(:class:`FitResult`: each evaluator's history and facts, the wall time, the status), plain data, so
that it can come back from another process; :func:`job_rows` turns it into the study's rows with
what the plan says of the job (its entries, each member's seed). The evaluators are the
:class:`~gan_lab.evaluators.base.ScheduledEvaluator` callbacks of the run (one or several, e.g.
mode coverage and image metrics, the same classes in every run of the study); their columns are
``<NAME>/<metric>``.

On a CPU, a study's runs of small nets each use one intra-op thread (:mod:`gan_lab.threads`), which
leaves the other cores idle in a sequential study. :func:`worker_count` gives as many worker
processes as the cores hold runs of that thread count; :func:`run_jobs` then fits the jobs in a
spawned process pool, longest first (``max_g_steps × n_critic``), and the rows are collected in the
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
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from gan_lab.callbacks.guard import TrainingDiverged
from gan_lab.console import quiet_lightning
from gan_lab.dashboard.media import MediaSettings
from gan_lab.errors import ConfigError, check_int, fail, writable_folder
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.files import write_whole
from gan_lab.fit import build_cli
from gan_lab.runs import RunCSVLogger, finish_wandb, seed_runs_logger
from gan_lab.study.plan import Job, StudyPlan, build_jobs, plan_study
from gan_lab.study.report import evaluators_meta, study_summary, write_csv, write_report
from gan_lab.study.spec import StudySpec, load_study, new_study_dir, select
from gan_lab.study.wandb_run import log_study_run
from gan_lab.study.workspace import describe, read_definition, study_group, write_definition
from gan_lab.threads import choose_cpu_threads


@dataclass
class FitResult:
    """What one job's fit produced (plain data: it may come from a worker)."""

    histories: list[list[dict]]  # each evaluator's history, in the plan's evaluator order
    infos: list[dict]  # each evaluator's facts
    wall_time_s: float
    status: str  # ok, or diverged at g_steps=N
    cpu_threads: int | None = None  # intra-op threads of a CPU run (gan_lab.threads); None on a GPU
    cpu_threads_reason: str | None = None


class StudyProgress(Callback):
    """Reports the module's new G steps to ``advance(label, n)`` (a study-wide progress bar)."""

    def __init__(self, advance: Callable[[str, int], None], label: str) -> None:
        self.advance, self.label, self.seen = advance, label, 0

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if pl_module.g_steps > self.seen:
            self.advance(self.label, pl_module.g_steps - self.seen)
            self.seen = pl_module.g_steps


def fit_job(
    job: Job, cli, study: str, study_dir: Path, wandb: bool, lead: bool, advance, say, media=None
) -> FitResult:
    """Fit ``job`` (its ``cli`` built with ``run=False``) of the study ``study`` in ``study_dir``
    with the study's CSV logger and, with ``wandb``, one W&B run per seed
    (:class:`gan_lab.dashboard.SeedRunsLogger`, media as ``media`` says), save each entry's
    artifacts into its folder (``lead``), and return what the fit produced. A run that diverges is
    a result (its status says where, its W&B runs are marked), not a crash."""
    model, trainer = cli.model, cli.trainer
    loggers = [RunCSVLogger(str(job.run_dir), name="", version="")]
    seed_runs = None
    if wandb:
        group = study_group(study_dir)
        seed_runs = seed_runs_logger(
            job.run_dir,
            job.run_seeds,
            group=group,
            name=group if job.mixed else f"{group}/{job.label}",
            facts={**job.facts, "args": job.args},
            objectives=[job.entries[0].run.objective_text],
            regularizers=job.regularizers,
            member_facts=[{"objective": e.label, "loss": e.loss} for e, _ in job.seats()]
            if job.mixed
            else None,
            media=media,
        )
        loggers.append(seed_runs)
    trainer.loggers = loggers
    trainer.callbacks.append(StudyProgress(advance, job.name))
    t0 = time.perf_counter()
    status = "ok"
    try:
        trainer.fit(model, cli.datamodule)
    except TrainingDiverged as e:  # a result, not a crash: record it and go on
        status = f"diverged at g_steps={model.g_steps}"
        say(f"{job.name}: {e}")
    wall = time.perf_counter() - t0
    evaluators = [cb for cb in trainer.callbacks if isinstance(cb, ScheduledEvaluator)]
    for evaluator in evaluators:
        if not evaluator.history:  # diverged before its first evaluation
            evaluator.evaluate_without_logging(trainer, model)
        for entry in job.entries if lead else ():  # a mixed job: each entry's members in its own folder
            own = {"members": job.members_of(entry)} if job.mixed else {}  # (older evaluators: no members)
            evaluator.save_artifacts(entry.run_dir, **own)
    if seed_runs is not None:
        final_summary(seed_runs, evaluators, status, wall, model.g_steps)
    for logger in loggers:
        logger.finalize("success")
    finish_wandb(trainer)
    return FitResult(
        histories=[list(e.history) for e in evaluators],
        infos=[e.info(trainer) for e in evaluators],
        wall_time_s=round(wall, 2),
        status=status,
        cpu_threads=model.hparams.get("cpu_threads_used"),
        cpu_threads_reason=getattr(model, "cpu_threads_reason", None),
    )


def job_rows(plan: StudyPlan, job: Job, fit: FitResult) -> tuple[list[dict], list[dict], list[dict]]:
    """A fitted job's rows: ``(history rows, results rows, study.json's runs entries)``. Each
    evaluation row of fit member ``k`` goes to the entry and seed the plan gives member ``k``
    (``member``: the seed's index among the study's seeds)."""
    seats = job.seats()

    def keyed(r: dict) -> dict:
        entry, seed = seats[r["member"]]
        return {**r, "objective": entry.label, "member": seed - plan.spec.seed, "seed": seed}

    every, final = evaluation_rows(plan.evaluators, fit.histories)
    history = [keyed(r) for r in every]
    regularizers = "+".join(job.regularizers) or "-"
    results = [
        {
            "study": plan.spec.name,
            "regularizers": regularizers,
            "n_critic": job.n_critic,
            **keyed(r),
            "wall_time_s": fit.wall_time_s,
            "status": fit.status,
        }
        for r in final
    ]
    runs = [
        {
            "label": entry.label,
            "objective": entry.run.objective,
            # a mixed job's entry: its artifacts' folder; the fit's own folder is ``trained_in``
            "run_dir": plan.relative(entry.run_dir),
            **({"trained_in": plan.relative(job.run_dir)} if job.mixed else {}),
            "args": job.args,
            "wall_time_s": fit.wall_time_s,
            # intra-op threads of a CPU run (gan_lab.threads) and why; absent on a GPU
            "cpu_threads": fit.cpu_threads,
            "cpu_threads_reason": fit.cpu_threads_reason,
        }
        for entry in job.entries
    ]
    return history, results, runs


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


def evaluation_rows(
    evaluators: Sequence[type], histories: Sequence[list[dict]]
) -> tuple[list[dict], list[dict]]:
    """The rows of a run's evaluators (their classes and histories): every evaluation's and the
    final one's, one per (G step, member) with ``member``, ``seed``, ``g_steps`` and the metrics of
    every evaluator as ``<NAME>/<metric>`` (NaN at a G step where one did not evaluate). The final
    rows hold each evaluator's last evaluation (the same G step, unless the run diverged between
    two evaluators' schedules: then ``g_steps`` is the later one).

    >>> from types import SimpleNamespace as E
    >>> a, b = E(NAME="a", METRICS=("x",)), E(NAME="b", METRICS=("y",))
    >>> ha = [{"g_steps": g, "member": 0, "seed": 3, "x": g} for g in (2, 4)]
    >>> hb = [{"g_steps": 4, "member": 0, "seed": 3, "y": 1.0}]
    >>> every, final = evaluation_rows([a, b], [ha, hb])
    >>> every
    [{'member': 0, 'seed': 3, 'g_steps': 2, 'a/x': 2, 'b/y': nan}, {'member': 0, 'seed': 3, 'g_steps': 4, 'a/x': 4, 'b/y': 1.0}]
    >>> final == every[1:], evaluation_rows([a], [ha])[0][0]
    (True, {'member': 0, 'seed': 3, 'g_steps': 2, 'a/x': 2})
    """
    columns = [f"{e.NAME}/{m}" for e in evaluators for m in e.METRICS]
    every: dict[tuple[int, int], dict] = {}
    final: dict[int, dict] = {}
    for evaluator, history in zip(evaluators, histories, strict=True):
        last = max(r["g_steps"] for r in history)
        for r in history:
            key = {"member": r["member"], "seed": r["seed"], "g_steps": r["g_steps"]}
            values = {f"{evaluator.NAME}/{m}": r[m] for m in evaluator.METRICS}
            every.setdefault((r["g_steps"], r["member"]), key).update(values)
            if r["g_steps"] == last:
                row = final.setdefault(r["member"], key.copy())
                row.update(values, g_steps=max(row["g_steps"], last))

    def complete(row: dict) -> dict:
        return {**row, **{c: row.get(c, math.nan) for c in columns}}

    return [complete(every[k]) for k in sorted(every)], [complete(final[k]) for k in sorted(final)]


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name``, else ``platform.processor()``),
    which study.json records: runs are bit-identical on one CPU model, not across them."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


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
    ...         G, speed = types.SimpleNamespace(cpu_threads=1), types.SimpleNamespace(cpu_threads=None)
    ...         self.model = types.SimpleNamespace(G=G, D=object(), speed=speed)
    >>> worker_count([Fake(), Fake(), Fake()], None, cores=2), worker_count([Fake()], None, cores=8)
    (2, 1)
    >>> worker_count([Fake(), Fake()], 1, cores=8)
    1
    """
    if setting is not None:
        return min(check_int("--jobs", setting), max(1, len(clis)))
    cores = available_cores() if cores is None else cores
    threads = 0
    for cli in clis:
        trainer = cli.trainer
        if trainer.strategy.root_device.type != "cpu" or trainer.num_devices * trainer.num_nodes > 1:
            return 1
        model = cli.model
        threads = max(threads, choose_cpu_threads([model.G, model.D], model.speed.cpu_threads).threads)
    return max(1, min(len(clis), cores // max(threads, 1)))


def _worker_fit(
    index: int, job: Job, study: str, study_dir: Path, wandb: bool, progress, media=None
) -> FitResult:
    """In a worker process: parse, seed and build the job as ``gan-lab fit`` would, then fit it
    (the progress queue hears that job ``index`` started, its G steps and its messages)."""
    progress.put(("start", index, 0))
    quiet_lightning()
    cli = build_cli(job.args, run=False)
    return fit_job(
        job,
        cli,
        study,
        study_dir,
        wandb,
        lead=True,
        advance=lambda label, n: progress.put(("advance", label, n)),
        say=lambda line: progress.put(("say", line, 0)),
        media=media,
    )


def run_jobs(
    plan: StudyPlan,
    clis: Sequence,
    wandb: bool,
    lead: bool,
    workers: int,
    bar,
    started: Callable[[int], None],
    done: Callable[[int, FitResult], None],
    media=None,
) -> None:
    """Fit the plan's jobs (built: ``clis``), ``workers`` at a time (longest first), calling
    ``started(index)`` as a job starts and ``done(index, FitResult)`` as it ends (side by side, in
    the order they end)."""
    jobs, study, study_dir = plan.jobs, plan.spec.name, plan.study_dir

    def advance(label: str, n: int) -> None:
        bar.update(n)
        bar.set_postfix_str(label, refresh=False)

    if workers <= 1:
        for i, (job, cli) in enumerate(zip(jobs, clis)):
            started(i)
            done(i, fit_job(job, cli, study, study_dir, wandb, lead, advance, bar.write, media))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    def hear(kind: str, a, n: int) -> None:
        if kind == "start":
            started(a)
        elif kind == "advance":
            advance(a, n)
        else:
            bar.write(a)

    context = mp.get_context("spawn")  # a fresh interpreter per worker, as `gan-lab fit` would be
    with context.Manager() as manager:
        progress = manager.Queue()
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set():
                try:
                    hear(*progress.get(timeout=0.1))
                except queue.Empty:
                    continue

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                order = sorted(range(len(jobs)), key=lambda i: -jobs[i].max_g_steps * jobs[i].n_critic)
                futures = {
                    pool.submit(_worker_fit, i, jobs[i], study, study_dir, wandb, progress, media): i
                    for i in order
                }
                for future in as_completed(futures):
                    done(futures[future], future.result())
        finally:
            stop.set()
            reader.join()
            while not progress.empty():  # what came in after the reader stopped
                hear(*progress.get())


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
    """Plan the study, build and check every job, write the plan, then fit the jobs (one after
    another, or side by side on a CPU: see :func:`run_jobs`; ``jobs_setting``: ``--jobs``) and
    write the rows as they come and the report. Returns the folder.

    With ``wandb``, every seed is a W&B run (media as ``media``, a
    :class:`~gan_lab.dashboard.media.MediaSettings`, says; default: on), and after the report the
    study's closing run (results table, figures) is logged and ``dashboard.json`` written
    (:mod:`gan_lab.dashboard`).

    ``study_dir`` (default: a new folder under ``spec.out``) must not exist yet: a study never
    writes into an earlier one."""
    import torch
    from tqdm.auto import tqdm

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

    # 1. The plan, and every job built and checked by it before anything is written.
    plan = plan_study(spec, study_dir, extra)
    clis = build_jobs(plan, hash_weights=lead)
    plan.workers = workers = worker_count(clis, jobs_setting)

    # 2. The plan in the study folder before the first fit; then the fits, their rows as they come.
    study_dir.mkdir(parents=True, exist_ok=not lead)
    if lead:
        plan.write()
    meta = {
        "study": spec.name,
        "source": spec.source,
        "command": plan.command,
        "seeds": spec.seeds,
        "seed": spec.seed,
        "ensemble": spec.ensemble,
        "note": spec.note,
        "published": plan.published,
        "alpha": spec.alpha,
        "last_k": spec.last_k,
        "labels": [r.label for r in spec.runs],  # the study file's order: the report's rows
        **evaluators_meta(plan.evaluators, [{} for _ in plan.evaluators]),  # facts come with the fits
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu": cpu_model(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "runs": [],
        "workers": workers,
        "weights": plan.weights,
    }
    results, history = [], []
    bar = tqdm(
        total=sum(job.max_g_steps for job in plan.jobs) or None,
        desc=spec.name if workers == 1 else f"{spec.name} ({workers} at a time)",
        unit="G step",
        dynamic_ncols=True,
        file=sys.stderr,
        disable=not lead,
    )
    ended: dict[int, FitResult] = {}  # fits that ended before a job ahead of them
    joined = 0  # the jobs whose rows are in the files: the first ``joined``

    def started(index: int) -> None:
        if lead:
            plan.set_state(index, "running")

    def done(index: int, fit: FitResult) -> None:
        """A job ended: the plan says so; its rows, and those of the jobs after it that ended
        already, join the files in job order (results.csv and history.csv grow as jobs finish)."""
        nonlocal joined
        if lead:
            plan.set_state(index, "finished", fit.status)
        ended[index] = fit
        while joined in ended:
            fit = ended.pop(joined)
            job_history, job_results, runs = job_rows(plan, plan.jobs[joined], fit)
            history.extend(job_history)
            results.extend(job_results)
            meta["runs"].extend(runs)
            meta.update(evaluators_meta(plan.evaluators, fit.infos))
            joined += 1
        if lead:
            write_csv(study_dir / "results.csv", plan.result_fields, results)
            write_csv(study_dir / "history.csv", plan.history_fields, history)

    run_jobs(plan, clis, wandb, lead, workers, bar, started, done, media)
    bar.close()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if lead:
        write_whole(study_dir / "study.json", json.dumps(meta, indent=2))
        write_report(study_dir)
        if wandb:
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
    summary = study_summary(study_dir) if launch_rank() == 0 else ""  # report.md's verdicts, short
    if summary:
        print(summary)
    print(f"study written to {study_dir}/ (report.md, results.csv, history.csv, figures)")
    definition = study_dir / "dashboard.json"
    if not args.no_wandb and definition.is_file():
        print(describe(read_definition(definition), definition))
    return 0
