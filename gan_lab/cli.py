"""The ``gan-lab`` command: dispatch to ``fit`` (LightningCLI), ``study``, ``report``, ``sample``, ``metrics``,
``dashboard``.

    gan-lab fit --config experiments/toy/ring8.yaml --model.objective hinge
    gan-lab fit --config experiments/toy/ring8.yaml --print_config      # the resolved config
    gan-lab study experiments/studies/ring8.yaml
    gan-lab report runs/ring8-demo
    gan-lab dashboard runs/ring8-demo          # the W&B workspace definition; --save pushes it
    gan-lab metrics FAKE_DIR REAL_DIR --weights PATH                 # FID & co. between two folders

Bad input (an unknown objective, regularizer or dataset, an impossible combination, a malformed
argument) ends the command with exit code 2 and one line on stderr, before any training starts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from gan_lab.errors import fail


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the command itself: its command line is what DDP's launcher runs again
        import gan_lab.fit

        gan_lab.fit.AS_COMMAND = True
    argv = list(sys.argv[1:] if argv is None else argv)
    from gan_lab.console import quiet_lightning
    from gan_lab.runs import configure_wandb_mode

    configure_wandb_mode()
    quiet_lightning()
    # "Seed set to N" would precede a one-line error; the seed is in the saved config anyway.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
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
        from gan_lab.metrics.compare import metrics_main

        return metrics_main(rest)
    if command == "dashboard":
        from gan_lab.dashboard.workspace import dashboard_main

        return dashboard_main(rest)
    return fail(
        f"unknown command {command!r}; valid commands: fit, study, report, sample, metrics, dashboard"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
