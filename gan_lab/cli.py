"""The ``gan-lab`` command: dispatch only. ``gan-lab --help`` prints :data:`HELP` before anything
heavy is imported; each command parses its own arguments (``gan-lab COMMAND --help``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from gan_lab.errors import fail

#: What ``gan-lab``, ``gan-lab -h`` and ``gan-lab --help`` print: one line per command.
HELP = """\
usage: gan-lab COMMAND [ARGS]        (gan-lab COMMAND --help: its options)

commands:
  fit        train one run: gan-lab fit --config experiments/toy/ring8.yaml
  study      train a study's entries x seeds, write its report: gan-lab study FILE
  report     rewrite a study's report from its CSV files: gan-lab report DIR
  sample     samples from a checkpoint's G: gan-lab sample --ckpt PATH --out grid.png
  metrics    FID, KID, IS, precision/recall of image folders: gan-lab metrics FAKE REAL
  dashboard  a study's W&B workspace (--save pushes it): gan-lab dashboard DIR

Bad input: one line on stderr and exit code 2, before any training.
Guide: README.md; the docs site: make docs, then open build/site/index.html."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):  # before Lightning and the commands are imported
        print(HELP)
        return 0
    if argv is None:  # the command itself: its command line is what DDP's launcher runs again
        import gan_lab.fit

        gan_lab.fit.AS_COMMAND = True
    argv = args
    from gan_lab.console import quiet_lightning
    from gan_lab.runs import configure_wandb_mode

    configure_wandb_mode()
    quiet_lightning()
    # "Seed set to N" would precede a one-line error; the seed is in the saved config anyway.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    command, rest = argv[0], argv[1:]
    if command == "fit":
        from gan_lab.fit import fit_main

        return fit_main(argv)
    if command == "study":
        from gan_lab.study import study_main

        return study_main(rest)
    if command == "report":
        from gan_lab.study import report_main

        return report_main(rest)
    if command == "sample":
        from gan_lab.sample import sample_main

        return sample_main(rest)
    if command == "metrics":
        from gan_lab.compare import metrics_main

        return metrics_main(rest)
    if command == "dashboard":
        from gan_lab.study.workspace import dashboard_main

        return dashboard_main(rest)
    return fail(
        f"unknown command {command!r}; valid commands: fit, study, report, sample, metrics, dashboard"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
