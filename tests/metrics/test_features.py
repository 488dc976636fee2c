"""Feature nets: Inception-v3 against torchmetrics' own extractor, VGG16 fc2 against torchvision by
hand, the weights checks (missing, foreign, unsafe files) and the protocol / class-path loading.

Weights are random, of the right architecture, written by the tests into tmp folders."""

import hashlib
import json
import os

import pytest
import torch
import torchvision
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

from benchmarks.eval_bench import random_inception_state, random_vgg16_state
from gan_lab.errors import ConfigError
from gan_lab.metrics.features import (
    FEATURE_NETS,
    INCEPTION_FILE,
    INCEPTION_URL,
    FeatureNet,
    InceptionV3Features,
    VGG16FcFeatures,
    load_feature_net,
    quantize_uint8,
)
from gan_lab.regularizers.image import IMAGENET_MEAN, IMAGENET_STD
from gan_lab.weights import VGG16_FILE, MissingWeightsError


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------------------------------
# Inception-v3
# --------------------------------------------------------------------------------------------------


def _random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's Inception-v3 (no aux logits) with fc -> 1008: the names of torch-fidelity's
    graph, random (``benchmarks.eval_bench.random_inception_state``)."""
    return random_inception_state(seed)


@pytest.fixture(scope="module")
def inception_state():
    return _random_inception_state()


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory, inception_state):
    path = tmp_path_factory.mktemp("inception") / INCEPTION_FILE
    torch.save(inception_state, path)
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def inception(inception_file):
    return InceptionV3Features(weights=inception_file)


def _uint8_images(seed: int, shape) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_quantisation_inverts_the_uint8_map():
    """u / 127.5 − 1 is quantised back to u exactly; values outside [-1, 1] clamp."""
    u = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(quantize_uint8(u.float() / 127.5 - 1.0), u)
    assert quantize_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_inception_equals_torchmetrics_fid_extractor(inception, inception_file, inception_state):
    """Our features on [-1, 1] images equal torchmetrics FrechetInceptionDistance's own extractor
    (NoTrainInceptionV3, antialias=False, same file) on the uint8 images; our logits equal its
    'logits_unbiased' extractor and pool3 · fcᵀ by hand. A non-square size exercises the resize."""
    u = _uint8_images(0, (2, 3, 37, 23))
    x = u.float() / 127.5 - 1.0
    feats, logits = inception.features_and_logits(x)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert feats.dtype == logits.dtype == torch.float32
    assert feats.std() > 1e-3  # the random graph is alive, not all zeros

    fid = FrechetInceptionDistance(
        feature=2048, antialias=False, feature_extractor_weights_path=str(inception_file)
    )
    torch.testing.assert_close(feats, fid.inception(u), rtol=1e-5, atol=1e-6)
    is_net = NoTrainInceptionV3(
        "inception-v3-compat", ["logits_unbiased"], str(inception_file), antialias=False
    )
    torch.testing.assert_close(logits, is_net(u), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, feats @ inception_state["fc.weight"].T, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(inception(x), feats, rtol=0, atol=0)

    antialiased = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(inception_file), antialias=True)
    assert not torch.allclose(antialiased(u), feats, atol=1e-4)  # the resize matters: it is not that one


def test_inception_one_channel_is_repeated(inception):
    x = _uint8_images(1, (1, 1, 16, 16)).float() / 127.5 - 1.0
    torch.testing.assert_close(inception(x), inception(x.expand(-1, 3, -1, -1)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="C in"):
        inception(torch.zeros(1, 2, 16, 16))


def test_inception_frozen_and_described(inception, inception_file):
    assert all(not p.requires_grad for p in inception.parameters())
    inception.train()
    assert not any(m.training for m in inception.modules())
    with open(inception_file, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    info = json.loads(json.dumps(inception.describe()))
    assert info["name"] == "inception_v3" and info["dim"] == 2048 and info["distance_name"] == "FID"
    assert info["weights_hash"] == inception.weights_hash == digest
    assert info["weights_path"] == str(inception_file)
    assert "299" in info["input"] and "no antialias" in info["input"] and "uint8" in info["input"]


def test_inception_default_path_is_torch_hub_cache(tmp_path, monkeypatch, inception_file):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case something called torch.hub.set_dir
    expected = tmp_path / "hub" / "checkpoints" / INCEPTION_FILE
    with pytest.raises(MissingWeightsError) as err:
        InceptionV3Features()
    text = _one_line(err)
    assert str(expected) in text and INCEPTION_URL in text and "weights=PATH" in text
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ConfigError)
    expected.parent.mkdir(parents=True)
    os.symlink(inception_file, expected)
    assert InceptionV3Features().weights_path == str(expected)


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda s: s.pop("Mixed_7c.branch_pool.conv.weight"), "lacks Mixed_7c.branch_pool.conv.weight"),
        (lambda s: s.__setitem__("fc.weight", torch.zeros(1000, 2048)), "fc.weight has shape (1000, 2048)"),
        (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "it has extra.weight"),
    ],
)
def test_inception_file_with_wrong_tensors_is_refused(tmp_path, inception_state, change, named):
    state = dict(inception_state)
    change(state)
    path = tmp_path / "foreign.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError) as err:
        InceptionV3Features(weights=path)
    text = _one_line(err)
    assert str(path) in text and named in text


def test_inception_num_batches_tracked_may_be_absent(tmp_path, inception_state):
    """Older state dicts lack BatchNorm's num_batches_tracked; torch-fidelity loads them."""
    state = {k: v for k, v in inception_state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "no_counters.pth"
    torch.save(state, path)
    assert InceptionV3Features(weights=path).dim == 2048


class _RunsCode:
    """Unpickling this runs ``open(marker, "w")``: what weights_only=False would do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unsafe_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": _RunsCode(str(marker))}, path)
    with pytest.raises(ConfigError) as err:
        InceptionV3Features(weights=path)
    text = _one_line(err)
    assert str(path) in text and "arbitrary Python objects" in text
    assert not marker.exists()
    path.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="not a torch weights file"):
        InceptionV3Features(weights=path)


# --------------------------------------------------------------------------------------------------
# VGG16 fc2
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_state():
    """A full torchvision VGG16 state dict (features.* and classifier.*), random, seeded."""
    return random_vgg16_state(0)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory, vgg_state):
    path = tmp_path_factory.mktemp("vgg") / VGG16_FILE
    torch.save(vgg_state, path)
    yield path
    path.unlink()  # 553 MB: not left behind in pytest's kept tmp folders


def test_vgg16_fc2_equals_torchvision_by_hand(vgg_file, vgg_state):
    """fc2 after ReLU = torchvision vgg16's features → avgpool → classifier[:5], on images mapped
    to [0, 1], ImageNet-normalised and resized bilinearly (no antialias) to 224 by hand; one
    channel is repeated to three. One image each: a VGG16 forward at 224 is ~15 GFLOPs."""
    net = VGG16FcFeatures(weights=vgg_file)
    with torch.device("meta"):
        ref = torchvision.models.vgg16(weights=None)
    ref.load_state_dict(vgg_state, assign=True)
    ref.eval()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def by_hand(x):
        h = torch.nn.functional.interpolate(((x + 1) / 2 - mean) / std, size=(224, 224), mode="bilinear")
        with torch.no_grad():
            return ref.classifier[:5](torch.flatten(ref.avgpool(ref.features(h)), 1))

    gen = torch.Generator().manual_seed(0)
    x3, x1 = torch.rand(1, 3, 40, 30, generator=gen) * 2 - 1, torch.rand(1, 1, 32, 32, generator=gen) * 2 - 1
    out = net(x3)
    assert out.shape == (1, 4096) and out.dtype == torch.float32 and (out >= 0).all() and out.max() > 0
    torch.testing.assert_close(out, by_hand(x3), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(net(x1), by_hand(x1.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)

    info = net.describe()
    assert info["dim"] == 4096 and info["name"] == "vgg16_fc" and "224" in info["input"]
    assert "no antialias" in info["input"] and "FID" not in info["distance_name"]
    assert all(not p.requires_grad for p in net.parameters())


def test_vgg16_missing_file_is_one_line(tmp_path):
    path = tmp_path / "nothing.pth"
    with pytest.raises(MissingWeightsError) as err:
        VGG16FcFeatures(weights=path)
    assert str(path) in _one_line(err)


def test_vgg16_features_only_file_is_refused(tmp_path, vgg_state):
    """The perceptual loss needs only features.*; fc2 needs classifier.* too."""
    path = tmp_path / "features_only.pth"
    torch.save({k: v for k, v in vgg_state.items() if k.startswith("features.")}, path)
    with pytest.raises(ConfigError) as err:
        VGG16FcFeatures(weights=path)
    assert str(path) in _one_line(err) and "classifier" in str(err.value)


# --------------------------------------------------------------------------------------------------
# The protocol and load_feature_net
# --------------------------------------------------------------------------------------------------

USER_MODULE = """
import torch
from gan_lab.metrics.features import FeatureNet


class MeanColour(FeatureNet):
    name = "mean_colour"

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale, self.dim, self.weights_hash = scale, 3, "none"
        self.freeze()

    def input_handling(self):
        return "channel means"

    def forward(self, x):
        return self.scale * x.mean((2, 3))


class NoProtocol(torch.nn.Module):
    pass
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "h2_user_feats.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "h2_user_feats"


def test_load_user_class_by_path(user_module):
    net = load_feature_net({"class_path": f"{user_module}.MeanColour", "init_args": {"scale": 2.0}})
    assert isinstance(net, FeatureNet) and net.dim == 3 and net.describe()["input"] == "channel means"
    torch.testing.assert_close(net(torch.ones(1, 3, 2, 2)), torch.full((1, 3), 2.0))
    assert load_feature_net(f"{user_module}.MeanColour", scale=3.0).scale == 3.0
    assert load_feature_net(net) is net


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_module_h2.Net", "no module of that name"),
        ("gan_lab.metrics.features.Nothing", "has no 'Nothing'"),
        ("gan_lab.metrics.features.quantize_uint8", "not an nn.Module subclass"),
        ("h2_user_feats.NoProtocol", "lacks name, dim, weights_hash, describe"),
        ({"class_path": "h2_user_feats.MeanColour", "init_args": {"colour": 1}}, "unexpected keyword"),
        ({"class": "h2_user_feats.MeanColour"}, "a feature net spec is"),
        (
            "hinge",
            "unknown feature net 'hinge'; valid feature nets: digit_classifier, inception_v3, vgg16_fc",
        ),
        (3, "a feature net spec is a name"),
    ],
)
def test_bad_spec_is_one_config_error_line(user_module, spec, message):
    with pytest.raises(ConfigError) as err:
        load_feature_net(spec)
    assert message in _one_line(err)


def test_registry_by_name(inception_file):
    assert FEATURE_NETS["inception_v3"] is InceptionV3Features
    net = load_feature_net("inception_v3", weights=str(inception_file))
    assert isinstance(net, InceptionV3Features) and net.weights_hash
