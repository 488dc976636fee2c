"""Tests of the paired super-resolution data (gan_lab.paired.data).

Images are made here: a "coordinate" image whose pixels encode their own position (R = column,
G = row), so that a crop reveals where it was taken and a misaligned pair shows. The reference
for the degradation is ``F.interpolate(..., mode="bicubic", antialias=True)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.io import encode_jpeg, write_png

from gan_lab.data.image_files import LUMA, load_image, to_signed
from gan_lab.errors import ConfigError
from gan_lab.paired.data import DEFAULT_NAME, PairedImageDataModule, bicubic_downsample, default_image_files


def coordinate_image(h: int = 80, w: int = 96, blue: int = 0) -> torch.Tensor:
    """uint8 (3, h, w): R = column, G = row, B = ``blue``."""
    rows = torch.arange(h).view(h, 1).expand(h, w)
    cols = torch.arange(w).view(1, w).expand(h, w)
    return torch.stack([cols, rows, torch.full((h, w), blue)]).to(torch.uint8)


def write_image(path: Path, img: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        write_png(img, str(path))
    else:
        path.write_bytes(encode_jpeg(img, quality=95).numpy().tobytes())
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """Four coordinate images (png, each with its own blue value) in a folder and a subfolder."""
    root = tmp_path / "images"
    for k in range(3):
        write_image(root / f"img{k}.png", coordinate_image(blue=10 * k))
    write_image(root / "sub" / "img3.png", coordinate_image(blue=30))
    (root / "notes.txt").write_text("not an image")
    return root


def small_dm(root, **kw) -> PairedImageDataModule:
    args = {"crop_size": 32, "scale": 4, "batch_size": 6, "val_crops": 2, "seed": 0, **kw}
    return PairedImageDataModule(str(root) if root is not None else None, **args)


# --------------------------------------------------------------------------------------------------
# Degradation
# --------------------------------------------------------------------------------------------------


def test_bicubic_downsample_is_antialiased_interpolate_clamped():
    hr = torch.rand(2, 3, 32, 32) * 2 - 1
    ref = F.interpolate(hr, size=(8, 8), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(bicubic_downsample(hr, 4), ref.clamp(-1, 1))
    assert not torch.allclose(
        bicubic_downsample(hr, 4), F.interpolate(hr, size=(8, 8), mode="bicubic", antialias=False)
    )


def test_bicubic_downsample_keeps_a_constant_image():
    hr = torch.full((1, 1, 16, 16), 0.3)
    torch.testing.assert_close(bicubic_downsample(hr, 4), torch.full((1, 1, 4, 4), 0.3))


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------


def test_batches_are_lr_hr_tuples_at_scale_4_in_signed_range(folder):
    dm = small_dm(folder)
    lr, hr = dm.sample()
    assert lr.shape == (6, 3, 8, 8) and hr.shape == (6, 3, 32, 32)
    assert lr.dtype == hr.dtype == torch.float32
    assert hr.min() >= -1 and hr.max() <= 1 and lr.min() >= -1 and lr.max() <= 1


def test_pairs_are_aligned_crops_of_the_training_images(folder):
    dm = small_dm(folder, hflip=True, batch_size=16)
    lr, hr = dm.sample()
    torch.testing.assert_close(lr, bicubic_downsample(hr, 4))
    pixels = ((hr + 1) * 127.5).round().to(torch.int64)  # back to uint8 values
    for crop in pixels:
        flipped = crop[0, 0, 0] > crop[0, 0, -1]  # R = column decreases to the right
        crop = crop.flip(-1) if flipped else crop
        left, top, blue = int(crop[0, 0, 0]), int(crop[1, 0, 0]), int(crop[2, 0, 0])
        ref = coordinate_image(blue=blue)[:, top : top + 32, left : left + 32].to(torch.int64)
        assert torch.equal(crop, ref)


def test_validation_pairs_are_aligned_and_fixed(folder):
    dm = small_dm(folder)
    lr, hr = dm.validation_pairs()
    assert hr.shape == (2, 3, 32, 32) and lr.shape == (2, 3, 8, 8)  # 1 held-out image × 2 crops
    torch.testing.assert_close(lr, bicubic_downsample(hr, 4))
    other_seed = small_dm(folder, seed=123).validation_pairs()
    torch.testing.assert_close(other_seed[1], hr)  # the training seed does not move them
    assert not torch.equal(small_dm(folder, val_seed=5, val_images=2).validation_pairs()[1][:2], hr)


def test_held_out_images_are_not_trained_on(folder):
    dm = small_dm(folder, val_images=2)
    assert len(dm.train_files) == 2 and len(dm.val_files) == 2
    assert not set(dm.train_files) & set(dm.val_files)
    assert {f.name for f in [*dm.train_files, *dm.val_files]} == {f"img{k}.png" for k in range(4)}
    blue_val = {int(load_image(f, 3)[2, 0, 0]) for f in dm.val_files}
    _, hr = dm.sample()
    blue_train = set(((hr[:, 2, 0, 0] + 1) * 127.5).round().int().tolist())
    assert not blue_train & blue_val


def test_val_root_gives_the_validation_images(folder, tmp_path):
    val = tmp_path / "val"
    write_image(val / "v.jpg", coordinate_image(h=40, w=40))
    dm = small_dm(folder, val_root=str(val))
    assert [f.name for f in dm.val_files] == ["v.jpg"]
    assert len(dm.train_files) == 4
    assert dm.validation_pairs()[1].shape == (2, 3, 32, 32)


def test_same_seed_same_crops_and_resume_continues_the_stream(folder):
    a, b = small_dm(folder, seed=3), small_dm(folder, seed=3)
    first_a, first_b = a.sample(), b.sample()
    torch.testing.assert_close(first_a, first_b)
    assert not torch.equal(small_dm(folder, seed=4).sample()[1], first_a[1])
    state = a.state_dict()
    second = a.sample()
    resumed = small_dm(folder, seed=3)
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.sample(), second)


def test_grayscale_is_bt601_luma(folder):
    dm = small_dm(folder, channels=1)
    lr, hr = dm.sample()
    assert lr.shape == (6, 1, 8, 8) and hr.shape == (6, 1, 32, 32)
    rgb = load_image(dm.train_files[0], 3).float()
    gray = load_image(dm.train_files[0], 1)
    ref = (rgb * torch.tensor(LUMA).view(3, 1, 1)).sum(0, keepdim=True).round()
    torch.testing.assert_close(gray.float(), ref)


def test_png_and_jpeg_both_load(tmp_path):
    img = coordinate_image(h=40, w=40, blue=200)
    png = load_image(write_image(tmp_path / "a.png", img), 3)
    jpg = load_image(write_image(tmp_path / "b.jpg", img), 3)
    assert torch.equal(png, img)
    assert jpg.shape == img.shape and (jpg.float() - img.float()).abs().mean() < 3


def test_signed_range_mapping():
    torch.testing.assert_close(
        to_signed(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([-1.0, 1.0])
    )


def test_dataloader_feeds_step_indices_and_batches_are_drawn_after_transfer(folder):
    dm = small_dm(folder, steps_per_epoch=3)
    dm.setup("fit")
    batches = [dm.transfer_batch_to_device(i, torch.device("cpu"), 0) for i in dm.train_dataloader()]
    assert len(batches) == 3
    assert all(isinstance(b, tuple) and b[0].shape == (6, 3, 8, 8) for b in batches)


def test_default_photographs_are_shipped_and_held_out():
    train, val = default_image_files()
    assert all(f.is_file() for f in [*train, *val])
    assert {f.name for f in val} == {"china.jpg", "flower.jpg"}
    dm = PairedImageDataModule(batch_size=2, val_crops=1, seed=0)
    assert dm.name == DEFAULT_NAME
    lr, hr = dm.sample()
    assert lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 64, 64)
    info = dm.describe()
    assert info["val_pairs"] == 2 and info["scale"] == 4 and info["lr_size"] == 16


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere.*not a folder"):
        small_dm(tmp_path / "nowhere")


def test_empty_folder_is_a_config_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(ConfigError, match=r"empty.*no \.png"):
        small_dm(tmp_path / "empty")


def test_corrupt_image_is_a_config_error_naming_the_file(folder):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    dm = small_dm(folder, val_images=1)
    with pytest.raises(ConfigError, match=r"broken\.png"):
        dm.setup("fit")


def test_image_smaller_than_the_crop_is_named(folder):
    write_image(folder / "tiny.png", coordinate_image(h=20, w=20))
    dm = small_dm(folder, val_root=str(folder / "sub"))
    with pytest.raises(ConfigError, match=r"tiny\.png.*smaller than data crop_size 32"):
        dm.load()


def test_too_few_images_to_hold_out(tmp_path):
    write_image(tmp_path / "one" / "a.png", coordinate_image())
    with pytest.raises(ConfigError, match="val_root"):
        small_dm(tmp_path / "one")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crop_size": 30}, "multiple of scale"),
        ({"channels": 2}, "channels"),
        ({"batch_size": 0}, "batch_size"),
        ({"val_crops": 0}, "val_crops"),
        ({"val_images": 0}, "val_images"),
    ],
)
def test_bad_sizes_are_config_errors(folder, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        small_dm(folder, **kwargs)
