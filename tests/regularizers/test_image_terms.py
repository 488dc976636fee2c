"""Image terms: pixel, perceptual (VGG16), style (Gram), Sobel edge.

VGG16 weights are made here, never downloaded: a torchvision ``vgg16`` built on the meta device
whose ``features`` are materialised and initialised as torchvision does (Kaiming normal, fan_out)
under a fixed seed, with small random biases so that the bias loading is checked too. Only the
``features.*`` entries are saved (that is all :class:`VGG16Features` reads, and the full state
dict would be 528 MB); a random init of the whole vgg16 would take seconds for a classifier the
terms never use.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.regularizers import REGULARIZERS, PenaltyInputs, get_regularizer
from gan_lab.regularizers.image import (
    VGG16_LAYERS,
    PerceptualLoss,
    PixelLoss,
    SobelEdgeLoss,
    StyleLoss,
    VGG16Features,
    gram_matrix,
    perceptual_loss,
    pixel_loss,
    sobel_edge_loss,
    style_loss,
)
from gan_lab.weights import VGG16_FILE, MissingWeightsError, default_vgg16_path

SHAPE = (2, 3, 32, 32)


def _random_vgg16_features_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """``features.*`` of a torchvision vgg16, initialised like torchvision does, seeded."""
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None)
    features = vgg.features.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            with torch.no_grad():
                m.bias.normal_(0.0, 0.01, generator=gen)
    return {f"features.{k}": v.detach().clone() for k, v in features.state_dict().items()}


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    return _random_vgg16_features_state()


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory, vgg_state):
    """A TORCH_HOME whose hub cache holds the test's VGG16 weights."""
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(vgg_state, home / "hub" / "checkpoints" / VGG16_FILE)
    return home


@pytest.fixture
def vgg_home(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case something called torch.hub.set_dir
    return torch_home


def _images(seed: int, shape=SHAPE, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1  # in [-1, 1]


def _inputs(fake, target=None, real=None) -> PenaltyInputs:
    return PenaltyInputs(
        D=lambda x: x, real=fake.detach() if real is None else real, fake=fake, target=target
    )


def _reference_features(state, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's vgg16().features with ``state``, ImageNet normalisation done by hand."""
    with torch.device("meta"):
        ref = torchvision.models.vgg16(weights=None)
    features = ref.features.to_empty(device="cpu")
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
    features.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = ((x + 1) / 2 - mean) / std
    with torch.no_grad():
        return {name: features[: i + 1](h) for name, i in VGG16_LAYERS.items()}


def _all_terms():
    return [
        PixelLoss(),
        PixelLoss(p=2),
        SobelEdgeLoss(),
        PerceptualLoss(),
        StyleLoss(),
        StyleLoss(paired=False),
    ]


# --- registry, construction -------------------------------------------------------------------


def test_registered_by_name_without_loading_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: nothing to load
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    for name, cls in [
        ("pixel", PixelLoss),
        ("perceptual", PerceptualLoss),
        ("style", StyleLoss),
        ("sobel_edge", SobelEdgeLoss),
    ]:
        assert REGULARIZERS[name] is cls
        reg = get_regularizer(name)
        assert isinstance(reg, cls) and reg.player == "G" and reg.needs_target
    assert StyleLoss(paired=False).needs_target is False


def test_bad_config_raises():
    with pytest.raises(ConfigError, match="p must be 1"):
        PixelLoss(p=3)
    with pytest.raises(ConfigError, match="unknown VGG16 layer 'relu9_9'"):
        PerceptualLoss(layers=("relu9_9",))
    with pytest.raises(ConfigError, match="one layer weight per layer"):
        PerceptualLoss(layers=("relu1_2", "relu2_2"), layer_weights=[1.0])
    with pytest.raises(ConfigError, match=">= 0"):
        StyleLoss(layers=("relu1_2",), layer_weights=[-1.0])
    with pytest.raises(ConfigError, match="must not be empty"):
        StyleLoss(layers=())
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        pixel_loss(torch.zeros(1, 1), torch.zeros(1, 1), p=3)
    with pytest.raises(ValueError, match="same shape"):
        sobel_edge_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        sobel_edge_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="needs a paired target"):
        PixelLoss().penalty(_inputs(torch.zeros(SHAPE)))


# --- known values by hand, references -------------------------------------------------------------


@pytest.mark.parametrize("p, reference", [(1, F.l1_loss), (2, F.mse_loss)])
def test_pixel_matches_torch(p, reference):
    out, target = _images(0), _images(1)
    expected = reference(out, target, reduction="none").flatten(1).mean(1)
    got = pixel_loss(out, target, p=p)
    assert got.shape == (SHAPE[0],)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(PixelLoss(p=p).penalty(_inputs(out, target)), expected)


def test_gram_normalised_by_hand():
    feats = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (B=1, C=2, H=1, W=2)
    # F Fᵀ = [[1·1 + 2·2, 1·3 + 2·4], [3·1 + 4·2, 3·3 + 4·4]] = [[5, 11], [11, 25]]; C·H·W = 4
    expected = torch.tensor([[[1.25, 2.75], [2.75, 6.25]]])
    torch.testing.assert_close(gram_matrix(feats), expected)


def test_gram_in_float32_for_half_inputs():
    feats = torch.full((1, 2, 64, 64), 8.0, dtype=torch.float16)  # sums of 64·64 products of 64: 262144
    g = gram_matrix(feats)
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, torch.full((1, 2, 2), 32.0))  # 4096 · 64 / (2 · 4096)


def test_sobel_step_edge_by_hand():
    # kornia.filters.sobel, normalized: g_x correlates with [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] / 8 and
    # g_y with its transpose, on a replicate-padded image; magnitude sqrt(g_x² + g_y² + eps), eps = 1e-6.
    eps = 1e-6
    out = torch.zeros(2, 2, 4, 6, dtype=torch.float64)
    # sample 0, channel 0: vertical step from -1 (columns 0-2) to +1 (columns 3-5), height a = 2.
    # Columns 2 and 3 see the step in their right/left kernel column: g_x = (1 + 2 + 1)/8 · 2 = 1,
    # g_y = 0 (rows are constant); every other column is flat, and so is the replicated border.
    out[0, 0, :, :3], out[0, 0, :, 3:] = -1.0, 1.0
    # channel 1 is constant 0.7: with replicate padding no edge at the border (zero padding would
    # answer 0.7 · 3/8 at every border pixel).
    out[0, 1] = 0.7
    # sample 1, channel 0: horizontal step from 0 (rows 0-1) to 0.5 (rows 2-3): g_y = 4/8 · 0.5 = 0.25
    # on rows 1 and 2, all 6 columns; channel 1 stays 0.
    out[1, 0, 2:] = 0.5
    target = torch.full_like(out, -1.0)  # flat: sqrt(eps) everywhere
    flat = math.sqrt(eps)
    n = 2 * 4 * 6  # C·H·W
    expected = torch.tensor(
        [
            (2 * 4) * (math.sqrt(1.0**2 + eps) - flat) / n,  # 2 columns x 4 rows
            (2 * 6) * (math.sqrt(0.25**2 + eps) - flat) / n,  # 2 rows x 6 columns
        ],
        dtype=torch.float64,
    )
    got = sobel_edge_loss(out, target)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(sobel_edge_loss(target, out), expected, rtol=1e-12, atol=1e-15)  # symmetric
    torch.testing.assert_close(SobelEdgeLoss().penalty(_inputs(out, target)), expected)


def test_sobel_any_channel_count():
    out, target = _images(0, (2, 5, 8, 8)), _images(1, (2, 5, 8, 8))
    assert sobel_edge_loss(out, target).shape == (2,)


def test_gradcheck_float64():
    out = _images(0, (2, 2, 5, 5), torch.float64).requires_grad_(True)
    target = _images(1, (2, 2, 5, 5), torch.float64)
    assert torch.autograd.gradcheck(lambda o: pixel_loss(o, target, p=2), (out,))
    assert torch.autograd.gradcheck(lambda o: sobel_edge_loss(o, target), (out,))
    assert torch.autograd.gradcheck(gram_matrix, (out,))
    feats_t = {"a": target, "b": target[:, :1]}
    assert torch.autograd.gradcheck(
        lambda o: style_loss({"a": o, "b": o[:, :1]}, feats_t, paired=False), (out,)
    )
    assert torch.autograd.gradcheck(lambda o: perceptual_loss({"a": o}, {"a": target}), (out,))


def test_style_functional_paired_and_unpaired_by_hand():
    o = {"x": torch.tensor([[[[1.0, 1.0]]], [[[2.0, 0.0]]]])}  # (B=2, C=1, 1, 2): Grams 1, 2
    t = {"x": torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]])}  # Grams 0, 1
    torch.testing.assert_close(style_loss(o, t), torch.tensor([1.0, 1.0]))  # (1-0)², (2-1)²
    torch.testing.assert_close(style_loss(o, t, paired=False), torch.tensor([1.0, 1.0]))  # (1.5-0.5)²
    t_unpaired = {"x": torch.ones(3, 1, 1, 2)}  # another batch size; batch-mean Gram 1
    torch.testing.assert_close(style_loss(o, t_unpaired, paired=False), torch.tensor([0.25, 0.25]))
    two = {"x": o["x"], "y": o["x"]}
    got = style_loss(two, {"x": t["x"], "y": t["x"]}, layer_weights={"x": 1.0, "y": 3.0})
    torch.testing.assert_close(got, torch.tensor([4.0, 4.0]))  # sum over layers, weighted


def test_perceptual_functional_matches_definition():
    gen = torch.Generator().manual_seed(0)
    o = {n: torch.randn(2, c, s, s, generator=gen) for n, c, s in [("a", 4, 8), ("b", 8, 4)]}
    t = {n: torch.randn_like(v) for n, v in o.items()}
    expected = 0.5 * ((o["a"] - t["a"]) ** 2).mean((1, 2, 3)) + 2.0 * ((o["b"] - t["b"]) ** 2).mean((1, 2, 3))
    torch.testing.assert_close(perceptual_loss(o, t, {"a": 0.5, "b": 2.0}), expected)


# --- every term: invariance, sign, shape, module == function ---------------------------------


@pytest.mark.parametrize("index", range(6))
def test_zero_for_identical_positive_otherwise(vgg_home, index):
    reg = _all_terms()[index]
    out, other = _images(0), _images(1)
    same = reg.penalty(_inputs(out, out.clone(), real=out.clone()))
    diff = reg.penalty(_inputs(out, other, real=other))
    assert same.shape == diff.shape == (SHAPE[0],)
    torch.testing.assert_close(same, torch.zeros(SHAPE[0]), atol=1e-7, rtol=0)
    assert (diff > 0).all()


def test_modules_equal_functionals(vgg_home):
    out, target, real = _images(0), _images(1), _images(2, (3, 3, 32, 32))
    inputs = PenaltyInputs(D=lambda x: x, real=real, fake=out, target=target)
    layers = ("relu1_2", "relu3_3")
    vgg = VGG16Features(layers)
    with torch.no_grad():
        fo, ft, fr = vgg(out), vgg(target), vgg(real)
    w = {"relu1_2": 0.5, "relu3_3": 2.0}

    perceptual = PerceptualLoss(layers=layers, layer_weights=[0.5, 2.0])
    torch.testing.assert_close(perceptual.penalty(inputs), perceptual_loss(fo, ft, w))
    style = StyleLoss(layers=layers, layer_weights=w)
    torch.testing.assert_close(style.penalty(inputs), style_loss(fo, ft, True, w))
    unpaired = StyleLoss(layers=layers, layer_weights=w, paired=False)
    got = unpaired.penalty(inputs)
    torch.testing.assert_close(got, style_loss(fo, fr, False, w))
    assert torch.equal(got, got[:1].expand(2))  # one batch statistic, broadcast per sample
    torch.testing.assert_close(SobelEdgeLoss().penalty(inputs), sobel_edge_loss(out, target))
    torch.testing.assert_close(PixelLoss(p=2).penalty(inputs), pixel_loss(out, target, p=2))


def test_ensemble_batch_is_folded():
    out, target = _images(0, (2, 3, 1, 8, 8)), _images(1, (2, 3, 1, 8, 8))  # (E, B, C, H, W)
    inputs = PenaltyInputs(D=lambda x: x, real=out, fake=out, batch_ndim=2, target=target)
    got = SobelEdgeLoss().penalty(inputs)
    assert got.shape == (2, 3)
    torch.testing.assert_close(got, sobel_edge_loss(out.flatten(0, 1), target.flatten(0, 1)).view(2, 3))
    assert PixelLoss().penalty(inputs).shape == (2, 3)
    with pytest.raises(ValueError, match="batch_ndim=1"):
        StyleLoss(paired=False).penalty(inputs)


# --- VGG16: frozen, unregistered, lazily loaded, matches torchvision ----------------------------


@pytest.mark.parametrize("cls", [PerceptualLoss, StyleLoss])
def test_gradients_reach_output_never_vgg(vgg_home, cls):
    reg = cls(layers=("relu1_2", "relu2_2"))
    fake = _images(0).requires_grad_(True)
    target = _images(1).requires_grad_(True)
    reg.penalty(_inputs(fake, target)).sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert target.grad is None  # target features under no_grad
    vgg = reg.load()
    params = list(vgg.parameters())
    assert params and all(not p.requires_grad and p.grad is None for p in params)


def test_vgg_unregistered_and_stays_eval(vgg_home):
    parent = nn.Module()
    parent.net = nn.Linear(2, 2)
    parent.perceptual = PerceptualLoss(layers=("relu1_2",))
    parent.perceptual.check()  # load now
    vgg = parent.perceptual.load()
    vgg_params = {id(p) for p in vgg.parameters()}
    assert vgg_params and not vgg_params & {id(p) for p in parent.parameters()}
    assert set(parent.state_dict()) == {"net.weight", "net.bias"}
    assert list(parent.perceptual.parameters()) == [] and parent.perceptual.state_dict() == {}
    parent.train()
    assert parent.perceptual.training and not vgg.training
    assert not any(m.training for m in vgg.modules())
    # registered directly as a child, its own train() still keeps it in eval mode
    holder = nn.Sequential(vgg)
    holder.train()
    assert not any(m.training for m in vgg.modules())


def test_vgg_dropped_by_copy_and_reloaded(vgg_home):
    reg = StyleLoss(layers=("relu1_2",))
    reg.check()
    clone = copy.deepcopy(reg)
    assert clone._vgg.module is None  # not carried along; reloaded from its file on use
    out, target = _images(0), _images(1)
    torch.testing.assert_close(clone.penalty(_inputs(out, target)), reg.penalty(_inputs(out, target)))


def test_loads_from_torch_home_and_matches_torchvision(vgg_home, vgg_state):
    assert default_vgg16_path() == vgg_home / "hub" / "checkpoints" / VGG16_FILE
    vgg = VGG16Features(tuple(VGG16_LAYERS))
    assert vgg.path == default_vgg16_path()
    x = _images(0)
    with torch.no_grad():
        got = vgg(x)
    expected = _reference_features(vgg_state, x)
    assert list(got) == list(VGG16_LAYERS)
    for name in VGG16_LAYERS:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5)
    assert got["relu4_3"].shape == (2, 512, 4, 4)
    kept = VGG16Features(("relu2_2",)).features  # the extractor keeps vgg16's layers up to its node
    assert len(list(kept.features.children())) == VGG16_LAYERS["relu2_2"] + 1  # truncated
    assert not hasattr(kept, "classifier")


#: the ReLU indices in ``vgg16().features`` of the hand-written layer walk VGG16Features used before
#: torchvision's feature extraction (written out here, not read from VGG16_LAYERS)
HAND_WALK_RELUS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}


def _hand_walk_features(state, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    """The former ``VGG16Features.forward``: ``features`` truncated after the deepest layer, run
    layer by layer, the requested ReLUs' outputs kept, in ``layers`` order."""
    last = max(HAND_WALK_RELUS[name] for name in layers)
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features[: last + 1]
    features = features.to_empty(device="cpu")
    features.load_state_dict(
        {k.removeprefix("features."): v for k, v in state.items() if int(k.split(".")[1]) <= last}
    )
    features.eval()
    index_to_name = {HAND_WALK_RELUS[name]: name for name in layers}
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = ((x + 1.0) / 2.0 - mean) / std
    out = {}
    with torch.no_grad():
        for i, layer in enumerate(features):
            h = layer(h)
            if i in index_to_name:
                out[index_to_name[i]] = h
    return {name: out[name] for name in layers}


@pytest.mark.parametrize(
    "layers",
    [*((name,) for name in HAND_WALK_RELUS), ("relu4_3", "relu1_2", "relu3_3"), tuple(HAND_WALK_RELUS)],
)
def test_feature_extractor_equals_the_hand_walk(vgg_home, vgg_state, layers):
    vgg = VGG16Features(layers)
    x = _images(4)
    with torch.no_grad():
        got = vgg(x)
    expected = _hand_walk_features(vgg_state, x, layers)
    assert list(got) == list(layers)  # the order asked for, not the net's
    for name in layers:
        assert torch.equal(got[name], expected[name]), name  # the same modules on the same input


def test_explicit_path(tmp_path, monkeypatch, torch_home, vgg_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    path = tmp_path / "my_vgg.pth"
    path.symlink_to(torch_home / "hub" / "checkpoints" / VGG16_FILE)
    reg = PerceptualLoss(layers=("relu2_2",), weights=str(path))
    vgg = reg.load()
    assert vgg.path == path
    x = _images(3)
    with torch.no_grad():
        torch.testing.assert_close(vgg(x)["relu2_2"], _reference_features(vgg_state, x)["relu2_2"])


def test_missing_file_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    expected_path = tmp_path / "hub" / "checkpoints" / VGG16_FILE
    reg = get_regularizer("perceptual")  # building it needs no file
    for fail in (reg.check, lambda: reg.penalty(_inputs(_images(0), _images(1))), VGG16Features):
        with pytest.raises(MissingWeightsError) as info:
            fail()
        message = str(info.value)
        assert "\n" not in message
        assert str(expected_path) in message
        assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
        assert "weights=PATH" in message
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ConfigError)
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        StyleLoss(weights=str(missing)).check()


def test_one_channel_is_repeated(vgg_home):
    vgg = VGG16Features(("relu1_2", "relu2_2"))
    gray = _images(0, (2, 1, 32, 32))
    with torch.no_grad():
        a, b = vgg(gray), vgg(gray.repeat(1, 3, 1, 1))
    for name in a:
        torch.testing.assert_close(a[name], b[name])
    with pytest.raises(ValueError, match="1 or 3 channels, got 4"):
        vgg(_images(0, (2, 4, 32, 32)))
    # a 1-channel term through the regularizer; the extractor follows the input's dtype
    reg = PerceptualLoss(layers=("relu1_2",))
    got = reg.penalty(_inputs(gray.double(), _images(1, (2, 1, 32, 32)).double()))
    assert got.dtype == torch.float64 and got.shape == (2,)
    assert next(reg.load().parameters()).dtype == torch.float64
