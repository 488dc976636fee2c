"""W&B: one run per seed, media at every evaluation, and the study's workspace built by code.

- :mod:`gan_lab.dashboard.seed_runs`: :class:`SeedRunsLogger`, one W&B run per (objective, seed),
  also for the members of a seed ensemble trained in one process;
- :mod:`gan_lab.dashboard.media`: the images logged at each evaluation (toy scatters, image
  grids) and their settings;
- :mod:`gan_lab.dashboard.facts`: the config keys the runs table, the grouping and filters use;
- :mod:`gan_lab.dashboard.workspace`: the workspace definition of a study (``dashboard.json``),
  built into a ``wandb_workspaces`` Workspace, and ``gan-lab dashboard``;
- :mod:`gan_lab.dashboard.study_run`: a study's closing run (its results table and figures).

Importing this package imports neither wandb nor wandb_workspaces.
"""

from gan_lab.dashboard.media import MediaSettings, image_grid, scatter_image
from gan_lab.dashboard.seed_runs import REPORT_JOB, SEED_JOB, SeedRunsLogger

__all__ = ["REPORT_JOB", "SEED_JOB", "MediaSettings", "SeedRunsLogger", "image_grid", "scatter_image"]
