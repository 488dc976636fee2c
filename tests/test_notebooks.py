"""The analysis notebooks run top to bottom on a study the test makes (code cells executed in one
namespace, as a kernel would; no Jupyter needed)."""

import json
from pathlib import Path

import pytest
import torch

from gan_lab.cli import main
from gan_lab.metrics import mean_and_se
from gan_lab.study import read_rows

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(path: Path) -> dict:
    namespace: dict = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
    return namespace


def test_ring8_study_notebook(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text((ROOT / "tests" / "configs" / "tiny_ring8.yaml").read_text())
    (tmp_path / "s.yaml").write_text(
        "name: nb\nbase: base.yaml\nseeds: 2\nobjectives: [hinge, least_squares]\n"
    )
    assert main(["study", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 0
    study = tmp_path / "runs" / "nb"
    monkeypatch.setenv("STUDY_DIR", str(study))
    ns = run_notebook(ROOT / "notebooks" / "ring8_study.ipynb")
    assert ns["objectives"] == ["hinge", "least_squares"]
    rows = [r for r in read_rows(study / "results.csv") if r["objective"] == "hinge"]
    expected = mean_and_se(torch.tensor([r["modes"] for r in rows], dtype=torch.float64))
    assert ns["table"]["hinge"]["modes"] == pytest.approx(expected, nan_ok=True)
    assert (study / "seeds.png").is_file()
