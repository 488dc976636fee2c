"""experiments/sweeps/: every sweep's command, with `${args}` expanded as the W&B agent expands it
(wandb's own `create_sweep_command_args`: `--key=value`), parses through `gan-lab fit` into the
swept values, for a sample of its grid, without running; a key LightningCLI does not know is
exit 2."""

import itertools
from pathlib import Path

import pytest
import yaml

from gan_lab.cli import main
from gan_lab.fit import build_cli

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))


def grid(sweep: dict) -> list[dict]:
    names = list(sweep["parameters"])
    values = [sweep["parameters"][n]["values"] for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def command(sweep: dict, params: dict) -> list[str]:
    """The agent's command line for one point of the grid (``${args}`` -> ``--key=value``)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    flags = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})["args"]
    out = []
    for part in sweep["command"]:
        out += flags if part == "${args}" else [part]
    return out


def sample(points: list[dict]) -> list[dict]:
    """First, middle and last point of the grid (every value of the first parameter, changing fastest last)."""
    return [points[0], points[len(points) // 2], points[-1]]


def test_there_are_sweeps():
    assert {p.stem for p in SWEEPS} >= {"ring8_lr_objective", "wgan_gp_ncritic_lambda", "r1_gamma"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_commands_parse_through_gan_lab_fit(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the agent runs in the repository root: relative --config paths
    sweep = yaml.safe_load(path.read_text())
    assert sweep["command"][:2] == ["gan-lab", "fit"] and sweep["command"].count("${args}") == 1
    assert sweep["metric"]["name"] == "mode/modes"  # a key the per-seed runs log (and summarise)
    for params in sample(grid(sweep)):
        argv = command(sweep, params)
        assert all(f"--{k}={v}" in argv for k, v in params.items())
        cli = build_cli(argv[2:], run=False)  # parsed and instantiated, not fitted
        model = cli.model
        assert model.members == 1  # a sweep run is one W&B run: one seed
        for key, value in params.items():
            parsed = cli.config[key]
            if key == "model.regularizers":
                (reg,) = model.penalties
                (given,) = yaml.safe_load(value)
                assert f"{type(reg).__module__}.{type(reg).__name__}".endswith(
                    given["class_path"].split(".")[-1]
                )
                assert reg.weight == given["init_args"]["weight"]
                assert reg.every == given["init_args"].get("every", 1)
            else:
                assert parsed == value, (key, parsed, value)
        assert model.seed == params.get("model.seed", model.seed)


@pytest.mark.parametrize("path", SWEEPS[:1], ids=lambda p: p.stem)
def test_a_key_lightning_cli_does_not_know_is_exit_2(path, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(ROOT)
    sweep = yaml.safe_load(path.read_text())
    argv = command(sweep, {**grid(sweep)[0], "model.no_such_key": 1})
    assert main([*argv[1:], f"--trainer.default_root_dir={tmp_path}"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
