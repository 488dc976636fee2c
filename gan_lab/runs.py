"""Run folders: where ``gan-lab fit`` writes a run, where a resumed run continues, and the rules
that keep a run's history whole (docs/DESIGN.md, reliability rules).

A fit with the default loggers writes ``<default_root_dir>/<data>/version_N/`` (``config.yaml``,
``metrics.csv``, ``checkpoints/``, ``wandb/``); N is claimed atomically (``mkdir``, so two fits
started at once get two folders); with ``--trainer.logger false`` it writes into
``<default_root_dir>`` itself. One process writes a run folder at a time
(:class:`gan_lab.files.FolderLock`; a second writer is refused in one line naming the holder).

Resuming (``--ckpt_path last``, a path, or a SLURM requeue's ``hpc``) follows :func:`resolve_resume`:

- a run continues **only** in the ``version_N`` folder that holds the checkpoint
  (``version_N/checkpoints/x.ckpt``), or in a folder the command names: a checkpoint outside a run
  folder (a requeue's ``hpc_ckpt_<n>.ckpt`` in ``default_root_dir``, a copied file) continues the
  ``version_N`` under the command's ``default_root_dir/<data>`` that it records, if there is one,
  else a new one. A path read from the file never decides where anything is written;
- its ``metrics.csv`` is continued (rows the checkpoint had not reached are dropped, the file is
  rewritten whole) and so are its W&B runs (:func:`wandb_run_ids`); its ``config.yaml`` stays, the
  resumed session's config is written beside it (:func:`resumed_config_name`);
- a checkpoint older than the newest valid one of its run (``g_steps=100.ckpt`` of a run that went
  on to 200) is refused, unless the user asks for a new branch (``--branch true``): the branch is a
  new ``version_N`` whose ``metrics.csv`` starts with the original's rows up to the checkpoint; the
  original is left as it was;
- ``last`` is the newest ``last.ckpt``; a torn one falls back to the newest valid checkpoint of
  its folder, with a one-line note.

The checks that need the model (a finished run does nothing; a run trained with other settings is
refused unless ``--allow_changes true``) are :func:`check_resume`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from gan_lab.checkpoints import checkpoint_counters, load_checkpoint
from gan_lab.dashboard.facts import member_facts, run_facts
from gan_lab.dashboard.media import MediaSettings
from gan_lab.dashboard.seed_runs import SeedRunsLogger, finish_written
from gan_lab.errors import ConfigError
from gan_lab.files import write_whole

_VERSION = re.compile(r"version_(\d+)$")
_HPC = re.compile(r"hpc_ckpt_(\d+)\.ckpt$")


class RunFinished(Exception):
    """A resume of a run that already reached ``max_g_steps``: nothing to do (exit 0, one line)."""


@dataclass
class Resume:
    """A checkpoint to resume from and where the run goes on.

    Attributes:
        ckpt_path: the checkpoint (after ``last``'s fallback, the one actually read).
        run_dir: the existing run folder the run continues in; None: a new ``version_N``.
        g_steps, d_steps: the module's counters in the checkpoint.
        history: the ``metrics.csv`` whose rows up to the checkpoint the run's file starts with
            (its own, or the original's for a branch); None: none.
        branch: a new branch of an older checkpoint (``--branch true``).
        note: a line to say before the run (``last`` fell back to another file).
        checkpoint: the file as read, for the checks before the run (dropped after them).
    """

    ckpt_path: str
    run_dir: Path | None
    g_steps: int = 0
    d_steps: int = 0
    history: Path | None = None
    branch: bool = False
    note: str | None = None
    checkpoint: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, ckpt_path: str, run_dir: Path | None = None) -> Resume:
        """Read ``ckpt_path`` (one line if it is no checkpoint) and continue in ``run_dir``."""
        ckpt = load_checkpoint(ckpt_path)
        state = ckpt.get("gan_lab") or {}
        g, d = int(state.get("g_steps", 0)), int(state.get("d_steps", 0))
        history = run_dir / "metrics.csv" if run_dir is not None else None
        return cls(ckpt_path, run_dir, g, d, history, checkpoint=ckpt)

    @property
    def recorded_run_dir(self) -> str | None:
        """The run folder the checkpoint says it was written from (a fact, never a destination)."""
        state = (self.checkpoint or {}).get("gan_lab") or {}
        saved = state.get("run_dir")
        return saved if isinstance(saved, str) else None


def versions(root: str | os.PathLike, name: str) -> list[tuple[int, Path]]:
    """``(N, folder)`` of every ``<root>/<name>/version_N``, by N."""
    base = Path(root) / name
    found = [(int(m.group(1)), p) for p in base.glob("version_*") if (m := _VERSION.match(p.name))]
    return sorted(found)


def new_version_folder(root: str | os.PathLike, name: str) -> Path:
    """Create and return the next ``<root>/<name>/version_N``, atomically: ``mkdir`` fails for a
    folder another process created first, and the next N is tried."""
    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)
    n = max((v for v, _ in versions(root, name)), default=-1) + 1
    while True:
        try:
            (base / f"version_{n}").mkdir()
            return base / f"version_{n}"
        except FileExistsError:
            n += 1


def run_dir_of(ckpt_path: str) -> Path | None:
    """The ``version_N`` folder a checkpoint lies in (``version_N/checkpoints/x.ckpt``), or None."""
    parent = Path(ckpt_path).resolve().parent
    if parent.name == "checkpoints" and _VERSION.match(parent.parent.name):
        return parent.parent
    return None


def newest_valid_checkpoint(
    folders: Sequence[Path], skip: Path | None = None
) -> tuple[tuple[int, int], Path] | None:
    """``((g_steps, d_steps), path)`` of the furthest valid ``*.ckpt`` in ``folders`` (torn or
    foreign files are passed over; ``skip`` is not read), or None."""
    best = None
    for folder in dict.fromkeys(Path(f).resolve() for f in folders):
        for path in sorted(folder.glob("*.ckpt")) if folder.is_dir() else ():
            if skip is not None and path.resolve() == skip.resolve():
                continue
            counters = checkpoint_counters(path)
            if counters is not None and (best is None or counters > best[0]):
                best = (counters, path)
    return best


def _last(candidates: Sequence[Path], where: Sequence[str]) -> Resume:
    """``--ckpt_path last``: the newest existing candidate, or, when a valid checkpoint beside it
    went further (a kill between writing ``g_steps=N.ckpt`` and ``last.ckpt``) or it is torn, the
    furthest valid checkpoint of its folder, with a note."""
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise ConfigError(
            f"--ckpt_path last: no checkpoint at {' or '.join(where)}; pass the --trainer.default_root_dir "
            "the run used, or the checkpoint's path"
        )
    last = max(found, key=lambda c: c.stat().st_mtime)
    counters = checkpoint_counters(last)
    furthest = newest_valid_checkpoint([last.parent], skip=last)
    if furthest is None or (counters is not None and counters >= furthest[0]):
        return Resume(str(last), None)
    (g, _), path = furthest
    why = "cannot be read" if counters is None else f"is at G step {counters[0]}"
    note = f"{last} {why}; resuming from {path.name}, the furthest valid checkpoint beside it (G step {g})"
    return Resume(str(path), None, note=note)


def resolve_resume(
    ckpt_path: str,
    root: str,
    name: str,
    loggers: bool,
    dirpaths: Sequence[str] = (),
    branch: bool = False,
) -> Resume:
    """What ``--ckpt_path`` (a path, ``last`` or ``hpc``) means for a run of data ``name`` under
    ``root`` (see the module doc); ``dirpaths``: the folders ModelCheckpoint callbacks were
    configured to write into, where ``last`` also looks (as Lightning does)."""
    note, requeued = None, ckpt_path == "hpc"
    if ckpt_path == "last":
        if loggers:
            candidates = [d / "checkpoints" / "last.ckpt" for _, d in versions(root, name)]
            where = [os.path.join(root, name, "version_*", "checkpoints", "last.ckpt")]
        else:
            candidates = [Path(root) / "checkpoints" / "last.ckpt"]
            where = [str(candidates[0])]
        candidates += [Path(d) / "last.ckpt" for d in dirpaths]
        where += [os.path.join(d, "last.ckpt") for d in dirpaths]
        found = _last(candidates, where)
        ckpt_path, note = found.ckpt_path, found.note
    elif ckpt_path == "hpc":
        hpc = hpc_checkpoint(root)
        if hpc is None:
            raise ConfigError(f"--ckpt_path hpc: no hpc_ckpt_<n>.ckpt in {root}")
        ckpt_path = hpc
    resume = Resume.of(ckpt_path)
    resume.note = note
    if loggers:
        home = run_dir_of(ckpt_path)
        if home is None:  # outside a run folder: the run it records, if it is one of this command's
            ours = {d.resolve(): d for _, d in versions(root, name)}
            recorded = resume.recorded_run_dir
            home = ours.get(Path(recorded).resolve()) if recorded else None
            home = home.resolve() if home is not None else None
    else:
        home = Path(root).resolve()
    folders = [Path(ckpt_path).parent] + ([home / "checkpoints"] if home is not None else [])
    newest = newest_valid_checkpoint(folders)
    if requeued and newest is not None and newest[0] > (resume.g_steps, resume.d_steps):
        # A requeued job continues its run's newest state (the preemption's last.ckpt is written at
        # the batch end, after Lightning's requeue handler wrote hpc_ckpt from inside the signal).
        ckpt_path, note = str(newest[1]), f"resuming from {newest[1]}, newer than {ckpt_path}"
        resume = Resume.of(ckpt_path)
        resume.note = note
    if newest is not None and newest[0] > (resume.g_steps, resume.d_steps) and not branch:
        (g, _), path = newest
        raise ConfigError(
            f"checkpoint {ckpt_path} is at G step {resume.g_steps}, but its run went on to G step {g} "
            f"({path}); continuing from it would rewrite that history: resume the newest (--ckpt_path last), "
            f"or pass --branch true to continue from G step {resume.g_steps} in a new version folder"
        )
    if branch:
        if not loggers:
            raise ConfigError("--branch true needs the default loggers: a branch is a new version_N folder")
        resume.branch, resume.run_dir = True, None
        resume.history = home / "metrics.csv" if home is not None else None
    else:
        resume.run_dir = home
        resume.history = home / "metrics.csv" if home is not None and loggers else None
    return resume


def hpc_checkpoint(root: str) -> str | None:
    """The newest ``hpc_ckpt_<n>.ckpt`` in ``root``: what Lightning's SLURM requeue wrote (and what
    it resumes from, by itself, in the requeued job), or None."""
    found = [(int(m.group(1)), p) for p in Path(root).glob("hpc_ckpt_*.ckpt") if (m := _HPC.match(p.name))]
    return str(max(found)[1]) if found else None


#: settings that do not change what a run trains: a resume may change them freely
SCHEDULE_KEYS = (
    "model.max_g_steps",
    "model.speed.compile",
    "model.speed.cpu_threads",
    "model.speed.channels_last",
)

#: the Trainer settings that change the training itself
TRAINER_KEYS = ("precision", "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm")


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def training_settings(config_yaml: str | None) -> dict:
    r"""The settings of a resolved config (YAML) that change what a run trains, flattened
    (``model.objective``, ``model.optimizer_d.init_args.lr``, ``data.init_args.batch_size``, ...):
    the model and the data but :data:`SCHEDULE_KEYS`, the global seed, :data:`TRAINER_KEYS`.

    >>> training_settings("model: {objective: hinge, max_g_steps: 5}\nseed_everything: 0\ntrainer: {precision: 32, max_steps: 3}")
    {'model.objective': 'hinge', 'seed_everything': 0, 'trainer.precision': 32}
    """
    config = yaml.safe_load(config_yaml or "") or {}
    if not isinstance(config, dict):
        return {}
    flat = _flat({k: config.get(k) for k in ("model", "data") if config.get(k) is not None})
    flat = {k: v for k, v in flat.items() if k not in SCHEDULE_KEYS}
    if "seed_everything" in config:
        flat["seed_everything"] = config["seed_everything"]
    trainer = config.get("trainer") or {}
    flat.update({f"trainer.{k}": trainer[k] for k in TRAINER_KEYS if k in trainer})
    return flat


def training_differences(before: str | None, now: str | None) -> list[str]:
    """``key (X there, Y here)`` for every training setting (:func:`training_settings`) in which
    two resolved configs differ.

    >>> training_differences("model: {objective: least_squares, max_g_steps: 3}", "model: {objective: non_saturating, max_g_steps: 9}")
    ["model.objective ('least_squares' there, 'non_saturating' here)"]
    """
    a, b = training_settings(before), training_settings(now)
    missing = object()
    return [
        f"{k} ({a.get(k, 'unset')!r} there, {b.get(k, 'unset')!r} here)"
        for k in sorted(set(a) | set(b))
        if a.get(k, missing) != b.get(k, missing)
    ]


def check_resume(resume: Resume, model, config_yaml: str, allow_changes: bool) -> None:
    """Before a resumed run writes anything: refuse one whose checkpoint was trained with other
    settings (one line listing them) unless ``allow_changes``; raise :class:`RunFinished` for a run
    that already reached ``model.max_g_steps``."""
    state = (resume.checkpoint or {}).get("gan_lab") or {}
    recorded = state.get("config")
    if isinstance(recorded, str) and not allow_changes:
        diffs = training_differences(recorded, config_yaml)
        if diffs:
            where = resume.run_dir or Path(resume.ckpt_path).parent
            raise ConfigError(
                f"checkpoint {resume.ckpt_path} was trained with other settings: {'; '.join(diffs)}; resume "
                f"with its config (--config {Path(where) / 'config.yaml'}) or, if the change is intended, "
                "pass --allow_changes true"
            )
    limit = getattr(model, "max_g_steps", None)
    if limit is not None and resume.g_steps >= limit:
        where = resume.run_dir or resume.ckpt_path
        raise RunFinished(
            f"gan-lab fit: the run in {where} already finished at G step {resume.g_steps} "
            f"(model.max_g_steps {limit}); nothing to do. Raise --model.max_g_steps to train it further."
        )


def resumed_config_name(resume: Resume) -> str:
    """The file a resumed session's config is written to, beside the run's first ``config.yaml``
    (which stays as it was).

    >>> resumed_config_name(Resume("x.ckpt", None, g_steps=300))
    'config-resumed-g_steps=300.yaml'
    """
    return f"config-resumed-g_steps={resume.g_steps}.yaml"


_MEMBER_ID = re.compile(r"m(\d+)$")


def wandb_run_ids(run_dir: Path) -> dict[int, str]:
    """``member -> run id`` of the per-seed W&B runs logged into ``run_dir/wandb`` (ids
    ``<base>m<k>``, :class:`gan_lab.dashboard.SeedRunsLogger`), of the newest base when there are
    several; empty when there is none."""
    runs = [p for p in (run_dir / "wandb").glob("*run-*-*") if p.is_dir()]
    by_base: dict[str, tuple[str, dict[int, str]]] = {}
    for p in runs:
        stamp, run_id = p.name.split("-")[-2], p.name.rsplit("-", 1)[-1]
        m = _MEMBER_ID.search(run_id)
        if m is None:
            continue
        newest, ids = by_base.setdefault(run_id[: m.start()], (stamp, {}))
        ids[int(m.group(1))] = run_id
        by_base[run_id[: m.start()]] = (max(newest, stamp), ids)
    return max(by_base.values(), key=lambda v: v[0])[1] if by_base else {}


def _csv_text(header: Sequence[str], rows: Sequence[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class RunExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer with a run's history kept whole: it never deletes an existing
    ``metrics.csv`` (Lightning's does, when it opens a folder that is not empty); given ``keep =
    (source, g_steps, d_steps)`` it starts the file with the source's rows up to those counters;
    and a new column rewrites the file whole (:func:`gan_lab.files.write_whole`), so a kill at any
    moment leaves the rows written so far."""

    def __init__(self, log_dir: str, keep: tuple[Path, int, int] | None = None) -> None:
        self._keep = keep
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        if self._keep is None:
            return
        source, g_steps, d_steps = self._keep
        if not Path(source).is_file():
            return
        kept, header = _rows_until(Path(source), g_steps, d_steps)
        if header:
            write_whole(self.metrics_file_path, _csv_text(header, kept))
            self.metrics_keys = list(header)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if not _torn(r)]
        write_whole(self.metrics_file_path, _csv_text(fieldnames, rows))


class RunCSVLogger(CSVLogger):
    """Lightning's :class:`CSVLogger` writing through :class:`RunExperimentWriter`: a resumed run
    continues its ``metrics.csv`` (``keep``: the rows of which file, up to which counters)."""

    def __init__(self, *args, keep: tuple[Path, int, int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.keep = keep

    @property
    @rank_zero_experiment
    def experiment(self) -> RunExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = RunExperimentWriter(self.log_dir, keep=self.keep)
        return self._experiment


def _torn(row: dict) -> bool:
    """A row cut short by a kill (fewer fields than the header) or run into the next (more)."""
    return None in row or any(v is None for v in row.values())


def _rows_until(path: Path, g_steps: int, d_steps: int) -> tuple[list[dict], list[str]]:
    """The rows of a metrics.csv logged at or before ``(g_steps, d_steps)``, and its header; a
    row torn by a kill is dropped."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows, header = list(reader), list(reader.fieldnames or [])

    def reached(row: dict) -> bool:
        for key, limit in (("step", g_steps), ("d_steps", d_steps)):
            value = row.get(key) or ""
            if value and float(value) > limit:
                return False
        return True

    return [r for r in rows if not _torn(r) and reached(r)], header


class SaveConfigToLoggers(SaveConfigCallback):
    """LightningCLI's :class:`SaveConfigCallback` (``config.yaml`` in the run folder) that also logs
    the resolved config to every logger, as Lightning's docs show: W&B's run config and the CSV
    logger's ``hparams.yaml`` record the optimizers, the data and every other setting that ran."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


CHECKPOINT_ALIASES = ("last", "best", "hpc", "registry")


#: the aliases Lightning resolves itself (``last`` and ``hpc`` are resolved by :mod:`gan_lab.runs`)
LIGHTNING_ALIASES = ("best", "registry")


def run_folder(trainer) -> str | None:
    """The folder this process's run writes (the first logger's ``log_dir``, or its ``save_dir``,
    or ``default_root_dir`` without loggers): ``trainer.log_dir`` without its broadcast, so that
    code running on global rank 0 alone (a final figure) can ask for it without waiting for ranks
    that never ask (a collective call made by one rank waits for ever)."""
    loggers = trainer.loggers
    if not loggers:
        return trainer.default_root_dir
    first = loggers[0]
    return getattr(first, "log_dir", None) or first.save_dir


def data_name(datamodule) -> str:
    """The data's name (``ring8``), the folder its runs go in under ``default_root_dir``."""
    return str(getattr(datamodule, "name", None) or type(datamodule).__name__)


def claim_run_folder(root: str, name: str, resume: Resume | None, loggers: bool) -> tuple[Path, bool]:
    """The folder this fit writes, and whether it was created now: the resumed run's own folder,
    a new ``version_N`` (atomically claimed), or, without loggers, ``root`` itself."""
    if not loggers:
        return Path(root), not Path(root).exists()
    if resume is not None and resume.run_dir is not None:
        return resume.run_dir, False
    return new_version_folder(root, name), True


def default_loggers(model, datamodule, run_dir: Path, resume: Resume | None = None) -> list:
    """CSV and per-seed W&B loggers in ``run_dir`` (a ``version_N`` folder; W&B offline unless
    logged in; one run per seed, grouped by the data's name, tagged by the objective and
    regularizers: see :class:`gan_lab.dashboard.SeedRunsLogger`). A resumed run continues the
    rows of ``resume.history`` up to its checkpoint and, in its own folder, its W&B runs."""
    data = data_name(datamodule)
    keep = None
    if resume is not None and resume.history is not None:
        keep = (resume.history, resume.g_steps, resume.d_steps)
    csv_logger = RunCSVLogger(
        str(run_dir.parent.parent), name=run_dir.parent.name, version=run_dir.name, keep=keep
    )
    _ = csv_logger.experiment  # metrics.csv as the run continues it, before W&B writes into the folder
    objectives = list(dict.fromkeys(model.member_objectives))
    wandb = seed_runs_logger(
        run_dir,
        model.run_seeds,
        group=data,
        name=f"{data}/{'+'.join([*objectives, *model.regularizer_names])}",
        facts=run_facts(model, data),
        objectives=objectives,
        regularizers=model.regularizer_names,
        member_facts=member_facts(model),
        resume=resume,
        media=MediaSettings.from_env(),
    )
    return [csv_logger, wandb]


def seed_runs_logger(
    run_dir: Path,
    seeds: Sequence[int],
    *,
    group: str,
    name: str,
    facts: dict,
    objectives: Sequence[str],
    regularizers: Sequence[str],
    member_facts: list[dict] | None = None,
    resume: Resume | None = None,
    media: MediaSettings | None = None,
) -> SeedRunsLogger:
    """The per-seed W&B runs of a fit in ``run_dir`` (:class:`gan_lab.dashboard.SeedRunsLogger`),
    as a single fit and a study's job both make them: tagged by the objectives and regularizers (a
    mixed ensemble, whose ``member_facts`` name each member's objective: by the regularizers
    only); a resumed fit (``resume``) continues its own runs in its own folder, a branch replays
    the history it starts from."""
    same_runs = resume is not None and not resume.branch and resume.run_dir is not None
    branch = resume is not None and resume.branch and resume.history is not None
    at = (resume.g_steps, resume.d_steps) if resume is not None else None
    return SeedRunsLogger(
        str(run_dir),
        seeds=list(seeds),
        facts=facts,
        member_facts=member_facts,
        group=group,
        name=name,
        tags=[*([] if member_facts else objectives), *regularizers],
        ids=wandb_run_ids(run_dir) if same_runs else None,
        resume_at=at if (same_runs or branch) else None,  # the history up to it, replayed if lost
        history_from=resume.history.parent if branch else None,
        media=media,
    )


def wandb_logged_in() -> bool:
    """Whether W&B has credentials here (``WANDB_API_KEY``, or ``api.wandb.ai`` in ``~/.netrc``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        with open(os.path.expanduser("~/.netrc")) as f:
            return "api.wandb.ai" in f.read()
    except OSError:
        return False


def configure_wandb_mode() -> None:
    """Log to W&B offline unless the user is logged in or chose a mode (``WANDB_MODE``)."""
    if os.environ.get("WANDB_MODE") or wandb_logged_in():
        return
    os.environ["WANDB_MODE"] = "offline"


def finish_wandb(trainer) -> None:
    """Close the W&B runs of a finished fit, returning once their (offline) files are complete."""
    for logger in trainer.loggers:
        if hasattr(logger, "finish") and hasattr(logger, "log_member_metrics"):  # per-seed runs
            logger.finish()
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        close_open_wandb_runs(None, preempted=False)


def close_open_wandb_runs(status: int | None, preempted: bool) -> None:
    """Close every W&B run this process still has open (the per-seed runs, a plain WandbLogger's
    run) with exit ``status``, returning once their files are complete: a fit stopped by a signal
    (``preempted``: marked resumable, so that a resume attaches to their ids) or one that failed
    (diverged, disk full: W&B shows them failed)."""
    seed_runs = sys.modules.get("gan_lab.dashboard.seed_runs")
    if seed_runs is not None:
        seed_runs.finish_open_runs(status, preempted)
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        if preempted:
            wandb.run.mark_preempting()
        finish_written([wandb.run], exit_code=status)
