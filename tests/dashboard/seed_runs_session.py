"""``python tests/dashboard/seed_runs_session.py SPEC``: one process's session of a fit's per-seed
W&B runs (:class:`gan_lab.dashboard.SeedRunsLogger`, W&B offline), driven batch by batch as a fit
drives it, then ended as the SPEC (JSON) says: ``"kill"`` (SIGKILL, as kill -9), ``"finish"`` or
``"stop"`` (a fit stopped by a signal). :func:`run_batches` is also what the tests run in-process.

SPEC keys: ``folder``, ``members``, ``ids`` (member -> run id), ``first`` and ``last`` (the
batches to run), ``checkpoint_every``, ``eval_every``, ``resume_at`` (``[g_steps, d_steps]`` or
null), ``end``, ``kill_at``: ``"checkpoint"`` kills right after batch ``last``'s checkpoint was
written (before Lightning logs the batch's row), and ``wait_flushed``: before a kill, wait until W&B's own file holds every row
logged so far (with ``WANDB__TRANSACTION_LOG_FLUSH_INTERVAL`` small), so that the killed session's
file holds rows past its last checkpoint.
"""

import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

#: the seeds of the members' runs
SEEDS = [0, 1]


def value(key: str, k: int, g: int) -> float:
    """The value member ``k`` logs for ``key`` at G step ``g`` (a resumed session logs the same
    values as one never stopped, as the lab's resumed fits do)."""
    return round(math.sin(1.7 * g + 0.9 * k + len(key)), 6)


def image(k: int, g: int) -> np.ndarray:
    """Member ``k``'s image at G step ``g`` (uint8 16 x 16 x 3, different at every step)."""
    x = np.arange(16 * 16 * 3, dtype=np.int64).reshape(16, 16, 3)
    return ((x * (g + 3) + 17 * k) % 251).astype(np.uint8)


def run_batches(
    logger, first: int, last: int, checkpoint_every: int, eval_every: int, checkpointed=None
) -> None:
    """Batches ``first..last`` (one D and one G step each: ``d_steps == g_steps``) in a fit's order:
    the members' training rows (an ensemble: in the training step), the evaluation (its rows and
    images, then ``save()``), the checkpoint (``after_save_checkpoint``, then ``checkpointed(g)``
    when given), then Lightning's row (the run's own when there is one member)."""
    members = logger.members
    for g in range(first, last + 1):
        d = float(g)
        terms = {key: [value(key, k, g) for k in range(members)] for key in ("d/loss", "g/loss")}
        if members > 1:
            logger.log_member_metrics(terms, step=g, shared={"d_steps": d})
        if g % eval_every == 0:
            logger.log_member_metrics(
                {"mode/modes": [value("modes", k, g) for k in range(members)]},
                step=g,
                media={"mode/samples": [image(k, g) for k in range(members)]},
            )
            logger.save()
        if g % checkpoint_every == 0:
            logger.after_save_checkpoint(None)
            if checkpointed is not None:
                checkpointed(g)
        means = {key: sum(per) / members for key, per in terms.items()}
        logger.log_metrics(
            {**means, "g_steps": float(g), "d_steps": d, "step": float(g), "epoch": 0.0}, step=g
        )


def _wait_flushed(logger, last: int, eval_every: int) -> None:
    """Until each member's W&B file of this session holds the rows of batch ``last`` (the file is
    written in order: then it holds every row before them too), 60 s at most."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from wandb_offline import read_run

    expected = 1 + (last % eval_every == 0)
    files = [run.settings.sync_file for run in logger.experiment]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = [[r for r in read_run(f)["history"] if r.get("g_steps") == last] for f in files]
        if all(len(r) >= expected for r in rows):
            return
        time.sleep(0.01)
    sys.exit(3)


def main(spec: dict) -> None:
    from gan_lab.dashboard.seed_runs import SeedRunsLogger

    folder = Path(spec["folder"])
    logger = SeedRunsLogger(
        folder,
        seeds=SEEDS[: spec["members"]],
        group="g",
        name="g/x",
        ids={int(k): v for k, v in spec["ids"].items()},
        resume_at=spec.get("resume_at"),
    )

    def checkpointed(g: int) -> None:  # killed right after the checkpoint was written
        if spec.get("kill_at") == "checkpoint" and g == spec["last"]:
            os.kill(os.getpid(), signal.SIGKILL)

    run_batches(
        logger, spec["first"], spec["last"], spec["checkpoint_every"], spec["eval_every"], checkpointed
    )
    if spec["end"] == "finish":
        logger.finish()
    elif spec["end"] == "stop":
        logger.stop(143)
    else:
        if spec.get("wait_flushed"):
            _wait_flushed(logger, spec["last"], spec["eval_every"])
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    os.environ["WANDB_MODE"] = "offline"
    main(json.loads(sys.argv[1]))
