"""Tests of the evaluation schedule (gan_lab.evaluators.base): each evaluation is logged once,
at its G step, with the values the evaluator keeps in its history."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from gan_lab.data import ToyMixtureDataModule
from gan_lab.evaluators import ModeCoverageEvaluator
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.metrics import METRICS, mean_and_se
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator


def _fit(tmp_path, every: int, max_g_steps: int, log_every: int, n_critic: int = 1):
    model = GANModule(
        ToyGenerator(members=2, hidden=8, layers=2),
        ToyDiscriminator(members=2, hidden=8, layers=2),
        max_g_steps=max_g_steps,
        n_critic=n_critic,
        seed=0,
    )
    evaluator = ModeCoverageEvaluator(every_n_g_steps=every, n_samples=100, plot=False)
    trainer = L.Trainer(
        max_steps=-1,
        max_epochs=-1,
        logger=CSVLogger(str(tmp_path), name="", version=""),
        log_every_n_steps=log_every,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[evaluator],
    )
    trainer.fit(model, ToyMixtureDataModule("ring8", batch_size=16))
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return evaluator, rows


def _expected(history: list[dict], step: int) -> dict[str, float]:
    """What the evaluator logs for the evaluation at ``step``: mean and s.e. over members."""
    out = {}
    for name in ModeCoverageEvaluator.METRICS:
        values = torch.tensor([r[name] for r in history if r["g_steps"] == step], dtype=torch.float64)
        out[f"mode/{name}"], out[f"mode/{name}_se"] = mean_and_se(values)
    return out


@pytest.mark.parametrize(("n_critic", "log_every"), [(1, 3), (2, 3)])
def test_each_evaluation_is_one_row_at_its_g_step(tmp_path, n_critic, log_every):
    """Evaluation every 2 G steps, the loggers every 3 batches: metrics.csv has evaluation values
    exactly in the rows of G steps 2, 4, 6 (none repeated at the loggers' other steps), each equal
    to the evaluator's history at that step."""
    evaluator, rows = _fit(tmp_path, every=2, max_g_steps=6, log_every=log_every, n_critic=n_critic)
    assert sorted({r["g_steps"] for r in evaluator.history}) == [2, 4, 6]
    evaluated = [r for r in rows if r.get("mode/modes")]
    assert [int(float(r["step"])) for r in evaluated] == [2, 4, 6]
    for row in evaluated:
        step = int(float(row["step"]))
        for key, value in _expected(evaluator.history, step).items():
            assert float(row[key]) == pytest.approx(value, nan_ok=True), (step, key)
    # the module's own rows (losses) are still there, at G steps too
    assert any(r.get("d/loss") for r in rows)


def test_the_final_evaluation_off_schedule_is_logged_at_its_g_step(tmp_path):
    """max_g_steps 5 with evaluation every 2: the evaluation at the end (G step 5) is logged too."""
    evaluator, rows = _fit(tmp_path, every=2, max_g_steps=5, log_every=50)
    assert [r["g_steps"] for r in evaluator.history][::2] == [2, 4, 5]
    evaluated = [r for r in rows if r.get("mode/modes")]
    assert [int(float(r["step"])) for r in evaluated] == [2, 4, 5]
    final = _expected(evaluator.history, 5)
    assert float(evaluated[-1]["mode/hq_fraction"]) == pytest.approx(final["mode/hq_fraction"])


class Recorder:
    """A logger that keeps what it is given (the part of Lightning's Logger API evaluators use)."""

    def __init__(self) -> None:
        self.logged: list[tuple[int, dict]] = []
        self.saves = 0

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.logged.append((step, dict(metrics)))

    def save(self) -> None:
        self.saves += 1


class Constant(ScheduledEvaluator):
    NAME, METRICS = "const", ("value",)

    def evaluate(self, trainer, pl_module) -> dict:
        self.history.append({"g_steps": pl_module.g_steps, "member": 0, "seed": 0, "value": 1.5})
        self.log_metrics(trainer, pl_module, {"const/value": 1.5})
        self._last_eval = pl_module.g_steps
        return {"value": 1.5}


def test_log_metrics_writes_to_every_logger_once_at_the_g_step():
    loggers = [Recorder(), Recorder()]
    trainer = SimpleNamespace(loggers=loggers, callback_metrics={})
    module = SimpleNamespace(g_steps=7)
    ev = Constant(every_n_g_steps=7)
    ev.on_train_batch_end(trainer, module, None, None, 0)
    ev.on_train_batch_end(trainer, module, None, None, 1)  # the same G step (n_critic > 1): not again
    for logger in loggers:
        assert logger.logged == [(7, {"const/value": 1.5})] and logger.saves == 1
    assert float(trainer.callback_metrics["const/value"]) == 1.5  # what the fit's summary prints
    module.g_steps = 9
    ev.evaluate_without_logging(trainer, module)
    assert all(len(logger.logged) == 1 for logger in loggers) and len(ev.history) == 2
    ev.evaluate(trainer, module)  # logging is back on
    assert loggers[0].logged[-1] == (9, {"const/value": 1.5})


class MemberLogger(CSVLogger):
    """A stand-in per-seed logger: records what it gets per member (and is also a CSV logger)."""

    def __init__(self, *args, media=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.media, self.member_rows = media, []

    def log_member_metrics(self, values, step, shared=None, media=None):
        self.member_rows.append((step, dict(values), dict(shared or {}), dict(media or {})))


@pytest.mark.parametrize("media", [True, False])
def test_a_per_seed_logger_gets_each_members_values_and_media(tmp_path, media):
    """Beside a plain CSV logger (means and s.e.), a logger with log_member_metrics gets each
    member's own metrics (the evaluator's history) and one scatter per member, or none with media off;
    the module's loss terms come per member too (averaging to the CSV's mean)."""
    from gan_lab.dashboard.media import MediaSettings

    model = GANModule(
        ToyGenerator(members=2, hidden=8, layers=2),
        ToyDiscriminator(members=2, hidden=8, layers=2),
        max_g_steps=4,
    )
    evaluator = ModeCoverageEvaluator(every_n_g_steps=2, n_samples=100, plot=False)
    member = MemberLogger(str(tmp_path / "m"), name="", version="", media=MediaSettings(media, size=32))
    trainer = L.Trainer(
        max_steps=-1,
        max_epochs=-1,
        logger=[CSVLogger(str(tmp_path), name="", version=""), member],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[evaluator],
    )
    trainer.fit(model, ToyMixtureDataModule("ring8", batch_size=16))
    evaluations = [r for r in member.member_rows if "mode/modes" in r[1]]
    assert [step for step, *_ in evaluations] == [2, 4]
    for step, values, _, images in evaluations:
        for name in ModeCoverageEvaluator.METRICS:
            np.testing.assert_array_equal(
                values[f"mode/{name}"], [r[name] for r in evaluator.history if r["g_steps"] == step]
            )
        assert not any(k.endswith("_se") for k in values)
        if media:
            assert [img.shape for img in images["mode/samples"]] == [(32, 32, 3)] * 2
        else:
            assert images == {}
    with open(tmp_path / "metrics.csv", newline="") as f:
        means = {float(r["d_steps"]): float(r["d/loss"]) for r in csv.DictReader(f) if r.get("d/loss")}
    losses = [
        (shared["d_steps"], values["d/loss"])
        for _, values, shared, _ in member.member_rows
        if "d/loss" in values
    ]
    assert len(losses) == len(means) == 4
    for d_steps, per_member in losses:
        assert len(per_member) == 2 and sum(per_member) / 2 == pytest.approx(means[d_steps], rel=1e-6)


def test_a_per_seed_logger_gets_each_members_penalties(tmp_path):
    """WGAN-GP (eager) and R1 (lazy, every 2) in a 2-member ensemble: the per-seed logger gets each
    member's penalty, and their mean is the CSV's value (mutation caught: penalties logged already
    reduced over the members, as before, so that per-seed runs had no `d/<penalty>`)."""
    from gan_lab.regularizers import R1, WGANGP

    model = GANModule(
        ToyGenerator(members=2, hidden=8, layers=2),
        ToyDiscriminator(members=2, hidden=8, layers=2),
        objective="wasserstein",
        regularizers=[WGANGP(weight=1.0), R1(weight=1.0, every=2)],
        max_g_steps=4,
    )
    member = MemberLogger(str(tmp_path / "m"), name="", version="")
    trainer = L.Trainer(
        max_steps=-1,
        max_epochs=-1,
        logger=[CSVLogger(str(tmp_path), name="", version=""), member],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, ToyMixtureDataModule("ring8", batch_size=16))
    with open(tmp_path / "metrics.csv", newline="") as f:
        csv_rows = {float(r["d_steps"]): r for r in csv.DictReader(f) if r.get("d/loss")}
    rows = [(shared["d_steps"], values) for _, values, shared, _ in member.member_rows if "d/loss" in values]
    assert len(rows) == 4
    for d_steps, values in rows:
        for key in ("d/wgan_gp", "d/r1"):
            per_member = values[key]
            assert len(per_member) == 2 and per_member[0] != per_member[1]
            assert sum(per_member) / 2 == pytest.approx(float(csv_rows[d_steps][key]), rel=1e-6)


# --------------------------------------------------------------------------------------------------
# ModeCoverageEvaluator's metric: the names it can build, and no other
# --------------------------------------------------------------------------------------------------


def _evaluate_once(metric: str) -> dict:
    """One evaluation of an untrained 2-member run with ``metric`` (a stand-in trainer)."""
    model = GANModule(
        ToyGenerator(members=2, hidden=8, layers=2), ToyDiscriminator(members=2, hidden=8, layers=2)
    )
    evaluator = ModeCoverageEvaluator(n_samples=50, plot=False, metric=metric)
    trainer = SimpleNamespace(datamodule=ToyMixtureDataModule("ring8", batch_size=16), loggers=[])
    return evaluator.evaluate(trainer, model)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_the_evaluator_takes_only_the_metrics_it_can_build(name):
    """Every name of gan_lab.metrics.METRICS: a mode-coverage metric (``mode_coverage``) evaluates;
    each other one (``frechet_distance``, ``kernel_distance``, ``inception_score``, ``prdc``,
    ``stacked_modes``: they take features or digit labels, not 2D samples, and are built otherwise)
    is refused in one line when the evaluator is made, naming the valid ones (before: accepted, then
    a TypeError at the first evaluation, after training had started)."""
    from gan_lab.errors import ConfigError
    from gan_lab.evaluators.mode import mode_metrics
    from gan_lab.metrics import ModeCoverage

    assert mode_metrics() == ["mode_coverage"]
    if issubclass(METRICS[name], ModeCoverage):
        result = _evaluate_once(name)
        assert set(result) >= set(ModeCoverageEvaluator.METRICS) and result["modes"].shape == (2,)
        return
    with pytest.raises(ConfigError) as info:
        ModeCoverageEvaluator(metric=name)
    message = str(info.value)
    assert message == f"unknown mode-coverage metric {name!r}; valid mode-coverage metrics: mode_coverage"


def test_a_registered_mode_coverage_metric_is_taken_and_used():
    """A user's subclass of ModeCoverage, registered in METRICS, is accepted and does the counting."""
    from gan_lab.metrics import ModeCoverage

    class Strict(ModeCoverage):
        """Mode coverage that calls no sample high quality (a visible difference)."""

        def compute(self):
            out = super().compute()
            return {**out, "hq_fraction": out["hq_fraction"] * 0}

    with METRICS.temporarily(Strict, name="strict_coverage"):
        result = _evaluate_once("strict_coverage")
    assert result["hq_fraction"].tolist() == [0.0, 0.0]
