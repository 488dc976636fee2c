"""Resume writes only where it may, and never rewrites a run's history (docs/DESIGN.md, reliability
rules): a run continues only in the folder that holds its checkpoint or in the command's own
folder, never in a path read from the file; a finished run does nothing; an older checkpoint of a
run that went further is refused unless asked for as a new branch; a resume with other training
settings is refused unless they are intended; ``last.ckpt`` is always the newest state.

Every case runs ``gan-lab fit`` as a user does (default loggers, W&B offline) and compares the
folders that must not change byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from tiny_fit import TINY_RING8, training_steps

from gan_lab.cli import main

SMALL = [*TINY_RING8, "--trainer.enable_progress_bar=false", "--trainer.log_every_n_steps=1"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what "left as it was" is compared on); links are
    passed over (W&B links each run's ``debug-core.log`` to its service's log in ~/.cache)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def fit(root: Path, *extra: str) -> int:
    return main(["fit", *SMALL, f"--trainer.default_root_dir={root}", *extra])


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gan-lab: error: "), err
    return lines[0]


def test_a_checkpoint_naming_another_folder_writes_only_under_the_commands_folder(tmp_path, capsys):
    """The checkpoint's recorded run folder is a fact, not a destination: a file that names a
    victim's folder (as a copied or crafted checkpoint does) continues under the command's root."""
    victim, root = tmp_path / "victim", tmp_path / "mine"
    assert fit(victim, "--model.max_g_steps=3") == 0
    victim_run = victim / "ring8" / "version_0"
    ckpt = torch.load(victim_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_lab"]["run_dir"] == str(victim_run)  # it does name the victim
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "found.ckpt"
    torch.save(ckpt, moved)
    before = snapshot(victim)
    assert fit(root, "--model.max_g_steps=5", f"--ckpt_path={moved}") == 0
    assert snapshot(victim) == before
    run = root / "ring8" / "version_0"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["gan_lab"]["g_steps"] == 5
    assert training_steps(run / "metrics.csv") == [4, 5]  # its history starts at the checkpoint


def test_a_copied_run_folder_continues_in_the_copy_and_leaves_the_original(tmp_path):
    original, copy = tmp_path / "a", tmp_path / "b"
    assert fit(original, "--model.max_g_steps=3") == 0
    shutil.copytree(original, copy)
    before = snapshot(original)
    run = copy / "ring8" / "version_0"
    assert fit(copy, "--model.max_g_steps=5", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}") == 0
    assert snapshot(original) == before
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4, 5]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["gan_lab"]["g_steps"] == 5


def test_resuming_a_finished_run_does_nothing(tmp_path, capsys):
    assert fit(tmp_path, "--model.max_g_steps=4") == 0
    run = tmp_path / "ring8" / "version_0"
    before = snapshot(tmp_path)
    capsys.readouterr()
    for _ in range(2):
        assert fit(tmp_path, "--model.max_g_steps=4", "--ckpt_path=last") == 0
        out = capsys.readouterr().out
        assert f"the run in {run} already finished at G step 4" in out and "nothing to do" in out
    assert snapshot(tmp_path) == before  # no extra step, row, checkpoint or W&B session


def test_an_older_checkpoint_is_refused_and_a_branch_leaves_the_original(tmp_path, capsys):
    """g_steps=3 of a run that went on to 6: refused in one line (the run's folder unchanged);
    with --branch true it continues in a new version folder whose metrics.csv starts with the
    original's rows up to G step 3, and whose G step 6 equals the original's, bit for bit."""
    assert fit(tmp_path, "--model.max_g_steps=3") == 0
    run = tmp_path / "ring8" / "version_0"
    older = run / "checkpoints" / "g_steps=3-kept.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", older)
    assert fit(tmp_path, "--model.max_g_steps=6", "--ckpt_path=last") == 0
    before = snapshot(tmp_path)
    capsys.readouterr()

    assert fit(tmp_path, "--model.max_g_steps=6", f"--ckpt_path={older}") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is at G step 3, but its run went on to G step 6" in line and "--branch true" in line
    assert snapshot(tmp_path) == before

    assert fit(tmp_path, "--model.max_g_steps=6", f"--ckpt_path={older}", "--branch=true") == 0
    assert all(snapshot(tmp_path)[k] == v for k, v in before.items())  # the original, byte for byte
    branch = tmp_path / "ring8" / "version_1"
    assert training_steps(branch / "metrics.csv") == [1, 2, 3, 4, 5, 6]
    a = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(branch / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_with_another_objective_is_refused_unless_intended(tmp_path, capsys):
    """A least-squares run resumed without repeating its objective would continue as
    non-saturating: refused, naming the difference; with --allow_changes true it goes on, in the
    same folder, and the first config.yaml stays as it was (the new one is written beside it)."""
    assert fit(tmp_path, "--model.objective=least_squares", "--model.max_g_steps=3") == 0
    run = tmp_path / "ring8" / "version_0"
    before = snapshot(tmp_path)
    capsys.readouterr()
    last = run / "checkpoints" / "last.ckpt"
    assert fit(tmp_path, "--model.max_g_steps=5", f"--ckpt_path={last}") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "model.objective ('least_squares' there, 'non_saturating' here)" in line
    assert "--allow_changes true" in line and str(run / "config.yaml") in line
    assert snapshot(tmp_path) == before

    assert fit(tmp_path, "--model.max_g_steps=5", f"--ckpt_path={last}", "--allow_changes=true") == 0
    assert (run / "config.yaml").read_bytes() == before["ring8/version_0/config.yaml"]
    assert "non_saturating" in (run / "config-resumed-g_steps=3.yaml").read_text()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["g_steps=5.ckpt", "last.ckpt"]
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4, 5]


def test_the_same_settings_resume_without_a_flag_and_last_stays_the_newest(tmp_path):
    """Raising max_g_steps is no change of training; every resume rewrites last.ckpt (never last-v1)."""
    assert fit(tmp_path, "--model.objective=hinge", "--model.max_g_steps=2") == 0
    for steps in (3, 4):
        assert (
            fit(tmp_path, "--model.objective=hinge", f"--model.max_g_steps={steps}", "--ckpt_path=last") == 0
        )
    run = tmp_path / "ring8" / "version_0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["g_steps=4.ckpt", "last.ckpt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["gan_lab"]["g_steps"] == 4
    assert training_steps(run / "metrics.csv") == [1, 2, 3, 4]
