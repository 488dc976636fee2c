"""Pretrained weights, read from disk only (never downloaded): the one place that loads a weights
file weights-only with one-line errors (:func:`load_weights_file`), and VGG16's file (Simonyan &
Zisserman 2015, torchvision's ``vgg16-397923af.pth``), shared by the image terms
(:mod:`gan_lab.regularizers.image`: perceptual and style losses) and the metrics' feature nets
(:mod:`gan_lab.metrics.features`: VGG16 fc features).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from gan_lab.checkpoints import _refused_global
from gan_lab.errors import ConfigError

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"


class MissingWeightsError(ConfigError, FileNotFoundError):
    """A weights file that is not there: both a :class:`ConfigError` and a ``FileNotFoundError``."""


def default_vgg16_path() -> Path:
    """torchvision's cache file for VGG16: ``torch.hub.get_dir()/checkpoints/vgg16-397923af.pth``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (read at call time) unless
    ``torch.hub.set_dir`` was called.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def load_weights_file(path: Path, what: str):
    """``torch.load(path, map_location="cpu", weights_only=True)`` of a weights file that exists,
    with one-line errors: a file that names Python objects (a pickle ``GLOBAL``) is refused as such
    (never with torch's advice to load it with ``weights_only=False``), one torch cannot read is
    "not a torch weights file". ``what`` names the file in the messages (``"VGG16 weights"``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = _refused_global(str(e))
        if found:
            raise ConfigError(
                f"refused {what} {path}: it holds arbitrary Python objects ({found}), which would run "
                "code if unpickled; gan_lab loads weights only (torch.load weights_only=True)"
            ) from None
        raise ConfigError(f"refused {what} {path}: not a torch weights file (torch cannot read it)") from None
    except Exception as e:  # zip / EOF / key errors of a file that is no torch file
        raise ConfigError(f"refused {what} {path}: not a torch weights file ({type(e).__name__})") from None


def load_vgg16_state(path: Path, keys: set[str]) -> dict[str, Tensor]:
    """The entries ``keys`` (``features.<i>.weight`` ...) of the VGG16 state dict in ``path``,
    read weights-only (:func:`load_weights_file`: a file of Python objects is one line, refused)."""
    if not path.is_file():
        raise MissingWeightsError(
            f"VGG16 weights not found at {path}: download {VGG16_URL} into {path.parent} "
            f"(or point TORCH_HOME at a cache that has it), or pass weights=PATH"
        )
    state = load_weights_file(path, "VGG16 weights")
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ConfigError(f"{path} is not a state dict (got {type(state).__name__})")
    return {key: value for key, value in state.items() if key in keys and isinstance(value, Tensor)}
