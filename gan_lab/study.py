"""Run an objectives × seeds grid and write the comparison report.

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

Every run is parsed and instantiated through the same LightningCLI as ``gan-lab fit`` *before*
any of them starts, so a bad name or an impossible combination ends the study with one line and
exit code 2 and no run folder. Output, in ``runs/<name>/`` (``runs/<name>-2/`` ... when it exists,
so that no earlier study is overwritten):

    results.csv    one row per objective × seed: final modes, HQ fraction, reverse KL, JS, wall time
    history.csv    the same metrics at every evaluation (G steps)
    samples.npz    final samples per objective, (E, N, 2) each
    report.md      objective table (mean ± s.e. over seeds), protocol, figures
    samples.png    final samples of each objective over the mixture means, one panel each
    coverage.png   modes covered against G steps, mean ± s.e. band per objective
    <objective>/   the run's own folder: config, checkpoint, metrics.csv, W&B files
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gan_lab.cli import fail
from gan_lab.errors import ConfigError

RESULT_FIELDS = [
    "study",
    "objective",
    "regularizers",
    "n_critic",
    "member",
    "seed",
    "g_steps",
    "modes",
    "hq_fraction",
    "reverse_kl",
    "js",
    "wall_time_s",
]
HISTORY_FIELDS = ["objective", "member", "seed", "g_steps", "modes", "hq_fraction", "reverse_kl", "js"]


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
    known = {"name", "base", "seeds", "seed", "args", "objectives", "out"}
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
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"study seeds must be an integer >= 1 (ensemble members), got {seeds!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"study seed must be an integer, got {seed!r}")

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
    )


def run_args(spec: StudySpec, run: RunSpec, run_dir: str, extra: list[str]) -> list[str]:
    """The ``gan-lab fit`` arguments of one run (without the subcommand)."""
    args = ["--config", spec.base]
    for c in run.configs:
        args += ["--config", c]
    args += [
        f"--model.objective={run.objective}",
        f"--model.seed={spec.seed}",
        f"--model.generator.init_args.members={spec.seeds}",
        f"--model.discriminator.init_args.members={spec.seeds}",
        *spec.args,
        *run.args,
        *extra,
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run_dir}",
    ]
    return args


def new_study_dir(out: str, name: str) -> Path:
    """``out/name``, or ``out/name-2``, ``-3`` ... : never an existing folder."""
    base = Path(out) / name
    candidate, k = base, 2
    while candidate.exists():
        candidate = Path(f"{base}-{k}")
        k += 1
    return candidate


def _check_writable(out: str) -> None:
    probe = Path(out)
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise ConfigError(f"output folder {out!r} is not writable; pass --out to a folder you can write")


def _evaluator(trainer):
    from gan_lab.callbacks import ModeCoverageEvaluator

    for cb in trainer.callbacks:
        if isinstance(cb, ModeCoverageEvaluator):
            return cb
    raise ConfigError("the study needs a gan_lab.callbacks.ModeCoverageEvaluator in trainer.callbacks")


class _StudyProgress:
    """A Lightning callback that advances one study-wide progress bar by G steps."""

    def __new__(cls, bar, label: str):
        from lightning.pytorch.callbacks import Callback

        class Progress(Callback):
            def __init__(self) -> None:
                self.seen = 0

            def on_train_batch_end(self, trainer, pl_module, *args) -> None:
                if pl_module.g_steps > self.seen:
                    bar.update(pl_module.g_steps - self.seen)
                    self.seen = pl_module.g_steps
                    bar.set_postfix_str(label, refresh=False)

        return Progress()


def run_study(spec: StudySpec, extra: list[str] | None = None, wandb: bool = True) -> Path:
    """Validate every run, then fit them one after another and write the report. Returns the folder."""
    import torch
    from lightning.pytorch.loggers import CSVLogger, WandbLogger
    from tqdm.auto import tqdm

    from gan_lab.cli import build_cli

    extra = list(extra or [])
    _check_writable(spec.out)
    study_dir = new_study_dir(spec.out, spec.name)

    # 1. Parse and instantiate every run before anything is written.
    clis = []
    for run in spec.runs:
        args = run_args(spec, run, str(study_dir / run.label), extra)
        try:
            cli = build_cli(args, run=False)
        except ConfigError as e:
            raise ConfigError(f"{run.label}: {e}") from None
        _evaluator(cli.trainer)
        clis.append((run, args, cli))

    study_dir.mkdir(parents=True)
    meta = {
        "study": spec.name,
        "source": spec.source,
        "command": "gan-lab study " + " ".join([spec.source, *extra]),
        "seeds": spec.seeds,
        "seed": spec.seed,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "runs": [],
    }
    results, history, samples = [], [], {}
    total = sum(cli.model.max_g_steps or 0 for _, _, cli in clis)
    bar = tqdm(total=total or None, desc=spec.name, unit="G step", dynamic_ncols=True, file=sys.stderr)
    for run, args, cli in clis:
        model, trainer, datamodule = cli.model, cli.trainer, cli.datamodule
        run_dir = study_dir / run.label
        regs = "+".join(model.regularizer_names) or "-"
        loggers = [CSVLogger(str(run_dir), name="", version="")]
        if wandb:
            loggers.append(
                WandbLogger(
                    save_dir=str(run_dir),
                    project="gan_lab",
                    group=spec.name,
                    name=f"{spec.name}/{run.label}",
                    tags=[run.objective, *model.regularizer_names],
                    config={"study": spec.name, "args": args, **model.hparams},
                )
            )
        trainer.loggers = loggers
        trainer.callbacks.append(_StudyProgress(bar, run.label))
        t0 = time.perf_counter()
        trainer.fit(model, datamodule)
        wall = time.perf_counter() - t0
        for logger in loggers:
            logger.finalize("success")
        if wandb:
            import wandb as wandb_lib

            wandb_lib.finish()
        evaluator = _evaluator(trainer)
        final_step = max(r["g_steps"] for r in evaluator.history)
        for r in evaluator.history:
            history.append({"objective": run.label, **{k: r[k] for k in HISTORY_FIELDS[1:]}})
            if r["g_steps"] == final_step:
                results.append(
                    {
                        "study": spec.name,
                        "objective": run.label,
                        "regularizers": regs,
                        "n_critic": model.n_critic,
                        **{
                            k: r[k]
                            for k in ("member", "seed", "g_steps", "modes", "hq_fraction", "reverse_kl", "js")
                        },
                        "wall_time_s": round(wall, 2),
                    }
                )
        samples[run.label] = evaluator.last_samples.numpy()
        meta["runs"].append(
            {"label": run.label, "objective": run.objective, "args": args, "wall_time_s": wall}
        )
        _write_csv(study_dir / "results.csv", RESULT_FIELDS, results)
        _write_csv(study_dir / "history.csv", HISTORY_FIELDS, history)
    bar.close()

    import numpy as np

    np.savez_compressed(study_dir / "samples.npz", **samples)
    mixture = clis[0][2].datamodule.mixture
    meta["mixture"] = {"name": mixture.name, "means": mixture.means.tolist(), "std": mixture.std}
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (study_dir / "study.json").write_text(json.dumps(meta, indent=2))
    write_report(study_dir)
    return study_dir


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("member", "seed", "g_steps", "n_critic"):
            if k in r:
                r[k] = int(r[k])
        for k in ("modes", "hq_fraction", "reverse_kl", "js", "wall_time_s"):
            if k in r:
                r[k] = float(r[k])
    return rows


def _fmt(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± s.e.`` over the finite values, with ``(n=k/N)`` when some are undefined."""
    import torch

    from gan_lab.metrics import mean_and_se

    t = torch.tensor(values, dtype=torch.float64) * scale
    mean, se = mean_and_se(t)
    n_ok = int(torch.isfinite(t).sum())
    if n_ok == 0:
        return "undefined"
    text = f"{mean:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{mean:.{digits}f}"
    if n_ok < len(values):
        text += f" (n={n_ok}/{len(values)})"
    return text


def write_report(study_dir: Path) -> Path:
    """Write ``report.md``, ``samples.png`` and ``coverage.png`` from the study's own files."""
    from gan_lab.plots import save_coverage_figure, save_samples_figure

    study_dir = Path(study_dir)
    meta = json.loads((study_dir / "study.json").read_text())
    results = _read_csv(study_dir / "results.csv")
    history = _read_csv(study_dir / "history.csv")
    import numpy as np

    samples = np.load(study_dir / "samples.npz")
    means = np.array(meta["mixture"]["means"])
    labels = list(dict.fromkeys(r["objective"] for r in results))

    save_samples_figure(
        {lab: (samples[lab], means, [r for r in results if r["objective"] == lab]) for lab in labels},
        str(study_dir / "samples.png"),
    )
    save_coverage_figure(
        {lab: [r for r in history if r["objective"] == lab] for lab in labels},
        str(study_dir / "coverage.png"),
        num_modes=len(means),
    )

    k = len(means)
    lines = [
        f"# Study `{meta['study']}`",
        "",
        f"Command: `{meta['command']}` — started {meta['started']}, finished {meta['finished']}, "
        f"torch {meta['torch']}, python {meta['python']}.",
        "",
        f"Each objective trains {meta['seeds']} seeds (seeds {meta['seed']}..{meta['seed'] + meta['seeds'] - 1}) "
        "together as ensemble members; each member is an independent run. Figures are the mean ± "
        "standard error over seeds at the final evaluation.",
        "",
        "Protocol (PacGAN / VEEGAN): "
        f"`{meta['mixture']['name']}`, {k} Gaussians, std {meta['mixture']['std']}. "
        "G maps a fixed set of 2,500 noise vectors to samples; each sample is assigned to its nearest "
        "mean and is high quality (HQ) if its distance is below 3 std; a mode is covered if at least "
        "one HQ sample is assigned to it. Reverse KL is KL(p̂ ‖ uniform) and JS is JS(p̂, uniform), "
        f"in nats, for the histogram p̂ of HQ samples over the {k} modes (0 is best; ln {k} = "
        f"{math.log(k):.2f} and ln 2 = 0.69 are the worst); both are undefined for a seed with no HQ "
        "sample, and such seeds are left out of their mean (n shown).",
        "",
        f"| objective | regularizers | n_critic | G steps | modes covered (of {k}) | HQ % | reverse KL | JS | wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lab in labels:
        rows = [r for r in results if r["objective"] == lab]
        first = rows[0]
        lines.append(
            f"| {lab} | {first['regularizers']} | {first['n_critic']} | {first['g_steps']} | "
            f"{_fmt([r['modes'] for r in rows], digits=2)} | "
            f"{_fmt([r['hq_fraction'] for r in rows], scale=100, digits=1)} | "
            f"{_fmt([r['reverse_kl'] for r in rows], digits=3)} | "
            f"{_fmt([r['js'] for r in rows], digits=3)} | {first['wall_time_s']:.1f} |"
        )
    lines += [
        "",
        "Per-seed values are in `results.csv`, every evaluation in `history.csv`.",
        "",
        "![final samples](samples.png)",
        "",
        "![mode coverage](coverage.png)",
        "",
    ]
    path = study_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def study_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gan-lab study", description="Run an objectives × seeds study.")
    parser.add_argument("study_file")
    parser.add_argument("--out", default=None, help="parent folder of the study folder (default: runs)")
    parser.add_argument(
        "--no-wandb", action="store_true", help="skip W&B logging (CSV is written regardless)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra arguments for every run, e.g. --model.max_g_steps=200"
    )
    args, unknown = parser.parse_known_args(argv)
    try:
        spec = load_study(args.study_file, args.out)
        study_dir = run_study(spec, [*args.overrides, *unknown], wandb=not args.no_wandb)
    except ConfigError as e:
        return fail(e)
    print(f"study written to {study_dir}/ (report.md, results.csv, samples.png, coverage.png)")
    return 0


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="gan-lab report", description="Rewrite a study's report from its files."
    )
    parser.add_argument("study_dir")
    args = parser.parse_args(argv)
    d = Path(args.study_dir)
    missing = [
        f for f in ("study.json", "results.csv", "history.csv", "samples.npz") if not (d / f).is_file()
    ]
    if missing:
        return fail(f"{args.study_dir!r} is not a finished study folder (missing {', '.join(missing)})")
    print(write_report(d))
    return 0
