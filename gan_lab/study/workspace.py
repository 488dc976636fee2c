"""A study's W&B workspace, built by code: its definition (``dashboard.json``) and ``gan-lab dashboard``.

The definition is plain JSON written into the study folder: what :func:`to_workspace` builds into
a ``wandb_workspaces`` Workspace and ``--save`` pushes. It is made from what the study's runs
logged (``wandb-runs.json`` of each per-seed logger, :mod:`gan_lab.dashboard.seed_runs`), so that
every panel names a key that was logged:

- the runset: the study's per-seed runs (``Group`` = the study folder's name, ``JobType`` =
  ``seed``; the study's closing run, job type ``report``, is left out), grouped by
  ``config.objective``; the x-axis of every line plot is ``g_steps``;
- sections, each only when it has a panel: first the evaluators' (their panels as each one's
  report section gives them, :meth:`~gan_lab.evaluators.section.EvaluatorReport.panels`: **mode
  coverage**, **image metrics**, ..., in the order the study's evaluators first name them), line
  plots of the mean of ``<NAME>/<metric>`` over an objective's seeds with a standard-error band;
  then **losses** (``d/loss``, ``g/loss``, each penalty); **samples** (a media browser per media
  key, stepping through training).

``gan-lab dashboard runs/<study>`` writes the definition (never the network);
``gan-lab dashboard --save runs/<study>`` builds it into a Workspace and saves it to W&B (after the
offline runs were uploaded with ``wandb sync``), printing its URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gan_lab.dashboard.seed_runs import RECORD_FILE, SEED_JOB
from gan_lab.errors import ConfigError, fail
from gan_lab.runs import wandb_logged_in
from gan_lab.study.report import evaluator_class, evaluator_names

#: the definition's file in the study folder, and its format tag
DEFINITION_FILE, FORMAT = "dashboard.json", "gan_lab/dashboard-1"

LOSS_KEYS = ("d/loss", "g/loss")


def study_group(study_dir: Path) -> str:
    """The W&B group of a study's runs: its folder's name (unique: a rerun gets ``name-2``); a part
    of a job array (``DIR/parts/LABEL``) is in the group of ``DIR``.

    >>> study_group(Path("runs/ring8-demo-2")), study_group(Path("runs/s/parts/hinge"))
    ('ring8-demo-2', 's')
    >>> study_group(Path(".")) == Path.cwd().name  # `gan-lab dashboard .` inside the study folder
    True
    """
    study_dir = Path(os.path.abspath(study_dir))  # "." and ".." have no name of their own
    return study_dir.parent.parent.name if study_dir.parent.name == "parts" else study_dir.name


def run_records(study_dir: Path) -> list[dict]:
    """The ``wandb-runs.json`` of every per-seed logger under ``study_dir``, by path."""
    return [json.loads(p.read_text()) for p in sorted(Path(study_dir).rglob(RECORD_FILE))]


def evaluator_classes(study_dir: Path) -> list[type]:
    """The evaluator classes study.json names (a list; one name in a folder written before lists),
    looked up in the lab's registry (:data:`gan_lab.study.report.EVALUATORS`): nothing a study
    folder says is imported.

    Raises:
        ConfigError: study.json cannot be read, or names an evaluator that is not registered (one
            line naming the valid ones).
    """
    path = Path(study_dir) / "study.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path}: cannot read the study's facts ({e}); run the study first (gan-lab study)"
        ) from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path} must hold a JSON object (the study's facts); run the study again")
    return [evaluator_class(name, path) for name in evaluator_names(meta.get("evaluator"), path)]


def filter_expression(group: str) -> str:
    """The runset filter (``wandb_workspaces`` expression syntax): the study's per-seed runs.

    >>> filter_expression("tiny")
    'Metric("Group") == \\'tiny\\' and Metric("JobType") == \\'seed\\''
    """
    return f'Metric("Group") == {group!r} and Metric("JobType") == {SEED_JOB!r}'


def definition(study_dir: Path) -> dict:
    """The workspace definition of the study in ``study_dir`` (see the module doc).

    Raises:
        ConfigError: the folder holds no per-seed W&B runs (a study run with ``--no-wandb``), or
            its study.json is missing or names an evaluator that is not registered.
    """
    study_dir = Path(study_dir)
    group = study_group(study_dir)
    records = [r for r in run_records(study_dir) if r.get("group") == group]
    if not records:
        raise ConfigError(
            f"{study_dir}: no per-seed W&B runs of group {group!r} (wandb-runs.json); "
            "run the study with W&B (without --no-wandb)"
        )
    keys = set().union(*(r["keys"] for r in records))
    media = sorted(set().union(*(r["media"] for r in records)))
    panels: dict[str, list[dict]] = {}
    for cls in evaluator_classes(study_dir):
        for section, panel in cls.report_section().panels(cls.NAME, cls.METRICS, keys):
            panels.setdefault(section, []).append(panel)
    losses = [k for k in LOSS_KEYS if k in keys]
    losses += sorted(k for k in keys if k[:2] in ("d/", "g/") and k not in LOSS_KEYS)
    panels["losses"] = [{"kind": "line", "key": k} for k in losses]
    panels["samples"] = [{"kind": "media", "key": k} for k in media]
    runs = [
        {**run, "objective": run.get("objective", r["facts"].get("objective")), "status": r.get("status")}
        for r in records
        for run in r["runs"]
    ]
    return {
        "format": FORMAT,
        "name": f"gan_lab {group}",
        "project": records[0]["project"],
        "entity": None,
        "group": group,
        "filters": filter_expression(group),
        "groupby": "objective",
        "x_axis": "g_steps",
        "sections": [{"name": s, "panels": p} for s, p in panels.items() if p],
        "runs": sorted(runs, key=lambda r: (str(r["objective"]), r["seed"])),
    }


def to_workspace(spec: dict, entity: str | None = None):
    """The ``wandb_workspaces.workspaces.Workspace`` of a definition (no network: building it
    only validates; ``.save()`` sends it). ``entity`` defaults to the definition's (or ``-``)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    if spec.get("format") != FORMAT:
        raise ConfigError(
            f"not a gan_lab dashboard definition (format {spec.get('format')!r}, expected {FORMAT})"
        )
    by = spec["groupby"]

    def panel(p: dict):
        if p["kind"] == "media":
            return wr.MediaBrowser(title=p["key"], media_keys=[p["key"]], gallery_axis="step")
        return wr.LinePlot(
            title=p["key"],
            x=spec["x_axis"],
            y=[p["key"]],
            groupby=wr.Config(by),
            groupby_aggfunc="mean",
            groupby_rangefunc="stderr",
        )

    return ws.Workspace(
        entity=entity or spec.get("entity") or "-",
        project=spec["project"],
        name=spec["name"],
        sections=[
            ws.Section(name=s["name"], panels=[panel(p) for p in s["panels"]], is_open=True)
            for s in spec["sections"]
        ],
        settings=ws.WorkspaceSettings(x_axis=spec["x_axis"]),
        runset_settings=ws.RunsetSettings(filters=spec["filters"], groupby=[ws.Config(by)]),
    )


def describe(spec: dict, path: Path | None = None) -> str:
    """The closing note: the runset, the runs it selects and every section's panels."""
    by_objective: dict[str, list[str]] = {}
    for run in spec["runs"]:
        mark = "" if run.get("status") in (None, "running", "finished") else f" ({run['status']})"
        by_objective.setdefault(str(run["objective"]), []).append(f"{run['seed']}{mark}")
    runs = "; ".join(f"{o}: seeds {', '.join(s)}" for o, s in by_objective.items())
    lines = [
        f"dashboard{f' {path}' if path else ''}: W&B workspace {spec['name']!r} (project {spec['project']})",
        f"  runset: Group = {spec['group']!r}, JobType = 'seed', grouped by config.{spec['groupby']}: "
        f"{len(spec['runs'])} runs ({runs})",
    ]
    for section in spec["sections"]:
        keys = ", ".join(p["key"] for p in section["panels"])
        kind = (
            "media, every evaluation"
            if section["panels"][0]["kind"] == "media"
            else (f"vs {spec['x_axis']}, mean ± s.e. over seeds")
        )
        lines.append(f"  {section['name']}: {keys} ({kind}; every run of the runset)")
    return "\n".join(lines)


def write_definition(study_dir: Path) -> tuple[Path, dict]:
    """Write ``dashboard.json`` into the study folder (rewritten: it is the lab's own file)."""
    spec = definition(study_dir)
    path = Path(study_dir) / DEFINITION_FILE
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path, spec


def read_definition(path: Path) -> dict:
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path}: not a dashboard definition ({e}); rewrite it with gan-lab dashboard DIR"
        ) from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ConfigError(
            f"{path}: not a gan_lab dashboard definition; rewrite it with gan-lab dashboard DIR"
        )
    return spec


def save_workspace(spec: dict, entity: str | None) -> str:
    """Save the workspace to W&B (network) and return its URL."""
    if not wandb_logged_in():
        raise ConfigError(
            "gan-lab dashboard --save needs a W&B login: run `wandb login`, upload the runs with "
            f"`wandb sync` (see README), then run it again; offline, {DEFINITION_FILE} holds the definition"
        )
    if entity is None:
        import wandb

        entity = wandb.Api().default_entity
    workspace = to_workspace(spec, entity).save()
    return workspace.url


def dashboard_main(argv: list[str]) -> int:
    """``gan-lab dashboard [--save] [--entity E] STUDY_DIR``."""
    parser = argparse.ArgumentParser(
        prog="gan-lab dashboard",
        description="Write a study's W&B workspace definition (dashboard.json); --save pushes it to W&B.",
    )
    parser.add_argument("study_dir")
    parser.add_argument(
        "--save", action="store_true", help="save the workspace to W&B (needs a login and the runs synced)"
    )
    parser.add_argument("--entity", default=None, help="W&B entity of the workspace (default: your default)")
    args = parser.parse_args(argv)
    study_dir = Path(args.study_dir)
    try:
        if not study_dir.is_dir():
            raise ConfigError(f"{study_dir} is not a folder; pass a study folder (runs/<study>)")
        path = study_dir / DEFINITION_FILE
        if args.save and path.is_file():
            spec = read_definition(path)  # the definition as written (and perhaps edited) offline
        else:
            path, spec = write_definition(study_dir)
        to_workspace(spec, args.entity)  # refuses a definition wandb_workspaces cannot build
        print(describe(spec, path))
        if args.save:
            print(f"saved: {save_workspace(spec, args.entity)}")
        else:
            print(f"  push it (after `wandb sync`): gan-lab dashboard --save {study_dir}")
    except ConfigError as e:
        return fail(e)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(dashboard_main(sys.argv[1:]))
