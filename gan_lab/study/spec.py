"""The study file: what a study trains, and the jobs (fits) that make it up.

A study file (YAML) names a base config, the objectives to compare (each with optional override
configs and arguments), the number of seeds and the arguments common to every run::

    name: ring8-demo
    base: ../toy/ring8.yaml          # paths are relative to the study file
    seeds: 4                          # ensemble members: one run per objective trains all seeds
    seed: 0                           # member k uses seed + k
    args: [--model.max_g_steps=1000]  # applied to every run
    objectives:
      - objective: hinge
      - objective: wasserstein
        configs: [../toy/objectives/wasserstein.yaml]

:func:`load_study` reads and checks it (one-line :class:`~gan_lab.errors.ConfigError` otherwise),
:func:`select` keeps one entry (a job-array task), and :func:`plan_jobs` turns it into jobs: one
``gan-lab fit`` per objective (seed-ensemble nets, ``ensemble: true``, the default, train all
seeds as members of one run) or per objective × seed (``ensemble: false``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gan_lab.errors import ConfigError, check_int


@dataclass
class RunSpec:
    objective: str
    configs: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    label: str = ""


@dataclass
class StudySpec:
    name: str
    base: str
    seeds: int
    seed: int
    args: list[str]
    runs: list[RunSpec]
    out: str
    source: str
    ensemble: bool = True


def _as_str_list(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of strings, got {value!r}")
    return list(value)


def load_study(path: str, out: str | None = None) -> StudySpec:
    """Read and check a study file; relative config paths resolve against its folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"study file {path!r} not found; pass a YAML file such as experiments/studies/ring8.yaml"
        )
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"study file {path!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"study file {path!r} must be a mapping with name, base, seeds, objectives")
    known = {"name", "base", "seeds", "seed", "args", "objectives", "out", "ensemble"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in study file {path!r}; valid keys: {sorted(known)}"
        )
    for key in ("name", "base", "objectives"):
        if key not in raw:
            raise ConfigError(f"study file {path!r} lacks {key!r}")
    name = raw["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"study name must be a non-empty string without '/', got {name!r}")
    seeds, seed = raw.get("seeds", 4), raw.get("seed", 0)
    check_int("study seeds", seeds, hint=" (ensemble members)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"study seed must be an integer, got {seed!r}")
    ensemble = raw.get("ensemble", True)
    if not isinstance(ensemble, bool):
        raise ConfigError(f"study ensemble must be true or false, got {ensemble!r}")

    def resolve(f: str) -> str:
        q = (p.parent / f) if not os.path.isabs(f) else Path(f)
        if not q.is_file():
            raise ConfigError(f"config file {f!r} named in {path!r} not found (looked at {q})")
        return str(q)

    runs = []
    if not isinstance(raw["objectives"], list) or not raw["objectives"]:
        raise ConfigError("study objectives must be a non-empty list")
    for item in raw["objectives"]:
        item = {"objective": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("objective"), str):
            raise ConfigError(f"each study objective needs an 'objective' name, got {item!r}")
        extra = set(item) - {"objective", "configs", "args", "label"}
        if extra:
            raise ConfigError(f"unknown key(s) {sorted(extra)} for objective {item['objective']!r}")
        runs.append(
            RunSpec(
                objective=item["objective"],
                configs=[resolve(c) for c in _as_str_list(item.get("configs"), "configs")],
                args=_as_str_list(item.get("args"), "args"),
                label=item.get("label") or item["objective"],
            )
        )
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError(
            f"study runs need distinct labels, got {labels}; add 'label:' to repeated objectives"
        )
    return StudySpec(
        name=name,
        base=resolve(raw["base"]),
        seeds=seeds,
        seed=seed,
        args=_as_str_list(raw.get("args"), "args"),
        runs=runs,
        out=out or raw.get("out") or "runs",
        source=str(p),
        ensemble=ensemble,
    )


def select(spec: StudySpec, only: str | None) -> StudySpec:
    """The study reduced to the entry labelled ``only`` (one task of a job array)."""
    if only is None:
        return spec
    labels = [r.label for r in spec.runs]
    if only not in labels:
        raise ConfigError(
            f"--only {only!r} is not an entry of {spec.source}; its entries: {', '.join(labels)}"
        )
    return StudySpec(**{**spec.__dict__, "runs": [r for r in spec.runs if r.label == only]})


@dataclass
class Job:
    """One fit: an objective's run of all seeds (ensemble) or of one seed."""

    run: RunSpec
    seed_index: int | None  # None: every seed as an ensemble member
    run_dir: Path
    args: list[str]

    @property
    def label(self) -> str:
        return self.run.label


def run_args(
    spec: StudySpec, run: RunSpec, run_dir: Path, extra: list[str], seed_index: int | None
) -> list[str]:
    """The ``gan-lab fit`` arguments of one job (without the subcommand)."""
    args = ["--config", spec.base]
    for c in run.configs:
        args += ["--config", c]
    args.append(f"--model.objective={run.objective}")
    if seed_index is None:
        args += [
            f"--model.seed={spec.seed}",
            f"--model.generator.init_args.members={spec.seeds}",
            f"--model.discriminator.init_args.members={spec.seeds}",
        ]
    else:
        args += [f"--model.seed={spec.seed + seed_index}", f"--seed_everything={spec.seed + seed_index}"]
    return [
        *args,
        *spec.args,
        *run.args,
        *extra,
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run_dir}",
    ]


def plan_jobs(spec: StudySpec, study_dir: Path, extra: list[str]) -> list[Job]:
    """One job per objective (ensemble), or per objective × seed (one net per run)."""
    jobs = []
    for run in spec.runs:
        if spec.ensemble:
            run_dir = study_dir / run.label
            jobs.append(Job(run, None, run_dir, run_args(spec, run, run_dir, extra, None)))
        else:
            for k in range(spec.seeds):
                run_dir = study_dir / run.label / f"seed{spec.seed + k}"
                jobs.append(Job(run, k, run_dir, run_args(spec, run, run_dir, extra, k)))
    return jobs


def new_study_dir(out: str, name: str) -> Path:
    """``out/name``, or ``out/name-2``, ``-3`` ... : never an existing folder."""
    base = Path(out) / name
    candidate, k = base, 2
    while candidate.exists():
        candidate = Path(f"{base}-{k}")
        k += 1
    return candidate
