"""`gan-lab fit` through LightningCLI: every objective fits; bad input ends with one line, exit 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_lab.cli import main
from gan_lab.losses import OBJECTIVES

ROOT = Path(__file__).resolve().parents[1]
BASE = str(ROOT / "experiments/toy/ring8.yaml")
SMALL = [
    "--model.generator.init_args.members=2",
    "--model.generator.init_args.hidden=16",
    "--model.generator.init_args.layers=2",
    "--model.discriminator.init_args.members=2",
    "--model.discriminator.init_args.hidden=16",
    "--model.discriminator.init_args.layers=2",
    "--data.init_args.batch_size=32",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--model.max_g_steps=3",
]


def fit_args(tmp_path, *extra):
    return ["fit", "--config", BASE, *SMALL, f"--trainer.default_root_dir={tmp_path}", *extra]


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("penalty", [None, "wgan_gp"])
def test_short_fit_of_every_objective(tmp_path, objective, penalty):
    extra = [f"--model.objective={objective}"]
    if penalty:
        extra.append(f"--model.regularizers=[{penalty}]")
    assert main(fit_args(tmp_path, *extra)) == 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert state["gan_lab"]["g_steps"] == 3
    assert state["hyper_parameters"]["objective"] == objective


def test_objective_by_class_path(tmp_path):
    cfg = tmp_path / "obj.yaml"
    cfg.write_text("model:\n  objective:\n    class_path: gan_lab.losses.Hinge\n")
    assert main(fit_args(tmp_path / "run", "--config", str(cfg))) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["objective"] == "hinge"


def test_regularizer_by_class_path_with_weight(tmp_path):
    cfg = tmp_path / "reg.yaml"
    cfg.write_text(
        "model:\n  regularizers:\n    - class_path: gan_lab.regularizers.R1\n      init_args: {weight: 0.5, every: 2}\n"
    )
    assert main(fit_args(tmp_path / "run", "--config", str(cfg))) == 0


BAD = [
    (["--model.objective=hing"], "unknown objective 'hing'; valid objectives: hinge, least_squares, minimax"),
    (["--model.regularizers=[r3]"], "unknown regularizer 'r3'; valid regularizers:"),
    (["--data.init_args.name=ring9"], "unknown dataset 'ring9'; valid datasets: grid25, ring8"),
    (["--model.n_critic=0"], "n_critic must be an integer >= 1"),
    (["--model.regularizers=[weight_clipping, wgan_gp]"], "weight clipping and the gradient penalty"),
    (["--model.regularizers=[pixel]"], "needs a paired target, but this run is unconditional"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_input_exits_2_with_one_line_and_no_run_folder(tmp_path, capsys, extra, message):
    run_dir = tmp_path / "run"
    assert main(fit_args(run_dir, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-lab: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not run_dir.exists()


def test_negative_weight_from_yaml(tmp_path, capsys):
    cfg = tmp_path / "reg.yaml"
    cfg.write_text(
        "model:\n  regularizers:\n    - class_path: gan_lab.regularizers.R1\n      init_args: {weight: -2}\n"
    )
    assert main(fit_args(tmp_path / "run", "--config", str(cfg))) == 2
    assert "r1 weight must be a number >= 0, got -2" in capsys.readouterr().err


def test_console_script_exit_code_and_single_line(tmp_path):
    """The installed entry point, as a user runs it: exit code 2, one line, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.cli", *fit_args(tmp_path / "run", "--model.objective=nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "valid objectives" in lines[-1]
    assert not (tmp_path / "run").exists()


COMMANDS = ["fit", "study", "report", "sample", "metrics", "dashboard"]


@pytest.mark.parametrize("args", [["--help"], ["-h"], []])
def test_help_is_a_short_plain_list_of_commands(capsys, args):
    """`gan-lab --help` (and `-h`, and no argument): one line per command, plain text (no reST
    markup), exit 0."""
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 20 and all(len(line) <= 100 for line in lines)
    assert "``" not in out and ":class:" not in out and ":func:" not in out
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    assert listed == COMMANDS  # one line each, in this order


def test_help_prints_before_lightning_is_imported():
    """The help needs none of the training stack: the command prints it before importing Lightning
    or any command's module (no timing asserted; what is imported is the measure)."""
    code = (
        "import sys; from gan_lab.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'wandb')"
        " or m in ('gan_lab.fit', 'gan_lab.study', 'gan_lab.module')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_the_console_script_prints_the_help():
    """The installed `gan-lab` (beside this interpreter), as a user runs it."""
    script = Path(sys.executable).with_name("gan-lab")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "gan_lab.cli"]
    proc = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: gan-lab COMMAND") and "dashboard" in proc.stdout


def test_unknown_command(capsys):
    assert main(["fitt"]) == 2
    assert "valid commands" in capsys.readouterr().err


def test_default_loggers_write_csv_and_offline_wandb_in_the_run_folder(tmp_path, monkeypatch):
    """A fit's default loggers: metrics.csv and one offline W&B run per seed (2 members here), grouped
    by the data, tagged by objective and regularizers, with the seed's facts in the config."""
    from wandb_offline import inspect_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    args = [a for a in fit_args(tmp_path) if a != "--trainer.logger=false"]
    assert main([*args, "--trainer.log_every_n_steps=1", "--model.regularizers=[r1]"]) == 0
    run = tmp_path / "ring8" / "version_0"
    assert (run / "metrics.csv").is_file() and (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    records = sorted(
        (inspect_run(f) for f in run.glob("wandb/offline-run-*/run-*.wandb")),
        key=lambda r: r["config"]["seed"],
    )
    seed = records[0]["config"]["config"]["model"]["seed"]
    assert [r["config"]["seed"] for r in records] == [seed, seed + 1]  # member k is seed + k
    for r in records:
        assert r["group"] == "ring8" and r["tags"] == ["non_saturating", "r1"] and r["job_type"] == "seed"
        assert r["config"]["objective"] == "non_saturating" and r["config"]["regularizers"] == "r1"
        assert r["config"]["study"] is None and r["config"]["data"] == "ring8"
        assert any("d/loss" in row for row in r["history"]) and r["state"] == "finished"


def test_a_mixed_fit_logs_each_member_under_its_own_objective(tmp_path, monkeypatch):
    """`--model.objective=[hinge,minimax]` with 2 members: one per objective, both seed s (member
    j·S + i has seed s + i); each W&B run carries its member's objective as config, tag and name."""
    from wandb_offline import inspect_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    args = [
        a for a in fit_args(tmp_path, "--model.objective=[hinge,minimax]") if a != "--trainer.logger=false"
    ]
    assert main(args) == 0
    run = tmp_path / "ring8" / "version_0"
    records = [inspect_run(f) for f in run.glob("wandb/offline-run-*/run-*.wandb")]
    seed = records[0]["config"]["config"]["model"]["seed"]
    assert sorted((r["config"]["objective"], r["config"]["seed"]) for r in records) == [
        ("hinge", seed),
        ("minimax", seed),
    ]
    for r in records:
        assert r["config"]["loss"] == r["config"]["objective"] and r["tags"] == [r["config"]["objective"]]
        assert r["name"] == f"ring8/hinge+minimax/{r['config']['objective']}/seed{seed}"


def test_a_one_seed_fit_logs_every_term_to_its_run(tmp_path, monkeypatch):
    """With one member the W&B run is the seed: the module's means are its values, penalties included."""
    from wandb_offline import inspect_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    one = [a.replace("members=2", "members=1") for a in fit_args(tmp_path) if a != "--trainer.logger=false"]
    assert main([*one, "--trainer.log_every_n_steps=1", "--model.regularizers=[r1]"]) == 0
    (record,) = [
        inspect_run(f) for f in (tmp_path / "ring8" / "version_0").glob("wandb/offline-run-*/run-*.wandb")
    ]
    keys = set().union(*record["history"])
    assert {"d/loss", "g/loss", "d/r1", "mode/modes", "mode/samples", "g_steps"} <= keys
    assert "mode/modes_se" not in keys  # the evaluators hand a per-seed logger the seed's values
