"""Tests of the stacked digits (gan_lab.data.stacked): each channel is the digit its label says,
all 1,000 modes are there, and the fixed training set depends on ``dataset_seed`` only.

The independent reference for a channel is :func:`gan_lab.data.digits.digit_images` itself: the
channel must equal exactly one of its images, whose label is the channel's label. Stacked MNIST
reads fabricated IDX files (see tests/data/test_images.py).
"""

from __future__ import annotations

import pytest
import torch
from test_images import write_mnist  # tests/ is on the path (pyproject: pythonpath)

from gan_lab.data import IMAGE_DATASETS, ImageDataModule, StackedDigits, StackedMNIST, mode_ids
from gan_lab.data.digits import digit_images
from gan_lab.data.stacked import N_TRAIN, TEST_SEED_OFFSET, draw_triples
from gan_lab.errors import ConfigError


def match_digits(batch: torch.Tensor, pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each channel of ``batch (B, 3, H, W)``: the distance to the nearest image of ``pool
    (M, 1, H, W)`` and its index, ``(B, 3)`` each."""
    d = torch.cdist(batch.flatten(2).flatten(0, 1).double(), pool.flatten(1).double())  # (3B, M)
    dist, idx = d.min(dim=1)
    return dist.view(-1, 3), idx.view(-1, 3)


@pytest.mark.parametrize("size", [16, 32])
def test_each_channel_is_the_digit_its_label_says(size):
    dm = ImageDataModule("stacked_digits", size=size, batch_size=64, seed=0)
    digits, digit_labels = digit_images(size)
    x = dm.sample("cpu")
    assert x.shape == (64, 3, size, size) and x.dtype == torch.float32
    dist, nearest = match_digits(x, digits)
    assert dist.max() == 0  # every channel is exactly one of scikit-learn's digits
    # labels of fixed images of the training set (the reference order)
    ref, labels = dm.reference(200)
    dist, nearest = match_digits(ref, digits)
    assert dist.max() == 0
    assert torch.equal(digit_labels[nearest], labels)  # (200, 3): each channel's digit
    assert torch.equal(mode_ids(labels), labels[:, 0] * 100 + labels[:, 1] * 10 + labels[:, 2])


def test_training_labels_match_the_pool_labels_of_every_triple():
    data = StackedDigits(size=16, n_train=500).load("train")
    digits, digit_labels = digit_images(16)
    dist, nearest = match_digits(data.gather(torch.arange(500)), digits)
    assert dist.max() == 0 and torch.equal(digit_labels[nearest], data.labels)


def test_all_1000_modes_are_in_the_veegan_sized_training_set():
    dm = ImageDataModule("stacked_digits", size=16)
    assert dm.describe()["N"] == N_TRAIN == 128_000
    modes = mode_ids(dm.labels)
    counts = torch.bincount(modes, minlength=1000)
    assert counts.numel() == 1000 and int((counts > 0).sum()) == 1000 == dm.num_modes
    # each channel's digit is uniform over the pool's labels: about 128 images per mode
    assert counts.min() > 60 and counts.max() < 220


def test_the_training_set_depends_on_the_dataset_seed_only():
    a = ImageDataModule(StackedDigits(size=16, n_train=1000, dataset_seed=0), seed=0)
    b = ImageDataModule(StackedDigits(size=16, n_train=1000, dataset_seed=0), seed=123)
    c = ImageDataModule(StackedDigits(size=16, n_train=1000, dataset_seed=1), seed=0)
    assert torch.equal(a.train_set().triples, b.train_set().triples)  # training seed: no effect
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.train_set().triples, c.train_set().triples)
    assert not torch.equal(a.sample("cpu"), b.sample("cpu"))  # only the order of batches differs
    # built again from the same dataset_seed: the same set (nothing global is drawn from)
    torch.manual_seed(99)
    again = StackedDigits(size=16, n_train=1000, dataset_seed=0).load("train")
    assert torch.equal(again.triples, a.train_set().triples)
    assert torch.equal(again.triples, draw_triples(1797, 1000, 0))  # randint under dataset_seed


def test_the_test_split_is_another_draw_of_as_many_triples():
    src = StackedDigits(size=16, n_train=1000, dataset_seed=3)
    train, test = src.load("train"), src.load("test")
    assert len(test) == 1000 and not torch.equal(train.triples, test.triples)
    assert torch.equal(test.triples, draw_triples(1797, 1000, 3 + TEST_SEED_OFFSET))


def test_the_set_stores_indices_not_images():
    data = StackedDigits(size=32).load("train")
    assert data.triples.dtype == torch.int16 and data.triples.shape == (N_TRAIN, 3)
    assert data.digits.shape == (1797, 1, 32, 32)  # the pool, once


def test_reference_images_of_stacked_digits_are_fixed_triples_of_the_training_set():
    a = ImageDataModule(StackedDigits(size=16, n_train=1000), seed=0)
    b = ImageDataModule(StackedDigits(size=16, n_train=1000), seed=5)
    (ra, la), (rb, lb) = a.reference(50), b.reference(50)
    assert torch.equal(ra, rb) and torch.equal(la, lb)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:50]
    assert torch.equal(la, a.labels[order])


def test_stacked_digits_refuse_what_they_cannot_do():
    with pytest.raises(ConfigError, match="have 3 channels"):
        ImageDataModule("stacked_digits", channels=1)
    with pytest.raises(ConfigError, match="reads no files; leave data root unset"):
        ImageDataModule("stacked_digits", root="/data")
    with pytest.raises(ConfigError, match=r"size must be one of \[8, 16, 28, 32, 64\]"):
        ImageDataModule("stacked_digits", size=12)
    with pytest.raises(ConfigError, match="stacked_digits n_train must be an integer >= 1"):
        StackedDigits(n_train=0)
    with pytest.raises(ConfigError, match="takes no center_crop"):
        ImageDataModule("stacked_digits", center_crop=8)


def test_both_stacked_sets_are_registered():
    assert (
        IMAGE_DATASETS["stacked_digits"] is StackedDigits and IMAGE_DATASETS["stacked_mnist"] is StackedMNIST
    )


# --------------------------------------------------------------------------------------------------
# Stacked MNIST
# --------------------------------------------------------------------------------------------------


def test_stacked_mnist_channels_are_mnist_digits_of_train_and_test(tmp_path):
    train, y_train, test = write_mnist(tmp_path, n_train=12, n_test=5)
    y_test = (torch.arange(5) + 3) % 10
    src = StackedMNIST(root=str(tmp_path), n_train=400)
    data = src.load("train")
    pool = torch.cat([train, test]).double() / 127.5 - 1  # PacGAN's pool: train and test digits
    dist, nearest = match_digits(data.gather(torch.arange(400)), pool)
    assert dist.max() < 1e-4 and data.image_shape == (3, 28, 28)  # float32 rounding; a pixel step is 0.008
    assert torch.equal(torch.cat([y_train, y_test])[nearest], data.labels)
    assert set(nearest.flatten().tolist()) == set(range(17))  # both splits are drawn from
    only_train = StackedMNIST(root=str(tmp_path), n_train=400, pool="train").load("train")
    assert int(only_train.triples.max()) < 12
    assert src.describe()["pool"] == "all" and src.num_modes == 1000


def test_stacked_mnist_resized_to_32(tmp_path):
    import torch.nn.functional as F

    train, _, test = write_mnist(tmp_path)
    data = ImageDataModule("stacked_mnist", root=str(tmp_path), size=32, seed=0).train_set()
    ref = F.interpolate(torch.cat([train, test]).float(), size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.equal(data.digits, ref.round().clamp(0, 255).to(torch.uint8))
    x = data.gather(torch.arange(4))
    assert x.shape == (4, 3, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_stacked_mnist_without_its_files_names_them(tmp_path):
    with pytest.raises(ConfigError, match="mnist files missing in") as err:
        ImageDataModule("stacked_mnist", root=str(tmp_path))
    assert "train-images-idx3-ubyte" in str(err.value) and str(tmp_path / "MNIST" / "raw") in str(err.value)
    with pytest.raises(ConfigError, match="data root is required for stacked_mnist"):
        ImageDataModule("stacked_mnist")


def test_stacked_mnist_pool_choice_is_checked(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(ConfigError, match="unknown stacked_mnist pool 'test'"):
        StackedMNIST(root=str(tmp_path), pool="test")


def test_stacked_training_resumes_exactly_across_an_epoch():
    make = lambda: ImageDataModule(StackedDigits(size=8, n_train=30), batch_size=8, seed=1, hflip=True)  # noqa: E731
    dm = make()
    full = [dm.sample("cpu") for _ in range(8)]  # 64 images: epochs of 30
    first = make()
    for _ in range(3):  # 24: the next batch crosses into epoch 1
        first.sample("cpu")
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert all(torch.equal(resumed.sample("cpu"), full[t]) for t in range(3, 8))
