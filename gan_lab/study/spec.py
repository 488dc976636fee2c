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
      - objective: {class_path: my_losses.Focal, init_args: {gamma: 2.0}}   # your own
        label: focal

An entry's ``objective`` is whatever ``gan-lab fit`` takes as ``--model.objective``: a registered
name, the class path of an :class:`~gan_lab.losses.Objective` (``my_losses.Focal``), or
``{class_path, init_args}``; its ``label`` (the rows' ``objective``, its folder) defaults to the
name or the class path. The study file is your own config, as a YAML you pass to ``fit`` is: a class
it names is imported as ``fit`` imports it.

Two optional keys put a study beside the literature:

- ``note``: a paragraph the report prints first, under the title: how this schedule relates to the
  paper's protocol (e.g. "a 10-minute CPU schedule, NOT PacGAN's protocol").
- ``published``: rows of published tables, printed in the report beside ours::

      published:
        - source: "Lin et al., PacGAN (NeurIPS 2018), Table 1, ring"
          rows:
            - {label: GAN, compare: GAN, modes: [6.3, 0.5], hq_fraction: [0.982, 0.002], reverse_kl: [0.45, 0.09]}
            - {label: PacGAN2, modes: [7.9, 0.1], hq_fraction: [0.956, 0.020], reverse_kl: [0.07, 0.03]}

  Each row has a ``label`` (the paper's name), optionally ``compare`` (the label of the study entry
  it is compared with; default: the entry of the same label, if any), and metric values in the
  metric's own units (``hq_fraction`` 0.982, not 98.2 %): ``[mean, s.e.]``, or a bare number when the
  source gives no standard error. Metric keys are the study's metric columns, ``<evaluator
  NAME>/<metric>`` (``mode/modes``), or a metric's bare name (``modes``, ``hq_fraction``,
  ``reverse_kl``, ``js`` for mode coverage) when one evaluator of the study has it. The report shows
  each source's rows in the table of the evaluator they belong to, and flags a published row whose
  ``mean ± s.e.`` interval does not overlap ours (:mod:`gan_lab.study.report`).

Two optional keys set the report's verdicts (:mod:`gan_lab.study.verdicts`): ``alpha``, the
significance level of the Holm-corrected pairwise tests (default 0.05), and ``last_k``, how many of
each seed's last evaluations are averaged before entries are compared (default 4).

``mixed: true`` trains the entries that differ in their objective only (the same ``configs`` and
``args``) as one mixed ensemble, one process (:class:`gan_lab.losses.PerMember`): member
``j·S + i`` is the run of the ``j``-th of them with seed ``seed + i``, exactly as in its own job.
A study of J such objectives then makes one fit of ``J · seeds`` members instead of J fits (one
kernel per layer for all of them on a GPU). Objectives by class path mix as registered ones do.

:func:`load_study` reads and checks it (one-line :class:`~gan_lab.errors.ConfigError` otherwise;
every config it names, ``base``, ``configs`` and ``--config`` in ``args``, must be a YAML mapping
of settings, :func:`check_config_file`, refused without quoting the file, whatever file it is) and
:func:`select` keeps one entry (a job-array task); :func:`gan_lab.study.plan.plan_study` turns it
into jobs: one ``gan-lab fit`` per objective (seed-ensemble nets, ``ensemble: true``, the default,
train all seeds as members of one run) or per objective × seed (``ensemble: false``).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gan_lab.errors import ConfigError, check_int


@dataclass
class RunSpec:
    """One entry of a study: its objective (a registered name, a class path, or ``{class_path,
    init_args}``), its override configs and arguments, its label."""

    objective: str | dict
    configs: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def objective_text(self) -> str:
        """The objective's name or class path (a W&B tag)."""
        return self.objective if isinstance(self.objective, str) else str(self.objective["class_path"])


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
    mixed: bool = False
    note: str = ""
    published: list[dict] = field(default_factory=list)
    alpha: float = 0.05
    last_k: int = 4


def _as_str_list(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of strings, got {value!r}")
    return list(value)


#: top-level settings (and flags) whose string value jsonargparse reads as the path of a config
#: file of that section (``data: data.yaml``, ``--model=model.yaml``)
CONFIG_SECTIONS = ("trainer", "model", "data", "optimizer", "lr_scheduler")


def _yaml_problem(e: yaml.YAMLError) -> str:
    """Where and what a YAML error is, without the text around it (the file may be anything)."""
    mark = getattr(e, "problem_mark", None)
    problem = " ".join(str(getattr(e, "problem", None) or "not YAML").split())
    problem = re.sub(r"'[^']{2,}'", "'…'", problem)[:80]  # quoted tokens of the file: left out
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def check_config_file(config: Path, named_in: str, role: str = "config", _depth: int = 0) -> None:
    """Refuse (one line naming ``config``, ``named_in`` and what is wrong, never its content) a
    config file that a study file names and that is not a YAML mapping of settings: unreadable,
    not UTF-8 text, not valid YAML, or YAML of something else (a text, a list). An empty file is
    an empty config. A section that names another config file (``data: data.yaml``) is checked
    the same way. E.g. ``base: /etc/passwd`` is "base /etc/passwd named in 's.yaml' is not a YAML
    config: it holds a text (str), not a mapping of settings (trainer:, model:, data:)".
    """
    where = f"{role} {config} named in {named_in!r}"
    try:
        data = config.read_bytes()
    except OSError as e:
        raise ConfigError(f"{where} cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where} is not a YAML config (not UTF-8 text at byte {e.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML ({_yaml_problem(e)})") from None
    if raw is None:
        return
    if not isinstance(raw, dict):
        kind = {str: "a text", list: "a list"}.get(type(raw), "a single value")
        raise ConfigError(
            f"{where} is not a YAML config: it holds {kind} ({type(raw).__name__}), not a mapping of "
            "settings (trainer:, model:, data:)"
        )
    for key in CONFIG_SECTIONS:
        value = raw.get(key)
        if isinstance(value, str) and _depth < 4:
            for q in (config.parent / value, Path(value)):
                if q.is_file():
                    check_config_file(q, str(config), f"{key} config", _depth + 1)


def _config_args(args: list[str]) -> list[str]:
    """The config files that fit arguments name: ``--config X`` / ``--config=X`` / ``-c X`` and a
    section given as a file (``--data=data.yaml``)."""
    flags = ("--config", "-c", *(f"--{k}" for k in CONFIG_SECTIONS))
    found = [a.split("=", 1)[1] for a in args if "=" in a and a.split("=", 1)[0] in flags]
    found += [b for a, b in itertools.pairwise(args) if a in flags]
    return found


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
    known = {
        "name",
        "base",
        "seeds",
        "seed",
        "args",
        "objectives",
        "out",
        "ensemble",
        "mixed",
        "note",
        "published",
        "alpha",
        "last_k",
    }
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
    mixed = raw.get("mixed", False)
    if not isinstance(mixed, bool):
        raise ConfigError(f"study mixed must be true or false, got {mixed!r}")
    if mixed and not ensemble:
        raise ConfigError(
            "study mixed: true trains objectives as members of one ensemble; it needs ensemble: true"
        )

    def resolve(f: str, role: str = "config") -> str:
        if not isinstance(f, str) or not f:
            raise ConfigError(
                f"{role} in study file {path!r} must be the path of a YAML config, got {f!r:.60}"
            )
        q = (p.parent / f) if not os.path.isabs(f) else Path(f)
        if not q.is_file():
            raise ConfigError(f"config file {f!r} named in {path!r} not found (looked at {q})")
        check_config_file(q, path, role)
        return str(q)

    def check_args(args: list[str]) -> list[str]:
        for f in _config_args(args):
            if Path(f).is_file():  # a missing one: `gan-lab fit` names it
                check_config_file(Path(f), path, "config")
        return args

    base = resolve(raw["base"], "base")
    runs = []
    if not isinstance(raw["objectives"], list) or not raw["objectives"]:
        raise ConfigError("study objectives must be a non-empty list")
    for item in raw["objectives"]:
        item = {"objective": item} if isinstance(item, str) else item
        objective = item.get("objective") if isinstance(item, dict) else None
        if not (isinstance(objective, str) and objective) and not _is_class_path(objective):
            raise ConfigError(
                "each study objective needs an 'objective': a name, a class path or "
                f"{{class_path: ..., init_args: ...}}, got {item!r:.80}"
            )
        shown = objective if isinstance(objective, str) else objective["class_path"]
        extra = set(item) - {"objective", "configs", "args", "label"}
        if extra:
            raise ConfigError(f"unknown key(s) {sorted(extra)} for objective {shown!r}")
        label = item.get("label") or shown
        if not isinstance(label, str):
            raise ConfigError(f"the label of objective {shown!r} must be a string, got {label!r:.60}")
        runs.append(
            RunSpec(
                objective=objective,
                configs=[resolve(c) for c in _as_str_list(item.get("configs"), "configs")],
                args=check_args(_as_str_list(item.get("args"), "args")),
                label=label,
            )
        )
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError(
            f"study runs need distinct labels, got {labels}; add 'label:' to repeated objectives"
        )
    published = check_published(raw.get("published"), str(p))
    for entry in published:
        for row in entry["rows"]:
            if "compare" in row and row["compare"] not in labels:
                raise ConfigError(
                    f"published row {row['label']!r} of {entry['source']!r} compares with {row['compare']!r}, "
                    f"which is not an entry of {path} (its labels: {', '.join(labels)})"
                )
    note = raw.get("note") or ""
    if not isinstance(note, str):
        raise ConfigError(f"study note must be a string (a paragraph), got {note!r:.60}")
    alpha, last_k = raw.get("alpha", 0.05), raw.get("last_k", 4)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"study alpha must be a number in (0, 1), got {alpha!r:.60}; e.g. alpha: 0.05")
    if isinstance(last_k, bool) or not isinstance(last_k, int) or last_k < 1:
        raise ConfigError(f"study last_k must be a whole number >= 1, got {last_k!r:.60}; e.g. last_k: 4")
    return StudySpec(
        name=name,
        alpha=float(alpha),
        last_k=last_k,
        note=" ".join(note.split()),
        published=published,
        base=base,
        seeds=seeds,
        seed=seed,
        args=check_args(_as_str_list(raw.get("args"), "args")),
        runs=runs,
        out=out or raw.get("out") or "runs",
        source=str(p),
        ensemble=ensemble,
        mixed=mixed,
    )


def _is_class_path(value) -> bool:
    """A mapping naming a class as ``gan-lab fit`` takes one: a non-empty string ``class_path``
    (its ``init_args`` and the rest are fit's to check)."""
    return isinstance(value, dict) and isinstance(value.get("class_path"), str) and bool(value["class_path"])


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_published(value, where: str = "the study file") -> list[dict]:
    """The ``published`` key checked (see the module docstring): a list of ``{source, rows}``, each
    row a ``label``, an optional ``compare`` and metric values ``[mean, s.e.]`` or a number.

    >>> check_published([{"source": "S", "rows": [{"label": "GAN", "modes": [6.3, 0.5], "js": 0.1}]}])
    [{'source': 'S', 'rows': [{'label': 'GAN', 'modes': [6.3, 0.5], 'js': 0.1}]}]
    >>> check_published([{"source": "S", "rows": [{"label": "GAN", "modes": "6.3"}]}])
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: published row 'GAN' of 'S' in the study file: 'modes' must be [mean, s.e.] or a number, got '6.3'
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"'published' in {where} must be a list of {{source, rows}}, got {value!r:.60}")
    out = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"source", "rows"}:
            raise ConfigError(
                f"each 'published' entry in {where} needs exactly 'source' and 'rows', got {entry!r:.80}"
            )
        source, rows = entry["source"], entry["rows"]
        if not isinstance(source, str) or not source.strip():
            raise ConfigError(f"a 'published' source in {where} must be a non-empty string, got {source!r}")
        if not isinstance(rows, list) or not rows:
            raise ConfigError(f"'published' rows of {source!r} in {where} must be a non-empty list")
        checked = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("label"), str):
                raise ConfigError(
                    f"each published row of {source!r} in {where} needs a 'label', got {row!r:.80}"
                )
            if "compare" in row and not isinstance(row["compare"], str):
                raise ConfigError(
                    f"published row {row['label']!r} of {source!r}: 'compare' must be a study label"
                )
            metrics = {k: v for k, v in row.items() if k not in ("label", "compare")}
            if not metrics:
                raise ConfigError(
                    f"published row {row['label']!r} of {source!r} in {where} has no metric values"
                )
            for key, v in metrics.items():
                pair = isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) and v[1] >= 0
                if not (pair or _is_number(v)):
                    raise ConfigError(
                        f"published row {row['label']!r} of {source!r} in {where}: {key!r} must be "
                        f"[mean, s.e.] or a number, got {v!r}"
                    )
            checked.append(dict(row))
        out.append({"source": source, "rows": checked})
    return out


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


def new_study_dir(out: str, name: str) -> Path:
    """``out/name``, or ``out/name-2``, ``-3`` ... : never an existing folder."""
    base = Path(out) / name
    candidate, k = base, 2
    while candidate.exists():
        candidate = Path(f"{base}-{k}")
        k += 1
    return candidate
