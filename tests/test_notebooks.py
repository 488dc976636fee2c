"""The analysis notebooks run top to bottom on a study the test makes (code cells executed in one
namespace, as a kernel would; no Jupyter needed), with their parameters injected as papermill
injects them. They show their figures inline and write nothing into the study folder they read."""

import hashlib
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from gan_lab.cli import main
from gan_lab.metrics import mean_and_se
from gan_lab.study import read_rows

ROOT = Path(__file__).resolve().parents[1]


NOTEBOOK = ROOT / "notebooks" / "ring8_study.ipynb"


def _tagged(cells: list[dict], tag: str) -> list[int]:
    return [i for i, c in enumerate(cells) if tag in c.get("metadata", {}).get("tags", [])]


def inject_parameters(cells: list[dict], **parameters: str) -> list[dict]:
    """The cells with ``parameters`` assigned as papermill's ``parameterize_notebook`` assigns them
    (Python kernel, string values): a code cell tagged ``injected-parameters`` with a ``# Parameters``
    comment and one ``NAME = "value"`` line each, replacing an earlier injected cell or else
    inserted right after the cell tagged ``parameters``."""
    (params,) = _tagged(cells, "parameters")  # papermill uses the first; the notebook has exactly one
    lines = ["# Parameters"]
    for name, value in parameters.items():
        escaped = value.encode("unicode_escape").decode("utf-8").replace('"', r"\"")
        lines.append(f'{name} = "{escaped}"')
    cell = {
        "cell_type": "code",
        "metadata": {"tags": ["injected-parameters"]},
        "source": "\n".join(lines) + "\n",
        "outputs": [],
    }
    injected = _tagged(cells, "injected-parameters")
    if injected:
        return [*cells[: injected[0]], cell, *cells[injected[0] + 1 :]]
    return [*cells[: params + 1], cell, *cells[params + 1 :]]


def run_notebook(path: Path, **parameters: str) -> dict:
    """Execute the code cells in one namespace, after injecting ``parameters`` (if any)."""
    cells = json.loads(path.read_text())["cells"]
    if parameters:
        cells = inject_parameters(cells, **parameters)
    namespace: dict = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
    return namespace


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: its modification time (ns) and the SHA-256 of its bytes."""
    return {
        str(f.relative_to(folder)): (f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def test_the_notebook_has_one_parameters_cell_with_the_demo_default():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    (i,) = _tagged(cells, "parameters")
    assert cells[i]["cell_type"] == "code"
    assert '"runs/ring8-demo"' in "".join(cells[i]["source"])  # the folder `make demo` writes
    assert not _tagged(cells, "injected-parameters")


def test_ring8_study_notebook(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text((ROOT / "tests" / "configs" / "tiny_ring8.yaml").read_text())
    (tmp_path / "s.yaml").write_text(
        "name: nb\nbase: base.yaml\nseeds: 2\nobjectives: [hinge, least_squares]\n"
    )
    assert main(["study", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 0
    study = tmp_path / "runs" / "nb"
    # A papermill parameter wins over the environment variable (its cell runs after the default's).
    monkeypatch.setenv("STUDY_DIR", str(tmp_path / "elsewhere"))
    before = snapshot(study)
    plt.close("all")
    try:
        ns = run_notebook(NOTEBOOK, STUDY_DIR=str(study))
        # the figure is shown (inline in Jupyter), one point per seed, and saved nowhere
        assert plt.get_fignums() == [ns["fig"].number]
        assert sum(len(c.get_offsets()) for c in ns["ax"].collections) == len(ns["results"])
    finally:
        plt.close("all")
    assert snapshot(study) == before  # the notebook wrote, changed and removed nothing in the study folder
    assert ns["STUDY_DIR"] == str(study) and ns["study_dir"] == study
    assert ns["objectives"] == ["hinge", "least_squares"]
    seeds = [(r["objective"], r["seed"], r["wall_time_s"]) for r in read_rows(study / "results.csv")]
    assert [(r["objective"], r["seed"], r["wall_time_s"]) for r in ns["results"]] == seeds
    rows = [r for r in read_rows(study / "results.csv") if r["objective"] == "hinge"]
    modes = "mode/modes" if "mode/modes" in rows[0] else "modes"  # evaluator/metric; bare in older folders
    expected = mean_and_se(torch.tensor([r[modes] for r in rows], dtype=torch.float64))
    assert ns["table"]["hinge"]["modes"] == pytest.approx(expected, nan_ok=True)


def test_the_notebook_shows_its_figures_and_saves_none():
    """Inline figures (no Agg backend forced, no savefig): a notebook run leaves its outputs in the
    executed notebook, not in the study folder."""
    code = "".join(
        "".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"
    )
    assert "plt.show()" in code
    assert "savefig" not in code and "matplotlib.use(" not in code
    assert "write_text" not in code and "open(" not in code


@pytest.mark.parametrize("how", ["papermill", "environment", "default"])
def test_a_folder_without_results_csv_is_named(tmp_path, monkeypatch, how):
    """STUDY_DIR from papermill, from the environment, or the default: a folder without results.csv
    stops the notebook at once with an error naming the folder and what to set."""
    monkeypatch.chdir(tmp_path)  # the default, runs/ring8-demo, is relative to the working folder
    monkeypatch.delenv("STUDY_DIR", raising=False)
    empty = tmp_path / "not-a-study"
    empty.mkdir()
    if how == "papermill":
        monkeypatch.setenv("STUDY_DIR", str(tmp_path / "elsewhere"))
        params, named = {"STUDY_DIR": str(empty)}, empty
    elif how == "environment":
        monkeypatch.setenv("STUDY_DIR", str(empty))
        params, named = {}, empty
    else:
        params, named = {}, tmp_path / "runs" / "ring8-demo"
    with pytest.raises(FileNotFoundError, match=r"has no results\.csv") as caught:
        run_notebook(NOTEBOOK, **params)
    message = str(caught.value)
    assert repr(str(named)) in message and "papermill -p STUDY_DIR" in message
