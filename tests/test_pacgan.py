"""PacGAN's Table 1 studies and the report's published rows, "not converged" flags, per-seed panels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gan_lab.cli import main
from gan_lab.errors import ConfigError
from gan_lab.plots import save_samples_figure
from gan_lab.study.report import convergence_note, intervals_overlap, still_moving, write_report
from gan_lab.study.spec import check_published, load_study

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "experiments" / "studies"
BASE = (ROOT / "tests" / "configs" / "tiny_ring8.yaml").read_text()

TABLE1 = {  # Lin et al. 2018, Table 1 (modes, HQ fraction, reverse KL), mean and s.e.
    "ring": {
        "GAN": ((6.3, 0.5), (0.982, 0.002), (0.45, 0.09)),
        "PacGAN2": ((7.9, 0.1), (0.956, 0.020), (0.07, 0.03)),
        "PacGAN3": ((7.8, 0.1), (0.977, 0.003), (0.10, 0.02)),
        "PacGAN4": ((7.8, 0.1), (0.959, 0.014), (0.07, 0.02)),
    },
    "grid": {
        "GAN": ((17.3, 0.8), (0.948, 0.007), (0.70, 0.07)),
        "PacGAN2": ((23.8, 0.7), (0.913, 0.008), (0.13, 0.04)),
        "PacGAN3": ((24.6, 0.4), (0.942, 0.004), (0.06, 0.02)),
        "PacGAN4": ((24.8, 0.2), (0.936, 0.006), (0.04, 0.01)),
    },
}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["ring", "grid"])
@pytest.mark.parametrize("schedule", ["", "-cpu"])
def test_pacgan_study_files_state_the_protocol_and_carry_table_1(kind, schedule):
    spec = load_study(str(STUDIES / f"pacgan-{kind}{schedule}.yaml"))
    assert [r.label for r in spec.runs] == ["GAN", "PacGAN2", "PacGAN3", "PacGAN4"]
    for m, run in enumerate(spec.runs, start=1):
        assert (f"--model.remedies.pack={m}" in run.args) == (m > 1)
        assert (f"--model.discriminator.init_args.in_dim={2 * m}" in run.args) == (m > 1)
    ((source,),) = [spec.published]
    assert "PacGAN (NeurIPS 2018), Table 1" in source["source"]
    for row in source["rows"]:
        modes, hq, kl = TABLE1[kind][row["label"]]
        assert (tuple(row["modes"]), tuple(row["hq_fraction"]), tuple(row["reverse_kl"])) == (modes, hq, kl)
    if schedule:
        assert "NOT PACGAN'S PROTOCOL" in spec.note and spec.seeds == 4
    else:
        assert spec.seeds == 10 and "400 epochs" in spec.note and "Adam(1e-4, beta1 0.8)" in spec.note
        base = Path(spec.base).read_text()
        for needle in (
            "max_g_steps: 400000",
            "train_size: 100000",
            "batch_size: 100",
            "pieces: 5",
            "init: normal",
        ):
            assert needle in base


@pytest.mark.parametrize("name", ["pacgan-ring", "pacgan-grid-cpu"])
def test_pacgan_studies_run_a_few_steps_and_report_published_beside_ours(tmp_path, name):
    small = [
        "--model.max_g_steps=2",
        "--model.generator.init_args.hidden=8",
        "--model.discriminator.init_args.hidden=8",
        "--data.init_args.train_size=300",
        "--trainer.callbacks=[]",  # replaced by the evaluator below (a 2,500-sample evaluation is slow)
        "--trainer.callbacks+=gan_lab.evaluators.ModeCoverageEvaluator",
        "--trainer.callbacks.every_n_g_steps=1",
        "--trainer.callbacks.n_samples=200",
    ]
    spec_file = STUDIES / f"{name}.yaml"
    text = spec_file.read_text().replace("seeds: 10", "seeds: 2").replace("seeds: 4", "seeds: 2")
    copy = tmp_path / spec_file.name
    copy.write_text(text.replace("../toy/", str(ROOT / "experiments" / "toy") + "/"))
    assert (
        main(["study", str(copy), "--out", str(tmp_path / "runs"), "--no-wandb", "--jobs", "1", *small]) == 0
    )
    study = tmp_path / "runs" / name
    report = (study / "report.md").read_text()
    assert ("NOT PACGAN'S PROTOCOL" in report) == name.endswith("-cpu")
    assert "Lin et al., PacGAN (NeurIPS 2018), Table 1" in report
    for label in ("GAN", "PacGAN2", "PacGAN3", "PacGAN4"):
        assert f"| {label} (published) |" in report and f"| {label} (ours: `{label}`) |" in report
    rows = read_csv(study / "results.csv")
    assert {r["objective"] for r in rows} == {"GAN", "PacGAN2", "PacGAN3", "PacGAN4"} and len(rows) == 8


# --------------------------------------------------------------------------------------------------
# The report, from a small real study with published rows
# --------------------------------------------------------------------------------------------------

PUBLISHED = """published:
  - source: "Someone et al. 2020, Table 3"
    rows:
      - {label: hinge, modes: [0.1, 0.05], hq_fraction: 0.0}
      - {label: theirs, compare: least_squares, modes: 8.0}
      - {label: absent, js: [0.1, 0.01]}
"""


@pytest.fixture(scope="module")
def published_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("published")
    (tmp / "base.yaml").write_text(BASE)
    study = tmp / "study.yaml"
    study.write_text(
        "name: pub\nbase: base.yaml\nseeds: 2\nseed: 0\nnote: A short schedule.\n"
        f"objectives: [hinge, least_squares]\n{PUBLISHED}"
    )
    assert main(["study", str(study), "--out", str(tmp / "runs"), "--no-wandb", "--jobs", "1"]) == 0
    return tmp / "runs" / "pub"


def _line(report: str, start: str) -> str:
    return next(x for x in report.splitlines() if x.startswith(start))


def test_published_rows_are_shown_in_the_metrics_units_beside_ours_with_overlap_flags(published_study):
    report = (published_study / "report.md").read_text()
    results = read_csv(published_study / "results.csv")
    assert "A short schedule." in report.split("Each configuration")[0]  # the note comes first
    assert "Published: Someone et al. 2020, Table 3" in report
    hinge = _line(report, "| hinge (published) |")
    assert "| 0.10 ± 0.05 | 0.0 |" in hinge  # HQ 0.0 as a fraction -> 0.0 %, no s.e. given
    ours = _line(report, "| hinge (ours: `hinge`) |")
    modes = [float(r["mode/modes"]) for r in results if r["objective"] == "hinge"]
    hq = [float(r["mode/hq_fraction"]) for r in results if r["objective"] == "hinge"]
    mean = sum(modes) / 2
    se = abs(modes[0] - modes[1]) / 2  # s.e. of 2 values: |a − b| / 2
    apart = [
        h for h, ok in (("modes covered", abs(mean - 0.1) <= se + 0.05), ("HQ %", min(hq) <= 0.0)) if not ok
    ]
    assert (f"do not overlap: {', '.join(apart)}" in ours) if apart else ours.endswith("| overlap |")
    assert "| theirs (ours: `least_squares`) |" in report  # `compare` names our row
    assert "| absent (published) |" in _line(report, "| absent (published) |")
    assert "(no row of ours to compare)" in _line(report, "| absent (published) |")


def test_published_rows_of_an_unknown_metric_are_refused_by_gan_lab_report(published_study, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(published_study, copy)
    meta = json.loads((copy / "study.json").read_text())
    meta["published"] = [{"source": "S", "rows": [{"label": "hinge", "fid": [1.0, 0.1]}]}]
    (copy / "study.json").write_text(json.dumps(meta))
    before = (copy / "report.md").read_text()
    assert main(["report", str(copy)]) == 2
    assert "'fid', which is not a metric column" in capsys.readouterr().err
    assert (copy / "report.md").read_text() == before


def test_the_report_takes_published_rows_from_study_json_first(published_study, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(published_study, copy)
    meta = json.loads((copy / "study.json").read_text())
    meta.update(
        published=[{"source": "From study.json", "rows": [{"label": "hinge", "modes": 3.0}]}], note="N"
    )
    (copy / "study.json").write_text(json.dumps(meta))
    report = write_report(copy).read_text()
    assert "Published: From study.json" in report and "Someone et al." not in report


@pytest.mark.parametrize(
    ("published", "match"),
    [
        ([{"source": "S"}], "exactly 'source' and 'rows'"),
        ([{"source": "", "rows": [{"label": "a", "modes": 1}]}], "non-empty string"),
        ([{"source": "S", "rows": [{"modes": 1}]}], "needs a 'label'"),
        ([{"source": "S", "rows": [{"label": "a"}]}], "no metric values"),
        ([{"source": "S", "rows": [{"label": "a", "modes": [1, 2, 3]}]}], r"\[mean, s.e.\] or a number"),
        ([{"source": "S", "rows": [{"label": "a", "modes": [1, -2]}]}], r"\[mean, s.e.\] or a number"),
    ],
)
def test_bad_published_rows_are_refused_in_one_line(published, match):
    with pytest.raises(ConfigError, match=match):
        check_published(published)


def test_a_published_row_comparing_with_an_unknown_entry_is_refused(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\nbase: base.yaml\nobjectives: [hinge]\n"
        "published: [{source: S, rows: [{label: x, compare: nope, modes: 1}]}]\n"
    )
    with pytest.raises(ConfigError, match="compares with 'nope', which is not an entry"):
        load_study(str(study))


def test_intervals_overlap_by_hand():
    assert intervals_overlap([1.0, 0.5], [2.0, 0.5])  # touch at 1.5
    assert not intervals_overlap([1.0, 0.4], [2.0, 0.5])
    assert intervals_overlap(2.0, [2.5, 0.5]) and not intervals_overlap(2.0, 2.1)


# --------------------------------------------------------------------------------------------------
# "not converged"
# --------------------------------------------------------------------------------------------------


def _history(values_by_step, seeds=(0, 1, 2)):
    return [
        {"g_steps": g, "seed": s, "hq_fraction": v + 0.001 * s, "modes": 8.0, "reverse_kl": 0.1, "js": 0.05}
        for g, v in values_by_step
        for s in seeds
    ]


def test_still_moving_compares_the_last_evaluation_with_the_start_of_the_last_quarter():
    rising = _history([(100, 0.1), (200, 0.3), (300, 0.5), (400, 0.7)])
    # the last quarter of 400 G steps starts at 300: 0.7 − 0.5
    start, end, change = still_moving(rising, "hq_fraction", settled=0.02)
    assert (start, end) == (300, 400) and change == pytest.approx(0.2)
    flat = _history([(100, 0.1), (200, 0.5), (300, 0.7), (400, 0.705)])
    assert still_moving(flat, "hq_fraction", settled=0.02) is None
    # the change must also exceed twice its standard error over seeds
    noisy = [
        {"g_steps": g, "seed": s, "hq_fraction": v}
        for g, vs in ((300, (0.2, 0.8)), (400, (0.3, 0.9)))
        for s, v in enumerate(vs)
    ]
    assert still_moving(noisy, "hq_fraction", settled=0.02) is None  # 0.1 against 2 · 0.42
    assert still_moving(_history([(400, 0.7)]), "hq_fraction") is None


def test_convergence_note_names_the_moving_metrics():
    from gan_lab.evaluators import ModeCoverageEvaluator
    from gan_lab.study.report import StudyEvaluator

    entry = StudyEvaluator(ModeCoverageEvaluator, {})
    note = convergence_note(entry, _history([(100, 0.1), (300, 0.5), (400, 0.7)]))
    assert note == "not converged: HQ % +20.0 over G steps 300→400"
    assert convergence_note(entry, _history([(300, 0.7), (400, 0.7)])) == ""
    assert convergence_note(entry, _history([(400, 0.7)])) == "unknown (one evaluation)"


def test_every_report_row_says_whether_it_converged(published_study):
    report = (published_study / "report.md").read_text()
    assert "| wall time (s) | converged |" in report
    for label in ("hinge", "least_squares"):
        last = _line(report, f"| {label} |").rstrip(" |").split("| ")[-1]
        assert last == "yes" or last.startswith("not converged: ")


# --------------------------------------------------------------------------------------------------
# The samples figure: a panel per seed
# --------------------------------------------------------------------------------------------------


def test_samples_figure_has_a_panel_per_seed_with_its_own_numbers(tmp_path):
    means = np.array([[1.0, 0.0], [-1.0, 0.0]])
    samples = np.random.default_rng(0).normal(size=(3, 50, 2))
    rows = [{"seed": 10 + k, "modes": float(k), "hq_fraction": 0.1 * k} for k in range(3)]
    titles = save_samples_figure(
        {"a": (samples, means, rows), "b": (samples[:2], means, rows[:2])}, str(tmp_path / "s.png")
    )
    assert titles == [
        ["seed 10: 0 modes, HQ 0%", "seed 11: 1 modes, HQ 10%", "seed 12: 2 modes, HQ 20%"],
        ["seed 10: 0 modes, HQ 0%", "seed 11: 1 modes, HQ 10%"],
    ]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
