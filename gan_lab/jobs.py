"""Running a study's jobs: one fit each, one after another or side by side in worker processes.

A job is one ``gan-lab fit`` (an objective's ensemble of seeds, or one seed). :func:`fit_job` fits
it with the study's loggers and turns its evaluator's history into rows; what it returns is plain
data (:class:`JobResult`), so that it can come back from another process.

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

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lightning.pytorch.callbacks import Callback

from gan_lab.callbacks.guard import TrainingDiverged
from gan_lab.errors import check_int


@dataclass
class JobResult:
    """What one fitted job contributes to the study (plain data: it may come from a worker)."""

    history: list[dict]
    results: list[dict]
    run: dict  # study.json's entry for the run
    info: dict  # the evaluator's facts (the same for every job of a study)
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


def fit_job(spec, job, cli, study_dir, wandb: bool, lead: bool, advance, say, known=()) -> JobResult:
    """Fit ``job`` (its ``cli`` built with ``run=False``) with the study's CSV and W&B loggers and
    return its rows. A run that diverges is a result (its rows say where), not a crash. ``known``:
    pretrained files already hashed for the study (not read again)."""
    from gan_lab.cli import finish_wandb
    from gan_lab.runs import RunCSVLogger, RunWandbLogger
    from gan_lab.study import find_evaluator, pretrained_weights

    model, trainer = cli.model, cli.trainer
    name = job_name(spec, job)
    loggers = [RunCSVLogger(str(job.run_dir), name="", version="")]
    if wandb:
        loggers.append(
            RunWandbLogger(
                save_dir=str(job.run_dir),
                project="gan_lab",
                group=spec.name,
                name=f"{spec.name}/{name}",
                tags=[job.run.objective, *model.regularizer_names],
                config={"study": spec.name, "label": job.label, "args": job.args, **model.hparams},
            )
        )
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
    for logger in loggers:
        logger.finalize("success")
    finish_wandb(trainer)
    evaluator = find_evaluator(trainer)
    if not evaluator.history:  # diverged before its first evaluation
        evaluator.evaluate_without_logging(trainer, model)
    if lead:
        evaluator.save_artifacts(job.run_dir)
    metrics = list(evaluator.METRICS)
    regs = "+".join(model.regularizer_names) or "-"
    final_step = max(r["g_steps"] for r in evaluator.history)
    history, results = [], []
    for r in evaluator.history:
        member = r["member"] if job.seed_index is None else job.seed_index
        seed = r["seed"] if job.seed_index is None else spec.seed + job.seed_index
        keyed = {"objective": job.label, "member": member, "seed": seed, "g_steps": r["g_steps"]}
        history.append({**keyed, **{m: r[m] for m in metrics}})
        if r["g_steps"] == final_step:
            results.append(
                {
                    "study": spec.name,
                    "regularizers": regs,
                    "n_critic": model.n_critic,
                    **keyed,
                    **{m: r[m] for m in metrics},
                    "wall_time_s": round(wall, 2),
                    "status": status,
                }
            )
    run = {
        "label": job.label,
        "objective": job.run.objective,
        "run_dir": str(job.run_dir.relative_to(study_dir)),
        "args": job.args,
        "wall_time_s": round(wall, 2),
        # intra-op threads of a CPU run (gan_lab.threads) and why; absent on a GPU
        "cpu_threads": model.hparams.get("cpu_threads_used"),
        "cpu_threads_reason": getattr(model, "cpu_threads_reason", None),
    }
    return JobResult(history, results, run, evaluator.info(trainer), pretrained_weights(model, known))


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


def _worker_fit(spec, job, study_dir, wandb: bool, progress) -> JobResult:
    """In a worker process: parse, seed and build the job as ``gan-lab fit`` would, then fit it."""
    from gan_lab.cli import build_cli
    from gan_lab.console import quiet_lightning

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
    )


def run_jobs(
    spec, jobs: Sequence, clis: Sequence, study_dir, wandb: bool, lead: bool, workers: int, bar, done, known
):
    """Fit every job, ``workers`` at a time, and call ``done(index, JobResult)`` in job order as
    the results come in (a job's results wait for those of the jobs before it). ``known``: the
    study's dict of hashed pretrained files, which sequential jobs skip."""

    def advance(label: str, n: int) -> None:
        bar.update(n)
        bar.set_postfix_str(label, refresh=False)

    if workers <= 1:
        for i, (job, cli) in enumerate(zip(jobs, clis)):
            done(i, fit_job(spec, job, cli, study_dir, wandb, lead, advance, bar.write, known))
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
                    i: pool.submit(_worker_fit, spec, jobs[i], study_dir, wandb, progress) for i in order
                }
                for i in range(len(jobs)):
                    done(i, futures[i].result())
        finally:
            stop.set()
            reader.join()
            while not progress.empty():  # what came in after the reader stopped
                kind, a, n = progress.get()
                advance(a, n) if kind == "advance" else bar.write(a)
