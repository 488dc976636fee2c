"""The study's W&B workspace (`gan-lab dashboard`): every panel names a key the tiny study's runs
logged, the runset filter selects exactly its per-seed runs, and dashboard.json builds the same
wandb_workspaces Workspace; nothing touches the network unless asked to save."""

import json

import pytest
from pydantic import TypeAdapter
from wandb_offline import matches, offline_runs
from wandb_study import OBJECTIVES, SEEDS

from gan_lab.cli import main
from gan_lab.dashboard.seed_runs import SEED_JOB
from gan_lab.study.workspace import DEFINITION_FILE, definition, to_workspace


@pytest.fixture(scope="module")
def runs(tiny_study):
    return offline_runs(tiny_study)


@pytest.fixture(scope="module")
def workspace(tiny_study, no_network):
    return to_workspace(json.loads((tiny_study / DEFINITION_FILE).read_text()))


def panels(workspace):
    return {s.name: s.panels for s in workspace.sections}


def test_sections_and_panels(workspace):
    import wandb_workspaces.reports.v2 as wr

    sections = panels(workspace)
    assert list(sections) == ["mode coverage", "losses", "samples"]  # no image metrics: none logged
    lines = {s: [p.y for p in ps] for s, ps in sections.items() if s != "samples"}
    assert lines == {
        "mode coverage": [["mode/modes"], ["mode/hq_fraction"], ["mode/reverse_kl"], ["mode/js"]],
        "losses": [["d/loss"], ["g/loss"]],
    }
    for section in ("mode coverage", "losses"):
        for p in sections[section]:
            assert isinstance(p, wr.LinePlot) and p.x == "g_steps"
            assert isinstance(p.groupby, wr.Config) and p.groupby.name == "objective"
            assert (p.groupby_aggfunc, p.groupby_rangefunc) == ("mean", "stderr")
    (media,) = sections["samples"]
    assert isinstance(media, wr.MediaBrowser) and media.media_keys == ["mode/samples"]
    assert workspace.settings.x_axis == "g_steps" and workspace.project == "gan_lab"


def test_every_panel_key_was_logged_by_every_run(workspace, runs):
    seed_runs = [r for r in runs if r["job_type"] == SEED_JOB]
    named = {
        k for ps in panels(workspace).values() for p in ps for k in getattr(p, "y", None) or p.media_keys
    }
    for run in seed_runs:
        logged = set().union(*run["history"])
        assert named <= logged, named - logged


def test_the_runset_selects_exactly_the_studys_seed_runs(workspace, runs):
    from wandb_workspaces import expr

    tree = expr.expr_to_filters(workspace.runset_settings.filters)
    other = {**runs[0], "group": "another-study"}  # a run of another study in the same project
    selected = [r for r in [*runs, other] if matches(tree, r)]
    assert sorted((r["config"]["objective"], r["config"]["seed"]) for r in selected) == sorted(
        (o, s) for o in OBJECTIVES for s in SEEDS
    )
    assert [g.name for g in workspace.runset_settings.groupby] == ["objective"]


def without_ids(value):
    """A workspace as plain data without the panels' random ids (wandb_workspaces draws one per panel)."""
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k != "_id"}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def test_the_json_round_trips_into_the_same_workspace(tiny_study, workspace):
    import wandb_workspaces.workspaces as ws

    written = json.loads((tiny_study / DEFINITION_FILE).read_text())
    assert written == json.loads(json.dumps(definition(tiny_study)))
    dump = TypeAdapter(ws.Workspace).dump_python
    assert without_ids(dump(workspace)) == without_ids(dump(to_workspace(definition(tiny_study))))
    assert [s.name for s in workspace.sections] == [s["name"] for s in written["sections"]]


def test_dashboard_command_writes_and_describes(tiny_study, capsys, no_network):
    (tiny_study / DEFINITION_FILE).unlink()
    assert main(["dashboard", str(tiny_study)]) == 0
    out = capsys.readouterr().out
    assert (tiny_study / DEFINITION_FILE).is_file()
    assert f"{len(OBJECTIVES) * len(SEEDS)} runs" in out and "hinge: seeds 7, 8" in out
    assert "mode coverage: mode/modes" in out and "gan-lab dashboard --save" in out
    assert no_network == []


def test_save_without_a_login_is_one_line(tiny_study, capsys, monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert main(["dashboard", "--save", str(tiny_study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wandb login" in err[0] and "wandb sync" in err[0]
    assert no_network == []


def test_bad_folders_are_one_line(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "study.json").write_text("{}")
    assert main(["dashboard", str(tmp_path)]) == 2
    assert "no per-seed W&B runs" in capsys.readouterr().err
    assert not (tmp_path / DEFINITION_FILE).exists()


def test_an_evaluators_panels_come_from_its_report_section(tmp_path, monkeypatch):
    """The panels of a study's evaluators are what each one's report section gives, in sections in
    the order the evaluators come: a user's evaluator (tests/spread_evaluator.py) gets its own
    section with nothing of the lab's changed; a metric its runs did not log gets no panel."""
    from spread_evaluator import SampleSpread

    from gan_lab.dashboard.seed_runs import RECORD_FILE
    from gan_lab.study import EVALUATORS, register_evaluator

    monkeypatch.setattr(EVALUATORS, "_entries", dict(EVALUATORS._entries))  # undone after the test
    register_evaluator(SampleSpread)
    study = tmp_path / "two"
    (study / "hinge").mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"evaluator": ["spread", "mode"]}))
    record = {
        "project": "gan_lab", "group": "two", "facts": {"objective": "hinge"}, "media": [],
        "keys": ["d/loss", "g/loss", "mode/modes", "mode/js", "spread/spread"],
        "runs": [{"seed": 0, "objective": "hinge"}],
    }  # fmt: skip
    (study / "hinge" / RECORD_FILE).write_text(json.dumps(record))
    sections = {s["name"]: [p["key"] for p in s["panels"]] for s in definition(study)["sections"]}
    assert sections == {
        "sample spread": ["spread/spread"],
        "mode coverage": ["mode/modes", "mode/js"],
        "losses": ["d/loss", "g/loss"],
    }
