"""Tests of the unconditional image data (gan_lab.data.images).

Every data set is fabricated here, in the files torchvision reads with ``download=False``: MNIST /
Fashion-MNIST as raw IDX files under ``root/MNIST/raw`` (written with numpy), CIFAR-10 as the
``cifar-10-batches-py`` pickles, CelebA as its five lists and a folder of images, and PNG folders.
Image ``i`` carries its index in pixel (0, 0), so a batch shows which images it holds. torchvision
checks the md5 of every CIFAR-10 / CelebA file against the canonical archives; the tests set its
public class attributes ``CIFAR10.train_list`` / ``test_list`` / ``meta`` and ``CelebA.file_list``
(the lists CIFAR-100 overrides the same way) to the md5s of the fabricated files, so that
torchvision's own integrity check still runs.

The reference for the sampling is the documented recipe, computed by hand: epoch ``e`` of member
``k`` is ``randperm(N, g)`` then ``rand(N, g) < 0.5`` of a CPU generator seeded
``seed + k + 2_000_006``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fake_datasets import indexed_images, md5, write_cifar, write_folder, write_idx, write_mnist  # noqa: F401
from torchvision.io import write_png

from gan_lab.data import IMAGE_DATASETS, ImageDataModule, StackedDigits
from gan_lab.data.context import RunContext
from gan_lab.data.images import REFERENCE_SEED, EpochSampler, resize, to_channels
from gan_lab.errors import ConfigError

DATA_SEED_OFFSET = 2_000_006  # gan_lab.seeding.STREAMS["data"]


# --------------------------------------------------------------------------------------------------
# Fabricated data sets
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def mnist(tmp_path):
    root = tmp_path / "data"
    train, labels, test = write_mnist(root)
    return SimpleNamespace(root=root, train=train, labels=labels, test=test)


def hand_epochs(seed: int, n: int, epochs: int, member: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The documented sampling recipe: ``epochs`` epochs of (perm, flip) concatenated."""
    g = torch.Generator().manual_seed(seed + member + DATA_SEED_OFFSET)
    perms, flips = [], []
    for _ in range(epochs):
        perms.append(torch.randperm(n, generator=g))
        flips.append(torch.rand(n, generator=g) < 0.5)
    return torch.cat(perms), torch.cat(flips)


def signed(u8: torch.Tensor) -> torch.Tensor:
    return u8.double() / 127.5 - 1.0


def ids(batch: torch.Tensor) -> list[int]:
    """Image indices of a batch in [-1, 1] (pixel (0, 0), channel 0), where nothing was flipped."""
    return torch.round((batch[:, 0, 0, 0].double() + 1) * 127.5).long().tolist()


def stream(dm: ImageDataModule, n: int, **kw) -> list[torch.Tensor]:
    return [dm.sample("cpu", **kw) for _ in range(n)]


# --------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST from raw IDX files
# --------------------------------------------------------------------------------------------------


def test_mnist_batches_are_the_idx_pixels_in_the_documented_order(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=5, seed=3)
    batches = stream(dm, 5)  # 25 images: two epochs of 12 and one more
    perm, _ = hand_epochs(3, 12, 3)
    x = torch.cat(batches)
    assert x.dtype == torch.float32 and x.shape == (25, 1, 28, 28)
    torch.testing.assert_close(x.double(), signed(mnist.train[perm[:25]]), rtol=0, atol=1e-6)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(dm.labels, mnist.labels)
    assert dm.image_shape == (1, 28, 28) and dm.channels == 1


def test_each_epoch_holds_every_image_once(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=4, seed=0)
    epochs = [sorted(i for b in stream(dm, 3) for i in ids(b)) for _ in range(3)]
    assert epochs == [list(range(12))] * 3


def test_mnist_test_split_reads_the_t10k_files(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), split="test", batch_size=5, seed=0)
    assert torch.equal(dm.train_set().images, mnist.test)
    assert dm.describe()["N"] == 5 and dm.describe()["split"] == "test"


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    train, labels, _ = write_mnist(tmp_path, "FashionMNIST")
    dm = ImageDataModule("fashion_mnist", root=str(tmp_path), batch_size=2)
    assert torch.equal(dm.train_set().images, train) and torch.equal(dm.labels, labels)


def test_upsampling_28_to_32_is_bilinear_without_antialiasing(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), size=32, batch_size=2)
    ref = F.interpolate(mnist.train.float(), size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.equal(dm.train_set().images, ref.round().clamp(0, 255).to(torch.uint8))
    assert dm.image_shape == (1, 32, 32) and dm.describe()["size"] == 32


def test_downsampling_is_antialiased(mnist):
    small = ImageDataModule("mnist", root=str(mnist.root), size=14, batch_size=2).train_set().images
    kw = {"size": (14, 14), "mode": "bilinear", "align_corners": False}
    ref = F.interpolate(mnist.train.float(), antialias=True, **kw).round().to(torch.uint8)
    plain = F.interpolate(mnist.train.float(), antialias=False, **kw).round().to(torch.uint8)
    assert torch.equal(small, ref)
    assert not torch.equal(small, plain)  # random pixels: the low-pass filter shows


def test_grey_to_rgb_repeats_the_channel(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), channels=3, batch_size=2)
    assert torch.equal(dm.train_set().images, mnist.train.expand(-1, 3, -1, -1))
    assert dm.image_shape == (3, 28, 28)


def test_missing_mnist_file_names_the_folder_and_the_files(mnist):
    raw = mnist.root / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError) as err:
        ImageDataModule("mnist", root=str(mnist.root))
    msg = str(err.value)
    assert str(raw) in msg and "t10k-labels-idx1-ubyte" in msg and "gunzip" in msg and "\n" not in msg


def test_gzipped_mnist_files_ask_to_gunzip(mnist):
    raw = mnist.root / "MNIST" / "raw"
    (raw / "train-images-idx3-ubyte").rename(raw / "train-images-idx3-ubyte.gz")
    with pytest.raises(ConfigError, match=r"gunzip the \.gz files"):
        ImageDataModule("mnist", root=str(mnist.root))


def test_root_pointing_at_the_mnist_folder_says_which_root_to_pass(mnist):
    with pytest.raises(ConfigError, match="should be the folder that holds MNIST/") as err:
        ImageDataModule("mnist", root=str(mnist.root / "MNIST"))
    assert repr(str(mnist.root)) in str(err.value)


def test_no_root_for_mnist_is_one_line():
    with pytest.raises(
        ConfigError, match="data root is required for mnist: expected train-images-idx3-ubyte"
    ):
        ImageDataModule("mnist")


def test_truncated_idx_file_is_named(mnist):
    path = mnist.root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ConfigError, match="corrupt IDX file") as err:
        ImageDataModule("mnist", root=str(mnist.root))
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------------------------------
# CIFAR-10 from its pickles
# --------------------------------------------------------------------------------------------------


def test_cifar10_images_and_labels_equal_the_pickled_arrays(tmp_path, monkeypatch):
    train, labels, test = write_cifar(tmp_path, monkeypatch)
    dm = ImageDataModule("cifar10", root=str(tmp_path), batch_size=15, seed=0)
    assert torch.equal(dm.train_set().images, train)  # (N, 3, 32, 32): the rows' R, G, B planes
    assert torch.equal(dm.labels, labels)
    x = dm.sample("cpu")
    perm, _ = hand_epochs(0, 15, 1)
    torch.testing.assert_close(x.double(), signed(train[perm]), rtol=0, atol=1e-6)
    test_images, _ = dm.reference(3, split="test")
    order = torch.randperm(3, generator=torch.Generator().manual_seed(REFERENCE_SEED))
    torch.testing.assert_close(test_images.double(), signed(test[order]), rtol=0, atol=1e-6)


def test_cifar10_missing_folder_names_it(tmp_path):
    with pytest.raises(ConfigError) as err:
        ImageDataModule("cifar10", root=str(tmp_path))
    msg = str(err.value)
    assert (
        str(tmp_path / "cifar-10-batches-py") in msg
        and "data_batch_1" in msg
        and "cifar-10-python.tar.gz" in msg
    )


def test_cifar10_file_failing_the_md5_check_is_named(tmp_path, monkeypatch):
    write_cifar(tmp_path, monkeypatch)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x01")
    dm = ImageDataModule("cifar10", root=str(tmp_path), batch_size=2)  # present: refused when read
    with pytest.raises(ConfigError, match="fails torchvision's md5 check") as err:
        dm.setup("fit")
    assert str(bad) in str(err.value)


# --------------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------------


def test_flat_folder_is_every_image_without_labels(tmp_path):
    x = indexed_images(6, 3, 20, 20)
    write_folder(tmp_path / "flat", x)
    dm = ImageDataModule("folder", root=str(tmp_path / "flat"), batch_size=6, seed=1)
    assert torch.equal(dm.train_set().images, torch.from_numpy(x))  # sorted by file name
    assert dm.labels is None and dm.describe()["layout"] == "flat" and dm.describe()["split"] == "all"
    perm, _ = hand_epochs(1, 6, 1)
    torch.testing.assert_close(
        dm.sample("cpu").double(), signed(torch.from_numpy(x)[perm]), rtol=0, atol=1e-6
    )


def test_image_folder_layout_gives_class_labels(tmp_path):
    x = indexed_images(6, 3, 16, 16)
    write_folder(tmp_path / "classes", x, classes=["cat", "ant"])  # image i in ["cat", "ant"][i % 2]
    dm = ImageDataModule("folder", root=str(tmp_path / "classes"), batch_size=2)
    # ImageFolder: classes sorted (ant = 0, cat = 1), files sorted within each
    order = [1, 3, 5, 0, 2, 4]
    assert torch.equal(dm.train_set().images, torch.from_numpy(x[order]))
    assert dm.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_folder_to_grey_is_bt601_luma(tmp_path):
    x = indexed_images(3, 3, 8, 8)
    write_folder(tmp_path / "f", x)
    grey = ImageDataModule("folder", root=str(tmp_path / "f"), channels=1, batch_size=2).train_set().images
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).round().astype(np.uint8)
    assert torch.equal(grey, torch.from_numpy(luma).unsqueeze(1))
    assert torch.equal(to_channels(torch.from_numpy(x), 1), grey)


def test_folder_of_mixed_sizes_needs_size_and_names_the_odd_file(tmp_path):
    paths = write_folder(tmp_path / "f", indexed_images(2, 3, 16, 16))
    write_png(torch.from_numpy(indexed_images(1, 3, 12, 20)[0]), str(tmp_path / "f" / "zz.png"))
    with pytest.raises(ConfigError, match="set data size") as err:
        ImageDataModule("folder", root=str(tmp_path / "f"), batch_size=2).setup("fit")
    assert "zz.png" in str(err.value)
    # with a size: the 20×12 one is cropped to its centred 12×12 square, then enlarged
    images = ImageDataModule("folder", root=str(tmp_path / "f"), size=16, batch_size=2).train_set().images
    odd = torch.from_numpy(indexed_images(1, 3, 12, 20)[0])[:, :, 4:16]
    assert torch.equal(images[2], resize(odd.unsqueeze(0), 16)[0])
    assert len(paths) == 2


def test_corrupt_image_is_named(tmp_path):
    write_folder(tmp_path / "f", indexed_images(2, 3, 8, 8))
    (tmp_path / "f" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ConfigError, match=r"broken\.png"):
        ImageDataModule("folder", root=str(tmp_path / "f"), batch_size=2).setup("fit")


def test_missing_or_empty_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        ImageDataModule("folder", root=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds no \.png"):
        ImageDataModule("folder", root=str(tmp_path / "empty"))


def test_folder_has_no_test_split(tmp_path):
    write_folder(tmp_path / "f", indexed_images(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="unknown folder split 'test'; valid folder splits: all, train"):
        ImageDataModule("folder", root=str(tmp_path / "f"), split="test")


# --------------------------------------------------------------------------------------------------
# CelebA
# --------------------------------------------------------------------------------------------------


def test_celeba_split_lists_attributes_and_centre_square(tmp_path, monkeypatch):
    from torchvision.datasets import CelebA

    folder = tmp_path / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    x = indexed_images(4, 3, 24, 20)  # 20 wide, 24 high, like CelebA's 178×218
    names = [f"{i + 1:06d}.jpg" for i in range(4)]
    for name, img in zip(names, x):  # PNG bytes: decoded by content, so the pixels stay exact
        write_png(torch.from_numpy(img), str(folder / "img_align_celeba" / name))
    rows = lambda k: "\n".join(f"{n} " + " ".join(["1"] * k) for n in names)  # noqa: E731
    (folder / "list_eval_partition.txt").write_text(
        "\n".join(f"{n} {s}" for n, s in zip(names, [0, 2, 0, 2]))
    )
    (folder / "identity_CelebA.txt").write_text(rows(1))
    (folder / "list_bbox_celeba.txt").write_text("4\nx_1 y_1 width height\n" + rows(4))
    (folder / "list_landmarks_align_celeba.txt").write_text("4\n" + " ".join(["p"] * 10) + "\n" + rows(10))
    attrs = "\n".join(f"{n} {'1' if i % 2 else '-1'} -1" for i, n in enumerate(names))
    (folder / "list_attr_celeba.txt").write_text("4\nSmiling Young\n" + attrs)
    files = [(fid, md5(folder / n) if n.endswith(".txt") else m, n) for fid, m, n in CelebA.file_list]
    monkeypatch.setattr(CelebA, "file_list", files)

    with pytest.raises(ConfigError, match="celeba needs data size"):
        ImageDataModule("celeba", root=str(tmp_path))
    dm = ImageDataModule("celeba", root=str(tmp_path), size=10, batch_size=2)
    square = torch.from_numpy(x[[0, 2]])[:, :, 2:22, :]  # the centred 20×20 square
    ref = F.interpolate(square.float(), size=(10, 10), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(dm.train_set().images, ref.round().to(torch.uint8))
    assert dm.labels.tolist() == [[0, 0], [0, 0]]  # images 0 and 2: -1 -> 0
    test = dm.source.load("test")
    assert len(test) == 2 and test.labels.tolist() == [[1, 0], [1, 0]]  # images 1 and 3


# --------------------------------------------------------------------------------------------------
# Streams: exact resume, ranks, flips, members
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 5])  # batches of 6 over 12 images: 2 ends an epoch exactly
@pytest.mark.parametrize("hflip", [False, True])
def test_resume_gives_the_batches_of_the_unstopped_stream(mnist, k, hflip):
    make = lambda: ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=2, hflip=hflip)  # noqa: E731
    unstopped = stream(make(), 9)
    first = make()
    stream(first, k)
    state = first.state_dict()
    path = mnist.root / "state.pt"
    torch.save(state, path)  # a checkpoint is read with weights_only=True
    resumed = make()
    resumed.load_state_dict(torch.load(path, weights_only=True))
    for t, batch in enumerate(stream(resumed, 9 - k)):
        assert torch.equal(batch, unstopped[k + t]), f"batch {k + t}"
    assert resumed.state_dict()["positions"][0]["epoch"] == (9 * 6 - 1) // 12


def test_state_before_any_batch_is_empty_and_a_loaded_state_is_kept(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=0)
    assert dm.state_dict() == {}
    dm.load_state_dict({})
    a = stream(ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=0), 3)
    assert torch.equal(dm.sample("cpu"), a[0])
    moved = ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=0)
    stream(moved, 3)
    state = moved.state_dict()
    again = ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=0)
    again.load_state_dict(state)
    assert again.state_dict()["positions"] == state["positions"]  # saved again before drawing


def test_a_state_of_another_data_set_size_is_refused(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=0)
    dm.sample("cpu")
    state = dm.state_dict()
    state["positions"][0]["n"] = 99
    other = ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=0)
    other.load_state_dict(state)
    with pytest.raises(ConfigError, match="runs over 99 images, this data set holds 12"):
        other.sample("cpu")


def test_ranks_take_disjoint_blocks_of_one_global_batch(mnist):
    make = lambda: ImageDataModule("mnist", root=str(mnist.root), batch_size=3, seed=4)  # noqa: E731
    single = ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=4)
    r0, r1, one = (
        stream(make(), 4, rank=0, world_size=2),
        stream(make(), 4, rank=1, world_size=2),
        stream(single, 4),
    )
    for t in range(4):
        assert torch.equal(torch.cat([r0[t], r1[t]]), one[t])  # rank 0's block, then rank 1's
    for epoch in (0, 1):  # 2 steps × 2 ranks × 3 = one epoch of 12: the ranks' images are disjoint
        seen0 = [i for b in r0[2 * epoch : 2 * epoch + 2] for i in ids(b)]
        seen1 = [i for b in r1[2 * epoch : 2 * epoch + 2] for i in ids(b)]
        assert not set(seen0) & set(seen1) and sorted(seen0 + seen1) == list(range(12))
    again = stream(make(), 4, rank=1, world_size=2)
    assert all(torch.equal(a, b) for a, b in zip(again, r1))  # deterministic


def test_rank_and_world_size_come_from_the_trainer(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=3, seed=4)
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(), global_rank=1, world_size=2)
    dm.setup("fit")
    ref = stream(
        ImageDataModule("mnist", root=str(mnist.root), batch_size=3, seed=4), 2, rank=1, world_size=2
    )
    assert all(torch.equal(a, b) for a, b in zip(stream(dm, 2), ref))


def test_hflip_mirrors_the_images_whose_stream_bit_is_set(mnist):
    plain = torch.cat(stream(ImageDataModule("mnist", root=str(mnist.root), batch_size=8, seed=1), 3))
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=8, seed=1, hflip=True)
    flipped = torch.cat(stream(dm, 3))
    _, flip = hand_epochs(1, 12, 2)
    assert 0 < int(flip[:24].sum()) < 24
    for i in range(24):  # the same order as without hflip; mirrored exactly where the bit is set
        assert torch.equal(flipped[i], plain[i].flip(-1) if flip[i] else plain[i])


def test_member_k_streams_like_a_single_run_with_seed_plus_k(mnist):
    ens = stream(ImageDataModule("mnist", root=str(mnist.root), batch_size=4, seed=5, members=2), 4)
    assert ens[0].shape == (2, 4, 1, 28, 28)
    for k in range(2):
        single = stream(ImageDataModule("mnist", root=str(mnist.root), batch_size=4, seed=5 + k), 4)
        assert all(torch.equal(e[k], s) for e, s in zip(ens, single))
    assert not torch.equal(ens[0][0], ens[0][1])


def test_setup_takes_seed_and_members_from_the_modules_run_context(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=4)
    dm.trainer = SimpleNamespace(
        lightning_module=SimpleNamespace(run_context=RunContext(seed=7)), global_rank=0, world_size=1
    )
    dm.setup("fit")
    assert (dm.seed, dm.members) == (7, None)
    ref = ImageDataModule("mnist", root=str(mnist.root), batch_size=4, seed=7)
    assert torch.equal(dm.sample("cpu"), ref.sample("cpu"))
    assert dm.sample("cpu").shape == (4, 1, 28, 28)  # no members: plain batches


def test_pack_multiplies_the_images_of_a_batch_and_comes_from_the_module(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=3, seed=0)
    dm.trainer = SimpleNamespace(lightning_module=None, global_rank=0, world_size=1)
    dm.setup("fit", RunContext(pack=2))  # a context given directly
    assert dm.pack == 2 and dm.samples_per_batch == 6
    ref = ImageDataModule("mnist", root=str(mnist.root), batch_size=6, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(stream(dm, 3), stream(ref, 3)))  # 3 packs of 2 = 6 images
    with pytest.raises(ConfigError, match="data pack must be an integer >= 1 or null"):
        ImageDataModule("mnist", root=str(mnist.root), pack=0)


def test_step_index_is_replaced_by_a_batch(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root), batch_size=4, seed=0, steps_per_epoch=3)
    assert list(dm.train_dataloader()) == [0, 1, 2]
    ref = ImageDataModule("mnist", root=str(mnist.root), batch_size=4, seed=0)
    assert torch.equal(dm.transfer_batch_to_device(0, torch.device("cpu"), 0), ref.sample("cpu"))


def test_epoch_sampler_takes_across_epochs_without_loss():
    s = EpochSampler(5, torch.Generator().manual_seed(0))
    idx, flip = s.take(12)  # 2 epochs of 5 and 2 of the third
    g = torch.Generator().manual_seed(0)
    perms, flips = zip(
        *[(torch.randperm(5, generator=g), torch.rand(5, generator=g) < 0.5) for _ in range(3)]
    )
    assert torch.equal(idx, torch.cat(perms)[:12]) and torch.equal(flip, torch.cat(flips)[:12])
    assert (s.epoch, s.position) == (2, 2)


# --------------------------------------------------------------------------------------------------
# Reference images, describe, bad input
# --------------------------------------------------------------------------------------------------


def test_reference_images_are_a_fixed_order_whatever_the_training_seed(mnist):
    a = ImageDataModule("mnist", root=str(mnist.root), seed=0, hflip=True)
    b = ImageDataModule("mnist", root=str(mnist.root), seed=9)
    b.sample("cpu")  # drawing batches does not move the reference order
    order = torch.randperm(12, generator=torch.Generator().manual_seed(REFERENCE_SEED))
    ref = a.reference_images(7)
    assert torch.equal(ref, b.reference_images(7))
    torch.testing.assert_close(ref.double(), signed(mnist.train[order[:7]]), rtol=0, atol=1e-6)
    assert torch.equal(a.reference(7)[1], mnist.labels[order[:7]])
    assert torch.equal(a.reference_images(3), ref[:3])  # the first n of one order
    torch.testing.assert_close(
        a.reference_images(5, split="test").double(),
        signed(mnist.test[torch.randperm(5, generator=torch.Generator().manual_seed(REFERENCE_SEED))]),
        rtol=0,
        atol=1e-6,
    )


def test_more_reference_images_than_the_split_holds_is_one_line(mnist):
    dm = ImageDataModule("mnist", root=str(mnist.root))
    with pytest.raises(ConfigError, match="13 reference images asked of mnist train, which holds 12"):
        dm.reference_images(13)


def test_describe_identifies_the_data(mnist):
    d = ImageDataModule("mnist", root=str(mnist.root), size=32, channels=3).describe()
    assert d == {
        "dataset": "mnist",
        "root": str(mnist.root.resolve()),
        "split": "train",
        "N": 12,
        "size": 32,
        "channels": 3,
        "center_crop": None,
    }


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        ImageDataModule("imagenet")
    assert str(err.value) == "unknown image dataset 'imagenet'; valid image datasets: " + ", ".join(
        sorted(IMAGE_DATASETS)
    )


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 0}, "data batch_size must be an integer >= 1"),
        ({"steps_per_epoch": -1}, "data steps_per_epoch"),
        ({"channels": 2}, "data channels must be 1"),
        ({"size": 0}, "data size must be an integer >= 1"),
        ({"split": "valid"}, "unknown mnist split 'valid'"),
    ],
)
def test_bad_arguments_are_one_line(mnist, kw, match):
    with pytest.raises(ConfigError, match=match):
        ImageDataModule("mnist", root=str(mnist.root), **kw)


def test_a_dataset_instance_takes_no_root_or_size_beside_it():
    with pytest.raises(ConfigError, match="data size must be set on the dataset's init_args"):
        ImageDataModule(StackedDigits(size=16, n_train=10), size=32)


def test_yaml_config_through_jsonargparse(tmp_path):
    """The lead's YAML: a name with its arguments, or the dataset as a class_path of its own."""
    import lightning as L
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--data", type=L.LightningDataModule)
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        "data:\n  class_path: gan_lab.data.ImageDataModule\n  init_args:\n"
        "    dataset:\n      class_path: gan_lab.data.StackedDigits\n      init_args: {n_train: 100, size: 16}\n"
        "    batch_size: 8\n"
    )
    parser.add_argument("--config", action="config")
    dm = parser.instantiate(parser.parse_args(["--config", str(cfg)])).data
    assert isinstance(dm, ImageDataModule) and dm.describe()["N"] == 100 and dm.image_shape == (3, 16, 16)
    by_name = parser.parse_args(
        ["--data", "gan_lab.data.ImageDataModule", "--data.dataset", "stacked_digits", "--data.size", "16"]
    )
    assert parser.instantiate(by_name).data.image_shape == (3, 16, 16)


# --------------------------------------------------------------------------------------------------
# Through Lightning: a stopped and resumed fit trains on the batches of the unstopped one
# --------------------------------------------------------------------------------------------------


def test_fit_resumed_from_a_checkpoint_equals_the_unstopped_fit(tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from gan_lab.module import GANModule
    from gan_lab.nets import DCGANDiscriminator, DCGANGenerator

    def fit(max_g_steps, folder, ckpt_path=None):
        G = DCGANGenerator(z_dim=4, ngf=2, size=16)
        module = GANModule(G, DCGANDiscriminator(ndf=2, size=16), max_g_steps=max_g_steps, seed=1)
        data = ImageDataModule(
            StackedDigits(size=16, n_train=20), batch_size=8, hflip=True
        )  # epochs of 2.5 steps
        trainer = L.Trainer(
            max_steps=-1,
            max_epochs=-1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[ModelCheckpoint(dirpath=folder, save_last=True)],
        )
        trainer.fit(module, data, ckpt_path=ckpt_path)
        return module, data

    full, full_data = fit(6, tmp_path / "full")
    fit(3, tmp_path / "first")
    resumed, resumed_data = fit(6, tmp_path / "second", ckpt_path=str(tmp_path / "first" / "last.ckpt"))
    assert resumed.g_steps == full.g_steps == 6
    assert resumed_data.state_dict()["positions"] == full_data.state_dict()["positions"]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
