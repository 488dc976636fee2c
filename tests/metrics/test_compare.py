"""`gan-lab metrics`: the image metrics between two folders (or a folder and a data set), as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import gan_lab.compare as compare_module
from gan_lab.cli import main
from gan_lab.compare import read_images
from gan_lab.metrics.prdc import prdc
from gan_lab.metrics.suite import SuiteSettings, image_metrics

NET = ["--feature-net", "fake_features.RandomProjection"]  # 3 × 16 × 16 inputs, 8-d features


def write_pngs(folder, images: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}.png")


def random_images(n: int, seed: int, size: int = 16, lo: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(lo, 256, (n, size, size, 3), dtype=np.uint8)


def run(capsys, *argv) -> tuple[int, dict | str]:
    code = main(["metrics", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_two_folders_equal_the_suite_on_their_pixels(tmp_path, capsys):
    # the command's numbers are the suite's on the folders' pixels mapped to [-1, 1] (mutations
    # caught: uint8 not rescaled, files read in another order or some skipped, real / fake swapped)
    from fake_features import RandomProjection

    a, b = random_images(40, 0), random_images(30, 1, lo=60)
    write_pngs(tmp_path / "fake", a)
    write_pngs(tmp_path / "real", b)
    code, out = run(
        capsys, tmp_path / "fake", tmp_path / "real", *NET, "--kid-subset-size", 20, "--kid-subsets", 10
    )
    assert code == 0, out
    net = RandomProjection()
    as_tensor = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    fake, real = net(as_tensor(a)), net(as_tensor(b))
    want = image_metrics(real, fake, settings=SuiteSettings(kid_subsets=10, kid_subset_size=20))
    for k in ("fd", "kid", "precision", "recall", "density", "coverage"):
        assert out["metrics"][k] == pytest.approx(want[k], rel=1e-5, abs=1e-9), k
    assert out["metrics"]["inception_score"] is None  # not an Inception net
    assert out["fake"]["n"] == 40 and out["real"]["n"] == 30
    assert out["feature_net"]["name"] == "random_projection"
    # precision / recall are not symmetric: swapping the folders swaps them
    swapped = prdc(fake, real)
    assert out["metrics"]["precision"] == pytest.approx(float(swapped["recall"]))


def test_a_folder_against_itself_is_zero_distance(tmp_path, capsys):
    write_pngs(tmp_path / "x", random_images(24, 3))
    code, out = run(capsys, tmp_path / "x", tmp_path / "x", *NET, "--kid-subset-size", 12)
    assert code == 0, out
    assert abs(out["metrics"]["fd"]) < 1e-6
    assert out["metrics"]["precision"] == out["metrics"]["recall"] == out["metrics"]["coverage"] == 1.0


def test_a_folder_against_a_data_set(tmp_path, capsys):
    # the real side is the data set's first --n-real reference images, cached by key
    write_pngs(tmp_path / "fake", random_images(20, 4))
    cache = tmp_path / "cache"
    argv = [
        tmp_path / "fake",
        "--dataset",
        "stacked_digits",
        "--n-real",
        32,
        *NET,
        "--kid-subset-size",
        10,
        "--cache-dir",
        cache,
    ]
    code, out = run(capsys, *argv)
    assert code == 0, out
    assert out["real"]["dataset"] == "stacked_digits" and out["real"]["N"] == 32
    assert len(list(cache.rglob("*.pt"))) == 1
    code2, out2 = run(capsys, *argv)  # the second run reads the cache: the same numbers
    assert code2 == 0 and out2["metrics"] == out["metrics"]


@pytest.mark.parametrize(
    "make, argv, message",
    [
        (lambda d: d.mkdir(), [], "holds no .png"),
        (lambda d: write_pngs(d, random_images(3, 0)), ["--n", "0"], "--n must be a positive integer"),
        (
            lambda d: write_pngs(d, random_images(3, 0)),
            ["--feature-net", "inception_v3", "--weights", "/nope.pth"],
            "/nope.pth",
        ),
        (
            lambda d: write_pngs(d, random_images(3, 0)),
            ["--dataset", "stacked_digits", "--real-is-both"],
            "unrecognized",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, argv, message):
    make(tmp_path / "fake")
    code, err = run(capsys, tmp_path / "fake", tmp_path / "fake", *argv)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_mixed_sizes_are_refused(tmp_path, capsys):
    write_pngs(tmp_path / "fake", random_images(6, 0))
    Image.fromarray(random_images(1, 1, size=8)[0]).save(tmp_path / "fake" / "zz.png")
    code, err = run(capsys, tmp_path / "fake", tmp_path / "fake", *NET)
    assert code == 2 and "different sizes" in err and "zz.png" in err


def as_signed(x: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, C) -> float (n, C, H, W) in [-1, 1], as the command reads PNGs."""
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1


def spy_on_decoding(monkeypatch) -> list:
    """Record every image the command decodes."""
    decoded, load = [], compare_module.load_image
    monkeypatch.setattr(compare_module, "load_image", lambda f, c: decoded.append(f) or load(f, c))
    return decoded


# -- NaN features: one line naming how many, not torch's _LinAlgError --------------------------------


def test_non_finite_features_are_one_line_naming_how_many(tmp_path, capsys):
    images = random_images(12, 5)
    images[[3, 8], 0, 0] = 255  # two images with a white corner: NaN features from this net
    write_pngs(tmp_path / "fake", images)
    write_pngs(tmp_path / "real", random_images(12, 6, lo=1)[..., :3] // 2)
    code, err = run(
        capsys, tmp_path / "fake", tmp_path / "real", "--feature-net", "nan_features.NanOnWhiteCorner"
    )
    assert code == 2 and err.count("\n") == 1, err
    assert "2 non-finite feature values (NaN / inf) for 2 of the 12 generated images" in err
    assert "003.png" in err and "LinAlg" not in err
    code, err = run(  # the real side is checked too
        capsys, tmp_path / "real", tmp_path / "fake", "--feature-net", "nan_features.NanOnWhiteCorner"
    )
    assert code == 2 and "for 2 of the 12 real images (the first: 003.png)" in err


# -- KID's subset size --------------------------------------------------------------------------------


def test_a_kid_subset_size_larger_than_a_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    write_pngs(tmp_path / "fake", random_images(12, 0))
    write_pngs(tmp_path / "real", random_images(30, 1))
    decoded = spy_on_decoding(monkeypatch)
    code, err = run(capsys, tmp_path / "fake", tmp_path / "real", *NET, "--kid-subset-size", 20)
    assert code == 2 and err.count("\n") == 1, err
    assert "--kid-subset-size 20 is more than the 12 generated / 30 real images" in err
    assert "--kid-subset-size 12 or fewer" in err
    assert decoded == []  # refused from the listings
    code, err = run(capsys, tmp_path / "fake", tmp_path / "real", *NET, "--kid-subset-size", 1)
    assert code == 2 and "--kid-subset-size must be an integer >= 2, got 1" in err


def test_kid_subset_size_by_default_is_lowered_and_says_so(tmp_path, capsys):
    write_pngs(tmp_path / "fake", random_images(12, 0))
    write_pngs(tmp_path / "real", random_images(30, 1))
    code, out = run(capsys, tmp_path / "fake", tmp_path / "real", *NET, "--kid-subsets", 5)
    assert code == 0, out
    assert out["settings"]["kid_subset_size"] == 12
    assert any("KID subset size 12, not 1000" in note for note in out["notes"]), out["notes"]
    code, out = run(
        capsys, tmp_path / "fake", tmp_path / "real", *NET, "--kid-subsets", 5, "--kid-subset-size", 12
    )
    assert code == 0 and out["notes"] == [] and out["settings"]["kid_subset_size"] == 12


def test_too_few_images_for_precision_recall_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    write_pngs(tmp_path / "fake", random_images(3, 0))
    write_pngs(tmp_path / "real", random_images(30, 1))
    decoded = spy_on_decoding(monkeypatch)
    code, err = run(capsys, tmp_path / "fake", tmp_path / "real", *NET)
    assert code == 2 and "need more than 3 images per side" in err and "got 3 generated / 30 real" in err
    assert decoded == []


# -- channels: decided per folder from every image ----------------------------------------------------


def test_a_grey_first_image_does_not_make_a_colour_folder_grey(tmp_path, capsys):
    """The channel count came from the first image alone: a grey first image turned every colour
    image into luma."""
    fake = random_images(20, 7)
    fake[0] = fake[0, :, :, :1]  # 000.png grey (R = G = B), stored as RGB
    write_pngs(tmp_path / "fake", fake)
    Image.fromarray(fake[0, :, :, 0], mode="L").save(tmp_path / "fake" / "000.png")  # and as an L file
    real = random_images(20, 8)
    write_pngs(tmp_path / "real", real)
    x = read_images(sorted((tmp_path / "fake").glob("*.png")))
    assert x.shape == (20, 3, 16, 16) and torch.equal(x, torch.from_numpy(fake).permute(0, 3, 1, 2))
    code, out = run(capsys, tmp_path / "fake", tmp_path / "real", *NET, "--kid-subset-size", 10)
    assert code == 0, out
    assert out["fake"]["shape"] == [3, 16, 16]
    from fake_features import RandomProjection

    net = RandomProjection()
    want = image_metrics(
        net(as_signed(real)), net(as_signed(fake)), settings=SuiteSettings(kid_subset_size=10)
    )
    for k in ("fd", "kid", "precision", "recall", "density", "coverage"):
        assert out["metrics"][k] == pytest.approx(want[k], rel=1e-5, abs=1e-9), k


def test_grey_folders_are_one_channel_and_grey_against_colour_is_repeated_to_rgb(tmp_path, capsys):
    grey = random_images(10, 9)[..., 0]  # (n, H, W)
    (tmp_path / "grey").mkdir()
    for i, img in enumerate(grey):
        Image.fromarray(img, mode="L").save(tmp_path / "grey" / f"{i:03d}.png")
    x = read_images(sorted((tmp_path / "grey").glob("*.png")))
    assert x.shape == (10, 1, 16, 16) and torch.equal(x[:, 0], torch.from_numpy(grey))
    write_pngs(tmp_path / "colour", random_images(10, 10))
    net = ["--feature-net", "fake_features.RandomProjection"]
    code, out = run(capsys, tmp_path / "grey", tmp_path / "colour", *net, "--kid-subset-size", 5)
    assert code == 0, out
    assert out["fake"]["shape"] == [3, 16, 16] and out["real"]["shape"] == [3, 16, 16]
    assert "the generated images are grey, the others colour: grey repeated to RGB" in out["notes"]


# -- the feature net's weights: the flag's name -------------------------------------------------------


def test_missing_inception_weights_name_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # no cached weights there
    write_pngs(tmp_path / "fake", random_images(8, 0))
    code, err = run(capsys, tmp_path / "fake", tmp_path / "fake")
    assert code == 2 and err.count("\n") == 1, err
    assert "Inception-v3 weights not found" in err and "--weights PATH" in err and "weights=PATH" not in err
    code, err = run(
        capsys,
        tmp_path / "fake",
        "--dataset",
        "stacked_digits",
        "--n-real",
        20,
        "--feature-net",
        "inception_v3",
    )
    assert code == 2 and "pass --weights PATH" in err and err.count("\n") == 1, err


def test_weights_do_not_apply_to_the_digit_classifier(tmp_path, capsys):
    write_pngs(tmp_path / "fake", random_images(8, 0))
    (tmp_path / "w.pt").write_bytes(b"")
    code, err = run(
        capsys,
        tmp_path / "fake",
        tmp_path / "fake",
        "--feature-net",
        "digit_classifier",
        "--weights",
        tmp_path / "w.pt",
    )
    assert code == 2 and "--weights does not apply to --feature-net digit_classifier" in err


def test_a_feature_net_that_refuses_the_images_is_one_line(tmp_path, capsys):
    (tmp_path / "grey").mkdir()
    for i, img in enumerate(random_images(8, 11)[..., 0]):
        Image.fromarray(img, mode="L").save(tmp_path / "grey" / f"{i:03d}.png")
    code, err = run(capsys, tmp_path / "grey", tmp_path / "grey", *NET, "--kid-subset-size", 4)
    assert code == 2 and err.count("\n") == 1, err  # RandomProjection takes 3 × 16 × 16 only
    assert "feature net random_projection cannot take images of shape (1, 16, 16)" in err
