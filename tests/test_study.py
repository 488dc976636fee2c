"""`gan-lab study` / `gan-lab report`: a small objectives × seeds grid, end to end."""

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from wandb_offline import read_run

from gan_lab.cli import main
from gan_lab.metrics import mean_and_se
from gan_lab.study import fmt_mean_se

ROOT = Path(__file__).resolve().parents[1]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


BASE = (ROOT / "tests" / "configs" / "tiny_ring8.yaml").read_text()


def write_study(tmp_path, objectives="[hinge, {objective: wasserstein, configs: [wgan.yaml]}]", seeds=3):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "wgan.yaml").write_text("model:\n  n_critic: 2\n  regularizers: [wgan_gp]\n")
    study = tmp_path / "study.yaml"
    study.write_text(f"name: tiny\nbase: base.yaml\nseeds: {seeds}\nseed: 7\nobjectives: {objectives}\n")
    return study


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One study with W&B offline, shared by the tests that read its output."""
    tmp = tmp_path_factory.mktemp("study")
    study = write_study(tmp)
    assert main(["study", str(study), "--out", str(tmp / "runs")]) == 0
    return tmp / "runs" / "tiny"


def test_study_writes_every_file(finished):
    files = ("plan.json", "results.csv", "history.csv", "report.md", "mode_samples.png", "mode_coverage.png")
    for name in (*files, "study.json"):
        assert (finished / name).is_file(), name
    assert (finished / "mode_samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in ("hinge", "wasserstein"):
        assert (finished / label / "final_samples.npy").is_file()


def test_results_have_one_row_per_objective_and_seed(finished):
    rows = read_csv(finished / "results.csv")
    assert [(r["objective"], int(r["seed"])) for r in rows] == [
        (obj, s) for obj in ("hinge", "wasserstein") for s in (7, 8, 9)
    ]
    assert {r["g_steps"] for r in rows} == {"4"}
    assert {r["regularizers"] for r in rows if r["objective"] == "wasserstein"} == {"wgan_gp"}
    history = read_csv(finished / "history.csv")
    assert sorted({int(r["g_steps"]) for r in history}) == [2, 4]


def test_report_figures_match_results_csv(finished):
    rows = read_csv(finished / "results.csv")
    report = (finished / "report.md").read_text()
    for obj in ("hinge", "wasserstein"):
        line = next(x for x in report.splitlines() if x.startswith(f"| {obj} |"))
        modes = [float(r["mode/modes"]) for r in rows if r["objective"] == obj]
        hq = [float(r["mode/hq_fraction"]) for r in rows if r["objective"] == obj]
        mean, se = mean_and_se(torch.tensor(modes, dtype=torch.float64))
        assert f"{mean:.2f} ± {se:.2f}" in line
        assert fmt_mean_se(hq, scale=100, digits=1) in line
    assert "PacGAN / VEEGAN" in report and "3 std" in report


def test_report_command_rewrites_the_same_report(finished, capsys):
    before = (finished / "report.md").read_text()
    (finished / "report.md").unlink()
    assert main(["report", str(finished)]) == 0
    assert (finished / "report.md").read_text() == before


def test_wandb_offline_runs_carry_group_tags_and_metrics(finished):
    files = sorted(finished.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 6  # one run per (objective, seed): 2 objectives × 3 seeds
    runs = [read_run(f) for f in files]
    assert {r["run"].run_group for r in runs} == {"tiny"}
    tags = {tuple(r["run"].tags) for r in runs}
    assert ("hinge",) in tags and ("wasserstein", "wgan_gp") in tags
    for r in runs:
        logged = [row["mode/modes"] for row in r["history"] if "mode/modes" in row]
        assert logged and all(0 <= v <= 8 for v in logged)
        assert any("d/loss" in row for row in r["history"])


def test_rerun_writes_a_new_folder(tmp_path):
    study = write_study(tmp_path, objectives="[hinge]", seeds=1)
    out = tmp_path / "runs"
    assert main(["study", str(study), "--out", str(out), "--no-wandb"]) == 0
    first = (out / "tiny" / "results.csv").read_text()
    assert main(["study", str(study), "--out", str(out), "--no-wandb"]) == 0
    assert (out / "tiny-2" / "results.csv").is_file()
    assert (out / "tiny" / "results.csv").read_text() == first


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        ("[hinge, hing]", "unknown objective 'hing'"),
        ("[{objective: hinge, args: [--model.n_critic=0]}]", "n_critic must be an integer >= 1"),
        ("[{objective: hinge, configs: [missing.yaml]}]", "missing.yaml"),
        ("[hinge, hinge]", "distinct labels"),
    ],
)
def test_bad_study_exits_2_before_any_folder(tmp_path, capsys, objectives, message):
    study = write_study(tmp_path, objectives=objectives)
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("alpha: 0", "study alpha must be a number in (0, 1)"),
        ("alpha: yes", "study alpha must be a number in (0, 1)"),
        ("last_k: 0", "study last_k must be a whole number >= 1"),
        ("last_k: 2.5", "study last_k must be a whole number >= 1"),
    ],
)
def test_bad_verdict_settings_exit_2_before_any_folder(tmp_path, capsys, extra, message):
    study = write_study(tmp_path, objectives="[hinge]", seeds=1)
    study.write_text(study.read_text() + extra + "\n")
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()


def test_the_study_files_verdict_settings_and_the_cpu_reach_study_json(tmp_path):
    """Mutation: run_study not writing alpha / last_k (the report would use 0.05 / 4)."""
    study = write_study(tmp_path, objectives="[hinge]", seeds=1)
    study.write_text(study.read_text() + "alpha: 0.01\nlast_k: 2\n")
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 0
    meta = json.loads((tmp_path / "runs" / "tiny" / "study.json").read_text())
    assert (meta["alpha"], meta["last_k"]) == (0.01, 2)
    assert "cpu" in meta and "gpu" in meta
    assert "the last 2 evaluations" in (tmp_path / "runs" / "tiny" / "report.md").read_text()


def test_missing_study_file(tmp_path, capsys):
    assert main(["study", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_fmt_mean_se_by_hand():
    assert fmt_mean_se([2.0, 4.0]) == f"3.00 ± {math.sqrt(2) / math.sqrt(2):.2f}"
    assert re.fullmatch(r"undefined", fmt_mean_se([float("nan")]))


def test_a_diverged_run_is_recorded_and_the_study_goes_on(tmp_path, capsys):
    objectives = "[{objective: nan_objective.NaNFromStep, label: nan}, hinge]"
    study = write_study(tmp_path, objectives=objectives, seeds=2)
    base = (tmp_path / "base.yaml").read_text()
    guard = "    - class_path: gan_lab.callbacks.DivergenceGuard\n      init_args: {policy: stop}\n"
    (tmp_path / "base.yaml").write_text(base.replace("  callbacks:\n", "  callbacks:\n" + guard))
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 0
    out = tmp_path / "runs" / "tiny"
    rows = read_csv(out / "results.csv")
    assert {r["status"] for r in rows if r["objective"] == "nan"} == {"diverged at g_steps=3"}
    assert {r["status"] for r in rows if r["objective"] == "hinge"} == {"ok"}
    assert "- nan: diverged at g_steps=3" in (out / "report.md").read_text()


def test_job_array_entries_merge_into_one_study(tmp_path):
    """`--only LABEL --study-dir DIR` per array task, then `gan-lab report DIR` joins them."""
    study = write_study(tmp_path, seeds=2)
    shared = tmp_path / "shared"
    for label in ("wasserstein", "hinge"):
        args = ["study", str(study), "--only", label, "--study-dir", str(shared), "--no-wandb"]
        assert main(args) == 0
    assert main(["report", str(shared)]) == 0
    rows = read_csv(shared / "results.csv")
    assert sorted({r["objective"] for r in rows}) == ["hinge", "wasserstein"] and len(rows) == 4
    report = (shared / "report.md").read_text()
    assert "| hinge |" in report and "| wasserstein |" in report and (shared / "mode_samples.png").is_file()


def test_only_unknown_label(tmp_path, capsys):
    study = write_study(tmp_path)
    assert main(["study", str(study), "--only", "hing", "--no-wandb", "--out", str(tmp_path / "r")]) == 2
    assert "its entries: hinge, wasserstein" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# `gan-lab report` on damaged files: one line, exit 2, nothing rewritten
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """A real finished study (2 objectives x 2 seeds, no W&B), copied by each test that damages it."""
    tmp = tmp_path_factory.mktemp("small")
    study = write_study(tmp, objectives="[hinge, least_squares]", seeds=2)
    assert main(["study", str(study), "--out", str(tmp / "runs"), "--no-wandb"]) == 0
    return tmp / "runs" / "tiny"


def _edit_csv(path, edit):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows = edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _set_cell(column, value, row=1):
    def edit(rows):
        rows[row][rows[0].index(column)] = value
        return rows

    return edit


def _drop_column(column):
    def edit(rows):
        i = rows[0].index(column)
        return [r[:i] + r[i + 1 :] for r in rows]

    return edit


def _truncate(path):
    """Cut the file in the middle of its last row (as a full disk or a killed copy leaves it)."""
    text = path.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    path.write_text(text[: len(text.rstrip("\n")) - len(last) // 2])


DAMAGE = {
    "results truncated": ("results.csv", _truncate, ["results.csv", "truncated"]),
    "results garbage": (
        "results.csv",
        lambda p: p.write_text("<html>502 Bad Gateway</html>\n"),
        ["results.csv", "lacks column"],
    ),
    "results binary": (
        "results.csv",
        lambda p: p.write_bytes(b"\xff\xd8\xff\xe0\x00JFIF"),
        ["results.csv", "UTF-8"],
    ),
    "results empty": ("results.csv", lambda p: p.write_text(""), ["results.csv", "empty"]),
    "results header only": (
        "results.csv",
        lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"),
        ["results.csv", "no rows"],
    ),
    "results non-numeric": (
        "results.csv",
        lambda p: _edit_csv(p, _set_cell("mode/modes", "many")),
        ["results.csv", "line 2", "mode/modes", "'many'", "not a number"],
    ),
    "results non-integer seed": (
        "results.csv",
        lambda p: _edit_csv(p, _set_cell("seed", "7.5", row=2)),
        ["results.csv", "line 3", "seed", "'7.5'", "not an integer"],
    ),
    "results missing column": (
        "results.csv",
        lambda p: _edit_csv(p, _drop_column("mode/hq_fraction")),
        ["results.csv", "lacks column", "mode/hq_fraction"],
    ),
    "results extra field": (
        "results.csv",
        lambda p: _edit_csv(p, lambda rows: [*rows[:2], [*rows[2], "surplus"], *rows[3:]]),
        ["results.csv", "line 3", "more fields"],
    ),
    "results unknown objective": (
        "results.csv",
        lambda p: _edit_csv(p, _set_cell("objective", "hing")),
        ["results.csv", "'hing'", "study.json"],
    ),
    "history truncated": ("history.csv", _truncate, ["history.csv", "truncated"]),
    "history non-numeric": (
        "history.csv",
        lambda p: _edit_csv(p, _set_cell("g_steps", "two")),
        ["history.csv", "line 2", "g_steps", "'two'"],
    ),
    "history missing column": (
        "history.csv",
        lambda p: _edit_csv(p, _drop_column("mode/modes")),
        ["history.csv", "lacks column", "mode/modes"],
    ),
    "study.json truncated": (
        "study.json",
        lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),
        ["study.json", "not valid JSON", "line"],
    ),
    "study.json garbage": ("study.json", lambda p: p.write_text("hello\n"), ["study.json", "not valid JSON"]),
    "study.json a list": ("study.json", lambda p: p.write_text("[1, 2]"), ["study.json", "JSON object"]),
    "study.json without evaluator": (
        "study.json",
        lambda p: p.write_text(
            json.dumps({k: v for k, v in json.loads(p.read_text()).items() if k != "evaluator"})
        ),
        ["study.json", "lacks", "evaluator"],
    ),
    "study.json unknown evaluator": (
        "study.json",
        lambda p: p.write_text(
            json.dumps({**json.loads(p.read_text()), "evaluator": "gan_lab.nope.Evaluator"})
        ),
        ["study.json", "gan_lab.nope.Evaluator", "cannot be imported"],
    ),
    "study.json info not fitting": (
        "study.json",
        lambda p: p.write_text(
            json.dumps({**json.loads(p.read_text()), "info": {"mode": {"mixture": "ring8"}}})
        ),
        ["study.json", "'info' does not fit ModeCoverageEvaluator", "KeyError", "means"],
    ),
    "study.json bad runs": (
        "study.json",
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "runs": "hinge"})),
        ["study.json", "runs"],
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_report_on_a_damaged_study_exits_2_and_rewrites_nothing(small_study, tmp_path, capsys, case):
    name, damage, phrases = DAMAGE[case]
    study = tmp_path / "study"
    shutil.copytree(small_study, study)
    damage(study / name)
    outputs = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (study / n for n in REPORT_OUTPUTS)}
    capsys.readouterr()
    assert main(["report", str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-lab: error: ") and len(err.splitlines()) == 1, err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    for path, (data, mtime) in outputs.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime, f"{path.name} was rewritten"


#: what `gan-lab report` (re)writes: the report and the toy evaluator's figures
REPORT_OUTPUTS = ("report.md", "mode_samples.png", "mode_coverage.png")


def test_report_on_the_undamaged_copy_rewrites_the_same_report(small_study, tmp_path):
    """The control of the test above: the same copy, undamaged, is accepted and reported again."""
    study = tmp_path / "study"
    shutil.copytree(small_study, study)
    before = (study / "report.md").read_bytes()
    (study / "report.md").unlink()
    assert main(["report", str(study)]) == 0
    assert (study / "report.md").read_bytes() == before


def test_jobs_side_by_side_give_the_numbers_of_jobs_one_after_another(tmp_path):
    """`--jobs 2` fits the runs in two worker processes (longest first); every row of results.csv
    and history.csv equals the sequential study's (wall times aside), in the same order."""
    study = write_study(tmp_path, seeds=2)
    for jobs in ("1", "2"):
        assert main(["study", str(study), "--out", str(tmp_path / jobs), "--no-wandb", "--jobs", jobs]) == 0
    one, two = tmp_path / "1" / "tiny", tmp_path / "2" / "tiny"
    assert json.loads((one / "study.json").read_text())["workers"] == 1
    assert json.loads((two / "study.json").read_text())["workers"] == 2
    for name in ("results.csv", "history.csv"):
        a, b = read_csv(one / name), read_csv(two / name)
        for row in (*a, *b):
            row.pop("wall_time_s", None)
        assert a == b and len(a) >= 4


def test_worker_count_fills_the_cores_with_one_thread_runs(tmp_path):
    from gan_lab.fit import build_cli
    from gan_lab.study.jobs import worker_count

    args = ["--config", str(ROOT / "tests" / "configs" / "tiny_ring8.yaml")]
    toy = [build_cli(args, run=False) for _ in range(3)]
    assert [worker_count(toy, None, cores=c) for c in (1, 2, 8)] == [1, 2, 3]  # at most one per job
    assert worker_count(toy, 1, cores=8) == 1
    two_threads = [build_cli([*args, "--model.speed.cpu_threads=2"], run=False) for _ in range(3)]
    assert worker_count(two_threads, None, cores=4) == 2


# ----------------------------------------------------------------------------------------------
# Several evaluators in one study (mode coverage every 2 G steps, the sample spread every 3)
# ----------------------------------------------------------------------------------------------

SPREAD = "    - class_path: spread_evaluator.SampleSpread\n      init_args: {every_n_g_steps: 3}\n"


def with_spread(tmp_path, spread=SPREAD):
    """The spread evaluator after the mode-coverage one in the base config."""
    base = (tmp_path / "base.yaml").read_text()
    (tmp_path / "base.yaml").write_text(base.replace("\nmodel:\n", "\n" + spread + "model:\n", 1))


@pytest.fixture(scope="module")
def two_evaluators(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two")
    study = write_study(tmp, objectives="[hinge, least_squares]", seeds=2)
    with_spread(tmp)
    assert main(["study", str(study), "--out", str(tmp / "runs"), "--no-wandb"]) == 0
    return tmp / "runs" / "tiny"


MODE_COLUMNS = ["mode/modes", "mode/hq_fraction", "mode/reverse_kl", "mode/js"]


def test_several_evaluators_each_get_their_prefixed_columns(two_evaluators):
    results = read_csv(two_evaluators / "results.csv")
    assert list(results[0]) == [
        "study", "objective", "regularizers", "n_critic", "member", "seed", "g_steps",
        *MODE_COLUMNS, "spread/spread", "wall_time_s", "status",
    ]  # fmt: skip
    assert len(results) == 4 and {r["g_steps"] for r in results} == {"4"}
    assert all(math.isfinite(float(r["spread/spread"])) for r in results)
    history = read_csv(two_evaluators / "history.csv")
    assert list(history[0]) == ["objective", "member", "seed", "g_steps", *MODE_COLUMNS, "spread/spread"]
    by_step = {}
    for r in history:
        by_step.setdefault(int(r["g_steps"]), []).append(r)
    assert sorted(by_step) == [2, 3, 4]  # mode at 2 and 4, spread at 3 and 4 (the end)
    assert all(r["spread/spread"] == "nan" and r["mode/modes"] != "nan" for r in by_step[2])
    assert all(r["mode/modes"] == "nan" and r["spread/spread"] != "nan" for r in by_step[3])
    assert all("nan" not in (r["mode/modes"], r["spread/spread"]) for r in by_step[4])
    meta = json.loads((two_evaluators / "study.json").read_text())
    assert meta["evaluator"] == ["mode", "spread"]  # registry names: nothing a study file says is imported
    assert set(meta["info"]) == {"mode", "spread"} and meta["info"]["spread"] == {"n_samples": 200}


def test_several_evaluators_each_get_their_table_and_figures(two_evaluators):
    """Each evaluator's section as its class names it: the lab's mode coverage, and the spread of
    tests/spread_evaluator.py (a user's evaluator: its module is all it took)."""
    report = (two_evaluators / "report.md").read_text()
    results = read_csv(two_evaluators / "results.csv")
    mode, spread = report.split("## ModeCoverageEvaluator")[1].split("## SampleSpread")
    assert (
        "PacGAN / VEEGAN" in mode
        and "| objective | regularizers | n_critic | G steps | modes covered |" in mode
    )
    assert "![final samples](mode_samples.png)" in mode and "![mode coverage](mode_coverage.png)" in mode
    assert "Protocol (sample spread): 200 samples" in spread
    assert "| objective | regularizers | n_critic | G steps | spread (distance) | wall time (s) |" in spread
    assert "![spread against G steps](spread_curve.png)" in spread
    for obj in ("hinge", "least_squares"):
        hq = [float(r["mode/hq_fraction"]) for r in results if r["objective"] == obj]
        values = [float(r["spread/spread"]) for r in results if r["objective"] == obj]
        assert fmt_mean_se(hq, scale=100, digits=1) in next(
            x for x in mode.splitlines() if x.startswith(f"| {obj} |")
        )
        line = next(x for x in spread.splitlines() if x.startswith(f"| {obj} |"))
        assert fmt_mean_se(values, digits=3) in line
    for name in ("mode_samples.png", "mode_coverage.png", "spread_curve.png"):
        assert (two_evaluators / name).read_bytes()[:4] == b"\x89PNG"
    assert not (two_evaluators / "samples.png").exists()


def test_report_rewrites_a_study_of_several_evaluators_and_checks_their_columns(
    two_evaluators, tmp_path, capsys
):
    study = tmp_path / "study"
    shutil.copytree(two_evaluators, study)
    before = (study / "report.md").read_bytes()
    (study / "report.md").unlink()
    assert main(["report", str(study)]) == 0
    assert (study / "report.md").read_bytes() == before
    _edit_csv(study / "history.csv", _drop_column("spread/spread"))
    capsys.readouterr()
    assert main(["report", str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "history.csv lacks column spread/spread" in err


def test_two_evaluators_of_one_name_are_refused_before_any_folder(tmp_path, capsys):
    study = write_study(tmp_path, objectives="[hinge]", seeds=1)
    with_spread(tmp_path, SPREAD + SPREAD.replace("SampleSpread", "SampleSpreadAgain"))
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "distinct names" in err and "SampleSpreadAgain (spread)" in err
    assert not (tmp_path / "runs").exists()


def test_runs_with_other_evaluators_are_refused_before_any_folder(tmp_path, capsys):
    (tmp_path / "spread.yaml").write_text(
        "trainer:\n  callbacks:\n"
        + SPREAD
        + (
            "    - class_path: gan_lab.evaluators.ModeCoverageEvaluator\n"
            "      init_args: {every_n_g_steps: 2, n_samples: 400}\n"
        )
    )
    study = write_study(tmp_path, objectives="[hinge, {objective: least_squares, configs: [spread.yaml]}]")
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "same evaluator callbacks" in err, err
    assert "least_squares: SampleSpread, ModeCoverageEvaluator" in err
    assert not (tmp_path / "runs").exists()


def plain_and_mixed(tmp_path, objectives: str, rows: int) -> tuple[Path, Path]:
    """The study of ``objectives`` (2 seeds) run plain (no W&B) and with ``mixed: true`` (W&B
    offline), one job at a time; every row of their results.csv and history.csv is the same (wall
    times aside), at least ``rows`` of them. Returns the two study folders."""
    study = write_study(tmp_path, objectives=objectives, seeds=2)
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(study.read_text().replace("name: tiny", "name: tiny\nmixed: true"))
    assert main(["study", str(study), "--out", str(tmp_path / "plain"), "--no-wandb", "--jobs", "1"]) == 0
    assert main(["study", str(mixed), "--out", str(tmp_path / "mixed"), "--jobs", "1"]) == 0
    plain, both = tmp_path / "plain" / "tiny", tmp_path / "mixed" / "tiny"
    for name in ("results.csv", "history.csv"):
        a, b = read_csv(plain / name), read_csv(both / name)
        for row in (*a, *b):
            row.pop("wall_time_s", None)
        key = lambda r: (r["objective"], r.get("g_steps"), r["member"])  # noqa: E731
        assert sorted(a, key=key) == sorted(b, key=key) and len(a) >= rows
    return plain, both


def test_a_mixed_study_gives_every_entry_the_rows_of_its_own_job(tmp_path):
    """``mixed: true``: hinge, minimax and relativistic (same configs) train as one 3 × 2-member
    ensemble, wasserstein (its own config) as its own job; every row of results.csv and history.csv
    equals the plain study's (wall times aside), each entry gets its samples, and the W&B runs carry
    each member's objective."""
    objectives = "[hinge, minimax, {objective: wasserstein, configs: [wgan.yaml]}, relativistic]"
    plain, both = plain_and_mixed(tmp_path, objectives, rows=8)
    meta = json.loads((both / "study.json").read_text())
    trained = {r["label"]: r.get("trained_in") for r in meta["runs"]}
    assert trained == {
        "hinge": "hinge+minimax+relativistic",
        "minimax": "hinge+minimax+relativistic",
        "relativistic": "hinge+minimax+relativistic",
        "wasserstein": None,
    }
    for label in ("hinge", "minimax", "relativistic", "wasserstein"):
        assert np.load(both / label / "final_samples.npy").shape[0] == 2  # its own 2 seeds
        torch.testing.assert_close(
            torch.from_numpy(np.load(both / label / "final_samples.npy")),
            torch.from_numpy(np.load(plain / label / "final_samples.npy")),
            rtol=0,
            atol=1e-5,
        )
    report = (both / "report.md").read_text()
    assert "trained side by side as one mixed ensemble" in report
    runs = [
        read_run(f)
        for f in sorted((both / "hinge+minimax+relativistic").glob("wandb/offline-run-*/run-*.wandb"))
    ]
    seen = sorted((r["config"]["objective"], r["config"]["seed"]) for r in runs)
    assert seen == [(o, s) for o in ("hinge", "minimax", "relativistic") for s in (7, 8)]
    for r in runs:
        assert r["config"]["loss"] == r["config"]["objective"] and r["config"]["objective"] in r["run"].tags
        assert r["run"].display_name.endswith(f"/{r['config']['objective']}/seed{r['config']['seed']}")


def test_the_demo_study_runs_five_objectives_as_one_mixed_fit_and_wgan_gp_beside_them(tmp_path):
    """experiments/studies/ring8.yaml (`make demo`), a few steps: the five objectives that share the
    optimizer file are one 40-member fit (8 seeds each), WGAN-GP its own; every objective × seed
    has its row."""
    small = [
        "--model.max_g_steps=2",
        "--trainer.callbacks=[]",
        "--trainer.callbacks+=gan_lab.evaluators.ModeCoverageEvaluator",
        "--trainer.callbacks.n_samples=200",
    ]
    demo = ROOT / "experiments" / "studies" / "ring8.yaml"
    assert main(["study", str(demo), "--out", str(tmp_path), "--no-wandb", "--jobs", "1", *small]) == 0
    study = tmp_path / "ring8-demo"
    meta = json.loads((study / "study.json").read_text())
    fits = {r.get("trained_in", r["label"]) for r in meta["runs"]}
    assert fits == {"minimax+non_saturating+hinge+least_squares+relativistic", "wasserstein"}
    mixed_args = next(r["args"] for r in meta["runs"] if r["label"] == "hinge")
    assert "--model.generator.init_args.members=40" in mixed_args
    rows = read_csv(study / "results.csv")
    objectives = ["minimax", "non_saturating", "hinge", "least_squares", "relativistic", "wasserstein"]
    assert sorted((r["objective"], r["seed"]) for r in rows) == sorted(
        (o, str(s)) for o in objectives for s in range(8)
    )
    report = (study / "report.md").read_text()
    assert "not PacGAN's protocol" in report and "trained side by side as one mixed ensemble" in report


# ----------------------------------------------------------------------------------------------
# The plan, and a user's own objective
# ----------------------------------------------------------------------------------------------


def test_the_plan_is_written_before_the_first_fit_and_follows_the_jobs(tmp_path, monkeypatch):
    """plan.json holds every job (its command, entries, seeds, folder) before the first fit starts,
    each job ``running`` while it fits and ``finished`` with its status after; study.json's run
    arguments and results.csv's columns are the plan's."""
    import gan_lab.study.jobs as jobs

    seen, fit = [], jobs.fit_job

    def spy(job, cli, study, study_dir, *args, **kwargs):
        seen.append(json.loads((study_dir / "plan.json").read_text()))
        return fit(job, cli, study, study_dir, *args, **kwargs)

    monkeypatch.setattr(jobs, "fit_job", spy)
    study = write_study(
        tmp_path, objectives="[hinge, minimax, {objective: wasserstein, configs: [wgan.yaml]}]"
    )
    study.write_text(study.read_text().replace("name: tiny", "name: tiny\nmixed: true"))
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb", "--jobs", "1"]) == 0
    out = tmp_path / "runs" / "tiny"
    assert [[j["state"] for j in plan["jobs"]] for plan in seen] == [
        ["running", "planned"],
        ["finished", "running"],
    ]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["format"] == "gan_lab/study-plan-1" and plan["evaluators"] == ["mode"]
    assert [(j["state"], j["status"]) for j in plan["jobs"]] == [("finished", "ok")] * 2
    mixed, wgan = plan["jobs"]
    assert (mixed["name"], mixed["run_dir"], mixed["seeds"]) == (
        "hinge+minimax",
        "hinge+minimax",
        [7, 8, 9] * 2,
    )
    entries = [(e["label"], e["objective"], e["seeds"], e["run_dir"]) for e in mixed["entries"]]
    assert entries == [("hinge", "hinge", [7, 8, 9], "hinge"), ("minimax", "minimax", [7, 8, 9], "minimax")]
    assert (
        mixed["command"][:2] == ["gan-lab", "fit"] and "--model.objective=[hinge,minimax]" in mixed["command"]
    )
    assert (wgan["regularizers"], wgan["n_critic"], wgan["max_g_steps"]) == (["wgan_gp"], 2, 4)
    meta = json.loads((out / "study.json").read_text())
    assert [r["args"] for r in meta["runs"]] == [mixed["command"][2:]] * 2 + [wgan["command"][2:]]
    assert plan["columns"]["results"] == list(read_csv(out / "results.csv")[0])
    assert plan["columns"]["history"] == list(read_csv(out / "history.csv")[0])


#: hinge, the margin hinge of tests/custom_objective.py with margin 0 ({class_path, init_args}),
#: and with margin 1 (a dotted name; the same objective name as the first, so not in its mixed fit)
CUSTOM = (
    "[hinge, {objective: {class_path: custom_objective.MarginHinge, init_args: {margin: 0.0}}, label: margin},"
    " {objective: custom_objective.MarginHinge, label: margin1}]"
)


def test_a_study_runs_a_users_objective_plain_and_mixed(tmp_path):
    """A user's objective as ``fit`` takes it (``{class_path, init_args}``, or a dotted name), in a
    plain study and a ``mixed: true`` one: hinge and the margin-0 hinge train as one mixed fit, the
    margin-1 hinge (an objective of the same name as the margin-0 one) in a fit of its own; every
    row is the plain study's and every entry's samples its own run's. The objective is the one
    named, with its arguments: margin 1 gives hinge's samples bit for bit, margin 0 others (D's
    logits start near 0, where a margin of 0 stops half of D's gradients)."""
    plain, both = plain_and_mixed(tmp_path, CUSTOM, rows=6)
    meta = json.loads((both / "study.json").read_text())
    trained = {r["label"]: r.get("trained_in") for r in meta["runs"]}
    assert trained == {"hinge": "hinge+margin", "margin": "hinge+margin", "margin1": None}
    samples = {
        (kind, label): np.load(folder / label / "final_samples.npy")
        for kind, folder in (("plain", plain), ("mixed", both))
        for label in ("hinge", "margin", "margin1")
    }
    for label in ("hinge", "margin", "margin1"):
        assert samples["mixed", label].shape[0] == 2  # its own 2 seeds
        np.testing.assert_allclose(samples["mixed", label], samples["plain", label], rtol=0, atol=1e-5)
    assert np.array_equal(samples["plain", "margin1"], samples["plain", "hinge"])
    assert not np.array_equal(samples["plain", "margin"], samples["plain", "hinge"])
    runs = [read_run(f) for f in sorted((both / "hinge+margin").glob("wandb/offline-run-*/run-*.wandb"))]
    seen = sorted((r["config"]["objective"], r["config"]["loss"], r["config"]["seed"]) for r in runs)
    assert seen == [
        ("hinge", "hinge", 7),
        ("hinge", "hinge", 8),
        ("margin", "margin_hinge", 7),
        ("margin", "margin_hinge", 8),
    ]


def test_a_study_entry_takes_the_objectives_fit_takes(tmp_path):
    """A registered name, a dotted class path and ``{class_path, init_args}`` are entries (labelled by
    name or class path unless given one); with ``mixed: true`` the name and the dotted path share a
    fit (fit's mixed list takes names only: the plan gives it a PerMember by class path, which
    builds), the margin-0 hinge (another objective of the same name) one of its own."""
    from gan_lab.study import build_jobs, load_study, plan_study

    custom = "{objective: {class_path: custom_objective.MarginHinge, init_args: {margin: 0.0}}, label: m0}"
    study = write_study(tmp_path, objectives=f"[hinge, custom_objective.MarginHinge, {custom}]", seeds=2)
    study.write_text(study.read_text().replace("name: tiny", "name: tiny\nmixed: true"))
    spec = load_study(str(study))
    assert [(r.label, r.objective) for r in spec.runs] == [
        ("hinge", "hinge"),
        ("custom_objective.MarginHinge", "custom_objective.MarginHinge"),
        ("m0", {"class_path": "custom_objective.MarginHinge", "init_args": {"margin": 0.0}}),
    ]
    plan = plan_study(spec, tmp_path / "runs" / "tiny", [])
    assert [job.name for job in plan.jobs] == ["hinge+custom_objective.MarginHinge", "m0"]
    assert [[e.loss for e in job.entries] for job in plan.jobs] == [
        ["hinge", "margin_hinge"],
        ["margin_hinge"],
    ]
    (mixed,) = [a.split("=", 1)[1] for a in plan.jobs[0].args if a.startswith("--model.objective=")]
    assert json.loads(mixed) == {
        "class_path": "gan_lab.losses.per_member.PerMember",
        "init_args": {
            "objectives": [
                {"class_path": "gan_lab.losses.objectives.Hinge"},
                {"class_path": "custom_objective.MarginHinge"},
            ]
        },
    }
    clis = build_jobs(plan)
    assert [cli.model.objective.names for cli in clis[:1]] == [["hinge", "margin_hinge"]]
    assert clis[1].model.objective.margin == 0.0 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("objective", ["{init_args: {margin: 1}}", "3", "''", "[hinge]", "{class_path: ''}"])
def test_an_entry_without_an_objective_is_one_line(tmp_path, capsys, objective):
    study = write_study(tmp_path, objectives=f"[{{objective: {objective}}}]")
    assert main(["study", str(study), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs an 'objective': a name, a class path or {class_path" in err
