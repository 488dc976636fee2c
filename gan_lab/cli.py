"""The ``gan-lab`` command: ``fit`` through LightningCLI, ``study``, ``report``, ``sample``, ``bench``.

    gan-lab fit --config experiments/toy/ring8.yaml --model.objective hinge
    gan-lab fit --config experiments/toy/ring8.yaml --print_config      # the resolved config
    gan-lab study experiments/studies/ring8.yaml
    gan-lab report runs/ring8-demo

Bad input (an unknown objective, regularizer or dataset, an impossible combination, a malformed
argument) ends the command with exit code 2 and one line on stderr, before any training starts.
"""

from __future__ import annotations

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
    'bad value for model.n_critic: expected a int, got value: abc'
    """
    import re

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keys = [m.group(1) for line in lines if (m := re.match(r'Parser key "([^"]+)"', line))]
    detail = next((line for line in lines if line.startswith("Expected a") or "Got value" in line), None)
    if not keys or detail is None:
        return " ".join(lines[:3])[:300] if lines else "bad arguments; see gan-lab fit --help"
    detail = re.sub(r"<class '([\w.]+)'>", r"\1", detail).replace(". Got value", ", got value")
    return f"bad value for {'.'.join(keys)}: {detail[0].lower()}{detail[1:]}"


def check_checkpoint_fits(ckpt_path: str, model) -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (another config), before any work."""
    import torch

    from gan_lab.errors import ConfigError

    if not os.path.isfile(ckpt_path):
        raise ConfigError(f"checkpoint {ckpt_path!r} not found; pass an existing .ckpt file or 'last'")
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as e:  # any failure means the file cannot be resumed from
        raise ConfigError(
            f"cannot read checkpoint {ckpt_path!r} ({type(e).__name__}); is it a gan_lab checkpoint?"
        ) from None
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = [k for k in ours if k in state and tuple(ours[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        if shapes:
            k = shapes[0]
            what = f"{k} has shape {tuple(state[k].shape)} there but {tuple(ours[k].shape)} here"
        elif missing:
            what = f"it lacks {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        else:
            what = f"it has {unexpected[0]}, which this model lacks"
        raise ConfigError(
            f"checkpoint {ckpt_path!r} was trained with another config ({what}); resume with the config "
            "saved beside it (config.yaml)"
        )


def preflight(model, datamodule, trainer, ckpt_path: str | None = None) -> None:
    """Every check that can fail before training starts, each with a one-line ConfigError:
    missing pretrained weights, data that does not fit the nets, a checkpoint of another config,
    an output folder that cannot be written."""
    from gan_lab.errors import ConfigError

    model.check_ready()
    model.check_data(datamodule)
    if ckpt_path is not None and ckpt_path not in CHECKPOINT_ALIASES:
        check_checkpoint_fits(ckpt_path, model)
    root = trainer.default_root_dir
    if not writable_folder(root):
        raise ConfigError(
            f"output folder {root!r} is not writable; set --trainer.default_root_dir to a folder you can write"
        )


def default_loggers(model, datamodule, root: str) -> list:
    """CSV and W&B loggers in ``root/<data>/version_N`` (W&B offline unless logged in; the group is
    the data's name, the tags the objective and regularizers)."""
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    data = getattr(datamodule, "name", None) or type(datamodule).__name__
    csv = CSVLogger(root, name=str(data))
    tags = [model.objective.name, *model.regularizer_names]
    wandb = WandbLogger(
        save_dir=csv.log_dir, project="gan_lab", group=str(data), tags=tags, name=f"{data}/{'+'.join(tags)}"
    )
    return [csv, wandb]


def finish_wandb(trainer) -> None:
    """Close the W&B run of a finished fit, so that its (offline) files are complete."""
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        wandb.finish()


def build_cli(args: Sequence[str], run: bool = True):
    """The LightningCLI over :class:`~gan_lab.module.GANModule` and any LightningDataModule.

    With ``run=False`` the config is parsed and every object instantiated (model, data, trainer)
    without fitting: :mod:`gan_lab.study` uses this to validate all runs before any of them starts.
    """
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from gan_lab.module import GANModule

    class GanLabCLI(LightningCLI):
        """LightningCLI that runs :func:`preflight` and keeps the resolved config in the model."""

        def _parse_ckpt_path(self) -> None:
            # LightningCLI would overwrite the given config with the checkpoint's hyper-parameters.
            # Here the config given is the one that runs; `preflight` refuses a checkpoint that
            # does not fit it, with one line.
            return

        def before_fit(self) -> None:
            config = self.config[self.subcommand]
            if config.trainer.get("logger") in (None, True):
                self.trainer.loggers = default_loggers(
                    self.model, self.datamodule, self.trainer.default_root_dir
                )
            self.model.resolved_config = self._parser(self.subcommand).dump(config, skip_none=False)
            preflight(self.model, self.datamodule, self.trainer, config.get("ckpt_path"))

        def after_fit(self) -> None:
            finish_wandb(self.trainer)

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
        )
    finally:
        sys.argv = argv


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
    raised while instantiating, or jsonargparse's own complaint), or None for any other error."""
    from jsonargparse import ArgumentError

    cause = config_error_in(exc)
    if cause is not None:
        return str(cause)
    return describe_argument_error(str(exc)) if isinstance(exc, ArgumentError) else None


#: exit status of a fit stopped by SIGTERM (128 + 15), so that schedulers see it did not finish
EXIT_TERMINATED = 143


def _lightning(argv: Sequence[str]) -> int:
    from jsonargparse import ArgumentError
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        build_cli(argv, run=True)
    except SIGTERMException:
        print("gan-lab: stopped by SIGTERM; resume with --ckpt_path last", file=sys.stderr)
        return EXIT_TERMINATED
    except (ValueError, TypeError, ArgumentError) as e:
        cause = bad_input_in(e)
        if cause is None:
            raise
        return fail(cause)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_wandb_mode()
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
