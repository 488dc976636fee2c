"""The ``gan-lab`` command: ``fit`` through LightningCLI, ``study``, ``report``, ``sample``, ``bench``.

    gan-lab fit --config experiments/toy/ring8.yaml --model.objective hinge
    gan-lab fit --config experiments/toy/ring8.yaml --print_config      # the resolved config
    gan-lab study experiments/studies/ring8.yaml
    gan-lab report runs/ring8-demo

Bad input (an unknown objective, regularizer or dataset, an impossible combination, a malformed
argument) ends the command with exit code 2 and one line on stderr, before any training starts.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Sequence

EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print ``gan-lab: error: <message>`` (one line) to stderr and return exit code 2."""
    print(f"gan-lab: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def configure_wandb_mode() -> None:
    """Log to W&B offline unless the user is logged in or chose a mode (``WANDB_MODE``)."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return
    netrc = os.path.expanduser("~/.netrc")
    try:
        with open(netrc) as f:
            if "api.wandb.ai" in f.read():
                return
    except OSError:
        pass
    os.environ["WANDB_MODE"] = "offline"


CHECKPOINT_ALIASES = ("last", "best", "hpc", "registry")
#: the aliases Lightning resolves itself (``last`` is resolved by :mod:`gan_lab.runs`)
LIGHTNING_ALIASES = ("best", "hpc", "registry")


def writable_folder(path: str) -> bool:
    """Whether ``path`` (or the nearest existing folder above it) takes a new entry. Tried for real
    (a temporary folder, removed at once): ``os.access`` says yes to root everywhere."""
    import tempfile

    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return False
    try:
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".gan-lab-probe-"))
    except OSError:
        return False
    return True


def describe_argument_error(text: str) -> str:
    r"""One line from a (nested, multi-line) jsonargparse error: the full key and what was wrong.

    >>> describe_argument_error('Parser key "model.n_critic":\n  Expected a <class \'int\'>. Got value: abc')
    "bad value for model.n_critic: expected an int, got 'abc'"
    >>> describe_argument_error(
    ...     'Parser key "model.max_g_steps":\n  Does not validate against any of the Union subtypes\n'
    ...     "  Subtypes: [<class 'int'>, <class 'NoneType'>]\n  Errors:\n    - Expected a <class 'int'>\n"
    ...     "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: abc"
    ... )
    "bad value for model.max_g_steps: expected an int or null, got 'abc'"
    """
    import re

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keys = [m.group(1) for line in lines if (m := re.match(r'Parser key "([^"]+)"', line))]
    # The innermost "Expected a <class T>. Got value: V" names the exact problem; a union of plain
    # types lists one "- Expected a <class T>" per type, then "Given value: V".
    exact = re.compile(r"Expected a <class '([\w.]+)'>\. Got value: (.*)$")
    inner = next((m for line in lines if (m := exact.search(line))), None)
    if inner is not None:
        expected, value = [_type_name(inner.group(1))], inner.group(2)
    else:
        value = next((m.group(1) for line in lines if (m := re.match(r"Given value: (.*)$", line))), None)
        union = re.compile(r"- Expected a <class '([\w.]+)'>")
        expected = [_type_name(m.group(1)) for line in lines if (m := union.fullmatch(line))]
    if not keys or value is None or not expected:
        return " ".join(lines[:3])[:300] if lines else "bad arguments; see gan-lab fit --help"
    return f"bad value for {'.'.join(keys)}: expected {' or '.join(dict.fromkeys(expected))}, got {value!r}"


def _type_name(name: str) -> str:
    """``int`` -> ``an int``, ``NoneType`` -> ``null`` (as YAML writes it)."""
    words = {
        "NoneType": "null",
        "int": "an int",
        "float": "a number",
        "bool": "true or false",
        "str": "a string",
    }
    return words.get(name, f"a {name}")


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


def preflight(model, datamodule, trainer, ckpt_path: str | None = None, loggerless: bool = False) -> None:
    """Every check that can fail before training starts, each with a one-line ConfigError:
    missing pretrained weights, data that does not fit the nets, optimizer settings torch refuses,
    a checkpoint of another config, an output folder that cannot be written, a loggerless run
    into a folder that already holds one."""
    from gan_lab.checkpoints import check_checkpoint_fits
    from gan_lab.errors import ConfigError

    model.check_ready()
    model.check_data(datamodule)
    check_optimizers(model)
    if ckpt_path is not None and ckpt_path not in CHECKPOINT_ALIASES:
        check_checkpoint_fits(ckpt_path, model)
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


def data_name(datamodule) -> str:
    """The data's name (``ring8``), the folder its runs go in under ``default_root_dir``."""
    return str(getattr(datamodule, "name", None) or type(datamodule).__name__)


def default_loggers(model, datamodule, root: str, resume=None) -> list:
    """CSV and W&B loggers in ``root/<data>/version_N`` (W&B offline unless logged in; the group is
    the data's name, the tags the objective and regularizers). A resumed run (``resume``, a
    :class:`gan_lab.runs.Resume` in a ``version_N`` folder) continues that folder and W&B run."""
    from gan_lab.runs import RunCSVLogger, RunWandbLogger, wandb_run_id

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
    tags = [model.objective.name, *model.regularizer_names]
    run_id = wandb_run_id(run_dir) if run_dir is not None else None
    wandb = RunWandbLogger(
        save_dir=csv.log_dir,
        project="gan_lab",
        group=data,
        tags=tags,
        name=f"{data}/{'+'.join(tags)}",
        **({"id": run_id, "resume": "allow"} if run_id else {}),
    )
    return [csv, wandb]


def finish_wandb(trainer) -> None:
    """Close the W&B run of a finished fit, so that its (offline) files are complete."""
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        wandb.finish()


def finish_stopped_wandb_run(status: int) -> None:
    """Close the W&B run of a fit stopped by a signal, marked as preempted (resumable) with the
    process's exit status, so that its files are complete and a resume can attach to its id."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.run.mark_preempting()
        wandb.finish(exit_code=status)


def default_optimizer() -> dict:
    """GANModule's default optimizer (:data:`gan_lab.module.ADAM_DEFAULTS`) as a config entry: written
    into every resolved config, so that ``--model.optimizer_d.init_args.lr`` works and runs record it."""
    from gan_lab.module import ADAM_DEFAULTS

    init_args = {k: list(v) if isinstance(v, tuple) else v for k, v in ADAM_DEFAULTS.items()}
    return {"class_path": "torch.optim.Adam", "init_args": init_args}


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
            preflight(self.model, self.datamodule, self.trainer, ckpt_path, loggerless=not loggers)
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
        f" ({model.objective.name}, {model.members or 1} member(s))."
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


def config_error_in(exc: BaseException):
    """The :class:`ConfigError` that caused ``exc`` (jsonargparse wraps errors raised while it
    instantiates classes), or None."""
    from gan_lab.errors import ConfigError

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def bad_input_in(exc: BaseException) -> str | None:
    """The one line a configuration or argument error means for the user (a :class:`ConfigError`
    raised while instantiating, Lightning's refusal of an accelerator, or jsonargparse's own
    complaint), or None for any other error."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    cause = config_error_in(exc)
    if cause is not None:
        return str(cause)
    if isinstance(exc, MisconfigurationException):
        return describe_misconfiguration(str(exc))
    return describe_argument_error(str(exc)) if isinstance(exc, ArgumentError) else None


def describe_misconfiguration(text: str) -> str:
    """One line for Lightning's refusal of a Trainer setting (an accelerator this machine lacks).

    >>> describe_misconfiguration("No supported gpu backend found!")
    'trainer.accelerator: the device asked for is not on this machine (No supported gpu backend found!); use --trainer.accelerator cpu or auto'
    """
    import re

    one_line = " ".join(text.split())
    if re.search(r"can not run on your system|No supported .* backend found|not available", one_line):
        return (
            f"trainer.accelerator: the device asked for is not on this machine ({one_line[:160]}); use "
            "--trainer.accelerator cpu or auto"
        )
    return one_line[:300]


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


def _lightning(argv: Sequence[str]) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from gan_lab.console import quiet_lightning

    configure_wandb_mode()
    quiet_lightning()
    # "Seed set to N" would precede a one-line error; the seed is in the saved config anyway.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    command, rest = argv[0], argv[1:]
    if command == "fit":
        return _lightning(argv)
    if command == "study":
        from gan_lab.study import study_main

        return study_main(rest)
    if command == "bench":
        from gan_lab.bench import bench_main

        return bench_main(rest)
    if command == "report":
        from gan_lab.study import report_main

        return report_main(rest)
    if command == "sample":
        from gan_lab.sample import sample_main

        return sample_main(rest)
    return fail(f"unknown command {command!r}; valid commands: fit, study, report, sample, bench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
