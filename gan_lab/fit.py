"""``gan-lab fit``: Lightning's ``LightningCLI`` over :class:`~gan_lab.module.GANModule` and any
LightningDataModule, with what the lab adds around it: every check that can fail before work
(:func:`preflight`), the default optimizers in the resolved config, resuming into the run's own
folder (:mod:`gan_lab.runs`), a G-step progress bar, a closing summary, and one line with exit
code 2 for bad input (143 / 130 for a run stopped by SIGTERM / Ctrl-C, its checkpoint saved).
"""

from __future__ import annotations

import difflib
import errno
import itertools
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import yaml
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gan_lab.callbacks.checkpoint import WholeCheckpointIO
from gan_lab.callbacks.guard import TrainingDiverged
from gan_lab.callbacks.progress import use_g_step_progress_bar
from gan_lab.checkpoints import check_checkpoint_fits
from gan_lab.console import say
from gan_lab.errors import ConfigError, bad_input_in, describe_argument_error, fail, writable_folder
from gan_lab.files import LOCK_FILE, FolderLock, clean_orphans
from gan_lab.module import ADAM_DEFAULTS, GANModule
from gan_lab.runs import (
    CHECKPOINT_ALIASES,
    LIGHTNING_ALIASES,
    RunFinished,
    SaveConfigToLoggers,
    check_resume,
    claim_run_folder,
    close_open_wandb_runs,
    data_name,
    default_loggers,
    finish_wandb,
    hpc_checkpoint,
    resolve_resume,
    resumed_config_name,
    run_folder,
)


def check_optimizers(model) -> None:
    """Build both optimizers once on the model's parameters, so that a bad hyper-parameter (a
    negative learning rate, β outside [0, 1)) is one line before any work, not a traceback at the
    first step after the run folder was written."""

    for player, factory, net in (("G", model.optimizer_g, model.G), ("D", model.optimizer_d, model.D)):
        try:
            factory(net.parameters())
        except (ValueError, TypeError) as e:
            key = f"optimizer_{player.lower()}"
            raise ConfigError(f"model.{key} (the {player} optimizer) is refused by torch: {e}") from None


def preflight(
    model,
    datamodule,
    trainer,
    ckpt_path: str | None = None,
    loggerless: bool = False,
    ckpt: dict | None = None,
) -> None:
    """Every check that can fail before training starts, each with a one-line ConfigError:
    missing pretrained weights, data that does not fit the nets, optimizer settings torch refuses,
    a checkpoint of another config, an output folder that cannot be written, a loggerless run
    into a folder that already holds one. ``ckpt``: the checkpoint at ``ckpt_path`` already read."""

    model.check_ready()
    model.check_data(datamodule)
    check_optimizers(model)
    if ckpt_path is not None and ckpt_path not in CHECKPOINT_ALIASES:
        check_checkpoint_fits(ckpt_path, model, ckpt)
    root = trainer.default_root_dir
    if not writable_folder(root):
        raise ConfigError(
            f"output folder {root!r} is not writable; set --trainer.default_root_dir to a folder you can write"
        )
    if loggerless and ckpt_path is None and os.path.isfile(os.path.join(root, "config.yaml")):
        raise ConfigError(
            f"{os.path.join(root, 'config.yaml')} exists: an earlier run without loggers wrote into "
            f"{root!r}; resume it with --ckpt_path last, or choose another --trainer.default_root_dir"
        )


def default_optimizer() -> dict:
    """GANModule's default optimizer (:data:`gan_lab.module.ADAM_DEFAULTS`) as a config entry: written
    into every resolved config, so that ``--model.optimizer_d.init_args.lr`` works and runs record it."""

    init_args = {k: list(v) if isinstance(v, tuple) else v for k, v in ADAM_DEFAULTS.items()}
    return {"class_path": "gan_lab.optim.Adam", "init_args": init_args}


def build_cli(args: Sequence[str], run: bool = True):
    """The LightningCLI over :class:`~gan_lab.module.GANModule` and any LightningDataModule.

    With ``run=False`` the config is parsed and every object instantiated (model, data, trainer)
    without fitting: :mod:`gan_lab.study` uses this to validate all runs before any of them starts.
    """

    class GanLabCLI(LightningCLI):
        """LightningCLI that resolves resumes into the run's own folder, runs :func:`preflight`,
        keeps the resolved config in the model and ends a fit with a summary."""

        def add_arguments_to_parser(self, parser) -> None:
            parser.set_defaults(
                {"model.optimizer_g": default_optimizer(), "model.optimizer_d": default_optimizer()}
            )
            parser.add_argument(
                "--branch",
                type=bool,
                default=False,
                help="Continue --ckpt_path in a new version folder (a checkpoint older than its run's newest "
                "state is refused without it); the original run is left as it is.",
            )
            parser.add_argument(
                "--allow_changes",
                type=bool,
                default=False,
                help="Resume --ckpt_path although settings that change training (objective, nets, penalties, "
                "optimizers, data) differ from the checkpoint's recorded config.",
            )

        def parse_arguments(self, parser, args) -> None:
            # LightningCLI's own warns when sys.argv holds arguments too: as the command it does (the
            # DDP launcher needs them), and they are `args`.

            try:
                self.config = parser.parse_args(args)
            except ArgumentError as e:
                # the keys live in the `fit` subcommand's parser (LightningCLI's private map of
                # them; guarded in tests/test_private_apis.py); without subcommands, in `parser`
                keys_from = getattr(self, "_subcommand_parsers", {}).get("fit", parser)
                raise ConfigError(suggest_keys(str(e), keys_from)) from None

        def before_instantiate_classes(self) -> None:
            # Each backward of GANModule reaches only G or only D: DDP needs find_unused_parameters.
            # Several devices with the default strategy get Lightning's DDP with it switched on.
            config = (
                self.config[self.subcommand] if self.subcommand else self.config
            )  # (run=False: no subcommand)
            trainer = config.trainer
            if trainer.get("strategy", "auto") == "auto" and several_devices(trainer.get("devices")):
                trainer.strategy = "ddp_find_unused_parameters_true"

        def _parse_ckpt_path(self) -> None:
            # LightningCLI would overwrite the given config with the checkpoint's hyper-parameters.
            # Here the config given is the one that runs; `preflight` refuses a checkpoint that
            # does not fit it, with one line, and `check_resume` one trained with other settings.
            return

        def before_fit(self) -> None:

            config = self.config[self.subcommand]
            loggers = config.trainer.get("logger") in (None, True)
            root = self.trainer.default_root_dir
            ckpt_path, resume = config.get("ckpt_path"), None
            if config.get("branch") and not ckpt_path:
                raise ConfigError("--branch true continues a checkpoint: give it with --ckpt_path")
            if ckpt_path is None and SLURMEnvironment.detect() and hpc_checkpoint(root) is not None:
                ckpt_path = "hpc"  # a requeued SLURM job continues from what its requeue saved
            if ckpt_path and ckpt_path not in LIGHTNING_ALIASES:
                dirpaths = [cb.dirpath for cb in self.trainer.checkpoint_callbacks if cb.dirpath]
                resume = resolve_resume(
                    ckpt_path, root, data_name(self.datamodule), loggers, dirpaths, bool(config.get("branch"))
                )
                ckpt_path = self.config_init[self.subcommand].ckpt_path = resume.ckpt_path
            read = resume.checkpoint if resume is not None else None
            preflight(self.model, self.datamodule, self.trainer, ckpt_path, loggerless=not loggers, ckpt=read)
            self.model.resolved_config = self._parser(self.subcommand).dump(config, skip_none=False)
            if resume is not None:
                check_resume(
                    resume, self.model, self.model.resolved_config, bool(config.get("allow_changes"))
                )
                resume.checkpoint = None  # Lightning reads the file itself to restore it
            self.run_dir, self.lock = claim(self.trainer, self.model, self.datamodule, resume, loggers)
            if resume is not None:
                config_file_for_resume(self.trainer, resume)
                if resume.note:
                    say(f"gan-lab: {resume.note}")
            use_g_step_progress_bar(self.trainer)
            self.resume, self.started = resume, time.perf_counter()

        def after_fit(self) -> None:
            finish_wandb(self.trainer)
            if self.lock is not None:
                self.lock.release()
            if self.trainer.is_global_zero:
                print(fit_summary(self.trainer, self.model, time.perf_counter() - self.started, self.resume))

    # `args` alone drives the parser. Run as the `gan-lab` command, the process's own argv stays:
    # Lightning's DDP launcher starts the other ranks by running that command line again.
    argv = sys.argv
    sys.argv = [argv[0], *args] if AS_COMMAND else argv[:1]
    try:
        with FolderLock.scope():
            return GanLabCLI(
                GANModule,
                L.LightningDataModule,
                subclass_mode_data=True,
                args=list(args),
                run=run,
                auto_configure_optimizers=False,
                # an abbreviated key (--model.max_g_step) is an unknown key, not a guess
                parser_kwargs={"exit_on_error": False, "allow_abbrev": False},
                # A new run's config.yaml is never overwritten; a resumed session writes its own beside it.
                save_config_kwargs={"overwrite": False},
                save_config_callback=SaveConfigToLoggers,
            )
    finally:
        sys.argv = argv


def several_devices(devices) -> bool:
    """Whether a ``trainer.devices`` value asks for more than one device.

    >>> [several_devices(d) for d in (1, "1", "auto", None, 2, "2", [0, 1], "0,1", -1)]
    [False, False, False, False, True, True, True, True, True]
    """
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    if isinstance(devices, str):
        if "," in devices:
            return len([d for d in devices.split(",") if d.strip()]) > 1
        devices = int(devices) if devices.strip().lstrip("-").isdigit() else 1
    return isinstance(devices, int) and (devices > 1 or devices == -1)


def suggest_keys(message: str, parser) -> str:
    """jsonargparse's error, with the close keys named for each unrecognized ``--key`` (an
    abbreviation or a typo: ``--model.max_g_step`` -> ``model.max_g_steps``)."""
    text = " ".join(message.split())
    unknown = (
        re.findall(r"--([\w.]+)", text.split("unrecognized arguments:", 1)[1])
        if "unrecognized arguments:" in text
        else []
    )
    if not unknown:
        return describe_argument_error(message)
    try:
        keys = [k.removeprefix("fit.") for k in parser.get_defaults().keys()]  # noqa: SIM118 (dotted keys)
    except Exception:  # defaults that cannot be resolved alone: no suggestion, the error stays
        keys = []
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, keys, n=2, cutoff=0.75)
        hints.append(
            f"--{key}" + (f" (did you mean {' or '.join('--' + c for c in close)}?)" if close else "")
        )
    return f"unknown argument {', '.join(hints)}; `gan-lab fit --help` lists the keys"


#: whether this process is the ``gan-lab`` command itself (set by :func:`gan_lab.cli.main` when it
#: reads ``sys.argv``): only then can Lightning's DDP launcher start the other ranks by running the
#: command line again; a fit called in-process (a test, a notebook) with several devices is refused
AS_COMMAND = False


def check_launch(trainer) -> None:
    """Refuse, before any work, a multi-process fit that Lightning would launch by running this
    process's command line again when this process is not the ``gan-lab`` command (the other ranks
    would run something else, and rank 0 would wait for them for ever)."""

    launcher = trainer.strategy.launcher
    ranks = trainer.num_devices * trainer.num_nodes
    relaunches = launcher is not None and not launcher.is_interactive_compatible
    started_by_launcher = os.environ.get("LOCAL_RANK") is not None
    if ranks > 1 and relaunches and not AS_COMMAND and not started_by_launcher:
        raise ConfigError(
            f"trainer.devices/num_nodes ask for {ranks} processes, which Lightning starts by running the command "
            "line again: run this fit as the gan-lab command (gan-lab fit ...), or with torchrun / srun"
        )


def claim(trainer, model, datamodule, resume, loggers: bool):
    """Take the run folder for this fit (global rank 0 writes; the other ranks only read what it
    broadcasts): the resumed run's own folder, a new ``version_N`` or, without loggers, the root;
    lock it (one writer per folder), clear the temporary files a killed writer left, build the
    default loggers in it and have checkpoints written whole. Returns ``(run folder, lock)``."""

    check_launch(trainer)
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = WholeCheckpointIO()
    root, name = trainer.default_root_dir, data_name(datamodule)
    if getattr(rank_zero_only, "rank", 0) != 0:  # another rank: rank 0 claims and writes the folder
        if loggers:
            trainer.loggers = default_loggers(model, datamodule, Path(root) / name / "rank_nonzero", resume)
        return None, None
    run_dir, created = claim_run_folder(root, name, resume, loggers)
    if created:
        _CREATED.append(run_dir)
    try:
        lock = FolderLock.acquire(run_dir, "run folder")
        for folder in (run_dir, run_dir / "checkpoints"):
            clean_orphans(folder)
        if loggers:
            trainer.loggers = default_loggers(model, datamodule, run_dir, resume)
    except BaseException:
        if created:  # a refusal leaves no empty version_N behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir, lock


#: run folders this process created for a fit (a refusal later in the set-up removes them while
#: they hold nothing but the lock file: bad input leaves nothing behind)
_CREATED: list = []


def drop_empty_claims() -> None:
    """Remove the run folders this process created that hold nothing but their lock file."""

    while _CREATED:
        folder = _CREATED.pop()
        files = [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()] if folder.is_dir() else []
        if all(p.name == LOCK_FILE for p in files):
            shutil.rmtree(folder, ignore_errors=True)


def config_file_for_resume(trainer, resume) -> None:
    """A resumed session writes its resolved config beside the run's ``config.yaml`` (which stays
    as the first session wrote it), or, for a branch, as the new folder's ``config.yaml``."""

    for cb in trainer.callbacks:
        if isinstance(cb, SaveConfigToLoggers) and not resume.branch and resume.run_dir is not None:
            cb.config_filename, cb.overwrite = resumed_config_name(resume), True


def fit_summary(trainer, model, wall_s: float, resume=None) -> str:
    """The paragraph a fit ends with: steps, wall time, the final metrics, where the run is."""

    start = f"resumed at G step {resume.g_steps}, " if resume is not None else ""
    parts = [
        f"gan-lab fit: {start}{model.g_steps} G steps and {model.d_steps} D steps in {wall_s:.1f} s"
        f" ({model.objective.name if len(set(model.member_objectives)) == 1 else ', '.join(dict.fromkeys(model.member_objectives))}, {model.members or 1} member(s))."
    ]
    if "cpu_threads_used" in model.hparams:
        parts.append(f"CPU threads: {model.hparams['cpu_threads_used']} ({model.cpu_threads_reason}).")
    final = {
        k: float(v)
        for k, v in trainer.callback_metrics.items()
        if "/" in k and not k.endswith("_se") and v.numel() == 1
    }
    if final:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(final.items()))
        parts.append(f"Last logged: {shown}.")
    folder = run_folder(trainer)
    last = next(
        (cb.last_model_path for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)), ""
    )
    parts.append(f"Run folder: {folder}" + (f"; checkpoint {last}" if last else "") + ".")
    return " ".join(parts)


def check_config_files(args: Sequence[str]) -> None:
    """Parse every ``--config`` YAML file first, so that a typo is one line naming the file and the
    line (jsonargparse would report it without either)."""
    paths = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    paths += [b for a, b in itertools.pairwise(args) if a in ("--config", "-c")]
    for path in paths:
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path} does not exist")
        try:
            with open(path) as f:
                yaml.safe_load(f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{where}: not valid YAML ({problem})") from None


#: exit status of a fit stopped by SIGTERM (128 + 15), so that schedulers see it did not finish
EXIT_TERMINATED = 128 + 15


#: exit status of a fit stopped by Ctrl-C (128 + SIGINT)
EXIT_INTERRUPTED = 128 + 2

#: exit status of a fit that could not go on (it diverged, the disk is full): one line says why
EXIT_FAILED = 1


def stopped_by(exc: BaseException) -> str:
    """The signal a ``SIGTERMException`` stopped the fit for: Lightning raises it bare for SIGTERM,
    :class:`gan_lab.callbacks.PreemptionCheckpoint` with ``"<SIGNAL>: checkpoint saved"``.

    >>> stopped_by(Exception("SIGUSR1: checkpoint saved")), stopped_by(Exception(""))
    ('SIGUSR1', 'SIGTERM')
    """
    m = re.match(r"(SIG[A-Z0-9]+)\b", str(exc))
    return m.group(1) if m else "SIGTERM"


def disk_full_in(exc: BaseException) -> OSError | None:
    """The "no space left on device" error behind ``exc`` (Lightning and torch wrap it), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        if "No space left on device" in str(exc) or "file write failed" in str(exc):
            return OSError(errno.ENOSPC, "No space left on device")
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def fit_main(argv: Sequence[str]) -> int:
    """``gan-lab fit ...`` (``argv`` starts with ``fit``); returns the exit status."""

    _CREATED.clear()
    try:
        check_config_files(argv[1:])
        build_cli(argv, run=True)
    except ConfigError as e:
        drop_empty_claims()
        return fail(e)
    except RunFinished as e:
        print(e)
        return 0
    except SIGTERMException as e:
        signame = stopped_by(e)
        status = (
            128 + signal.Signals[signame].value if signame in signal.Signals.__members__ else EXIT_TERMINATED
        )
        close_open_wandb_runs(status, preempted=True)
        print(f"gan-lab: stopped by {signame}; resume with --ckpt_path last", file=sys.stderr)
        return status
    except TrainingDiverged as e:
        close_open_wandb_runs(EXIT_FAILED, preempted=False)
        print(f"gan-lab: training diverged: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, TypeError, ArgumentError, MisconfigurationException) as e:
        cause = bad_input_in(e)
        if cause is None:
            raise
        drop_empty_claims()
        return fail(cause)
    except Exception as e:
        full = disk_full_in(e)
        if full is None:
            raise
        close_open_wandb_runs(EXIT_FAILED, preempted=False)
        where = f" while writing {full.filename}" if getattr(full, "filename", None) else ""
        print(
            f"gan-lab: the disk is full{where} ({full.strerror}); free space, then resume with "
            "--ckpt_path last (checkpoints are written whole: the newest complete one is kept)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0
