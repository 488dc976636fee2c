"""One W&B run per (objective, seed), also for ensemble members: the tiny study's offline runs read
back with wandb's own reader (`wandb leet inspect`), against the study's results.csv, history.csv
and metrics.csv."""

import csv
import math
import struct

import numpy as np
import pytest
from wandb_offline import inspect_run, offline_runs
from wandb_study import OBJECTIVES, SEEDS, WIDE

from gan_lab.dashboard.seed_runs import REPORT_JOB, SEED_JOB, SeedRunsLogger

METRICS = ("modes", "hq_fraction", "reverse_kl", "js")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tiny_study):
    return offline_runs(tiny_study)


@pytest.fixture(scope="module")
def seed_runs(runs):
    return {(r["config"]["objective"], r["config"]["seed"]): r for r in runs if r["job_type"] == SEED_JOB}


def test_one_run_per_objective_and_seed_grouped_and_tagged(runs, seed_runs):
    assert sorted(seed_runs) == sorted((o, s) for o in OBJECTIVES for s in SEEDS)
    assert [r["job_type"] for r in runs].count(REPORT_JOB) == 1 and len(runs) == len(seed_runs) + 1
    for (objective, seed), run in seed_runs.items():
        assert run["group"] == "tiny" and run["tags"] == [objective]
        assert run["name"] == f"tiny/{objective}/seed{seed}"
        assert run["state"] == "finished" and run["exit_code"] == 0
        config = run["config"]
        assert config["study"] == "tiny" and config["objective"] == objective and config["loss"] == objective
        assert config["regularizers"] == "-" and config["n_critic"] == 1 and config["data"] == WIDE
        assert config["member"] == SEEDS.index(seed)
        # the resolved config, and the optimizers and data set taken out of it
        assert config["config"]["model"]["objective"] == objective
        for key in ("optimizer_g", "optimizer_d"):
            assert config[key] == config["config"]["model"][key]
            assert (
                config[key]["class_path"] == "gan_lab.optim.Adam" and config[key]["init_args"]["lr"] == 2e-4
            )
        assert config["dataset"]["init_args"]["name"] == WIDE


def test_history_is_keyed_by_g_steps(seed_runs):
    for run in seed_runs.values():
        assert {"name": "g_steps", "options": {"defined": True}} in run["metrics"]
        assert any(m.get("glob_name") == "*" and m.get("step_metric") == "g_steps" for m in run["metrics"])
        assert all("g_steps" in row for row in run["history"])
        keys = set().union(*run["history"])
        assert {"d/loss", "g/loss", "d_steps", *(f"mode/{m}" for m in METRICS), "mode/samples"} <= keys
        assert not any(k.endswith("_se") for k in keys)  # per seed: no standard error of one value
        assert "trainer/global_step" not in keys and "epoch" not in keys


def test_each_evaluation_is_one_row_with_the_seeds_own_values(tiny_study, seed_runs):
    """Evaluations every 2 of 4 G steps: one row each, at its G step (no stale repeats), holding
    the member's own history.csv values (seed 8 is member 1 of the ensemble)."""
    history = read_csv(tiny_study / "history.csv")
    for (objective, seed), run in seed_runs.items():
        rows = [r for r in run["history"] if "mode/modes" in r]
        assert [r["g_steps"] for r in rows] == [2, 4]
        for row in rows:
            (expected,) = [
                h
                for h in history
                if h["objective"] == objective
                and int(h["seed"]) == seed
                and int(h["g_steps"]) == row["g_steps"]
            ]
            for m in METRICS:
                assert row[f"mode/{m}"] == float(expected[f"mode/{m}"]), (objective, seed, m)


def test_summary_values_are_the_results_csv_row(tiny_study, seed_runs):
    results = read_csv(tiny_study / "results.csv")
    assert len(results) == len(seed_runs)
    for row in results:
        summary = seed_runs[row["objective"], int(row["seed"])]["summary"]
        for m in METRICS:
            value = float(row[f"mode/{m}"])
            assert math.isfinite(value) and summary[f"mode/{m}"] == value, (row["objective"], m)
        assert summary["status"] == row["status"] == "ok"
        assert summary["wall_time_s"] == float(row["wall_time_s"])


def test_member_losses_average_to_the_logged_mean(tiny_study, seed_runs):
    """Each member's run holds its own D loss: the members' values at a D step average to the mean
    that metrics.csv logged there (and differ from each other)."""
    for objective in OBJECTIVES:
        csv_rows = {
            int(float(r["d_steps"])): float(r["d/loss"])
            for r in read_csv(tiny_study / objective / "metrics.csv")
            if r.get("d/loss")
        }
        per_seed = [
            {int(r["d_steps"]): r["d/loss"] for r in seed_runs[objective, s]["history"] if "d/loss" in r}
            for s in SEEDS
        ]
        assert set(per_seed[0]) == set(per_seed[1]) == set(csv_rows) == {1, 2, 3, 4}
        for d, mean in csv_rows.items():
            values = [p[d] for p in per_seed]
            assert values[0] != values[1]
            assert np.mean(values) == pytest.approx(mean, rel=1e-6)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_media_at_every_evaluation(tiny_study, seed_runs):
    """A scatter per seed at each evaluation (G steps 2 and 4) under one key, its PNG in the run
    folder at the study's --media-size 64."""
    for (objective, _), run in seed_runs.items():
        media = [(r["g_steps"], r["mode/samples"]) for r in run["history"] if "mode/samples" in r]
        assert [g for g, _ in media] == [2, 4]
        (folder,) = [
            p.parent
            for p in (tiny_study / objective / "wandb").glob(f"offline-run-*/run-{run['run_id']}.wandb")
        ]
        for _, image in media:
            assert image["_type"] == "image-file" and (image["width"], image["height"]) == (64, 64)
            assert png_size(folder / "files" / image["path"]) == (64, 64)
        assert len({image["sha256"] for _, image in media}) == 2  # G moved: two different frames


def test_the_study_run_holds_the_results_table_and_figures(tiny_study, runs):
    (report,) = [r for r in runs if r["job_type"] == REPORT_JOB]
    assert report["group"] == "tiny" and report["config"]["study"] == "tiny"
    (row,) = report["history"]
    assert row["results"]["_type"] == "table-file"
    assert {k for k in row if k.startswith("figures/")} == {
        f"figures/{p.stem}" for p in tiny_study.glob("*.png")
    }
    (table,) = [p for p in tiny_study.glob("wandb/offline-run-*/files/" + row["results"]["path"])]
    import json

    data = json.loads(table.read_text())
    results = read_csv(tiny_study / "results.csv")
    assert data["columns"] == list(results[0]) and len(data["data"]) == len(results)
    column = data["columns"].index("mode/modes")
    assert [r[column] for r in data["data"]] == [float(r["mode/modes"]) for r in results]


def test_a_diverged_run_is_marked_not_crashed(tmp_path, no_network):
    logger = SeedRunsLogger(
        tmp_path, seeds=[3, 4], facts={"objective": "x"}, group="g", name="g/x", tags=["x"]
    )
    logger.log_member_metrics({"d/loss": [1.0, 2.0]}, step=1, shared={"d_steps": 1.0})
    logger.set_summary({"mode/modes": [5.0, 6.0]})
    logger.mark_diverged("diverged at g_steps=1", 1)
    logger.finish()
    runs = {
        r["config"]["seed"]: r for r in (inspect_run(p) for p in sorted(tmp_path.glob("wandb/*/run-*.wandb")))
    }
    assert sorted(runs) == [3, 4]
    for seed, run in runs.items():
        assert run["state"] == "failed" and run["exit_code"] == 1  # not "crashed"
        assert (
            run["summary"]["status"] == "diverged at g_steps=1" and run["summary"]["diverged_at_g_steps"] == 1
        )
        assert run["summary"]["mode/modes"] == {3: 5.0, 4: 6.0}[seed] and "diverged" in run["tags"]
        assert [r["d/loss"] for r in run["history"]] == [{3: 1.0, 4: 2.0}[seed]]


def test_a_sweep_run_is_one_seed(tmp_path, monkeypatch):
    from gan_lab.errors import ConfigError

    monkeypatch.setenv("WANDB_SWEEP_ID", "abc")
    with pytest.raises(ConfigError, match="members=1"):
        SeedRunsLogger(tmp_path, seeds=[0, 1])


def test_a_relative_folder_is_written_there_after_the_process_changed_directory(
    tmp_path, monkeypatch, no_network
):
    """W&B's service resolves a relative ``dir`` against its own working directory (the process's
    when it started); a study run from a notebook or a test that changed directory wrote nothing
    where it said and waited out the finish timeout. Mutation: SeedRunsLogger passing the relative
    folder to wandb.init (no .wandb file in the folder)."""
    import wandb

    (tmp_path / "first").mkdir()
    (tmp_path / "later").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    wandb.init(mode="offline", dir=str(tmp_path / "first"), reinit="create_new").finish()  # the service's cwd
    monkeypatch.chdir(tmp_path / "later")
    logger = SeedRunsLogger("rel", seeds=[0], facts={"objective": "x"}, group="g", name="g/x", tags=["x"])
    logger.log_member_metrics({"d/loss": [1.0]}, step=1, shared={"d_steps": 1.0})
    logger.finish()
    (run,) = sorted((tmp_path / "later" / "rel").glob("wandb/offline-run-*/run-*.wandb"))
    assert inspect_run(run)["config"]["objective"] == "x"
