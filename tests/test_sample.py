"""`gan-lab sample`: weights-only loading, a generator rebuilt from its spec, one-line errors."""

import os
import pickle
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from tiny_fit import TINY_RING8
from torch import nn

import gan_lab.sample as sample_mod
from gan_lab.cli import main
from gan_lab.data.toy import ToyMixtureDataModule
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.nets.spec import GENERATOR_CLASSES, RecordsInit, class_path, net_spec
from gan_lab.sample import sample_main
from gan_lab.settings import EMA

ROOT = Path(__file__).resolve().parents[1]
FIT = [
    "fit",
    *TINY_RING8,
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.callbacks=[]",
    "--model.max_g_steps=3",
    "--model.ema.beta=0.5",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny 2-member fit with G_ema, and its checkpoint written with the generator spec."""
    tmp = tmp_path_factory.mktemp("fit")
    G = ToyGenerator(members=2, hidden=8, layers=2)
    D = ToyDiscriminator(members=2, hidden=8, layers=2)
    model = GANModule(G, D, ema=EMA(beta=0.9), max_g_steps=5)
    trainer = L.Trainer(
        logger=False,
        default_root_dir=tmp,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_steps=-1,
    )
    trainer.fit(model, ToyMixtureDataModule(batch_size=16))
    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    ckpt["hyper_parameters"]["generator"] = net_spec(G)  # as the module stores it
    path = tmp / "with_spec.ckpt"
    torch.save(ckpt, path)
    return model, ckpt, path


def _write(ckpt: dict, path: Path, **changes) -> Path:
    ckpt = {**ckpt, **changes}
    torch.save(ckpt, path)
    return path


def _sample(path, tmp_path, *extra, name="s"):
    out, npz = tmp_path / f"{name}.png", tmp_path / f"{name}.npz"
    code = sample_main(["--ckpt", str(path), "--out", str(out), "--npz", str(npz), *extra])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return dict(np.load(npz))


def _error(capsys, *argv) -> str:
    assert sample_main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-lab: error: ") and len(err.splitlines()) == 1, err
    return err


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def test_samples_are_the_trained_g_ema_on_the_seeded_noise(run, tmp_path):
    model, _, path = run
    got = _sample(path, tmp_path, "--n", "50", "--seed", "3")
    assert got["samples"].shape == (2, 50, 2) and got["z"].shape == (2, 50, 2)
    assert int(got["seed"]) == 3 and bool(got["ema"])
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(got["z"], z.expand(2, -1, -1).numpy())  # same noise per member
    np.testing.assert_array_equal(
        got["samples"], model.generate(torch.from_numpy(got["z"]), ema=True).numpy()
    )


def test_deterministic_for_a_seed(run, tmp_path):
    _, _, path = run
    a = _sample(path, tmp_path, "--seed", "1", name="a")
    b = _sample(path, tmp_path, "--seed", "1", name="b")
    c = _sample(path, tmp_path, "--seed", "2", name="c")
    np.testing.assert_array_equal(a["samples"], b["samples"])
    assert not np.array_equal(a["samples"], c["samples"])


def test_ema_and_no_ema_differ_and_match_their_nets(run, tmp_path):
    model, _, path = run
    ema = _sample(path, tmp_path, "--ema", name="ema")
    raw = _sample(path, tmp_path, "--no-ema", name="raw")
    assert not np.array_equal(ema["samples"], raw["samples"])
    assert not bool(raw["ema"])
    np.testing.assert_array_equal(
        raw["samples"], model.generate(torch.from_numpy(raw["z"]), ema=False).numpy()
    )


def test_member_selects_one_member(run, tmp_path):
    _, _, path = run
    every = _sample(path, tmp_path, "--n", "20", name="all")
    one = _sample(path, tmp_path, "--n", "20", "--member", "1", name="one")
    assert one["samples"].shape == (20, 2) and int(one["member"]) == 1
    np.testing.assert_array_equal(one["samples"], every["samples"][1])


def test_without_g_ema_the_default_is_g_and_ema_is_refused(run, tmp_path, capsys):
    model, ckpt, _ = run
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("G_ema.")}
    path = _write(ckpt, tmp_path / "no_ema.ckpt", state_dict=state)
    got = _sample(path, tmp_path)
    assert not bool(got["ema"])
    np.testing.assert_array_equal(
        got["samples"], model.generate(torch.from_numpy(got["z"]), ema=False).numpy()
    )
    err = _error(capsys, "--ckpt", str(path), "--out", str(tmp_path / "x.png"), "--ema")
    assert "keeps no G_ema" in err and "--no-ema" in err


class TinyImageG(RecordsInit, nn.Module):
    """An unconditional image generator ``z (B, z_dim) -> (B, C, 8, 8)`` in [-1, 1]."""

    def __init__(self, z_dim: int = 4, channels: int = 3) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.fc = nn.Linear(z_dim, channels * 64)
        self.channels = channels

    def forward(self, z):
        return torch.tanh(self.fc(z)).view(-1, self.channels, 8, 8)  # (B, C, 8, 8)


@pytest.mark.parametrize("channels", [1, 3])
def test_image_generator_gives_a_grid(tmp_path, monkeypatch, channels):
    G = TinyImageG(channels=channels)
    ckpt = {
        "state_dict": {f"G.{k}": v for k, v in G.state_dict().items()},
        "hyper_parameters": {"generator": net_spec(G)},
    }
    path = _write(ckpt, tmp_path / "img.ckpt")
    # A class that is not one of the lab's generators is refused (next tests); this one is allowed explicitly.
    monkeypatch.setattr(sample_mod, "ALLOWED_GENERATORS", (*GENERATOR_CLASSES, class_path(TinyImageG)))
    got = _sample(path, tmp_path, "--n", "16")
    assert got["samples"].shape == (16, channels, 8, 8) and got["z"].shape == (16, 4)
    from PIL import Image

    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (2 + 4 * 10, 2 + 4 * 10)  # 4 x 4 grid of 8-px images, 2-px padding
    assert sample_main(["--ckpt", str(path), "--out", str(tmp_path / "m.png"), "--member", "0"]) == 2


def test_lightning_and_wandb_are_not_imported(run, tmp_path):
    _, _, path = run
    code = (
        "import sys; from gan_lab.sample import sample_main; "
        f"assert sample_main(['--ckpt', {str(path)!r}, '--out', {str(tmp_path / 'p.png')!r}]) == 0; "
        "bad = [m for m in ('lightning', 'wandb', 'pytorch_lightning') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)


def test_real_fit_checkpoint_samples_through_the_cli(tmp_path):
    """A checkpoint written by `gan-lab fit` itself: the module stores the generator's spec."""
    assert main([*FIT, f"--trainer.default_root_dir={tmp_path / 'run'}"]) == 0
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("*.ckpt")
    spec = torch.load(ckpt, weights_only=True)["hyper_parameters"]["generator"]
    assert spec["class_path"] == "gan_lab.nets.toy.ToyGenerator"
    got = _sample(ckpt, tmp_path, "--n", "30")
    assert got["samples"].shape == (2, 30, 2) and bool(got["ema"])


# ----------------------------------------------------------------------------------------------
# Refusals: exit code 2, one line
# ----------------------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("container", ["raw_pickle", "torch_zip"])
def test_malicious_pickle_is_refused_and_never_runs(run, tmp_path, capsys, container):
    _, ckpt, _ = run
    marker = tmp_path / "pwned"
    # Control: the payload does run when unpickled the unsafe way.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control), protocol=2))
    assert control.exists()

    path = tmp_path / "evil.ckpt"
    if container == "raw_pickle":  # a bare pickle stream (torch.load reads these too)
        path.write_bytes(pickle.dumps({"state_dict": {}, "payload": Payload(marker)}, protocol=2))
    else:  # a real checkpoint with one extra entry
        torch.save({**ckpt, "payload": Payload(marker)}, path)
    err = _error(capsys, "--ckpt", str(path), "--out", str(tmp_path / "x.png"))
    assert "refused" in err and "arbitrary Python objects" in err and "weights only" in err
    assert "posix.system" in err or "os.system" in err
    assert not marker.exists()
    assert not (tmp_path / "x.png").exists()


def test_errors(run, tmp_path, capsys):
    _, ckpt, good = run
    out = str(tmp_path / "x.png")

    assert "does not exist" in _error(capsys, "--ckpt", str(tmp_path / "nope.ckpt"), "--out", out)
    assert "is a folder" in _error(capsys, "--ckpt", str(tmp_path), "--out", out)

    text = tmp_path / "notes.ckpt"
    text.write_text("hello\n")
    assert "is not a checkpoint" in _error(capsys, "--ckpt", str(text), "--out", out)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert "is not a checkpoint" in _error(capsys, "--ckpt", str(empty), "--out", out)
    archive = tmp_path / "archive.ckpt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "not torch")
    assert "not a torch checkpoint" in _error(capsys, "--ckpt", str(archive), "--out", out)
    a_list = tmp_path / "list.ckpt"
    torch.save([1, 2], a_list)
    assert "not a Lightning checkpoint" in _error(capsys, "--ckpt", str(a_list), "--out", out)

    no_spec = _write(ckpt, tmp_path / "no_spec.ckpt", hyper_parameters={"objective": "hinge"})
    assert "no generator spec" in _error(capsys, "--ckpt", str(no_spec), "--out", out)
    outside = _write(
        ckpt,
        tmp_path / "outside.ckpt",
        hyper_parameters={"generator": {"class_path": "torch.nn.Linear", "init_args": {}}},
    )
    assert "not one of the lab's generator classes" in _error(capsys, "--ckpt", str(outside), "--out", out)
    mismatch = _write(
        ckpt,
        tmp_path / "mismatch.ckpt",
        hyper_parameters={"generator": net_spec(ToyGenerator(members=2, hidden=9, layers=2))},
    )
    assert "do not fit" in _error(capsys, "--ckpt", str(mismatch), "--out", out)

    assert "--n must be >= 1" in _error(capsys, "--ckpt", str(good), "--out", out, "--n", "0")
    assert "invalid int value" in _error(capsys, "--ckpt", str(good), "--out", out, "--n", "many")
    assert "required: --ckpt" in _error(capsys, "--out", out)
    assert "out of range" in _error(capsys, "--ckpt", str(good), "--out", out, "--member", "2")
    assert "--member must be >= 0" in _error(capsys, "--ckpt", str(good), "--out", out, "--member", "-1")

    missing = str(tmp_path / "no" / "such" / "grid.png")
    assert "does not exist" in _error(capsys, "--ckpt", str(good), "--out", missing)
    (tmp_path / "file").write_text("")
    assert "does not exist" in _error(capsys, "--ckpt", str(good), "--out", str(tmp_path / "file" / "g.png"))
    assert "is a folder" in _error(capsys, "--ckpt", str(good), "--out", str(tmp_path))
    assert "--npz" in _error(capsys, "--ckpt", str(good), "--out", out, "--npz", missing)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_unwritable_folder(run, capsys):
    _, _, good = run
    assert "is not writable" in _error(capsys, "--ckpt", str(good), "--out", "/proc/self/grid.png")


def test_member_of_a_one_member_ensemble(tmp_path, capsys):
    G = ToyGenerator(members=1, hidden=4, layers=1)
    ckpt = {"state_dict": {f"G.{k}": v for k, v in G.state_dict().items()}, "hyper_parameters": {}}
    ckpt["hyper_parameters"]["generator"] = net_spec(G)
    path = _write(ckpt, tmp_path / "one.ckpt")
    assert "out of range" in _error(
        capsys, "--ckpt", str(path), "--out", str(tmp_path / "x.png"), "--member", "1"
    )


def test_help_exits_0(capsys):
    assert sample_main(["--help"]) == 0
    assert "--ckpt" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Output formats: checked before the checkpoint is read, nothing written
# ----------------------------------------------------------------------------------------------


def _refused_before_loading(monkeypatch, capsys, tmp_path, argv) -> str:
    """``gan-lab sample ARGV`` as a user runs it: exit 2, one stderr line, the checkpoint never
    read and no file written."""
    loaded = []
    real_load = torch.load  # every way of reading the checkpoint ends in torch.load

    def spy(path, *args, **kwargs):
        loaded.append(path)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    before = sorted(tmp_path.rglob("*"))
    assert main(["sample", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-lab: error: ") and len(err.splitlines()) == 1, err
    assert loaded == [], "the checkpoint was read before the output format was checked"
    assert sorted(tmp_path.rglob("*")) == before
    return err


@pytest.mark.parametrize("name", ["x.foo", "x", "x.png.bak", "x.npz"])
def test_unknown_output_format_is_refused_before_loading(run, tmp_path, monkeypatch, capsys, name):
    _, _, good = run
    out = tmp_path / name
    err = _refused_before_loading(monkeypatch, capsys, tmp_path, ["--ckpt", str(good), "--out", str(out)])
    assert "--out" in err and name in err
    suffix = os.path.splitext(name)[1]
    assert (f"'{suffix}'" in err) if suffix else ("no file extension" in err)
    for valid in sample_mod.OUTPUT_FORMATS:
        assert valid in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["samples.txt", "samples", "samples.npy"])
def test_npz_must_end_in_npz(run, tmp_path, monkeypatch, capsys, name):
    _, _, good = run
    out, npz = tmp_path / "ok.png", tmp_path / name
    argv = ["--ckpt", str(good), "--out", str(out), "--npz", str(npz)]
    err = _refused_before_loading(monkeypatch, capsys, tmp_path, argv)
    assert "--npz" in err and name in err and ".npz" in err
    assert not out.exists() and not npz.exists() and not Path(f"{npz}.npz").exists()


#: the first bytes of each accepted format
MAGIC = {".png": b"\x89PNG", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff", ".pdf": b"%PDF"}


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".pdf", ".svg", ".PDF"])
def test_every_accepted_format_is_written(run, tmp_path, monkeypatch, suffix):
    """Both kinds of figure (a 2D scatter, an image grid) in every format the error message offers."""
    _, _, toy = run
    G = TinyImageG(channels=1)
    ckpt = {
        "state_dict": {f"G.{k}": v for k, v in G.state_dict().items()},
        "hyper_parameters": {"generator": net_spec(G)},
    }
    images = _write(ckpt, tmp_path / "img.ckpt")
    monkeypatch.setattr(sample_mod, "ALLOWED_GENERATORS", (*GENERATOR_CLASSES, class_path(TinyImageG)))
    assert suffix.lower() in sample_mod.OUTPUT_FORMATS
    for kind, path in (("scatter", toy), ("grid", images)):
        out = tmp_path / f"{kind}{suffix}"
        assert main(["sample", "--ckpt", str(path), "--n", "16", "--out", str(out)]) == 0
        head = out.read_bytes()[:200]
        if suffix.lower() == ".svg":
            assert b"<svg" in head or b"<?xml" in head, (kind, head[:40])
        else:
            assert head.startswith(MAGIC[suffix.lower()]), (kind, head[:8])


# ----------------------------------------------------------------------------------------------
# Image checkpoints of the lab's image nets (DCGAN, SN-ResNet), written by a real fit
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "channels", "size"),
    [("dcgan", 1, 28), ("dcgan", 3, 16), ("snresnet", 3, 16), ("snresnet", 1, 28)],
)
def test_image_net_checkpoint_samples_a_png_grid(tmp_path, net, channels, size):
    """A checkpoint of a short GANModule fit of an image net: `gan-lab sample` rebuilds G from the
    stored spec and writes a PNG grid of the right size whose first tile is the first sample."""
    from PIL import Image
    from random_images import tiny_fit

    from gan_lab.nets import DCGANDiscriminator, DCGANGenerator, SNResNetDiscriminator, SNResNetGenerator

    if net == "dcgan":
        G = DCGANGenerator(z_dim=8, ngf=4, out_channels=channels, size=size)
        D = DCGANDiscriminator(in_channels=channels, ndf=4, size=size, spectral_norm=True)
    else:
        G = SNResNetGenerator(z_dim=8, ngf=8, out_channels=channels, size=size)
        D = SNResNetDiscriminator(in_channels=channels, ndf=8, size=size)
    module, _, trainer = tiny_fit(
        G, D, batches=2, default_root_dir=tmp_path, objective="hinge", ema=EMA(beta=0.5)
    )
    ckpt = trainer.checkpoint_callback.best_model_path
    spec = torch.load(ckpt, weights_only=True)["hyper_parameters"]["generator"]
    assert spec["class_path"] == f"gan_lab.nets.{'dcgan' if net == 'dcgan' else 'resnet'}.{type(G).__name__}"
    assert spec["init_args"]["size"] == size and spec["init_args"]["out_channels"] == channels

    got = _sample(ckpt, tmp_path, "--n", "9", "--seed", "4")
    assert got["samples"].shape == (9, channels, size, size) and bool(got["ema"])
    np.testing.assert_array_equal(
        got["samples"], module.generate(torch.from_numpy(got["z"]), ema=True).numpy()
    )
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (2 + 3 * (size + 2),) * 2  # 3 x 3 tiles, 2-px padding
        tile = np.asarray(im.convert("RGB"))[2 : 2 + size, 2 : 2 + size].astype(int)  # (s, s, 3)
    first = got["samples"][0].transpose(1, 2, 0)  # (s, s, C) in [-1, 1]
    expected = np.floor((first.clip(-1, 1) + 1) / 2 * 255 + 0.5)
    assert np.abs(tile - np.broadcast_to(expected, tile.shape)).max() <= 1  # gray: the same in R, G, B


# ----------------------------------------------------------------------------------------------
# --png DIR: one PNG per sample, a folder `gan-lab metrics` reads
# ----------------------------------------------------------------------------------------------


def _image_ckpt(tmp_path, monkeypatch, channels: int) -> Path:
    G = TinyImageG(channels=channels)
    ckpt = {
        "state_dict": {f"G.{k}": v for k, v in G.state_dict().items()},
        "hyper_parameters": {"generator": net_spec(G)},
    }
    monkeypatch.setattr(sample_mod, "ALLOWED_GENERATORS", (*GENERATOR_CLASSES, class_path(TinyImageG)))
    return _write(ckpt, tmp_path / f"img{channels}.ckpt")


@pytest.mark.parametrize("channels", [1, 3])
def test_png_writes_one_file_per_sample_with_the_quantised_pixels(tmp_path, monkeypatch, channels):
    from PIL import Image

    path = _image_ckpt(tmp_path, monkeypatch, channels)
    folder, npz = tmp_path / "pngs", tmp_path / "s.npz"
    argv = ["--ckpt", str(path), "--n", "12", "--seed", "5", "--png", str(folder), "--npz", str(npz)]
    monkeypatch.chdir(tmp_path)
    assert sample_main(argv) == 0
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.png" for i in range(12)]
    assert not (tmp_path / "grid.png").exists()  # no figure unless --out
    samples = torch.from_numpy(np.load(npz)["samples"])  # (12, C, 8, 8)
    expected = ((samples + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    for i in range(12):
        with Image.open(folder / f"{i:05d}.png") as im:
            assert im.mode == ("L" if channels == 1 else "RGB") and im.size == (8, 8)
            pixels = np.asarray(im)
        np.testing.assert_array_equal(pixels.reshape(8, 8, -1).transpose(2, 0, 1), expected[i])


def test_png_with_a_grid_and_an_empty_existing_folder(tmp_path, monkeypatch):
    path = _image_ckpt(tmp_path, monkeypatch, 3)
    (tmp_path / "empty").mkdir()
    out = tmp_path / "grid.png"
    argv = ["--ckpt", str(path), "--n", "4", "--png", str(tmp_path / "empty"), "--out", str(out)]
    assert sample_main(argv) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and len(list((tmp_path / "empty").iterdir())) == 4


def test_png_refusals_touch_nothing(run, tmp_path, monkeypatch, capsys):
    path = _image_ckpt(tmp_path, monkeypatch, 3)
    full = tmp_path / "full"
    full.mkdir()
    (full / "00000.png").write_bytes(b"mine")
    err = _refused_before_loading(monkeypatch, capsys, tmp_path, ["--ckpt", str(path), "--png", str(full)])
    assert "--png" in err and "is not empty" in err and (full / "00000.png").read_bytes() == b"mine"
    err = _refused_before_loading(
        monkeypatch, capsys, tmp_path, ["--ckpt", str(path), "--png", str(full / "00000.png")]
    )
    assert "is a file" in err
    err = _refused_before_loading(
        monkeypatch, capsys, tmp_path, ["--ckpt", str(path), "--png", str(tmp_path / "no" / "such")]
    )
    assert "does not exist" in err
    (tmp_path / "new").mkdir()
    inside = ["--ckpt", str(path), "--png", str(tmp_path / "new"), "--out", str(tmp_path / "new" / "g.png")]
    assert "inside the --png folder" in _refused_before_loading(monkeypatch, capsys, tmp_path, inside)
    # 2D samples: refused after sampling, before anything is written
    _, _, toy = run
    monkeypatch.undo()
    err = _error(
        capsys, "--ckpt", str(toy), "--png", str(tmp_path / "points"), "--out", str(tmp_path / "r.png")
    )
    assert "--png writes image samples" in err and "2D points" in err
    assert not (tmp_path / "points").exists() and not (tmp_path / "r.png").exists()


def test_save_pngs_of_an_ensemble_go_to_one_folder_per_member(tmp_path):
    images = torch.rand(2, 3, 1, 8, 8) * 2 - 1  # (E, n, C, H, W)
    assert sample_mod.save_pngs(images, str(tmp_path / "out"), members=[0, 1]) == 6
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")) == [
        f"member{k}/{i:05d}.png" for k in (0, 1) for i in range(3)
    ]
