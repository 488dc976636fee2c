"""The evaluators' report sections (gan_lab.evaluators.section, mode_report, sr_report, image_report):
found from the evaluator's class, each states its protocol from the evaluator's facts and draws its
figures from the study's rows and run folders; the evaluators themselves draw no report figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fake_sr import FakePairs
from torchvision.io import write_png

from gan_lab.evaluators import ModeCoverageEvaluator
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.evaluators.image_report import ImageMetricsReport, StackedModeReport
from gan_lab.evaluators.mode_report import ModeCoverageReport
from gan_lab.paired.evaluator import GRID_COLUMNS, SRMetricsEvaluator, make_sr_grid, sr_metrics, upsample
from gan_lab.paired.report import SRMetricsReport
from gan_lab.study import EVALUATORS, EvaluatorReport

SECTIONS = {
    "mode": ModeCoverageReport,
    "sr": SRMetricsReport,
    "image": ImageMetricsReport,
    "stacked": StackedModeReport,
}


def test_each_registered_evaluator_names_its_own_report_section():
    # the lab's own (a study registers a user's evaluator when it runs it: another test's may be there)
    lab = [name for name, cls in EVALUATORS.items() if cls.__module__.startswith("gan_lab.")]
    assert sorted(lab) == sorted(SECTIONS)
    for name, section in SECTIONS.items():
        cls = EVALUATORS[name]
        assert type(cls.report_section()) is section, name
        assert list(cls.report_section().TABLE) == list(cls.METRICS), name  # a header per metric, in order


#: which direction is better, by hand: True where a higher value is
BETTER = {
    "mode": {"modes": True, "hq_fraction": True, "reverse_kl": False, "js": False},
    "stacked": {"modes": True, "kl": False, "confident_modes": True, "confident_fraction": True,
                "confidence": True},
    "image": {"fd": False, "kid": False, "inception_score": True, "precision": True, "recall": True,
              "density": True, "coverage": True},
    "sr": {"psnr": True, "ssim": True, "edge_error": False},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_report_column_knows_which_direction_is_better(name):
    """The verdicts name the better entry (gan_lab.study.verdicts.direction): every table metric of
    every registered evaluator has its direction, and its PRIMARY is one of the table's metrics.
    Mutation: a metric dropped from its section's HIGHER_IS_BETTER or turned round, or a PRIMARY the table
    lacks."""
    from gan_lab.study.verdicts import direction

    cls = EVALUATORS[name]
    section = cls.report_section()
    table = section.table(cls.METRICS)
    assert cls.PRIMARY in table
    assert {m: direction(m, section) for m in table} == BETTER[name]


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_evaluators_compute_and_log_but_draw_no_report(name):
    for attr in ("protocol", "study_figures", "figures", "TABLE"):
        assert not hasattr(EVALUATORS[name], attr), f"{name}.{attr}"


def test_an_evaluator_without_a_section_gets_the_default():
    class Plain(ScheduledEvaluator):
        NAME, METRICS = "plain", ("a", "b")

    report = Plain.report_section()
    assert type(report) is EvaluatorReport
    assert report.table(Plain.METRICS) == {"a": ("a", 1.0, 3), "b": ("b", 1.0, 3)}
    assert report.protocol({}) == "" and report.figures(None, [], [], [], {}) == []
    assert report.panels("plain", Plain.METRICS, {"plain/b", "plain/c"}) == [
        ("image metrics", {"kind": "line", "key": "plain/b"})
    ]


def test_the_dashboard_sections_are_the_reports():
    assert [EVALUATORS[n].report_section().SECTION for n in ("mode", "stacked", "image", "sr")] == [
        "mode coverage",
        "mode coverage",
        "image metrics",
        "image metrics",
    ]
    panels = ModeCoverageEvaluator.report_section().panels("mode", ModeCoverageEvaluator.METRICS, {"mode/js"})
    assert panels == [("mode coverage", {"kind": "line", "key": "mode/js"})]


def test_an_evaluator_name_is_registered_once():
    from gan_lab.errors import ConfigError

    class Impostor(ScheduledEvaluator):
        NAME, METRICS = "mode", ("modes",)

    with pytest.raises(ConfigError, match="evaluator 'mode' is already registered"):
        EVALUATORS.register(Impostor)
    assert EVALUATORS["mode"] is ModeCoverageEvaluator


# --------------------------------------------------------------------------------------------------
# Mode coverage
# --------------------------------------------------------------------------------------------------

RING8 = [[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)]
MODE_INFO = {"mixture": "ring8", "means": RING8, "std": 0.01, "n_samples": 2500}


def test_mode_protocol_states_the_setting():
    text = ModeCoverageReport().protocol(MODE_INFO)
    for needle in ("PacGAN / VEEGAN", "`ring8`", "8 equal-weight Gaussians", "std 0.01", "2,500", "3 std"):
        assert needle in text
    assert "ln 8 = 2.08" in text
    with pytest.raises(KeyError):
        ModeCoverageReport().protocol({"mixture": "ring8"})  # what check_study_folder turns into one line


def _mode_rows(labels, steps=(2, 4), members=2):
    history = [
        {"objective": lab, "member": k, "seed": k, "g_steps": g, "modes": 8.0 - i, "hq_fraction": 0.5,
         "reverse_kl": 0.1, "js": 0.05}
        for i, lab in enumerate(labels) for g in steps for k in range(members)
    ]  # fmt: skip
    return [r for r in history if r["g_steps"] == steps[-1]], history


@pytest.mark.parametrize("prefix", ["", "mode_"])
def test_mode_figures_are_drawn_from_the_run_folders_and_rows(tmp_path, prefix):
    labels = ["hinge", "wasserstein"]
    runs = []
    for i, label in enumerate(labels):
        run_dir = tmp_path / label
        run_dir.mkdir()
        np.save(run_dir / "final_samples.npy", np.asarray(RING8)[None].repeat(2, 0) + 0.001 * i)  # (2, 8, 2)
        runs.append((label, run_dir))
    results, history = _mode_rows(labels)
    figures = ModeCoverageReport().figures(tmp_path, runs, results, history, MODE_INFO, file_prefix=prefix)
    assert figures == [("final samples", f"{prefix}samples.png"), ("mode coverage", f"{prefix}coverage.png")]
    for _, name in figures:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG" and (tmp_path / name).stat().st_size > 1000


# --------------------------------------------------------------------------------------------------
# Super-resolution
# --------------------------------------------------------------------------------------------------


def _sr_info() -> dict:
    from types import SimpleNamespace

    return SRMetricsEvaluator().info(SimpleNamespace(datamodule=FakePairs()))


def test_sr_protocol_states_the_setting_and_the_bicubic_baseline():
    info = _sr_info()
    lr, hr = FakePairs().validation_pairs()
    baseline = sr_metrics(upsample(lr, (32, 32), "bicubic"), hr)
    assert info["bicubic_psnr"] == pytest.approx(float(baseline["psnr"].mean()))
    text = SRMetricsReport().protocol(info)
    for needle in ("×4", "32×32", "8×8", "6 fixed", "data range 1", "[0, 1]", "Sobel", "G_ema"):
        assert needle in text
    assert f"PSNR {info['bicubic_psnr']:.2f}" in text and f"SSIM {info['bicubic_ssim']:.3f}" in text


@pytest.mark.parametrize("prefix", ["", "sr_"])
def test_sr_figures_write_grids_and_the_psnr_curve(tmp_path, prefix):
    lr, hr = FakePairs().validation_pairs()
    runs, results, history = [], [], []
    for i, label in enumerate(["pixel", "adv_ns"]):
        run_dir = tmp_path / label / "seed0"
        run_dir.mkdir(parents=True)
        write_png(
            make_sr_grid(lr[:2], upsample(lr[:2], (32, 32), "bicubic"), hr[:2]), str(run_dir / "grid.png")
        )
        runs.append((label, tmp_path / label))
        for g in (0, 10, 20):
            history.append({"objective": label, "member": 0, "seed": 0, "g_steps": g, "psnr": 20.0 + i + g / 10,
                            "ssim": 0.5, "edge_error": 0.1})  # fmt: skip
        results.append(history[-1])
    figures = SRMetricsReport(GRID_COLUMNS).figures(
        tmp_path, runs, results, history, _sr_info(), file_prefix=prefix
    )
    assert [f for _, f in figures] == [f"{prefix}grids.png", f"{prefix}psnr.png"]
    assert figures[0][0] == "final outputs on validation crops: LR (nearest) | bicubic | output | target"
    for _, name in figures:
        assert (tmp_path / name).stat().st_size > 1000
