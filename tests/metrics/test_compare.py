"""`gan-lab metrics`: the image metrics between two folders (or a folder and a data set), as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_lab.cli import main
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
    write_pngs(tmp_path / "fake", random_images(2, 0))
    Image.fromarray(random_images(1, 1, size=8)[0]).save(tmp_path / "fake" / "zz.png")
    code, err = run(capsys, tmp_path / "fake", tmp_path / "fake", *NET)
    assert code == 2 and "different sizes" in err and "zz.png" in err
