"""One W&B run per seed: :class:`SeedRunsLogger`, a Lightning logger over the runs of one fit.

A fit of an E-member seed ensemble trains E seeds in one process; W&B compares runs, so the
logger opens one W&B run per member (``wandb.init(reinit="create_new")``), member ``k`` being the
run of seed ``seed + k`` (docs/DESIGN.md, the seed ensemble). Every run has:

- config: the run's facts (:func:`gan_lab.dashboard.facts.run_facts`: ``study``, ``objective``,
  ``loss``, ``regularizers``, ``n_critic``, ``data``), its own ``seed`` and ``member``, the
  resolved config (``config``), the optimizers (``optimizer_g``, ``optimizer_d``) and the data set
  (``dataset``) taken from it, and the module's hyper-parameters;
- group (the study, or the data for a plain fit), tags (objective and regularizers), job type
  ``seed``;
- history keyed by ``g_steps``: ``define_metric("*", step_metric="g_steps")``; each row carries
  ``g_steps``;
- summary: W&B's last values, and at the end of a study the final metrics (:meth:`set_summary`,
  the values of ``results.csv``); a diverged run is marked (:meth:`mark_diverged`: summary
  ``status`` and ``diverged_at_g_steps``, tag ``diverged``, exit code 1: state ``failed``).

What reaches a member's run: :meth:`log_member_metrics` (values per member: the module's loss
terms, the evaluators' metrics and media). :meth:`log_metrics` (Lightning's path: the means over
members) is logged only when there is one run, where the mean is that seed's value.

Run ids are ``<base>m<k>`` (one random base per fit), so that a resumed fit finds each member's
run again in the run folder (:func:`gan_lab.runs.wandb_run_ids`). Inside a W&B sweep
(``WANDB_SWEEP_ID`` set) a fit is one W&B run: ensembles are refused there. Each logger also
writes ``wandb-runs.json`` into its folder (run ids, seeds, the keys and media logged) for
``gan-lab dashboard``.
"""

from __future__ import annotations

import json
import os
import secrets
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from gan_lab.dashboard.media import MediaSettings
from gan_lab.errors import ConfigError

#: the job type of a per-seed run (the dashboard's runset selects it); a study's report run is REPORT_JOB
SEED_JOB, REPORT_JOB = "seed", "report"

#: the file each logger writes into its folder: what it logged (read by gan-lab dashboard)
RECORD_FILE = "wandb-runs.json"

#: the loggers whose runs are open, for :func:`finish_open_runs` (a fit stopped by a signal)
_OPEN: weakref.WeakSet = weakref.WeakSet()


def plain(value):
    """``value`` as JSON data (tuples as lists, anything else JSON cannot hold as its ``str``).

    >>> plain({"betas": (0.5, 0.9), "f": print})
    {'betas': [0.5, 0.9], 'f': '<built-in function print>'}
    """
    return json.loads(json.dumps(value, default=str))


def member_id(base: str, member: int) -> str:
    """The W&B run id of ``member`` (``<base>m<member>``).

    >>> member_id("ab12cd34", 3)
    'ab12cd34m3'
    """
    return f"{base}m{member}"


class SeedRunsLogger(Logger):
    """Lightning logger over one W&B run per seed of a fit (see the module doc).

    Args:
        save_dir: the run folder; the runs are written into ``save_dir/wandb``.
        seeds: the seed of each member's run (member k: ``seed + k``).
        facts: the config every run shares (:func:`gan_lab.dashboard.facts.run_facts`).
        member_facts: each member's own facts, over ``facts`` (a mixed ensemble's ``objective``
            and ``loss``: :func:`gan_lab.dashboard.facts.member_facts`); None: none.
        group, name: W&B group; run names are ``<name>/seed<s>`` (``<name>/<objective>/seed<s>``
            with a member's own objective); a member's own objective is also one of its tags.
        tags: the runs' tags (objective, regularizers).
        project: the W&B project.
        ids: member -> run id of runs to continue (a resumed fit); the others get new ids.
        media: what media the evaluators log (:class:`~gan_lab.dashboard.media.MediaSettings`).
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        seeds: Sequence[int],
        facts: Mapping | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        project: str = "gan_lab",
        ids: Mapping[int, str] | None = None,
        media: MediaSettings | None = None,
        member_facts: Sequence[Mapping] | None = None,
    ) -> None:
        super().__init__()
        self._save_dir = str(save_dir)
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ConfigError("SeedRunsLogger needs at least one seed")
        self.member_facts = (
            [plain(dict(f)) for f in member_facts] if member_facts else [{} for _ in self.seeds]
        )
        if len(self.member_facts) != len(self.seeds):
            raise ConfigError(f"{len(self.member_facts)} members' facts for {len(self.seeds)} seeds")
        if len(self.seeds) > 1 and os.environ.get("WANDB_SWEEP_ID"):
            raise ConfigError(
                f"a W&B sweep run is one run, but this fit trains {len(self.seeds)} seeds as ensemble members; "
                "sweep with --model.generator.init_args.members=1 --model.discriminator.init_args.members=1 "
                "and model.seed as a swept parameter"
            )
        self.facts = plain(dict(facts or {}))
        self.group, self.run_name, self.tags = group, name, list(tags)
        self.project = project
        self.media = media if media is not None else MediaSettings()
        self._ids = dict(ids or {})
        self._runs: list | None = None
        self._finished = False
        self._keys: set[str] = set()
        self._media_keys: set[str] = set()
        self.status = "running"

    # -- Lightning's Logger interface -------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.run_name or "seed_runs"

    @property
    def version(self) -> str:
        return ",".join(self.ids)

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def members(self) -> int:
        return len(self.seeds)

    @property
    def ids(self) -> list[str]:
        """Each member's run id (fixed before the runs open)."""
        if len(self._ids) < self.members:
            base = secrets.token_hex(4)
            for k in range(self.members):
                self._ids.setdefault(k, member_id(base, k))
        return [self._ids[k] for k in range(self.members)]

    @property
    def experiment(self) -> list:
        """The W&B runs, one per member (opened at first use; every method that uses them runs on
        global rank 0 only)."""
        if self._runs is None:
            if self._finished:
                raise RuntimeError("SeedRunsLogger: its W&B runs are finished; log before finish()")
            self._runs = [self._open(k) for k in range(self.members)]
            _OPEN.add(self)
        return self._runs

    def member_name(self, k: int) -> str:
        """Member ``k``'s run name: ``<name>/seed<s>``, or ``<name>/<objective>/seed<s>`` when the
        member has an objective of its own."""
        own = self.member_facts[k].get("objective")
        return f"{self.run_name}/{own + '/' if own else ''}seed{self.seeds[k]}"

    def _open(self, k: int):
        import wandb

        seed, own = self.seeds[k], self.member_facts[k]
        Path(self._save_dir).mkdir(parents=True, exist_ok=True)
        sweep = bool(os.environ.get("WANDB_SWEEP_ID"))  # the agent chose the run's id
        run = wandb.init(
            dir=self._save_dir,
            project=(os.environ.get("WANDB_PROJECT") or self.project) if sweep else self.project,
            group=self.group,
            job_type=SEED_JOB,
            name=self.member_name(k) if self.run_name else None,
            tags=list(dict.fromkeys([*([own["objective"]] if "objective" in own else []), *self.tags])),
            config={**self.facts, **own, "seed": seed, "member": k},
            reinit="create_new",
            **({} if sweep else {"id": self.ids[k], "resume": "allow"}),
        )
        self._ids[k] = run.id
        run.define_metric("g_steps")
        run.define_metric("*", step_metric="g_steps")
        return run

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        """The resolved config (``{"config": ...}``, from :class:`gan_lab.runs.SaveConfigToLoggers`)
        with the optimizers and data set taken from it, or the module's hyper-parameters (the run's
        facts are kept: they are per seed)."""
        from gan_lab.dashboard.facts import config_facts

        params = plain(
            vars(params) if hasattr(params, "__dict__") and not isinstance(params, dict) else params
        )
        if set(params) == {"config"}:
            update = {"config": params["config"], **config_facts(params["config"])}
        else:
            own = {key for facts in self.member_facts for key in facts}
            update = {k: v for k, v in params.items() if k not in (*self.facts, *own, "seed", "member")}
        for run in self.experiment:
            run.config.update(update, allow_val_change=True)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Lightning's path (the means over members): logged only when there is one run."""
        if self.members != 1:
            return
        values = {k: float(v) for k, v in metrics.items() if k not in ("epoch", "step")}
        self._log(0, values, step)

    # -- per member ---------------------------------------------------------------------------------

    @rank_zero_only
    def log_member_metrics(
        self,
        values: Mapping[str, Sequence[float]],
        step: int,
        shared: Mapping[str, float] | None = None,
        media: Mapping[str, Sequence] | None = None,
    ) -> None:
        """Log ``values[key][k]`` into member k's run at G step ``step``, with ``shared`` values in
        every run and ``media[key][k]`` (uint8 ``(H, W, 3)`` arrays, or ``(array, caption)``) as
        ``wandb.Image``."""
        import wandb

        for key, per in values.items():
            if len(per) != self.members:
                raise ValueError(f"{key}: {len(per)} values for {self.members} member runs")
        for k in range(self.members):
            row = {key: float(per[k]) for key, per in values.items()}
            row.update({key: float(v) for key, v in (shared or {}).items()})
            for key, per in (media or {}).items():
                item, caption = per[k] if isinstance(per[k], tuple) else (per[k], None)
                row[key] = wandb.Image(item, caption=caption)
                self._media_keys.add(key)
            self._log(k, row, step)

    def _log(self, k: int, row: dict, step: int | None) -> None:
        if step is not None:
            row["g_steps"] = int(step)
        self._keys.update(key for key in row if key not in self._media_keys)
        self.experiment[k].log(row)

    @rank_zero_only
    def set_summary(self, values: Mapping[str, Sequence]) -> None:
        """Summary ``key -> value[k]`` of member k's run (a study's final metrics, its status)."""
        for k, run in enumerate(self.experiment):
            for key, per in values.items():
                run.summary[key] = per[k]

    @rank_zero_only
    def mark_diverged(self, status: str, g_steps: int) -> None:
        """Mark every run as diverged: summary ``status`` and ``diverged_at_g_steps``, tag
        ``diverged``; :meth:`finish` then ends them with exit code 1 (state ``failed``)."""
        self.status = "diverged"
        for run in self.experiment:
            run.summary["status"] = status
            run.summary["diverged_at_g_steps"] = int(g_steps)
            run.tags = (*run.tags, "diverged")

    def finalize(self, status: str) -> None:
        """Lightning's end of fit (``success`` / ``failed``): the runs stay open for their owner,
        who sets the final summary, marks a diverged run and calls :meth:`finish`
        (:func:`gan_lab.runs.finish_wandb`; a run left open is finished by W&B at exit)."""

    @rank_zero_only
    def finish(self, exit_code: int | None = None) -> None:
        """Finish every run (exit code 1 when marked diverged) and write ``wandb-runs.json``."""
        if self._runs is None:
            return
        code = exit_code if exit_code is not None else (1 if self.status == "diverged" else 0)
        for run in self._runs:
            run.finish(exit_code=code)
        self._write_record()
        self._runs, self._finished = None, True
        _OPEN.discard(self)

    def stop(self, status: int) -> None:
        """A fit stopped by a signal: every run marked preempting (resumable), then finished."""
        for run in self._runs or ():
            run.mark_preempting()
        self.finish(exit_code=status)

    def _write_record(self) -> None:
        record = {
            "project": self.project,
            "group": self.group,
            "job_type": SEED_JOB,
            "tags": self.tags,
            "facts": self.facts,
            "keys": sorted(self._keys),
            "media": sorted(self._media_keys),
            "runs": [
                {
                    "id": run_id,
                    "member": k,
                    "seed": self.seeds[k],
                    "name": self.member_name(k),
                    **self.member_facts[k],
                }
                for k, run_id in enumerate(self.ids)
            ],
            "status": self.status,
        }
        path = Path(self._save_dir) / RECORD_FILE
        if path.is_file():  # a resumed fit: the keys of both sessions
            before = json.loads(path.read_text())
            record["keys"] = sorted({*before.get("keys", []), *record["keys"]})
            record["media"] = sorted({*before.get("media", []), *record["media"]})
        path.write_text(json.dumps(record, indent=2))


def finish_open_runs(status: int) -> None:
    """Finish the per-seed runs of a fit stopped by a signal (marked preempting, exit ``status``)."""
    for logger in list(_OPEN):
        logger.stop(status)
