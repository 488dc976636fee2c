"""The lab's own digit classifier: labels each channel of stacked digits, and gives digit features.

The stacked-digits protocol (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018) counts modes
by classifying each channel of a generated sample with a pretrained digit classifier. Offline, the
lab trains one itself, with a fixed seed, on scikit-learn's 8×8 digits upsampled to the data's size
``S`` (:func:`gan_lab.data.digits.digit_images`, the very function the data reads them through), or
on MNIST when its files are on disk (``torchvision.datasets.MNIST(root, download=False)``).

Architecture (:class:`DigitClassifier`), for ``S × S`` inputs in ``[-1, 1]``::

    3 × [Conv 3×3 (16, 32, 64 channels, padding 1) → ReLU → MaxPool 2]
    → flatten (64 · ⌊S/8⌋²) → Linear → ReLU (the ``feature_dim = 64`` penultimate features)
    → Linear → 10 logits

Training (:data:`SETTINGS`): Adam with a one-cycle learning rate (max 3e-3), batch 64, cross
entropy; each batch shifted by a random whole-pixel offset of up to ``S/8`` pixels per axis (one
pixel of the 8×8 original; background fills the border). scikit-learn digits: 20 epochs on the
1,497 training digits of :func:`~gan_lab.data.digits.digit_split`, accuracy on its 300 held-out
digits. MNIST: 2 epochs on the 60,000 training images, accuracy on the 10,000 test images.

Deterministic: weights are initialised under ``torch.manual_seed(seed)`` (the global RNG state is
restored afterwards), batches and shifts come from a ``torch.Generator`` seeded ``seed``, and
training runs on one CPU thread, so the same seed gives bit-identical weights (:func:`state_hash`).

Cached (:func:`load_or_train_digit_classifier`): the file ``<cache_dir>/digit_classifier/
digit_classifier-<data>-<S>px-seed<seed>-<key hash>.pt`` holds the key (data, size, seed,
architecture, training settings, a fingerprint of the training and test data), the weights,
their hash and the held-out accuracy; it is read with ``torch.load(weights_only=True)`` and refused
in one line when its key or its weights' hash differs from what it should be.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lab.data.digits import DIGIT_SIZES, digit_images, digit_split
from gan_lab.data.images import resize, to_signed
from gan_lab.errors import ConfigError, check_choice, check_int
from gan_lab.metrics.reference import default_cache_dir, key_hash, load_keyed, save_atomic, state_hash
from gan_lab.threads import ThreadChoice, apply_cpu_threads

#: bumped whenever the architecture or the training procedure changes (part of the cache key)
VERSION = 1
DATA_SOURCES = ("sklearn", "mnist")
CLASSIFIER_FORMAT = "gan_lab.digit_classifier/1"
ARCHITECTURE: dict[str, Any] = {"channels": [16, 32, 64], "feature_dim": 64, "n_classes": 10}
#: training hyper-parameters per data source (``shift_per_8px``: the largest random shift, in
#: pixels per 8 pixels of image size)
SETTINGS: dict[str, dict[str, Any]] = {
    "sklearn": {"epochs": 20, "batch_size": 64, "max_lr": 3e-3, "shift_per_8px": 1, "held_out": 300},
    "mnist": {"epochs": 2, "batch_size": 64, "max_lr": 3e-3, "shift_per_8px": 1},
}
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MissingDataError(ConfigError, FileNotFoundError):
    """A data set that is not on disk: a :class:`ConfigError` and a ``FileNotFoundError``."""


class DigitClassifier(nn.Module):
    """A small CNN for ``(B, 1, S, S)`` digit images in ``[-1, 1]`` (architecture in the module
    docstring). :meth:`features` gives the penultimate ``(B, feature_dim)`` post-ReLU features,
    :meth:`forward` the ``(B, 10)`` logits.

    >>> net = DigitClassifier(size=16)
    >>> tuple(net.features(torch.zeros(2, 1, 16, 16)).shape), tuple(net(torch.zeros(2, 1, 16, 16)).shape)
    ((2, 64), (2, 10))
    """

    cpu_threads = 1  # a small net (gan_lab.threads)

    def __init__(
        self,
        size: int = 16,
        channels: tuple[int, ...] | list[int] = (16, 32, 64),
        feature_dim: int = 64,
        n_classes: int = 10,
    ) -> None:
        super().__init__()
        if size < 8:
            raise ConfigError(f"the digit classifier needs images of at least 8×8 pixels, got {size}")
        self.size, self.feature_dim = int(size), int(feature_dim)
        widths = [1, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in itertools.pairwise(widths))
        side = size
        for _ in channels:
            side //= 2
        self.fc = nn.Linear(widths[-1] * side * side, feature_dim)
        self.out = nn.Linear(feature_dim, n_classes)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2:] != (self.size, self.size):
            raise ValueError(
                f"the digit classifier takes (B, 1, {self.size}, {self.size}) images, got {tuple(x.shape)}"
            )

    def features(self, x: Tensor) -> Tensor:
        """The penultimate features ``(B, feature_dim)`` (after the ReLU)."""
        self._check(x)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, 10)``."""
        return self.out(self.features(x))


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _mnist_images(root: str | Path, size: int, train: bool) -> tuple[Tensor, Tensor]:
    """MNIST from ``root`` (torchvision's layout, ``root/MNIST/raw``) as ``(N, 1, S, S)`` in
    ``[-1, 1]`` and labels, resized as the image data resizes it (:func:`gan_lab.data.images.resize`:
    bilinear on uint8, antialiased when shrinking, rounded; then ``v / 127.5 − 1``)."""
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(str(root), train=train, download=False)
    except RuntimeError as e:
        raise MissingDataError(
            f"MNIST not found under {Path(root) / 'MNIST' / 'raw'} (torchvision: {str(e).splitlines()[0]}): "
            f"put {', '.join(MNIST_FILES)} there (gan_lab never downloads), or use data='sklearn'"
        ) from None
    x = to_signed(resize(ds.data.unsqueeze(1), size))  # (N, 1, S, S), as the MNIST data draws them
    return x.contiguous(), ds.targets.to(torch.int64).clone()


def digit_data(data: str, size: int, mnist_root: str | Path | None = None) -> dict[str, Tensor]:
    """The classifier's training and test images and labels: ``x_train, y_train, x_test, y_test``.

    Raises:
        ConfigError: unknown data source or size; ``data="mnist"`` without ``mnist_root``.
        MissingDataError: MNIST's files are not under ``mnist_root``.
    """
    check_choice("digit classifier data", data, DATA_SOURCES)
    if data == "sklearn":
        x, y = digit_images(size)
        train, test = digit_split(x.shape[0], held_out=SETTINGS["sklearn"]["held_out"], seed=0)
        return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
    if mnist_root is None:
        raise ConfigError("the digit classifier on MNIST needs mnist_root (the folder holding MNIST/raw)")
    x_train, y_train = _mnist_images(mnist_root, size, train=True)
    x_test, y_test = _mnist_images(mnist_root, size, train=False)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def data_fingerprint(data: dict[str, Tensor]) -> str:
    """:func:`state_hash` of the training and test tensors (the same data gives the same key)."""
    return state_hash(data)


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image of ``x`` ``(B, 1, S, S)`` by its own whole-pixel offset in
    ``[-max_shift, max_shift]²``; pixels shifted in are background (−1).

    >>> x = torch.arange(4.0).view(1, 1, 2, 2)
    >>> random_shift(x, 0, torch.Generator()).equal(x)
    True
    """
    if max_shift == 0:
        return x
    b, _, s, _ = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p), value=-1.0)[:, 0]  # (B, S + 2p, S + 2p)
    dy = torch.randint(0, 2 * p + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * p + 1, (b,), generator=generator)
    ar = torch.arange(s)
    rows = (dy[:, None] + ar)[:, :, None]  # (B, S, 1)
    cols = (dx[:, None] + ar)[:, None, :]  # (B, 1, S)
    return padded[torch.arange(b)[:, None, None], rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """The fraction of ``x`` that ``model`` labels ``y`` (argmax of its logits)."""
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


@torch.inference_mode(False)
@torch.enable_grad()
def train_digit_classifier(
    data: dict[str, Tensor], size: int, settings: dict[str, Any], seed: int = 0
) -> tuple[DigitClassifier, float]:
    """Train a :class:`DigitClassifier` on ``data["x_train"]`` (one CPU thread, deterministic in
    ``seed``) and return it in eval mode with its accuracy on ``data["x_test"]``. Gradients are
    switched on here, so a caller inside ``torch.no_grad()`` / ``inference_mode()`` may train it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(
            size, **{k: ARCHITECTURE[k] for k in ("channels", "feature_dim", "n_classes")}
        )
    x, y = data["x_train"], data["y_train"]
    bs, epochs = settings["batch_size"], settings["epochs"]
    max_shift = settings["shift_per_8px"] * size // 8
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=settings["max_lr"] / 25)
    steps = epochs * -(-len(x) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings["max_lr"], total_steps=steps)
    threads = torch.get_num_threads()
    apply_cpu_threads(ThreadChoice(1, "deterministic training of a small net"))
    try:
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), bs):
                idx = order[start : start + bs]
                loss = F.cross_entropy(model(random_shift(x[idx], max_shift, gen)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        acc = accuracy(model, data["x_test"], data["y_test"])
    finally:
        torch.set_num_threads(threads)
    model.requires_grad_(False)
    return model.eval(), acc


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------


def classifier_key(data: str, size: int, seed: int, fingerprint: str) -> dict[str, Any]:
    """Everything the weights depend on: the cache key."""
    return {
        "kind": "digit_classifier",
        "version": VERSION,
        "data": data,
        "size": size,
        "seed": seed,
        "architecture": ARCHITECTURE,
        "training": SETTINGS[data],
        "data_fingerprint": fingerprint,
    }


def classifier_path(cache_dir: str | Path, key: dict[str, Any]) -> Path:
    """``<cache_dir>/digit_classifier/digit_classifier-<data>-<S>px-seed<seed>-<key hash>.pt``."""
    name = f"digit_classifier-{key['data']}-{key['size']}px-seed{key['seed']}-{key_hash(key)}.pt"
    return Path(cache_dir) / "digit_classifier" / name


def load_digit_classifier(path: str | Path, key: dict[str, Any]) -> tuple[DigitClassifier, dict[str, Any]]:
    """The classifier cached in ``path`` for ``key`` and the payload it came with.

    Raises:
        ConfigError: (one line naming the file) unreadable, not a classifier file, another key,
            weights whose hash is not the stored one (tampered), or weights that do not fit.
    """
    payload = load_keyed(path, key, "digit classifier", CLASSIFIER_FORMAT)
    state = payload.get("state_dict")
    fix = "delete it to retrain"
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"refused digit classifier file {path}: it holds no state dict; {fix}")
    if state_hash(state) != payload.get("hash"):
        raise ConfigError(
            f"refused digit classifier file {path}: its weights' hash {state_hash(state)} is not the stored "
            f"{payload.get('hash')!r} (the file was changed); {fix}"
        )
    model = DigitClassifier(
        key["size"], **{k: key["architecture"][k] for k in ("channels", "feature_dim", "n_classes")}
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"refused digit classifier file {path}: {str(e).splitlines()[0]}; {fix}") from None
    model.requires_grad_(False)
    return model.eval(), payload


def load_or_train_digit_classifier(
    size: int,
    data: str = "sklearn",
    mnist_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
) -> tuple[DigitClassifier, dict[str, Any]]:
    """The lab's digit classifier for ``size × size`` digits: from the cache, or trained now (about
    3 s for S = 16 and 12 s for S = 32 on scikit-learn's digits, one CPU thread) and cached.

    Args:
        size: the data's image size ``S`` (one of :data:`~gan_lab.data.digits.DIGIT_SIZES`).
        data: ``"sklearn"`` (scikit-learn's digits, offline) or ``"mnist"`` (needs ``mnist_root``).
        mnist_root: the folder that holds ``MNIST/raw`` (torchvision's layout).
        cache_dir: the lab's cache folder; None: ``$GAN_LAB_CACHE`` or ``~/.cache/gan_lab``.
        seed: the training seed.

    Returns:
        ``(model, info)``: the classifier (frozen, eval mode) and ``info`` = ``accuracy`` (held-out),
        ``n_train``, ``n_test``, ``data``, ``size``, ``seed``, ``key`` (the key dict), ``key_hash``,
        ``path`` (the cache file), ``hash`` (of the weights), ``trained`` (trained by this call),
        ``train_seconds`` (when it was trained), ``torch_version`` (that trained it); every report
        that uses the classifier states it.

    Raises:
        ConfigError: bad arguments; a cache file of the right name that is foreign, stale or
            corrupt (one line naming it: delete it to retrain).
        MissingDataError: MNIST asked for and not on disk.
    """
    check_choice("digit classifier data", data, DATA_SOURCES)
    if isinstance(size, bool) or size not in DIGIT_SIZES:
        raise ConfigError(f"digit classifier image size must be one of {list(DIGIT_SIZES)}, got {size!r}")
    seed = check_int("digit classifier seed", seed, minimum=0)
    tensors = digit_data(data, size, mnist_root)
    key = classifier_key(data, size, seed, data_fingerprint(tensors))
    path = classifier_path(cache_dir if cache_dir is not None else default_cache_dir(), key)
    if path.exists():
        model, payload = load_digit_classifier(path, key)
        trained = False
    else:
        start = time.perf_counter()
        model, acc = train_digit_classifier(tensors, size, SETTINGS[data], seed)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        payload = {
            "format": CLASSIFIER_FORMAT,
            "key": key,
            "state_dict": state,
            "hash": state_hash(state),
            "accuracy": acc,
            "n_train": len(tensors["x_train"]),
            "n_test": len(tensors["x_test"]),
            "train_seconds": round(time.perf_counter() - start, 2),
            "torch_version": str(torch.__version__),
        }
        save_atomic(payload, path)
        trained = True
    info = {
        "accuracy": float(payload["accuracy"]),
        "n_train": int(payload["n_train"]),
        "n_test": int(payload["n_test"]),
        "data": data,
        "size": size,
        "seed": seed,
        "key": key,
        "key_hash": key_hash(key),
        "path": str(path),
        "hash": payload["hash"],
        "trained": trained,
        "train_seconds": payload.get("train_seconds"),
        "torch_version": payload.get("torch_version"),
    }
    return model, info
