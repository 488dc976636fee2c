"""Feature networks of the image metrics (FID / KID / IS / precision-recall / density-coverage).

A feature net (:class:`FeatureNet`) maps images in ``[-1, 1]`` ``(B, C, H, W)``, as G produces
them, to features ``(B, dim)`` float32. It is frozen (no parameter takes a gradient, always in eval
mode), states what it is (``name``, ``dim``, ``weights_hash``: the first 16 hex digits of the SHA-256
of its weights file, and :meth:`~FeatureNet.describe`: the facts a report gives), and, when it also
classifies, offers ``features_and_logits(x)``. Nothing is ever downloaded: weights come from local
files, and a missing file is one line naming the path looked for and how to get it.

| name               | features                        | input handling                                        |
|--------------------|---------------------------------|-------------------------------------------------------|
| ``inception_v3``   | pool3, 2048 (+ 1008 logits, IS) | uint8 quantisation, TF1-compatible bilinear to 299    |
| ``vgg16_fc``       | fc2 after ReLU, 4096            | [0, 1], ImageNet mean/std, bilinear to 224 (no AA)    |
| ``digit_classifier`` | penultimate, 64 per channel  | each channel classified on its own, features joined  |

- :class:`InceptionV3Features`: torch-fidelity's Inception-v3 (``FeatureExtractorInceptionV3``),
  the graph of the FID paper's TensorFlow model (Heusel et al. 2017; Szegedy et al. 2016) that
  torchmetrics' ``FrechetInceptionDistance`` / ``InceptionScore`` also run (their
  ``NoTrainInceptionV3`` subclasses it; with ``antialias=False`` its forward is this one).
- :class:`VGG16FcFeatures`: torchvision's VGG16 up to fc2, the features on which StyleGAN2-ADA
  (Karras et al. 2020) computes improved precision/recall (Kynkäänniemi et al. 2019).
- :class:`DigitClassifierFeatures`: the lab's own digit classifier
  (:mod:`gan_lab.metrics.digit_classifier`); a Fréchet distance on its features is reported as
  "FD on digit-classifier features", never as FID.

:data:`FEATURE_NETS` finds them by name; :func:`load_feature_net` also builds a user's class
(``"pkg.mod.Class"`` with init args) that follows the protocol.

>>> sorted(FEATURE_NETS)
['digit_classifier', 'inception_v3', 'vgg16_fc']
>>> quantize_uint8(torch.tensor([-1.0, -0.999, 0.0, 1.0, 1.5])).tolist()
[0, 0, 128, 255, 255]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor

from gan_lab.checkpoints import state_dict_mismatch
from gan_lab.errors import ConfigError, check_choice
from gan_lab.metrics.digit_classifier import load_or_train_digit_classifier
from gan_lab.metrics.reference import file_hash
from gan_lab.nets.spec import import_module_class
from gan_lab.registry import Registry
from gan_lab.regularizers.image import IMAGENET_MEAN, IMAGENET_STD
from gan_lab.weights import (
    VGG16_FILE,
    MissingWeightsError,
    default_vgg16_path,
    load_vgg16_state,
    load_weights_file,
)

#: torch-fidelity's Inception-v3 weights (converted from the FID paper's TensorFlow graph)
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
INCEPTION_SIZE = 299
VGG16_SIZE = 224


# --------------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------------


class FeatureNet(nn.Module):
    """Base of the feature nets: frozen, always in eval mode, and self-describing.

    Subclasses set ``name`` and ``distance_name`` (class attributes), and ``dim``,
    ``weights_hash`` and ``weights_path`` in ``__init__``, build their layers, then call
    :meth:`freeze`; they implement ``forward(x) -> (B, dim)`` float32 for images ``x`` in ``[-1, 1]``
    ``(B, C, H, W)``, and ``features_and_logits(x) -> (features, logits)`` when they classify.
    """

    #: the registry name (reports and cache keys use it)
    name: str = ""
    #: how a report names the Fréchet distance on these features
    distance_name: str = "FD"
    #: feature dimension
    dim: int
    #: first 16 hex digits of the SHA-256 of the weights (file bytes, or the cached state)
    weights_hash: str
    #: where the weights came from
    weights_path: str | None = None

    def freeze(self) -> None:
        """No parameter takes a gradient, and eval mode for good."""
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FeatureNet:
        """Stay in eval mode whatever ``mode`` is (a frozen extractor)."""
        return super().train(False)

    def input_handling(self) -> str:
        """How images in ``[-1, 1]`` are turned into the net's input (one phrase; subclasses state it)."""
        return "not stated by the feature net"

    def describe(self) -> dict[str, Any]:
        """The JSON facts a report states about these features."""
        return {
            "name": self.name,
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            "dim": int(self.dim),
            "weights_hash": self.weights_hash,
            "weights_path": self.weights_path,
            "input": self.input_handling(),
            "distance_name": self.distance_name,
        }


#: feature nets by name; a new one is ``FEATURE_NETS.register(MyNet)`` (its ``name`` attribute)
FEATURE_NETS: Registry = Registry("feature net", base=FeatureNet)

_PROTOCOL = ("name", "dim", "weights_hash", "describe", "forward")


def check_feature_net(net: Any, what: str = "feature net") -> Any:
    """Return ``net`` if it follows the protocol (an ``nn.Module`` with a str ``name``, an int
    ``dim`` >= 1, a str ``weights_hash`` and ``describe()``), else one :class:`ConfigError` line."""
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{what} must be an nn.Module, got {type(net).__name__}")
    missing = [a for a in _PROTOCOL if not hasattr(net, a)]
    if missing:
        raise ConfigError(
            f"{what} {type(net).__qualname__} lacks {', '.join(missing)} (see gan_lab.metrics.features.FeatureNet)"
        )
    if not isinstance(net.name, str) or not net.name or not isinstance(net.weights_hash, str):
        raise ConfigError(f"{what} {type(net).__qualname__} needs a str name and a str weights_hash")
    if isinstance(net.dim, bool) or not isinstance(net.dim, int) or net.dim < 1:
        raise ConfigError(f"{what} {type(net).__qualname__}.dim must be an int >= 1, got {net.dim!r}")
    return net


def load_feature_net(spec: str | Mapping[str, Any] | nn.Module, **init_args: Any) -> nn.Module:
    """Build a feature net from a registry name, a class path, or ``{"class_path"/"name": ...,
    "init_args": {...}}``; an instance that follows the protocol is returned as it is.

    ``init_args`` (keywords) are added to the spec's.

    A class path is imported (the longest importable module prefix): pass one only from what the
    user gave (a config, the command line), never from what a file holds (a checkpoint, study.json,
    a cache); a name read from a file goes through :data:`FEATURE_NETS` alone. (The lab's own
    callers, the image evaluators and ``gan-lab metrics``, take it from their config / flags.)

    >>> load_feature_net("inception_v4")
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: unknown feature net 'inception_v4'; valid feature nets: digit_classifier, inception_v3, vgg16_fc
    >>> load_feature_net("gan_lab.metrics.features.NoSuchNet")
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: feature net class 'gan_lab.metrics.features.NoSuchNet' not found: 'gan_lab.metrics.features' has no 'NoSuchNet'

    Raises:
        ConfigError: unknown name, bad class path, arguments the class refuses, or a built object
            that does not follow the protocol (all one line, before any weights are read where
            the class checks its arguments first).
    """
    if isinstance(spec, nn.Module):
        if init_args:
            raise ConfigError("init args cannot be given with a feature net instance")
        return check_feature_net(spec)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"class_path", "name", "init_args"})
        target = spec.get("class_path", spec.get("name"))
        if unknown or not isinstance(target, str) or not isinstance(spec.get("init_args", {}), Mapping):
            raise ConfigError(
                "a feature net spec is a name, a class path, or {'class_path': 'pkg.mod.Class', 'init_args': "
                f"{{...}}}}, got keys {sorted(spec)}"
            )
        init_args = {**spec.get("init_args", {}), **init_args}
        spec = target
    if not isinstance(spec, str):
        raise ConfigError(f"a feature net spec is a name or a class path, got {type(spec).__name__}")
    if spec in FEATURE_NETS:
        cls = FEATURE_NETS[spec]
    elif "." in spec:
        cls = import_module_class(spec, "feature net class")
    else:
        check_choice("feature net", spec, FEATURE_NETS)
    try:
        net = cls(**init_args)
    except TypeError as e:
        raise ConfigError(f"cannot build feature net {spec}: {e}") from None
    return check_feature_net(net, f"feature net {spec}")


# --------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------


def _check_images(x: Tensor, what: str, channels: tuple[int, ...] = (1, 3)) -> None:
    if x.dim() != 4 or x.shape[1] not in channels:
        raise ValueError(
            f"{what} takes images (B, C, H, W) with C in {list(channels)}, got shape {tuple(x.shape)}"
        )


def quantize_uint8(x: Tensor) -> Tensor:
    """Images in ``[-1, 1]`` to ``uint8``: ``clamp(round((x + 1) · 127.5), 0, 255)``.

    What the FID reference implementations feed Inception: 8-bit images.
    """
    return ((x.detach().to(torch.float32) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _rgb(x: Tensor) -> Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _load_safely(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors (the file exists):
    :func:`~gan_lab.weights.load_weights_file`."""
    return load_weights_file(path, what)


# --------------------------------------------------------------------------------------------------
# Inception-v3 (torch-fidelity)
# --------------------------------------------------------------------------------------------------


def default_inception_path() -> Path:
    """torch-fidelity's cache file: ``torch.hub.get_dir()/checkpoints/weights-inception-2015-12-05-6726825d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def _inception_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in torch-fidelity's Inception-v3 state dict.

    torchvision's Inception-v3 without aux logits has the same BasicConv2d / Mixed_* names; the
    FID graph's fc has 1008 outputs (``tests/metrics/test_features.py`` checks the match by loading
    such a state dict into torch-fidelity's class, which loads strictly).
    """
    with torch.device("meta"):
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = nn.Linear(2048, 1008)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def check_inception_weights(path: Path) -> None:
    """Refuse (one line) a file that is missing, not weights-only loadable, or not the FID graph's
    state dict (missing, unexpected or misshapen tensors) before torch-fidelity reads it (with
    ``weights_only=False``)."""
    if not path.is_file():
        raise MissingWeightsError(
            f"Inception-v3 weights not found at {path}: download {INCEPTION_URL} into {path.parent} "
            "(or point TORCH_HOME at a cache that has it), or pass weights=PATH"
        )
    state = _load_safely(path, "Inception-v3 weights")
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"refused Inception-v3 weights {path}: not a state dict of tensors")
    shapes = _inception_shapes()
    required = {k for k in shapes if not k.endswith("num_batches_tracked")}
    what = state_dict_mismatch(state, shapes, required, here="the graph")
    if what is not None:
        raise ConfigError(
            f"refused {path}: not torch-fidelity's Inception-v3 state dict ({what}); get {INCEPTION_URL}"
        )


class InceptionV3Features(FeatureNet):
    """Inception-v3 pool3 features (2048) and unbiased logits (1008), as the FID / IS papers compute
    them (torch-fidelity's ``FeatureExtractorInceptionV3``, the TensorFlow graph of Heusel et al.
    2017 / Salimans et al. 2016).

    Input handling: images in ``[-1, 1]`` are quantised to ``uint8`` (:func:`quantize_uint8`), one
    channel repeated to three, then torch-fidelity resizes them to 299 × 299 with its
    TensorFlow-1-compatible bilinear interpolation (no antialiasing) and scales them by
    ``(x − 128) / 128``: the same numbers torchmetrics' ``FrechetInceptionDistance(antialias=False)``
    gives for the same ``uint8`` images.

    Args:
        weights: path to torch-fidelity's weights file; None: :func:`default_inception_path`. The
            file is first read with ``torch.load(weights_only=True)`` and its tensor names and
            shapes checked (:func:`check_inception_weights`).

    Raises:
        MissingWeightsError: no file at the path (one line: the path, the URL, ``weights=PATH``).
        ConfigError: a file that is not weights-only or not the FID graph's state dict.
    """

    name = "inception_v3"
    distance_name = "FID"
    n_logits = 1008

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = Path(weights).expanduser() if weights is not None else default_inception_path()
        check_inception_weights(path)
        self.dim = 2048
        self.weights_path = str(path)
        self.weights_hash = file_hash(path)
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
            )
        except RuntimeError as e:  # load_state_dict's strict check
            raise ConfigError(f"refused {path}: {str(e).strip().splitlines()[0]}") from None
        self.freeze()

    def input_handling(self) -> str:
        return (
            "uint8 quantisation (round((x + 1) · 127.5)), 1 channel repeated to 3, TF1-compatible bilinear "
            "resize to 299×299 (torch-fidelity), no antialias; as torchmetrics FID with antialias=False"
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layer": "pool3 (2048)", "logits": "logits_unbiased (1008)"}

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features (B, 2048), logits (B, 1008))`` float32; the logits are torch-fidelity's
        ``logits_unbiased`` (fc without its bias), on which the Inception Score is computed."""
        _check_images(x, "InceptionV3Features")
        features, logits = self.net(_rgb(quantize_uint8(x)))
        return features, logits

    def forward(self, x: Tensor) -> Tensor:
        """pool3 features ``(B, 2048)`` float32 of images ``x`` in ``[-1, 1]``, ``C`` in {1, 3}."""
        return self.features_and_logits(x)[0]


# --------------------------------------------------------------------------------------------------
# VGG16 fc2 (torchvision)
# --------------------------------------------------------------------------------------------------


class VGG16FcFeatures(FeatureNet):
    """torchvision VGG16's fc2 features (4096, after its ReLU: node ``classifier.4``), the features
    StyleGAN2-ADA computes improved precision/recall on (Kynkäänniemi et al. 2019).

    The same local file as the perceptual loss (:func:`~gan_lab.weights.default_vgg16_path`,
    ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``), here the full state dict (``features.*``
    and ``classifier.*``). Input handling: ``[-1, 1] → [0, 1]``, ImageNet mean/std, one channel
    repeated to three, bilinear resize to 224 × 224 (``align_corners=False``, no antialias).

    Raises:
        MissingWeightsError: no file at the path (one line naming it and how to get it).
        ConfigError: the file lacks VGG16's tensors.
    """

    name = "vgg16_fc"
    distance_name = "FD on VGG16 fc2 features"

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        path = Path(weights).expanduser() if weights is not None else default_vgg16_path()
        with torch.device("meta"):
            vgg16 = torchvision.models.vgg16(weights=None).eval()
        net = create_feature_extractor(vgg16, {"classifier.4": "fc2"})
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        state = load_vgg16_state(path, set(shapes))
        missing = sorted(set(shapes) - set(state))
        wrong = [k for k in shapes if k in state and tuple(state[k].shape) != shapes[k]]
        if missing or wrong:
            if wrong:
                what = f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, not {shapes[wrong[0]]}"
            else:
                what = f"it lacks {missing[0]}" + (
                    f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                )
            raise ConfigError(
                f"{path} does not hold torchvision VGG16's full state dict ({what}); fc2 features need "
                f"features.* and classifier.* of {VGG16_FILE}"
            )
        net.load_state_dict(state, assign=True)
        self.net = net
        self.dim = 4096
        self.weights_path = str(path)
        self.weights_hash = file_hash(path)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def input_handling(self) -> str:
        return (
            "[-1, 1] -> [0, 1], ImageNet mean/std, 1 channel repeated to 3, bilinear resize to 224×224 "
            "(align_corners=False, no antialias), float32"
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layer": "fc2 after ReLU (classifier.4)"}

    def forward(self, x: Tensor) -> Tensor:
        """fc2 features ``(B, 4096)`` float32 of images ``x`` in ``[-1, 1]``, ``C`` in {1, 3}."""
        _check_images(x, "VGG16FcFeatures")
        with torch.autocast(x.device.type, enabled=False):
            h = (_rgb(x.to(torch.float32)) + 1.0) / 2.0
            h = (h - self.mean) / self.std
            h = F.interpolate(
                h, size=(VGG16_SIZE, VGG16_SIZE), mode="bilinear", align_corners=False, antialias=False
            )
            return self.net(h)["fc2"]


# --------------------------------------------------------------------------------------------------
# The lab's digit classifier
# --------------------------------------------------------------------------------------------------


class DigitClassifierFeatures(FeatureNet):
    """The lab's digit classifier (:mod:`gan_lab.metrics.digit_classifier`) as a feature net.

    Each of the ``channels`` channels of an image (3 for stacked digits) is classified on its own:
    features are the per-channel penultimate features concatenated, ``(B, channels · 64)``; logits
    ``(B, channels, 10)``; :meth:`classify` gives the digit of each channel ``(B, channels)``.
    A Fréchet distance on these features is "FD on digit-classifier features", never FID.

    Args:
        size: the data's image size (the classifier is trained at it).
        channels: the data's channel count (1: digits, 3: stacked digits).
        data, mnist_root, cache_dir, seed: see
            :func:`~gan_lab.metrics.digit_classifier.load_or_train_digit_classifier` (loaded from the
            cache, or trained once and cached).
    """

    name = "digit_classifier"
    distance_name = "FD on digit-classifier features"

    def __init__(
        self,
        size: int = 16,
        channels: int = 1,
        data: str = "sklearn",
        mnist_root: str | Path | None = None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"digit classifier features: channels must be an int >= 1, got {channels!r}")
        self.classifier, self.info = load_or_train_digit_classifier(size, data, mnist_root, cache_dir, seed)
        self.channels = channels
        self.dim = channels * self.classifier.feature_dim
        self.weights_path = self.info["path"]
        self.weights_hash = self.info["hash"]
        self.freeze()

    def input_handling(self) -> str:
        s = self.classifier.size
        return (
            f"each of the {self.channels} channel(s) classified separately at {s}×{s}, features concatenated"
        )

    def describe(self) -> dict[str, Any]:
        info = {k: v for k, v in self.info.items() if k not in ("key", "trained")}
        return {**super().describe(), "layer": "penultimate (after ReLU)", "classifier": info}

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features (B, channels · d), logits (B, channels, 10))`` float32."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"DigitClassifierFeatures takes (B, {self.channels}, S, S) images, got shape {tuple(x.shape)}"
            )
        b, c, h, w = x.shape
        with torch.autocast(x.device.type, enabled=False):
            per_channel = x.to(torch.float32).reshape(b * c, 1, h, w)
            feats = self.classifier.features(per_channel)  # (B·C, d)
            logits = self.classifier.out(feats)  # (B·C, 10)
        return feats.reshape(b, c * feats.shape[1]), logits.reshape(b, c, -1)

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(B, channels · d)`` of images ``x`` in ``[-1, 1]``."""
        return self.features_and_logits(x)[0]

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """The digit in each channel, ``(B, channels)`` int64 (argmax of the logits)."""
        return self.features_and_logits(x)[1].argmax(-1)


for _net in (InceptionV3Features, VGG16FcFeatures, DigitClassifierFeatures):
    FEATURE_NETS.register(_net)
