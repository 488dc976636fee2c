"""Bad input: exit code 2, one line naming the problem and what to do, before any training, and
nothing that exists is overwritten. One test per case (issue 4); cases of paired image data live
in tests/test_bad_input_images.py."""

import hashlib
from pathlib import Path

import pytest
import torch

from gan_lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--config",
    str(ROOT / "experiments/toy/ring8.yaml"),
    "--model.generator.init_args.hidden=8",
    "--model.generator.init_args.layers=1",
    "--model.discriminator.init_args.hidden=8",
    "--model.discriminator.init_args.layers=1",
    "--data.init_args.batch_size=16",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--model.max_g_steps=2",
]


def run_bad(tmp_path, capsys, *extra, root=None):
    root = root or tmp_path / "run"
    code = main(["fit", *SMALL, f"--trainer.default_root_dir={root}", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("gan-lab: error: ") and "Traceback" not in err
    return err


def yaml(tmp_path, text):
    path = tmp_path / "extra.yaml"
    path.write_text(text)
    return ["--config", str(path)]


def test_unknown_objective(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, "--model.objective=wgan")
    assert "unknown objective 'wgan'; valid objectives: hinge, least_squares, minimax" in err
    assert not (tmp_path / "run").exists()


def test_unknown_regularizer(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, "--model.regularizers=[gp]")
    assert "unknown regularizer 'gp'" in err and "wgan_gp" in err


def test_unknown_dataset(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, "--data.init_args.name=ring80")
    assert "unknown dataset 'ring80'" in err and "grid25" in err


def test_negative_weight(tmp_path, capsys):
    extra = yaml(
        tmp_path,
        "model:\n  regularizers:\n    - {class_path: gan_lab.regularizers.WGANGP, init_args: {weight: -10}}\n",
    )
    assert "wgan_gp weight must be a number >= 0, got -10" in run_bad(tmp_path, capsys, *extra)


def test_non_numeric_weight(tmp_path, capsys):
    extra = yaml(
        tmp_path,
        "model:\n  regularizers:\n    - {class_path: gan_lab.regularizers.R1, init_args: {weight: ten}}\n",
    )
    assert "bad value for model.regularizers.weight: expected a number, got 'ten'" in run_bad(
        tmp_path, capsys, *extra
    )


def test_n_critic_zero(tmp_path, capsys):
    assert "n_critic must be an integer >= 1" in run_bad(tmp_path, capsys, "--model.n_critic=0")


def test_weight_clipping_with_gradient_penalty(tmp_path, capsys):
    """Clipping fights a Lipschitz penalty (WGAN-GP); R1 + clipping is allowed (tests/test_checks.py)."""
    err = run_bad(tmp_path, capsys, "--model.regularizers=[weight_clipping, wgan_gp]")
    assert "weight clipping and the gradient penalty 'wgan_gp'" in err and "keep one" in err


def test_paired_only_term_in_unconditional_run(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, "--model.regularizers=[sobel_edge]")
    assert "'sobel_edge' needs a paired target, but this run is unconditional" in err


def test_data_channels_differ_from_nets(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, "--model.generator.init_args.out_dim=3")
    assert "the data has 2 channels but the generator output has 3" in err


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    err = run_bad(tmp_path, capsys, root=blocker / "run")
    assert "is not writable" in err
    assert blocker.read_text() == "a file, not a folder"


def test_missing_checkpoint(tmp_path, capsys):
    err = run_bad(tmp_path, capsys, f"--ckpt_path={tmp_path / 'nope.ckpt'}")
    assert "nope.ckpt does not exist" in err


def test_resume_from_checkpoint_of_incompatible_config(tmp_path, capsys):
    done = tmp_path / "done"
    assert main(["fit", *SMALL, f"--trainer.default_root_dir={done}"]) == 0
    (ckpt,) = done.glob("**/last.ckpt")
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    capsys.readouterr()
    err = run_bad(tmp_path, capsys, "--model.generator.init_args.hidden=12", f"--ckpt_path={ckpt}")
    assert "was trained with another config" in err and "shape" in err and "config.yaml" in err
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "run").exists()


def test_not_a_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    assert "bogus.ckpt is not a checkpoint" in run_bad(tmp_path, capsys, f"--ckpt_path={bogus}")


def test_unknown_argument(tmp_path, capsys):
    assert "max_stepz" in run_bad(tmp_path, capsys, "--trainer.max_stepz=3")


@pytest.mark.parametrize("value", ["abc", "1.5"])
def test_non_integer_n_critic(tmp_path, capsys, value):
    assert "model.n_critic" in run_bad(tmp_path, capsys, f"--model.n_critic={value}")


def test_good_input_still_runs(tmp_path):
    """The control: the same arguments without the fault train."""
    assert main(["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}"]) == 0
    assert torch.load(next(tmp_path.glob("**/*.ckpt")), weights_only=True)["gan_lab"]["g_steps"] == 2


# ------------------------------------------------------------------------------------------------
# Paired image runs (the super-resolution configs)
# ------------------------------------------------------------------------------------------------

SR = [
    "--config",
    str(ROOT / "experiments/sr/base.yaml"),
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--model.max_g_steps=1",
]


def run_bad_sr(tmp_path, capsys, *extra):
    code = main(["fit", *SR, f"--trainer.default_root_dir={tmp_path / 'run'}", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("gan-lab: error: ") and not (tmp_path / "run").exists()
    return err


def test_missing_data_folder(tmp_path, capsys):
    err = run_bad_sr(tmp_path, capsys, f"--data.init_args.root={tmp_path / 'photos'}")
    assert str(tmp_path / "photos") in err


def test_corrupt_image_file_is_named(tmp_path, capsys):
    from torchvision.io import write_png

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        write_png(torch.randint(0, 256, (3, 96, 96), dtype=torch.uint8), str(folder / name))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    err = run_bad_sr(tmp_path, capsys, f"--data.init_args.root={folder}")
    assert "broken.png" in err


def test_missing_vgg16_weights_names_the_path(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    err = run_bad_sr(tmp_path, capsys, "--config", str(ROOT / "experiments/sr/pixel_perceptual.yaml"))
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in err


def test_image_channels_differ_from_nets(tmp_path, capsys):
    err = run_bad_sr(tmp_path, capsys, "--data.init_args.channels=1")
    assert "the data has 1 channels but the generator output has 3" in err


# ----------------------------------------------------------------------------------------------
# As a user runs it (default loggers, W&B offline): one line, exit 2, nothing written
# ----------------------------------------------------------------------------------------------

USER = [a for a in SMALL if a != "--trainer.logger=false"]


def run_bad_as_user(tmp_path, capsys, monkeypatch, *extra, root=None) -> str:
    monkeypatch.setenv("WANDB_MODE", "offline")
    root = root or tmp_path / "run"
    existed = root.exists()
    code = main(["fit", *USER, f"--trainer.default_root_dir={root}", *extra])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and not captured.out.strip(), err
    assert err.startswith("gan-lab: error: ") and "Traceback" not in err
    assert existed or not root.exists()  # no run folder, no config.yaml left behind
    return err


def test_negative_learning_rate(tmp_path, capsys, monkeypatch):
    err = run_bad_as_user(tmp_path, capsys, monkeypatch, "--model.optimizer_d.init_args.lr=-1e-3")
    assert "model.optimizer_d (the D optimizer) is refused by torch: Invalid learning rate: -0.001" in err


def test_loggerless_run_twice_into_one_folder(tmp_path, capsys):
    first = main(["fit", *SMALL, f"--trainer.default_root_dir={tmp_path}"])
    assert first == 0
    config = (tmp_path / "config.yaml").read_bytes()
    capsys.readouterr()
    err = run_bad(tmp_path, capsys, root=tmp_path)
    assert f"{tmp_path / 'config.yaml'} exists" in err and "--ckpt_path last" in err
    assert (tmp_path / "config.yaml").read_bytes() == config


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_accelerator_on_a_machine_without_one(tmp_path, capsys, monkeypatch):
    err = run_bad_as_user(tmp_path, capsys, monkeypatch, "--trainer.accelerator=gpu")
    assert "trainer.accelerator" in err and "use --trainer.accelerator cpu or auto" in err


def test_yaml_typo_names_the_file_and_the_line(tmp_path, capsys, monkeypatch):
    extra = yaml(tmp_path, "model:\n  objective: hinge\n   n_critic: 2\n")
    err = run_bad_as_user(tmp_path, capsys, monkeypatch, *extra)
    assert f"{tmp_path / 'extra.yaml'}:3: not valid YAML" in err


def test_missing_config_file(tmp_path, capsys, monkeypatch):
    err = run_bad_as_user(tmp_path, capsys, monkeypatch, "--config", str(tmp_path / "nope.yaml"))
    assert f"config file {tmp_path / 'nope.yaml'} does not exist" in err


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--model.max_g_steps=abc", "bad value for model.max_g_steps: expected an int or null, got 'abc'"),
        ("--model.n_critic=abc", "bad value for model.n_critic: expected an int, got 'abc'"),
    ],
)
def test_non_numeric_step_counts(tmp_path, capsys, monkeypatch, arg, message):
    assert message in run_bad_as_user(tmp_path, capsys, monkeypatch, arg)


def test_ckpt_path_last_with_no_run_names_where_it_looked(tmp_path, capsys, monkeypatch):
    err = run_bad_as_user(tmp_path, capsys, monkeypatch, "--ckpt_path=last")
    assert f"--ckpt_path last: no checkpoint at {tmp_path / 'run' / 'ring8' / 'version_*'}" in err


def test_sample_of_random_bytes_is_not_a_checkpoint(tmp_path, capsys):
    noise = tmp_path / "noise.ckpt"
    seeded = torch.Generator().manual_seed(0)
    noise.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=seeded).tolist()))
    assert main(["sample", "--ckpt", str(noise), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gan-lab: error: {noise} is not a checkpoint (torch cannot read it as one)"
    assert not (tmp_path / "s.png").exists()


# ----------------------------------------------------------------------------------------------
# Hostile files: refused in one line, nothing they hold is run or echoed
# ----------------------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os
        import shlex

        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def hostile_weights(path: Path, marker: Path) -> Path:
    """A VGG16 weights file whose pickle names ``os.system`` (a GLOBAL) beside real tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "payload": Payload(marker)}, path)
    return path


def test_hostile_vgg16_weights_for_the_perceptual_loss_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    marker = tmp_path / "pwned"
    weights = hostile_weights(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth", marker)
    err = run_bad_sr(tmp_path, capsys, "--config", str(ROOT / "experiments/sr/pixel_perceptual.yaml"))
    assert f"refused VGG16 weights {weights}" in err and "arbitrary Python objects" in err
    assert "GLOBAL" in err and "system" in err and "weights_only=False" not in err
    assert not marker.exists()


def test_hostile_vgg16_weights_for_metrics_are_one_line(tmp_path, capsys):
    from torchvision.io import write_png

    for side in ("fake", "real"):
        (tmp_path / side).mkdir()
        for k in range(4):
            write_png(torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8), str(tmp_path / side / f"{k}.png"))
    marker = tmp_path / "pwned"
    weights = hostile_weights(tmp_path / "vgg16.pth", marker)
    args = ["metrics", str(tmp_path / "fake"), str(tmp_path / "real"), "--feature-net", "vgg16_fc"]
    assert main([*args, "--weights", str(weights)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-lab: error: ") and len(err.splitlines()) == 1, err
    assert f"refused VGG16 weights {weights}" in err and "weights_only=False" not in err
    assert not marker.exists()


SECRET = "root:x:0:0:root:/root:/bin/bash\nsecret-token-1234:x:1:1::/home/secret-token-1234\n"


@pytest.mark.parametrize(
    ("where", "content", "phrase"),
    [
        ("base", SECRET, "is not a YAML config: it holds a text"),
        ("base", "- secret-token-1234\n- another\n", "is not a YAML config: it holds a list"),
        ("base", "key: [unclosed 'secret-token-1234'\n", "is not valid YAML (line"),
        ("base", b"\xff\xfesecret-token-1234", "not UTF-8 text"),
        ("configs", SECRET, "is not a YAML config"),
        ("args", SECRET, "is not a YAML config"),
        ("section", SECRET, "data config"),
    ],
)
def test_a_study_file_naming_a_file_that_is_no_config_is_one_line_without_its_content(
    tmp_path, capsys, where, content, phrase
):
    """`base: /etc/passwd` (here: a file like it) echoed the file's lines in the error; so would a
    file named by an entry's configs, by --config in args, or by a section of the base config."""
    secret = tmp_path / "secret"
    secret.write_bytes(content if isinstance(content, bytes) else content.encode())
    base, objectives = ROOT / "tests" / "configs" / "tiny_ring8.yaml", "[hinge]"
    if where == "base":
        base = secret
    elif where == "section":  # a valid YAML mapping whose data section names the file
        base = tmp_path / "base.yaml"
        base.write_text(f"data: {secret}\n")
    elif where == "configs":
        objectives = f"[{{objective: hinge, configs: [{secret}]}}]"
    else:
        objectives = f"[{{objective: hinge, args: ['--config={secret}']}}]"
    (tmp_path / "s.yaml").write_text(f"name: s\nseeds: 1\nbase: {base}\nobjectives: {objectives}\n")
    assert main(["study", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-lab: error: ") and len(err.splitlines()) == 1, err
    assert str(secret) in err and phrase in err, err
    assert "secret-token" not in err and "root:x" not in err and "/bin/bash" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd")
def test_base_etc_passwd_is_not_echoed(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("name: s\nseeds: 1\nbase: /etc/passwd\nobjectives: [hinge]\n")
    assert main(["study", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "runs"), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"gan-lab: error: base /etc/passwd named in {str(tmp_path / 's.yaml')!r} is not a YAML config: "
        "it holds a text (str), not a mapping of settings (trainer:, model:, data:)"
    )
