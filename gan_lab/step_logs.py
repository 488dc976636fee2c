"""The step's loss terms as the loggers get them, on the steps they write only.

Lightning's per-key bookkeeping costs about 1 ms a key, so :func:`log_step` logs nothing on a step
the loggers do not write (``trainer._logger_connector.should_update_logs``, guarded in
``tests/test_private_apis.py``); the terms stay tensors on the device until then. ``step``, the
loggers' x-axis (Lightning pops it), is the G step count, as everywhere the user looks. The
per-seed W&B runs of an ensemble (:class:`gan_lab.dashboard.SeedRunsLogger`, a logger with
``log_member_metrics``) also get each member's own terms (:func:`~gan_lab.losses.reduction.member_terms`):
one transfer to the host for all of them, only on log steps, only for them; nothing per member for
a single net.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_lab.losses.reduction import member_terms, term_means


def log_step(module, logs: dict[str, Tensor | float], lazy: dict[str, Tensor], batch_size: int) -> None:
    """Log ``logs`` (this step's terms) and ``lazy`` (each lazy penalty's last value) of ``module``
    (a :class:`~gan_lab.module.GANModule`) as means, with its ``g_steps`` / ``d_steps`` counters."""
    trainer = module._trainer
    if trainer is not None and not trainer._logger_connector.should_update_logs:
        return
    counters = {
        "step": float(module.g_steps),
        "g_steps": float(module.g_steps),
        "d_steps": float(module.d_steps),
    }
    terms = {**term_means({**lazy, **logs}), **counters}
    module.log_dict(terms, on_step=True, on_epoch=False, batch_size=batch_size)
    members = module.members or 1
    per_seed = [lg for lg in trainer.loggers if hasattr(lg, "log_member_metrics")] if trainer else []
    if members > 1 and per_seed:
        per = member_terms({**lazy, **logs}, members)
        if per:
            values = torch.stack([v.float() for v in per.values()]).cpu().tolist()
            for logger in per_seed:
                logger.log_member_metrics(
                    dict(zip(per, values)), step=module.g_steps, shared={"d_steps": float(module.d_steps)}
                )
