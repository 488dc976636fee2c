"""Run folders: where ``gan-lab fit`` writes a run, and where a resumed run continues.

A fit with the default loggers writes ``<default_root_dir>/<data>/version_N/`` (``config.yaml``,
``metrics.csv``, ``checkpoints/``, ``wandb/``); with ``--trainer.logger false`` it writes into
``<default_root_dir>`` itself. Resuming (``--ckpt_path last`` or a path) continues *in the run's
own folder*: the same ``version_N``, its ``metrics.csv`` continued (rows the checkpoint had not yet
reached are dropped, so the file reads as if the run had never stopped) and the same W&B runs (one
per seed, :class:`gan_lab.dashboard.SeedRunsLogger`; each member's run id is found again in the
folder, :func:`wandb_run_ids`).

``--ckpt_path last`` means the ``checkpoints/last.ckpt`` of the newest ``version_N`` of this data
under ``default_root_dir`` (or ``<default_root_dir>/checkpoints/last.ckpt`` without loggers); when
there is none the fit is refused with one line naming where it looked. The run folder is the one
the checkpoint records (``checkpoint["gan_lab"]["run_dir"]``), else the ``version_N`` the file lies
in. A SLURM job that Lightning requeued resumes from its ``hpc_ckpt_<n>.ckpt`` by itself; it too
continues in the folder that checkpoint records.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger

from gan_lab.errors import ConfigError

_VERSION = re.compile(r"version_(\d+)$")
_HPC = re.compile(r"hpc_ckpt_(\d+)\.ckpt$")


@dataclass
class Resume:
    """A checkpoint to resume from, the run folder it belongs to (None: not a ``version_N``
    folder, e.g. a checkpoint copied elsewhere; the run then gets a new folder) and the module's
    counters in it. ``checkpoint``: the file as read, for the check that it fits the model (read
    once; the CLI drops it after that check)."""

    ckpt_path: str
    run_dir: Path | None
    g_steps: int = 0
    d_steps: int = 0
    checkpoint: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, ckpt_path: str) -> Resume:
        """Read the counters of ``ckpt_path`` (one line if it is no checkpoint)."""
        from gan_lab.checkpoints import load_checkpoint

        ckpt = load_checkpoint(ckpt_path)
        state = ckpt.get("gan_lab") or {}
        g, d = int(state.get("g_steps", 0)), int(state.get("d_steps", 0))
        saved = state.get("run_dir")  # where the run was logging (also for files saved elsewhere)
        if isinstance(saved, str) and _VERSION.match(Path(saved).name) and Path(saved).is_dir():
            return cls(ckpt_path, Path(saved).resolve(), g, d, ckpt)
        return cls(ckpt_path, run_dir_of(ckpt_path), g, d, ckpt)


def versions(root: str | os.PathLike, name: str) -> list[tuple[int, Path]]:
    """``(N, folder)`` of every ``<root>/<name>/version_N``, by N."""
    base = Path(root) / name
    found = [(int(m.group(1)), p) for p in base.glob("version_*") if (m := _VERSION.match(p.name))]
    return sorted(found)


def run_dir_of(ckpt_path: str) -> Path | None:
    """The ``version_N`` folder a checkpoint lies in (``version_N/checkpoints/x.ckpt``), or None."""
    parent = Path(ckpt_path).resolve().parent
    if parent.name == "checkpoints" and _VERSION.match(parent.parent.name):
        return parent.parent
    return None


def resolve_resume(
    ckpt_path: str, root: str, name: str, loggers: bool, dirpaths: Sequence[str] = ()
) -> Resume:
    """What ``--ckpt_path`` means for a run of data ``name`` under ``root`` (see the module doc);
    ``dirpaths``: the folders ModelCheckpoint callbacks were configured to write into, where
    ``last`` also looks (as Lightning does)."""
    if ckpt_path != "last":
        return Resume.of(ckpt_path)
    if loggers:
        candidates = [d / "checkpoints" / "last.ckpt" for _, d in versions(root, name)]
        where = [os.path.join(root, name, "version_*", "checkpoints", "last.ckpt")]
    else:
        candidates = [Path(root) / "checkpoints" / "last.ckpt"]
        where = [str(candidates[0])]
    candidates += [Path(d) / "last.ckpt" for d in dirpaths]
    where += [os.path.join(d, "last.ckpt") for d in dirpaths]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise ConfigError(
            f"--ckpt_path last: no checkpoint at {' or '.join(where)}; pass the --trainer.default_root_dir "
            "the run used, or the checkpoint's path"
        )
    return Resume.of(str(max(found, key=lambda c: c.stat().st_mtime)))


def hpc_checkpoint(root: str) -> str | None:
    """The newest ``hpc_ckpt_<n>.ckpt`` in ``root``: what Lightning's SLURM requeue wrote (and what
    it resumes from, by itself, in the requeued job), or None."""
    found = [(int(m.group(1)), p) for p in Path(root).glob("hpc_ckpt_*.ckpt") if (m := _HPC.match(p.name))]
    return str(max(found)[1]) if found else None


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


class RunCSVLogger(CSVLogger):
    """Lightning's :class:`CSVLogger`, but a resumed run continues its ``metrics.csv``.

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it opens a folder that is not
    empty. Here, when ``keep_until = (g_steps, d_steps)`` is given (the counters of the checkpoint
    resumed from), the file's rows up to that point are kept and new rows are appended; rows past
    it (logged after the checkpoint was written, then lost with the process) are dropped.
    """

    def __init__(self, *args, keep_until: tuple[int, int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.keep_until = keep_until

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        kept, header = [], None
        if self.keep_until is not None and path.is_file():
            kept, header = _rows_until(path, *self.keep_until)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Previous log files in this directory")
            experiment = super().experiment
        if header:
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header)
                writer.writeheader()
                writer.writerows(kept)
            experiment.metrics_keys = list(header)
        return experiment


def _rows_until(path: Path, g_steps: int, d_steps: int) -> tuple[list[dict], list[str]]:
    """The rows of a metrics.csv logged at or before ``(g_steps, d_steps)``, and its header."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows, header = list(reader), list(reader.fieldnames or [])

    def reached(row: dict) -> bool:
        for key, limit in (("step", g_steps), ("d_steps", d_steps)):
            value = row.get(key) or ""
            if value and float(value) > limit:
                return False
        return True

    return [r for r in rows if reached(r)], header


class SaveConfigToLoggers(SaveConfigCallback):
    """LightningCLI's :class:`SaveConfigCallback` (``config.yaml`` in the run folder) that also logs
    the resolved config to every logger, as Lightning's docs show: W&B's run config and the CSV
    logger's ``hparams.yaml`` record the optimizers, the data and every other setting that ran."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        import yaml

        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


CHECKPOINT_ALIASES = ("last", "best", "hpc", "registry")


#: the aliases Lightning resolves itself (``last`` is resolved by :mod:`gan_lab.runs`)
LIGHTNING_ALIASES = ("best", "hpc", "registry")


def data_name(datamodule) -> str:
    """The data's name (``ring8``), the folder its runs go in under ``default_root_dir``."""
    return str(getattr(datamodule, "name", None) or type(datamodule).__name__)


def default_loggers(model, datamodule, root: str, resume=None) -> list:
    """CSV and per-seed W&B loggers in ``root/<data>/version_N`` (W&B offline unless logged in; one
    run per seed, grouped by the data's name, tagged by the objective and regularizers: see
    :class:`gan_lab.dashboard.SeedRunsLogger`). A resumed run (``resume``, a
    :class:`gan_lab.runs.Resume` in a ``version_N`` folder) continues that folder and its W&B runs."""
    from gan_lab.dashboard.facts import member_facts, run_facts
    from gan_lab.dashboard.media import MediaSettings
    from gan_lab.dashboard.seed_runs import SeedRunsLogger
    from gan_lab.runs import RunCSVLogger, wandb_run_ids

    data = data_name(datamodule)
    run_dir = resume.run_dir if resume is not None else None
    if run_dir is not None:
        csv = RunCSVLogger(
            str(run_dir.parent.parent),
            name=run_dir.parent.name,
            version=run_dir.name,
            keep_until=(resume.g_steps, resume.d_steps),
        )
    else:
        csv = RunCSVLogger(root, name=data)
    _ = csv.experiment  # the run folder exists (and is empty) before W&B writes into it
    objectives = list(dict.fromkeys(model.member_objectives))
    own = member_facts(model)  # a mixed ensemble: each member's objective is its own tag
    tags = [*([] if own else objectives), *model.regularizer_names]
    wandb = SeedRunsLogger(
        csv.log_dir,
        seeds=model.run_seeds,
        facts=run_facts(model, data),
        member_facts=own,
        group=data,
        name=f"{data}/{'+'.join([*objectives, *model.regularizer_names])}",
        tags=tags,
        ids=wandb_run_ids(run_dir) if run_dir is not None else None,
        media=MediaSettings.from_env(),
    )
    return [csv, wandb]


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
    """Close the W&B runs of a finished fit, so that their (offline) files are complete."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if hasattr(logger, "finish") and hasattr(logger, "log_member_metrics"):  # per-seed runs
            logger.finish()
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        wandb.finish()


def finish_stopped_wandb_run(status: int) -> None:
    """Close the W&B runs of a fit stopped by a signal, marked as preempted (resumable) with the
    process's exit status, so that their files are complete and a resume can attach to their ids."""
    seed_runs = sys.modules.get("gan_lab.dashboard.seed_runs")
    if seed_runs is not None:
        seed_runs.finish_open_runs(status)
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.run.mark_preempting()
        wandb.finish(exit_code=status)
