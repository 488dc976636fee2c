"""``gan-lab fit``: Lightning's ``LightningCLI`` over :class:`~gan_lab.module.GANModule` and any
LightningDataModule, with what the lab adds around it: every check that can fail before work
(:func:`preflight`), the default optimizers in the resolved config, resuming into the run's own
folder (:mod:`gan_lab.runs`), a G-step progress bar, a closing summary, and one line with exit
code 2 for bad input (143 / 130 for a run stopped by SIGTERM / Ctrl-C, its checkpoint saved).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence

from gan_lab.errors import bad_input_in, fail, writable_folder
from gan_lab.runs import (
    CHECKPOINT_ALIASES,
    LIGHTNING_ALIASES,
    data_name,
    default_loggers,
    finish_stopped_wandb_run,
    finish_wandb,
)


def check_optimizers(model) -> None:
    """Build both optimizers once on the model's parameters, so that a bad hyper-parameter (a
    negative learning rate, β outside [0, 1)) is one line before any work, not a traceback at the
    first step after the run folder was written."""
    from gan_lab.errors import ConfigError

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
    from gan_lab.checkpoints import check_checkpoint_fits
    from gan_lab.errors import ConfigError

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
    from gan_lab.module import ADAM_DEFAULTS

    init_args = {k: list(v) if isinstance(v, tuple) else v for k, v in ADAM_DEFAULTS.items()}
    return {"class_path": "gan_lab.optim.Adam", "init_args": init_args}


def build_cli(args: Sequence[str], run: bool = True):
    """The LightningCLI over :class:`~gan_lab.module.GANModule` and any LightningDataModule.

    With ``run=False`` the config is parsed and every object instantiated (model, data, trainer)
    without fitting: :mod:`gan_lab.study` uses this to validate all runs before any of them starts.
    """
    import time

    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from gan_lab.module import GANModule
    from gan_lab.runs import SaveConfigToLoggers

    class GanLabCLI(LightningCLI):
        """LightningCLI that resolves resumes into the run's own folder, runs :func:`preflight`,
        keeps the resolved config in the model and ends a fit with a summary."""

        def add_arguments_to_parser(self, parser) -> None:
            parser.set_defaults(
                {"model.optimizer_g": default_optimizer(), "model.optimizer_d": default_optimizer()}
            )

        def _parse_ckpt_path(self) -> None:
            # LightningCLI would overwrite the given config with the checkpoint's hyper-parameters.
            # Here the config given is the one that runs; `preflight` refuses a checkpoint that
            # does not fit it, with one line.
            return

        def before_fit(self) -> None:
            from lightning.pytorch.plugins.environments import SLURMEnvironment

            from gan_lab.callbacks.progress import use_g_step_progress_bar
            from gan_lab.runs import Resume, hpc_checkpoint, resolve_resume

            config = self.config[self.subcommand]
            loggers = config.trainer.get("logger") in (None, True)
            root = self.trainer.default_root_dir
            ckpt_path, resume = config.get("ckpt_path"), None
            if ckpt_path and ckpt_path not in LIGHTNING_ALIASES:
                dirpaths = [cb.dirpath for cb in self.trainer.checkpoint_callbacks if cb.dirpath]
                resume = resolve_resume(ckpt_path, root, data_name(self.datamodule), loggers, dirpaths)
                ckpt_path = self.config_init[self.subcommand].ckpt_path = resume.ckpt_path
            elif ckpt_path == "hpc" or (ckpt_path is None and SLURMEnvironment.detect()):
                # Lightning resumes from the requeued job's hpc checkpoint itself; the run continues
                # in the folder that checkpoint records.
                hpc = hpc_checkpoint(root)
                resume = Resume.of(hpc) if hpc is not None else None
            read = resume.checkpoint if resume is not None else None
            preflight(self.model, self.datamodule, self.trainer, ckpt_path, loggerless=not loggers, ckpt=read)
            if resume is not None:
                resume.checkpoint = None  # Lightning reads the file itself to restore it
            if loggers:
                self.trainer.loggers = default_loggers(self.model, self.datamodule, root, resume)
            use_g_step_progress_bar(self.trainer)
            self.model.resolved_config = self._parser(self.subcommand).dump(config, skip_none=False)
            self.resume, self.started = resume, time.perf_counter()

        def after_fit(self) -> None:
            finish_wandb(self.trainer)
            print(fit_summary(self.trainer, self.model, time.perf_counter() - self.started, self.resume))

    argv, sys.argv = sys.argv, sys.argv[:1]  # `args` alone drives the parser
    try:
        return GanLabCLI(
            GANModule,
            L.LightningDataModule,
            subclass_mode_data=True,
            args=list(args),
            run=run,
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False},
            # A resumed run writes its config where the first one did; otherwise never overwrite.
            save_config_kwargs={"overwrite": any(a.startswith("--ckpt_path") for a in args)},
            save_config_callback=SaveConfigToLoggers,
        )
    finally:
        sys.argv = argv


def fit_summary(trainer, model, wall_s: float, resume=None) -> str:
    """The paragraph a fit ends with: steps, wall time, the final metrics, where the run is."""
    from lightning.pytorch.callbacks import ModelCheckpoint

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
    folder = trainer.log_dir or trainer.default_root_dir
    last = next(
        (cb.last_model_path for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)), ""
    )
    parts.append(f"Run folder: {folder}" + (f"; checkpoint {last}" if last else "") + ".")
    return " ".join(parts)


def check_config_files(args: Sequence[str]) -> None:
    """Parse every ``--config`` YAML file first, so that a typo is one line naming the file and the
    line (jsonargparse would report it without either)."""
    import yaml

    from gan_lab.errors import ConfigError

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
EXIT_TERMINATED = 143


#: exit status of a fit stopped by Ctrl-C (128 + SIGINT)
EXIT_INTERRUPTED = 130


def fit_main(argv: Sequence[str]) -> int:
    """``gan-lab fit ...`` (``argv`` starts with ``fit``); returns the exit status."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from gan_lab.errors import ConfigError

    try:
        check_config_files(argv[1:])
        build_cli(argv, run=True)
    except ConfigError as e:
        return fail(e)
    except SIGTERMException as e:
        signame = "SIGINT" if "SIGINT" in str(e) else "SIGTERM"
        status = EXIT_INTERRUPTED if signame == "SIGINT" else EXIT_TERMINATED
        finish_stopped_wandb_run(status)
        print(f"gan-lab: stopped by {signame}; resume with --ckpt_path last", file=sys.stderr)
        return status
    except (ValueError, TypeError, ArgumentError, MisconfigurationException) as e:
        cause = bad_input_in(e)
        if cause is None:
            raise
        return fail(cause)
    return 0
