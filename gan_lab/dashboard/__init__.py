"""W&B: one run per seed and the media logged at every evaluation.

- :mod:`gan_lab.dashboard.seed_runs`: :class:`SeedRunsLogger`, one W&B run per (objective, seed),
  also for the members of a seed ensemble trained in one process;
- :mod:`gan_lab.dashboard.media`: the images logged at each evaluation (toy scatters, image
  grids) and their settings;
- :mod:`gan_lab.dashboard.facts`: the config keys the runs table, the grouping and filters use.

A study's W&B workspace (``gan-lab dashboard``) is :mod:`gan_lab.study.workspace`, its closing run
(results, statistics, figures) :mod:`gan_lab.study.wandb_run`: they belong to the study, which
imports this package, never the other way round.

Importing this package imports neither wandb nor wandb_workspaces.
"""

from gan_lab.dashboard.media import MediaSettings, image_grid, scatter_image
from gan_lab.dashboard.seed_runs import REPORT_JOB, SEED_JOB, SeedRunsLogger

__all__ = ["REPORT_JOB", "SEED_JOB", "MediaSettings", "SeedRunsLogger", "image_grid", "scatter_image"]
