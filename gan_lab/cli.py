"""The ``gan-lab`` command: ``fit`` / ``validate`` through LightningCLI, ``study``, ``report``.

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


def build_cli(args: Sequence[str], run: bool = True):
    """The LightningCLI over :class:`~gan_lab.module.GANModule` and any LightningDataModule.

    With ``run=False`` the config is parsed and every object instantiated (model, data, trainer)
    without fitting: :mod:`gan_lab.study` uses this to validate all runs before any of them starts.
    """
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from gan_lab.module import GANModule

    argv, sys.argv = sys.argv, sys.argv[:1]  # `args` alone drives the parser
    try:
        return LightningCLI(
            GANModule,
            L.LightningDataModule,
            subclass_mode_data=True,
            args=list(args),
            run=run,
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False},
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


def _lightning(argv: Sequence[str]) -> int:
    from jsonargparse import ArgumentError

    try:
        build_cli(argv, run=True)
    except (ValueError, TypeError, ArgumentError) as e:
        cause = config_error_in(e)
        if cause is not None:
            return fail(cause)
        if isinstance(e, ArgumentError):
            return fail(str(e).splitlines()[0] if str(e) else "bad arguments; see gan-lab fit --help")
        raise
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
    if command in ("fit", "validate"):
        return _lightning(argv)
    if command == "study":
        from gan_lab.study import study_main

        return study_main(rest)
    if command == "report":
        from gan_lab.study import report_main

        return report_main(rest)
    return fail(f"unknown command {command!r}; valid commands: fit, validate, study, report")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
