"""A study's plan: every job it fits, with its command, and what it will report; made before the
first fit and written whole into the study folder (``plan.json``).

The way runs one way down: the study file (:mod:`gan_lab.study.spec`) → the plan
(:func:`plan_study`: one ``gan-lab fit`` command per job, each job's entries with their seeds and
folders) → every job built and checked (:func:`build_jobs`: the command parsed as ``gan-lab fit``
parses it, the run's evaluators and seeds checked against the plan, the facts the rows will carry
recorded in it) → the fits (:mod:`gan_lab.study.jobs`) → rows (:func:`gan_lab.study.jobs.job_rows`,
from the plan and the evaluators' histories) → the report (:mod:`gan_lab.study.report`). Nothing is
read back out of a built run after its fit but what the fit produced (the evaluators' histories and
facts, the wall time, the status).

A job is one fit: an entry's seeds as the members of one ensemble (``ensemble: true``), one seed of
an entry (``ensemble: false``), or, with ``mixed: true``, the entries that differ in their objective
only side by side as one mixed ensemble (:func:`mixed_groups`): member ``j·S + i`` of such a job is
entry ``j`` with seed ``seed + i``, exactly as in its own job. A study entry's objective is anything
``gan-lab fit`` accepts as ``--model.objective`` (:func:`objective_arg`): a registered name, a class
path, or ``{class_path, init_args}``; the study file is the user's own config, so a class it names is
imported as ``fit`` would import it (what the lab itself wrote, study.json, is never imported from).

``plan.json`` (format ``gan_lab/study-plan-1``, :meth:`StudyPlan.to_json`) holds the study's name,
source, command, seeds and the evaluators with the columns of ``results.csv`` / ``history.csv``,
the published rows (keys resolved to columns) and the pretrained files, and one record per job::

    {"name": "hinge+minimax", "label": "hinge+minimax", "run_dir": "hinge+minimax",
     "command": ["gan-lab", "fit", "--config", ...], "seeds": [7, 8, 7, 8],
     "entries": [{"label": "hinge", "objective": "hinge", "loss": "hinge", "seeds": [7, 8],
                  "run_dir": "hinge"}, ...],
     "regularizers": [], "n_critic": 1, "max_g_steps": 4, "state": "finished", "status": "ok"}

``seeds`` are the fit's members in order (member ``k`` is the run of seed ``seeds[k]`` of the entry
that holds it); ``state`` is ``planned``, ``running`` or ``finished`` (``status``: ``ok`` or
``diverged at g_steps=N``), rewritten whole as jobs start and end, so that a killed study's folder
says which jobs finished.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gan_lab.dashboard.facts import run_facts
from gan_lab.errors import ConfigError, bad_input_in
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.files import write_whole
from gan_lab.fit import build_cli, preflight
from gan_lab.losses import OBJECTIVES, PerMember
from gan_lab.runs import data_name
from gan_lab.study.report import HISTORY_KEYS, RESULT_KEYS, StudyEvaluator, resolve_published
from gan_lab.study.spec import RunSpec, StudySpec

#: the plan's file in the study folder, and its format tag
PLAN_FILE, PLAN_FORMAT = "plan.json", "gan_lab/study-plan-1"


# --------------------------------------------------------------------------------------------------
# Objectives on the command line
# --------------------------------------------------------------------------------------------------


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _import_class(path: str):
    """The class a dotted path names (as jsonargparse imports a ``class_path``)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def objective_name(objective: str | dict) -> str:
    """The ``name`` of an entry's objective (what a mixed ensemble tells its objectives apart by,
    and W&B's ``loss``): a registered name as it is; for a class path, the class's ``name``,
    imported as ``gan-lab fit`` imports it (the path itself when it cannot be: fit names the error).

    >>> objective_name("hinge"), objective_name({"class_path": "gan_lab.losses.Hinge"})
    ('hinge', 'hinge')
    >>> objective_name("no_such_module.Loss")
    'no_such_module.Loss'
    """
    if isinstance(objective, str) and objective in OBJECTIVES:
        return objective
    path = objective if isinstance(objective, str) else objective["class_path"]
    try:
        return str(getattr(_import_class(path), "name", path))
    except (ImportError, AttributeError, ValueError):
        return path


def objective_arg(objectives: list[str | dict]) -> str:
    """The value of ``--model.objective`` for one entry's objective, or for several entries side by
    side (a mixed ensemble, in member order): what ``gan-lab fit`` accepts. Registered names of a
    mixed ensemble are its list form; one with a class path among them is a
    :class:`~gan_lab.losses.PerMember` given by class path (fit's list form takes names only).

    >>> objective_arg(["hinge"]), objective_arg(["hinge", "minimax"])
    ('hinge', '[hinge,minimax]')
    >>> objective_arg([{"class_path": "my.Loss", "init_args": {"k": 2}}])
    '{"class_path": "my.Loss", "init_args": {"k": 2}}'
    >>> objective_arg(["hinge", "my.Loss"])
    '{"class_path": "gan_lab.losses.per_member.PerMember", "init_args": {"objectives": [{"class_path": "gan_lab.losses.objectives.Hinge"}, {"class_path": "my.Loss"}]}}'
    """
    if len(objectives) == 1:
        (objective,) = objectives
        return objective if isinstance(objective, str) else json.dumps(objective)
    if all(isinstance(o, str) and o in OBJECTIVES for o in objectives):
        return "[" + ",".join(objectives) + "]"

    def part(o: str | dict) -> dict:
        if isinstance(o, dict):
            return o
        return {"class_path": _class_path(OBJECTIVES[o]) if o in OBJECTIVES else o}

    parts = [part(o) for o in objectives]
    return json.dumps({"class_path": _class_path(PerMember), "init_args": {"objectives": parts}})


def mixed_groups(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """The entries that differ in their objective only (same ``configs``, same ``args``, objectives
    of distinct names), grouped in study order: each group is one mixed job (a group of one, a
    plain job).

    >>> a, b, c = RunSpec("hinge"), RunSpec("wasserstein", ["w.yaml"]), RunSpec("minimax")
    >>> [[r.objective for r in g] for g in mixed_groups([a, b, c])]
    [['hinge', 'minimax'], ['wasserstein']]
    """
    groups: dict[tuple, list[list[RunSpec]]] = {}
    order: list[list[RunSpec]] = []
    for run in runs:
        key = (tuple(run.configs), tuple(run.args))
        name = objective_name(run.objective)
        for group in groups.setdefault(key, []):
            if name not in {objective_name(r.objective) for r in group}:
                group.append(run)
                break
        else:
            groups[key].append([run])
            order.append(groups[key][-1])
    return order


# --------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------


@dataclass
class JobEntry:
    """One study entry's part of a job: its seeds (one member of the fit each, in member order) and
    the folder of its artifacts (``final_samples.npy``, image grids)."""

    run: RunSpec
    seeds: list[int]
    run_dir: Path
    loss: str = ""  # the objective's name (W&B's ``loss``)

    @property
    def label(self) -> str:
        return self.run.label


@dataclass
class Job:
    """One fit: its command (``gan-lab fit`` arguments), its entries, and, once built
    (:func:`build_jobs`), the facts its rows carry."""

    name: str  # the study's name for it: ``hinge``, ``hinge+minimax``, ``dcgan/seed3``
    run_dir: Path
    args: list[str]
    entries: list[JobEntry]
    state: str = "planned"  # planned, running, finished
    status: str | None = None  # when finished: ok, or diverged at g_steps=N
    regularizers: list[str] = field(default_factory=list)
    n_critic: int = 1
    max_g_steps: int = 0
    facts: dict = field(default_factory=dict)  # the W&B config facts of its runs (dashboard.facts)

    @property
    def label(self) -> str:
        """The labels of its entries, ``+``-joined (its folder's name)."""
        return "+".join(e.label for e in self.entries)

    @property
    def mixed(self) -> bool:
        return len(self.entries) > 1

    @property
    def run_seeds(self) -> list[int]:
        """The fit's members' seeds, in member order."""
        return [s for e in self.entries for s in e.seeds]

    def seats(self) -> list[tuple[JobEntry, int]]:
        """``(entry, seed)`` of each member of the fit, in member order."""
        return [(e, s) for e in self.entries for s in e.seeds]

    def members_of(self, entry: JobEntry) -> range:
        """The fit's members that train ``entry`` (one of its entries)."""
        start = sum(len(e.seeds) for e in self.entries[: self.entries.index(entry)])
        return range(start, start + len(entry.seeds))


def fit_args(
    spec: StudySpec, group: list[RunSpec], run_dir: Path, extra: list[str], seed: int | None
) -> list[str]:
    """The ``gan-lab fit`` arguments of one job (without the subcommand): the entries of ``group``
    (which share ``configs`` and ``args``) as the members of one ensemble of all seeds (``seed``
    None), or the one entry's run of seed ``seed``."""
    run = group[0]
    args = ["--config", spec.base]
    for c in run.configs:
        args += ["--config", c]
    args.append(f"--model.objective={objective_arg([r.objective for r in group])}")
    if seed is None:
        members = spec.seeds * len(group)
        args += [
            f"--model.seed={spec.seed}",
            f"--model.generator.init_args.members={members}",
            f"--model.discriminator.init_args.members={members}",
        ]
    else:
        args += [f"--model.seed={seed}", f"--seed_everything={seed}"]
    return [
        *args,
        *spec.args,
        *run.args,
        *extra,
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run_dir}",
    ]


@dataclass
class StudyPlan:
    """Every job of a study, in order, and what the study will report (see the module doc).
    :func:`plan_study` makes the jobs; :func:`build_jobs` adds what the built runs say (the
    evaluators, each job's facts, the published rows resolved, the pretrained files)."""

    spec: StudySpec
    study_dir: Path
    extra: list[str]
    jobs: list[Job]
    evaluators: list[type] = field(default_factory=list)
    published: list[dict] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)  # pretrained files: path -> sha256 prefix
    workers: int = 1
    _file: Path | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def command(self) -> str:
        return "gan-lab study " + " ".join([self.spec.source, *self.extra])

    @property
    def metric_columns(self) -> list[str]:
        """The evaluators' columns, ``<NAME>/<metric>``, in order."""
        return [f"{cls.NAME}/{m}" for cls in self.evaluators for m in cls.METRICS]

    @property
    def result_fields(self) -> list[str]:
        return [*RESULT_KEYS, *self.metric_columns, "wall_time_s", "status"]

    @property
    def history_fields(self) -> list[str]:
        return [*HISTORY_KEYS, *self.metric_columns]

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.study_dir))

    def to_json(self) -> dict:
        """The plan as ``plan.json`` holds it (see the module doc)."""
        spec = self.spec
        return {
            "format": PLAN_FORMAT,
            "study": spec.name,
            "source": spec.source,
            "command": self.command,
            "seeds": spec.seeds,
            "seed": spec.seed,
            "ensemble": spec.ensemble,
            "mixed": spec.mixed,
            "workers": self.workers,
            "evaluators": [cls.NAME for cls in self.evaluators],
            "columns": {"results": self.result_fields, "history": self.history_fields},
            "published": self.published,
            "weights": self.weights,
            "jobs": [
                {
                    "name": job.name,
                    "label": job.label,
                    "run_dir": self.relative(job.run_dir),
                    "command": ["gan-lab", "fit", *job.args],
                    "seeds": job.run_seeds,
                    "entries": [
                        {
                            "label": e.label,
                            "objective": e.run.objective,
                            "loss": e.loss,
                            "seeds": e.seeds,
                            "run_dir": self.relative(e.run_dir),
                        }
                        for e in job.entries
                    ],
                    "regularizers": job.regularizers,
                    "n_critic": job.n_critic,
                    "max_g_steps": job.max_g_steps,
                    "state": job.state,
                    "status": job.status,
                }
                for job in self.jobs
            ],
        }

    def write(self) -> Path:
        """Write ``plan.json`` into the study folder (whole: :func:`gan_lab.files.write_whole`) and
        keep it up to date as jobs change state (:meth:`set_state`)."""
        with self._lock:
            self._file = self.study_dir / PLAN_FILE
            write_whole(self._file, json.dumps(self.to_json(), indent=2) + "\n")
        return self._file

    def set_state(self, index: int, state: str, status: str | None = None) -> None:
        """Job ``index`` is ``running`` or ``finished`` (with its ``status``); ``plan.json`` is
        rewritten when it was written (callable from the progress thread of a parallel study)."""
        with self._lock:
            job = self.jobs[index]
            job.state, job.status = state, status if status is not None else job.status
            if self._file is not None:
                write_whole(self._file, json.dumps(self.to_json(), indent=2) + "\n")


def plan_study(spec: StudySpec, study_dir: Path, extra: list[str]) -> StudyPlan:
    """The jobs of ``spec`` with ``study_dir`` as the study's folder and ``extra`` arguments for every
    fit: one job per entry (ensemble), per group of entries (``mixed``), or per entry × seed (one
    net per run). Nothing is built or written."""
    study_dir = Path(study_dir)
    seeds = [spec.seed + i for i in range(spec.seeds)]
    groups = mixed_groups(spec.runs) if spec.mixed else [[run] for run in spec.runs]
    jobs = []
    for group in groups:
        label = "+".join(r.label for r in group)
        if spec.ensemble:  # every seed a member of one fit; each entry's artifacts in a folder of its own
            run_dir = study_dir / label
            entries = [JobEntry(r, seeds, study_dir / r.label, objective_name(r.objective)) for r in group]
            jobs.append(Job(label, run_dir, fit_args(spec, group, run_dir, extra, None), entries))
            continue
        for s in seeds:  # one fit per seed (the group is one entry: ``mixed`` needs an ensemble)
            run_dir = study_dir / label / f"seed{s}"
            entries = [JobEntry(r, [s], run_dir, objective_name(r.objective)) for r in group]
            jobs.append(Job(f"{label}/seed{s}", run_dir, fit_args(spec, group, run_dir, extra, s), entries))
    return StudyPlan(spec, study_dir, list(extra), jobs)


# --------------------------------------------------------------------------------------------------
# Every job built and checked before anything is written
# --------------------------------------------------------------------------------------------------


def find_evaluators(trainer) -> list:
    """The evaluator callbacks of a run (:class:`~gan_lab.evaluators.base.ScheduledEvaluator`),
    in ``trainer.callbacks`` order.

    Raises:
        ConfigError: there is none, or two share a ``NAME`` (their columns would collide), or one
            has no ``NAME``.
    """
    found = [cb for cb in trainer.callbacks if isinstance(cb, ScheduledEvaluator)]
    if not found:
        raise ConfigError(
            "a study needs an evaluator callback in trainer.callbacks (gan_lab.evaluators.ModeCoverageEvaluator "
            "for toy mixtures, gan_lab.paired.evaluator.SRMetricsEvaluator for super-resolution)"
        )
    names = [type(e).NAME for e in found]
    if len(set(names)) < len(names) or not all(names):
        kinds = ", ".join(f"{type(e).__name__} ({type(e).NAME or 'no NAME'})" for e in found)
        raise ConfigError(
            f"the evaluators of a study need distinct names (their columns are prefixed with them): {kinds}; "
            "keep one evaluator of each kind"
        )
    return found


def pretrained_files(model) -> list[Path]:
    """The pretrained weights files the run's regularizers load (VGG16 of the perceptual and style
    terms: each term with a ``load()`` whose network names its ``path``), loaded already by the
    preflight's checks."""
    files = []
    for reg in getattr(model, "penalties", []):
        load = getattr(reg, "load", None)
        path = getattr(load(), "path", None) if callable(load) else None
        if path is not None and Path(path).is_file():
            files.append(Path(path))
    return files


def file_hash(path: Path) -> str:
    """The sha256 prefix (16 hex digits) of a file, streamed (the VGG16 file is ~528 MB)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def build_jobs(plan: StudyPlan, hash_weights: bool = True) -> list:
    """Parse and instantiate every job as ``gan-lab fit`` would (nothing is written), preflight it,
    and complete the plan: the evaluators (the same classes in every run), each job's facts
    (regularizers, ``n_critic``, ``max_g_steps``, its W&B config facts), the published rows' keys
    resolved to the evaluators' columns, and (``hash_weights``) the pretrained files' hashes.
    Returns the built runs (LightningCLI objects), in job order.

    Raises:
        ConfigError: one line: a job that does not parse or build (named), runs with other
            evaluators, a run whose members are not the seeds the plan gives it, a published key
            that is no column, what the preflight refuses.
    """
    from jsonargparse import ArgumentError

    clis = []
    for job in plan.jobs:
        try:
            cli = build_cli(job.args, run=False)
        except (ValueError, TypeError, ArgumentError) as e:
            cause = bad_input_in(e)
            if cause is None:
                raise
            raise ConfigError(f"{job.label}: {cause}") from None
        kinds = [type(e) for e in find_evaluators(cli.trainer)]
        if not clis:
            plan.evaluators = kinds  # the first run's, which every run must have
        elif kinds != plan.evaluators:
            raise ConfigError(
                "every run of a study must use the same evaluator callbacks, in the same order; "
                f"{plan.jobs[0].label}: {', '.join(c.__name__ for c in plan.evaluators)}, "
                f"{job.label}: {', '.join(c.__name__ for c in kinds)}"
            )
        model = cli.model
        built = list(model.run_seeds)
        if built != job.run_seeds and plan.spec.ensemble:
            raise ConfigError(
                f"{job.name}: the study fits the seeds {job.run_seeds} as the members of one run, but its "
                f"config builds a run of the seeds {built}; the study sets the members (seeds × objectives), "
                "so set none in its configs or args"
            )
        if built != job.run_seeds:
            raise ConfigError(
                f"{job.name}: ensemble: false fits one seed per run, but its config builds a run of "
                f"{len(built)} members (seeds {built}); use nets of one member, or ensemble: true"
            )
        job.regularizers = list(model.regularizer_names)
        job.n_critic, job.max_g_steps = int(model.n_critic), int(model.max_g_steps or 0)
        job.facts = run_facts(model, data_name(cli.datamodule), study=plan.spec.name, objective=job.label)
        clis.append(cli)
    for cli in clis:
        preflight(cli.model, cli.datamodule, cli.trainer)
    # the published rows name this study's metric columns (before any fit: a typo stops it here)
    entries = [StudyEvaluator(cls, {}) for cls in plan.evaluators]
    plan.published = resolve_published(plan.spec.published, entries, plan.spec.source)
    if hash_weights:
        for path in dict.fromkeys(p for cli in clis for p in pretrained_files(cli.model)):
            plan.weights[str(path)] = file_hash(path)
    return clis
