"""The lab's digit classifier: held-out accuracy, the cache (reused, new key -> new file, foreign /
tampered / unsafe files refused), determinism, MNIST from local files, and the per-channel
features of stacked digits.

One full training (S = 16, ~3–4 s on one thread) is shared by the module; the other trainings
run one epoch (the settings are part of the key, so they go to their own files)."""

import os
import shutil
import struct

import pytest
import torch

from gan_lab.data.digits import digit_images, digit_split
from gan_lab.errors import ConfigError
from gan_lab.metrics import digit_classifier as dc
from gan_lab.metrics.digit_classifier import (
    SETTINGS,
    MissingDataError,
    classifier_key,
    data_fingerprint,
    digit_data,
    load_or_train_digit_classifier,
    random_shift,
)
from gan_lab.metrics.features import DigitClassifierFeatures


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gan_lab_cache")


@pytest.fixture(scope="module")
def trained(cache):
    return load_or_train_digit_classifier(16, cache_dir=cache, seed=0)


@pytest.fixture
def one_epoch(monkeypatch):
    """Training settings of one epoch (another key: trains into its own file, in well under 1 s)."""
    monkeypatch.setitem(SETTINGS, "sklearn", {**SETTINGS["sklearn"], "epochs": 1})


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_held_out_accuracy_at_least_97_percent(trained):
    """Recomputed here on digit_split's 300 held-out digits: >= 97 %, as stated in info."""
    model, info = trained
    x, y = digit_images(16)
    _train, test = digit_split(len(x), held_out=300, seed=0)
    with torch.no_grad():
        correct = int((model(x[test]).argmax(1) == y[test]).sum())
    assert correct / 300 >= 0.97
    assert correct / 300 == info["accuracy"]
    assert (info["n_train"], info["n_test"], info["data"], info["size"], info["seed"]) == (
        1497,
        300,
        "sklearn",
        16,
        0,
    )
    assert info["trained"] and os.path.isfile(info["path"]) and info["key_hash"] in info["path"]
    assert all(not p.requires_grad for p in model.parameters()) and not model.training


def test_cache_is_reused_without_training(trained, cache, monkeypatch):
    _, info = trained
    mtime = os.stat(info["path"]).st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the cache holds the classifier")

    monkeypatch.setattr(dc, "train_digit_classifier", no_training)
    model, again = load_or_train_digit_classifier(16, cache_dir=cache, seed=0)
    assert not again["trained"] and again["path"] == info["path"] and again["hash"] == info["hash"]
    assert again["accuracy"] == info["accuracy"] and os.stat(info["path"]).st_mtime_ns == mtime
    assert dc.state_hash(model.state_dict()) == info["hash"]


def test_changed_key_trains_a_new_file(trained, cache, one_epoch):
    _, info = trained
    _model, other = load_or_train_digit_classifier(16, cache_dir=cache, seed=0)
    assert other["trained"] and other["path"] != info["path"] and os.path.isfile(info["path"])
    assert other["key"]["training"]["epochs"] == 1 and other["hash"] != info["hash"]
    _, seed1 = load_or_train_digit_classifier(16, cache_dir=cache, seed=1)
    assert seed1["trained"] and seed1["path"] not in (info["path"], other["path"])


def test_same_seed_gives_bit_identical_weights(tmp_path, one_epoch):
    _, a = load_or_train_digit_classifier(16, cache_dir=tmp_path / "a", seed=3)
    _, b = load_or_train_digit_classifier(16, cache_dir=tmp_path / "b", seed=3)
    _, c = load_or_train_digit_classifier(16, cache_dir=tmp_path / "c", seed=4)
    assert a["trained"] and b["trained"] and a["hash"] == b["hash"] != c["hash"]
    assert torch.get_num_threads() == 1  # the test's thread count is restored after training


def test_trains_inside_no_grad_and_inference_mode(tmp_path, one_epoch):
    """An evaluator builds the classifier on first use, possibly inside no_grad / inference_mode."""
    _, plain = load_or_train_digit_classifier(16, cache_dir=tmp_path / "a", seed=3)
    with torch.no_grad():
        _, no_grad = load_or_train_digit_classifier(16, cache_dir=tmp_path / "b", seed=3)
    with torch.inference_mode():
        model, inference = load_or_train_digit_classifier(16, cache_dir=tmp_path / "c", seed=3)
    assert plain["hash"] == no_grad["hash"] == inference["hash"]
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


@pytest.mark.slow
def test_full_training_is_reproduced_bit_for_bit(trained, tmp_path):
    _, info = trained
    _, again = load_or_train_digit_classifier(16, cache_dir=tmp_path, seed=0)
    assert again["trained"] and again["hash"] == info["hash"]


@pytest.fixture
def copied_cache(trained, tmp_path):
    """A copy of the cache folder, and the path of the classifier file in it."""
    _, info = trained
    dest = tmp_path / "cache"
    shutil.copytree(os.path.dirname(os.path.dirname(info["path"])), dest)
    return dest, dest / "digit_classifier" / os.path.basename(info["path"])


def test_tampered_weights_are_refused(copied_cache, monkeypatch):
    cache_dir, path = copied_cache
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["fc.weight"][0, 0] += 1.0
    torch.save(payload, path)
    monkeypatch.setattr(dc, "train_digit_classifier", None)  # never retrains over it
    with pytest.raises(ConfigError) as err:
        load_or_train_digit_classifier(16, cache_dir=cache_dir, seed=0)
    text = _one_line(err)
    assert str(path) in text and "hash" in text and "delete it" in text


def test_foreign_key_is_refused_naming_the_field(copied_cache):
    cache_dir, path = copied_cache
    payload = torch.load(path, weights_only=True)
    payload["key"]["seed"] = 5
    torch.save(payload, path)
    with pytest.raises(ConfigError) as err:
        load_or_train_digit_classifier(16, cache_dir=cache_dir, seed=0)
    text = _one_line(err)
    assert str(path) in text and "seed: stored 5, wanted 0" in text


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_corrupt_or_unsafe_file_is_refused(copied_cache, tmp_path):
    cache_dir, path = copied_cache
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ConfigError) as err:
        load_or_train_digit_classifier(16, cache_dir=cache_dir, seed=0)
    assert str(path) in _one_line(err) and "not a torch file" in str(err.value)
    marker = tmp_path / "ran"
    torch.save({"format": dc.CLASSIFIER_FORMAT, "key": _RunsCode(str(marker))}, path)
    with pytest.raises(ConfigError) as err:
        load_or_train_digit_classifier(16, cache_dir=cache_dir, seed=0)
    assert "arbitrary Python objects" in _one_line(err) and not marker.exists()


def test_key_names_what_the_weights_depend_on():
    data = digit_data("sklearn", 16)
    key = classifier_key("sklearn", 16, 0, data_fingerprint(data))
    assert {"data", "size", "seed", "version", "architecture", "training", "data_fingerprint"} <= set(key)
    changed = dict(data, x_train=data["x_train"].clone())
    changed["x_train"][0, 0, 0, 0] += 0.5
    assert data_fingerprint(changed) != data_fingerprint(data)


def test_bad_arguments_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="image size must be one of"):
        load_or_train_digit_classifier(12, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown digit classifier data 'emnist'"):
        load_or_train_digit_classifier(16, data="emnist", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="needs mnist_root"):
        load_or_train_digit_classifier(16, data="mnist", cache_dir=tmp_path)
    with pytest.raises(MissingDataError) as err:
        load_or_train_digit_classifier(16, data="mnist", mnist_root=tmp_path / "nothing", cache_dir=tmp_path)
    assert str(tmp_path / "nothing" / "MNIST" / "raw") in _one_line(err) and "never downloads" in str(
        err.value
    )
    assert not (tmp_path / "digit_classifier").exists()


def _write_idx(path, array: torch.Tensor, magic: int) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">" + "i" * (1 + array.dim()), magic, *array.shape))
        f.write(array.to(torch.uint8).numpy().tobytes())


def test_mnist_from_local_files(tmp_path, monkeypatch):
    """torchvision's MNIST (download=False) read from idx files written here (scikit-learn digits
    at 28×28), resized to the data's size; one epoch."""
    monkeypatch.setitem(SETTINGS, "mnist", {**SETTINGS["mnist"], "epochs": 1})
    x, y = digit_images(28)
    u = ((x[:, 0] + 1) * 127.5).round().to(torch.uint8)
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte", u[:1500], 2051)
    _write_idx(raw / "train-labels-idx1-ubyte", y[:1500], 2049)
    _write_idx(raw / "t10k-images-idx3-ubyte", u[1500:], 2051)
    _write_idx(raw / "t10k-labels-idx1-ubyte", y[1500:], 2049)
    _model, info = load_or_train_digit_classifier(
        16, data="mnist", mnist_root=tmp_path / "mnist", cache_dir=tmp_path
    )
    assert (info["n_train"], info["n_test"], info["data"]) == (1500, 297, "mnist")
    assert (
        info["trained"] and "digit_classifier-mnist-16px" in info["path"] and 0.0 <= info["accuracy"] <= 1.0
    )
    data = digit_data("mnist", 16, tmp_path / "mnist")
    assert (
        data["x_train"].shape == (1500, 1, 16, 16)
        and data["x_train"].min() >= -1
        and data["x_train"].max() <= 1
    )


def test_random_shift_moves_whole_images():
    """Each image moves by its own offset within ±p; pixels shifted in are background."""
    x = torch.full((64, 1, 8, 8), -1.0)
    x[:, 0, 4, 4] = 1.0  # one bright pixel
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    pos = (out[:, 0] == 1.0).flatten(1).float().argmax(1)
    rows, cols = pos // 8, pos % 8
    assert ((rows - 4).abs() <= 2).all() and ((cols - 4).abs() <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # offsets differ between images
    assert ((out == 1.0).sum((1, 2, 3)) == 1).all() and ((out == -1.0).sum((1, 2, 3)) == 63).all()


# --------------------------------------------------------------------------------------------------
# DigitClassifierFeatures
# --------------------------------------------------------------------------------------------------


def test_stacked_digits_classified_channel_by_channel(trained, cache):
    """Three held-out digits stacked as channels: each channel is labelled as its digit (as well
    as the classifier labels single digits) and exactly as that digit alone; features are the
    per-channel features concatenated; permuting the channels permutes the labels."""
    model, info = trained
    net = DigitClassifierFeatures(size=16, channels=3, cache_dir=cache)
    assert net.weights_hash == info["hash"] and net.dim == 3 * 64
    x, y = digit_images(16)
    _, test = digit_split(len(x), held_out=300, seed=0)
    idx = test.view(3, 100).T  # (100, 3): three different held-out digits per sample
    stacked = x[idx].squeeze(2)  # (100, 3, 16, 16)
    labels = y[idx]  # (100, 3)

    digits = net.classify(stacked)
    assert digits.shape == (100, 3) and digits.dtype == torch.int64
    assert (digits == labels).float().mean() >= 0.97
    with torch.no_grad():
        alone = model(x[idx.flatten()]).argmax(1).view(100, 3)
        alone_features = model.features(x[idx.flatten()]).view(100, 3 * 64)
    assert torch.equal(digits, alone)
    feats, logits = net.features_and_logits(stacked)
    torch.testing.assert_close(feats, alone_features)
    assert logits.shape == (100, 3, 10) and feats.dtype == torch.float32
    assert torch.equal(net.classify(stacked[:, [2, 0, 1]]), digits[:, [2, 0, 1]])

    described = net.describe()
    assert described["distance_name"] == "FD on digit-classifier features"
    assert described["classifier"]["accuracy"] == info["accuracy"] and described["dim"] == 192
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\)"):
        net(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="16, 16"):
        net(torch.zeros(2, 3, 32, 32))
