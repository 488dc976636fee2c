"""Nothing the lab reads can make it import or run code (DESIGN.md, Reliability rules): study.json
names evaluators that are looked up in the lab's registry (``gan-lab report``, ``gan-lab
dashboard``), a checkpoint's generator must be one of the lab's generator classes (``gan-lab
sample``), and a run folder's ``.npy`` is read without unpickling. Each hostile file is refused
with exit code 2 and one line, and nothing it names is imported, built or run."""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
ZEN = "Beautiful is better than ugly"

RING8 = [[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)]
MODE_INFO = {"mixture": "ring8", "means": RING8, "std": 0.05, "n_samples": 16}
MODE_METRICS = ("modes", "hq_fraction", "reverse_kl", "js")
#: how a study.json written before the evaluator registry names the mode-coverage evaluator
LEGACY = "gan_lab.evaluators.mode.ModeCoverageEvaluator"


def tiny_study_folder(folder: Path, evaluator="mode") -> Path:
    """A finished one-objective, two-seed mode-coverage study, as `gan-lab study` writes it
    (study.json naming ``evaluator``, results.csv, history.csv, a run folder with its final
    samples) and a per-seed W&B record for `gan-lab dashboard`; nothing is trained. A list of
    evaluators is today's study.json (columns ``mode/<metric>``, ``info`` by name); anything else
    the one-evaluator study.json of before (columns by metric name, its facts as ``info``)."""
    from gan_lab.dashboard.seed_runs import RECORD_FILE
    from gan_lab.study.report import HISTORY_KEYS, RESULT_KEYS

    listed = isinstance(evaluator, list)
    columns = [f"mode/{m}" if listed else m for m in MODE_METRICS]

    run = folder / "hinge"
    run.mkdir(parents=True)
    samples = np.asarray(RING8, dtype=np.float32)[None].repeat(2, 0).repeat(2, 1)  # (2 seeds, 16, 2)
    np.save(run / "final_samples.npy", samples)
    meta = {
        "study": "tiny", "source": "", "command": "gan-lab study tiny.yaml", "seeds": 2, "seed": 0,
        "ensemble": True, "note": "", "published": [], "labels": ["hinge"], "evaluator": evaluator,
        "info": {"mode": MODE_INFO} if listed else MODE_INFO, "started": "2025-01-01 00:00:00", "finished": "2025-01-01 00:01:00",
        "torch": torch.__version__, "python": "3", "host": "test",
        "runs": [{"label": "hinge", "run_dir": "hinge", "wall_time_s": 1.0}], "weights": {},
    }  # fmt: skip
    (folder / "study.json").write_text(json.dumps(meta, indent=2))
    history = [
        {"objective": "hinge", "member": k, "seed": k, "g_steps": g, **dict(zip(columns, (8.0, 0.9, 0.01, 0.01)))}
        for g in (2, 4) for k in range(2)
    ]  # fmt: skip
    results = [
        {"study": "tiny", "regularizers": "", "n_critic": 1, **r, "wall_time_s": 1.0, "status": "ok"}
        for r in history
        if r["g_steps"] == 4
    ]
    for name, keys, rows in (
        ("results.csv", [*RESULT_KEYS, *columns, "wall_time_s", "status"], results),
        ("history.csv", [*HISTORY_KEYS, *columns], history),
    ):
        with open(folder / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    record = {
        "project": "gan_lab", "group": folder.name, "facts": {"objective": "hinge"},
        "keys": ["d/loss", "g/loss", *(f"mode/{m}" for m in MODE_METRICS)], "media": [],
        "runs": [{"seed": k, "objective": "hinge"} for k in range(2)],
    }  # fmt: skip
    (run / RECORD_FILE).write_text(json.dumps(record))
    return folder


def _set_evaluator(study: Path, evaluator) -> None:
    meta = json.loads((study / "study.json").read_text())
    (study / "study.json").write_text(json.dumps({**meta, "evaluator": evaluator}))


def _one_line(err: str) -> str:
    err = err.strip()
    assert err.startswith("gan-lab: error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# ----------------------------------------------------------------------------------------------
# study.json: evaluators by name, never imported
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("evaluator", ["mode", "gan_lab.evaluators.mode.ModeCoverageEvaluator", ["mode"]])
def test_report_and_dashboard_find_registered_evaluators(tmp_path, capsys, evaluator):
    """The control: today's list of registered names, and what a study.json written before held (one
    name, or the class path of before the registry: an exact string match, not an import, with
    columns by metric name), are reported, the same table from either, and dashboarded."""
    study = tiny_study_folder(tmp_path / "tiny", evaluator)
    assert main(["report", str(study)]) == 0
    report = (study / "report.md").read_text()
    assert "Protocol (PacGAN / VEEGAN)" in report and "## ModeCoverageEvaluator (`mode/` columns)" in report
    row = next(line for line in report.splitlines() if line.startswith("| hinge |"))
    assert "| 8.00 ± 0.00 | 90.0 ± 0.0 | 0.010 ± 0.000 | 0.010 ± 0.000 |" in row
    assert (study / "mode_samples.png").is_file() and (study / "mode_coverage.png").is_file()
    assert main(["dashboard", str(study)]) == 0
    assert "mode coverage: mode/modes" in capsys.readouterr().out


def test_report_and_dashboard_of_the_current_folder(tmp_path, monkeypatch, capsys):
    study = tiny_study_folder(tmp_path / "tiny")
    monkeypatch.chdir(study)
    assert main(["report", "."]) == 0 and (study / "report.md").is_file()
    assert main(["dashboard", "."]) == 0 and (study / "dashboard.json").is_file()
    assert "Group = 'tiny'" in capsys.readouterr().out


def test_a_new_study_records_evaluator_names():
    from gan_lab.evaluators import ImageMetricsEvaluator, ModeCoverageEvaluator
    from gan_lab.study.report import evaluators_meta

    assert evaluators_meta([ModeCoverageEvaluator], [{"k": 1}]) == {
        "evaluator": ["mode"],
        "info": {"mode": {"k": 1}},
    }
    two = evaluators_meta([ModeCoverageEvaluator, ImageMetricsEvaluator], [{}, {}])
    assert two["evaluator"] == ["mode", "image"]


def test_a_users_evaluator_is_registered_by_its_study_and_may_not_take_a_labs_name(monkeypatch):
    """A user's evaluator (its module imported by the user's own config) is registered when a study
    records it, so that the report finds it by name; a NAME that a lab evaluator holds is refused."""
    from gan_lab.errors import ConfigError
    from gan_lab.evaluators.base import ScheduledEvaluator
    from gan_lab.study.report import EVALUATORS, evaluator_class, evaluators_meta

    monkeypatch.setattr(EVALUATORS, "_entries", dict(EVALUATORS._entries))  # undone after the test

    class Mine(ScheduledEvaluator):
        NAME, METRICS = "mine", ("m",)

    class Impostor(ScheduledEvaluator):
        NAME, METRICS = "mode", ("modes",)

    assert "mine" not in EVALUATORS
    assert evaluators_meta([Mine], [{}])["evaluator"] == ["mine"]
    assert evaluator_class("mine") is Mine
    assert evaluator_class(f"{Mine.__module__}.{Mine.__qualname__}") is Mine  # its exact class path

    class Mine(ScheduledEvaluator):  # defined again (a re-run notebook cell)
        NAME, METRICS = "mine", ("m",)

    assert evaluators_meta([Mine], [{}])["evaluator"] == ["mine"] and evaluator_class("mine") is Mine
    with pytest.raises(ConfigError, match="evaluator 'mode' is already registered"):
        evaluators_meta([Impostor], [{}])
    assert evaluator_class("mode").__name__ == "ModeCoverageEvaluator"


EVIL = """\
from pathlib import Path

Path({marker!r}).write_text("imported")


class Evil:
    NAME = "mode"
    METRICS = ("modes",)
"""


@pytest.fixture
def hostile_study(tmp_path):
    """A study folder whose study.json names ``evilmod.Evil``, a module beside it that writes
    ``marker`` when it is imported."""
    study = tiny_study_folder(tmp_path / "tiny", "evilmod.Evil")
    marker = tmp_path / "marker"
    (study / "evilmod.py").write_text(EVIL.format(marker=str(marker)))
    return study, marker


@pytest.mark.parametrize("command", ["report", "dashboard"])
def test_a_module_in_the_study_folder_is_never_imported(hostile_study, command):
    """`python -m gan_lab.cli report .` run inside the folder (so that the folder is on sys.path):
    today's lab imported ``evilmod`` and ran it."""
    study, marker = hostile_study
    before = {p.name: p.read_bytes() for p in study.iterdir() if p.is_file()}
    target = "." if command == "report" else str(study)
    done = subprocess.run(
        [sys.executable, "-m", "gan_lab.cli", command, target],
        cwd=study,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert not marker.exists(), "evilmod.py was imported"
    assert done.returncode == 2, done.stderr[-2000:]
    err = _one_line(done.stderr)
    assert "'evilmod.Evil'" in err and "registered evaluator" in err
    assert "valid evaluators: image, mode, sr, stacked" in err
    assert {p.name: p.read_bytes() for p in study.iterdir() if p.is_file()} == before  # nothing written


#: the lab's registered evaluators (a test that ran a study in this process may have added its own)
LAB_EVALUATORS = {"image", "mode", "sr", "stacked"}


def valid_evaluators(err: str) -> set[str]:
    """The names an error line lists after ``valid evaluators:``."""
    return set(err.split("valid evaluators: ", 1)[1].split(";")[0].split(", "))


@pytest.mark.parametrize("command", ["report", "dashboard"])
@pytest.mark.parametrize(
    "evaluator",
    ["this.X", ["mode", "this.X"], "os.system", "gan_lab.callbacks.guard.DivergenceGuard", "antigravity"],
)
def test_an_installed_module_named_in_study_json_is_never_imported(
    tmp_path, capsys, monkeypatch, command, evaluator
):
    study = tiny_study_folder(tmp_path / "tiny", evaluator)
    for name in ("this", "antigravity"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    code = main([command, str(study)])
    out, err = capsys.readouterr()
    assert "this" not in sys.modules and "antigravity" not in sys.modules
    assert ZEN not in out and ZEN not in err
    assert code == 2
    err = _one_line(err)
    named = evaluator[-1] if isinstance(evaluator, list) else evaluator
    assert f"{named!r}" in err and valid_evaluators(err) >= LAB_EVALUATORS
    assert not (study / "report.md").exists() and not (study / "dashboard.json").exists()


@pytest.mark.parametrize("evaluator", [7, [None], {"class_path": "this.X"}])
def test_an_evaluator_that_is_not_a_name_is_one_line(tmp_path, capsys, evaluator):
    study = tiny_study_folder(tmp_path / "tiny", evaluator)
    for command in ("report", "dashboard"):
        assert main([command, str(study)]) == 2
        assert "evaluator" in _one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------------------------
# A run folder's .npy: numbers only
# ----------------------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_an_object_array_npy_is_refused_in_one_line(tmp_path, capsys):
    study = tiny_study_folder(tmp_path / "tiny", LEGACY)
    marker = tmp_path / "pwned"
    hostile = np.empty((2, 16, 2), dtype=object)
    hostile[0, 0, 0] = Payload(marker)
    npy = study / "hinge" / "final_samples.npy"
    np.save(npy, hostile, allow_pickle=True)
    code = main(["report", str(study)])
    assert not marker.exists(), "the array was unpickled"
    assert code == 2
    err = _one_line(capsys.readouterr().err)
    assert str(npy) in err and "Python objects" in err and "object array" in err
    assert not (study / "report.md").exists() and not (study / "mode_samples.png").exists()


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (np.zeros((16, 2)), "shape (16, 2)"),
        (np.array([["a", "b"]] * 4)[None], "not 2D samples"),
        (b"not numpy at all", "not a numpy array file"),
    ],
)
def test_a_npy_of_another_kind_is_one_line(tmp_path, capsys, content, phrase):
    study = tiny_study_folder(tmp_path / "tiny", LEGACY)
    npy = study / "hinge" / "final_samples.npy"
    if isinstance(content, bytes):
        npy.write_bytes(content)
    else:
        np.save(npy, content)
    assert main(["report", str(study)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert str(npy) in err and phrase in err
    assert not (study / "report.md").exists()


# ----------------------------------------------------------------------------------------------
# gan-lab sample: the lab's generator classes only, checked before anything is imported or built
# ----------------------------------------------------------------------------------------------


def _checkpoint(tmp_path: Path, spec: dict) -> Path:
    from gan_lab.nets import ToyGenerator

    G = ToyGenerator(members=1, hidden=4, layers=1)
    ckpt = {
        "state_dict": {f"G.{k}": v for k, v in G.state_dict().items()},
        "hyper_parameters": {"generator": spec},
    }
    path = tmp_path / "hostile.ckpt"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    "class_path",
    [
        "gan_lab.metrics.features.DigitClassifierFeatures",  # trains a classifier into cache_dir
        "gan_lab.nets.toy.ToyDiscriminator",  # a lab net, but no generator
        "gan_lab.nets.ToyGenerator",  # a re-export: the allow-list is exact class paths
    ],
)
def test_sample_refuses_a_class_that_is_no_generator_before_building_it(tmp_path, capsys, class_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    args = {"cache_dir": str(cache)} if "Digit" in class_path else {}
    path = _checkpoint(tmp_path, {"class_path": class_path, "init_args": args})
    out = tmp_path / "x.png"
    code = main(["sample", "--ckpt", str(path), "--out", str(out)])
    assert list(cache.iterdir()) == [], "the class was built: it wrote into its cache_dir"
    assert code == 2 and not out.exists()
    err = _one_line(capsys.readouterr().err)
    assert f"generator class_path {class_path!r} is not one of the lab's generator classes" in err
    assert "gan_lab.nets.toy.ToyGenerator" in err


def test_sample_does_not_import_a_module_a_checkpoint_names(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "marker"
    (tmp_path / "gan_lab_evil.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _checkpoint(tmp_path, {"class_path": "gan_lab_evil.Evil", "init_args": {}})
    code = main(["sample", "--ckpt", str(path), "--out", str(tmp_path / "x.png")])
    assert not marker.exists() and "gan_lab_evil" not in sys.modules, "the module was imported"
    assert code == 2
    assert "not one of the lab's generator classes" in _one_line(capsys.readouterr().err)


def test_sample_still_builds_the_labs_generators(tmp_path):
    from gan_lab.nets import ToyGenerator
    from gan_lab.nets.spec import net_spec

    path = _checkpoint(tmp_path, net_spec(ToyGenerator(members=1, hidden=4, layers=1)))
    assert main(["sample", "--ckpt", str(path), "--out", str(tmp_path / "x.png"), "--n", "8"]) == 0
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
