"""Paired (low-res, high-res) images for super-resolution, from any image folder.

A training pair is a random ``crop_size × crop_size`` crop of a photograph (the high-res target
``hr``) and its bicubic downsampling by ``scale`` (the low-res condition ``lr``)::

    hr = crop(image) / 127.5 − 1                                   (C, S, S)      in [-1, 1]
    lr = clamp(interpolate(hr, size=S/scale, mode="bicubic",
                           antialias=True, align_corners=False), −1, 1)   (C, S/s, S/s)

``antialias=True`` low-pass filters before subsampling (as MATLAB's ``imresize``, the usual SR
degradation); the clamp keeps bicubic overshoot inside the image range. Batches are tuples
``(lr (B, C, S/s, S/s), hr (B, C, S, S))``, which :class:`~gan_lab.module.GANModule` in a paired
run (``paired: {...}``, :class:`~gan_lab.settings.Paired`) reads as ``(condition, target)``.

Default images (``root: null``), shipped inside installed packages, so nothing is downloaded:

- training: scikit-image's sample photographs (``skimage/data``): astronaut, coffee, chelsea,
  rocket, hubble_deep_field, ihc, motorcycle_left, camera, coins, moon, brick, grass, gravel;
- validation (held-out images): scikit-learn's ``china.jpg`` and ``flower.jpg``.

With ``root`` set, every ``.png`` / ``.jpg`` / ``.jpeg`` under it (recursively, sorted) is used; the
validation images are ``val_root``'s, or else ``val_images`` images of ``root`` held out by a
permutation seeded with ``val_seed``. Validation pairs are ``val_crops`` fixed crops per validation
image (positions from ``val_seed``, the same for every training seed), so that every run and every
evaluation scores the same pairs.

Training crops are drawn by the datamodule itself, like :mod:`gan_lab.data.toy`: the training
loader yields step indices, and ``transfer_batch_to_device`` draws the batch from a ``torch.Generator``
seeded ``seed + 2_000_006`` (the ``data`` stream of :mod:`gan_lab.seeding`, plus ``7_919 · rank``
under DDP) whose state is saved in checkpoints: the same seed gives the same crops, and resuming
continues the stream. Images are decoded once, into memory (uint8): meant for folders of tens
to a few hundred photographs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lab.data.context import RunContext, run_context
from gan_lab.data.image_files import list_images, load_image, to_signed
from gan_lab.data.steps import DrawnDataModule
from gan_lab.errors import ConfigError, check_int

#: scikit-image's sample photographs (files in ``skimage/data``), the default training images.
SKIMAGE_TRAIN = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "camera.png",
    "coins.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)
#: scikit-learn's sample photographs (``sklearn/datasets/images``), the default validation images.
SKLEARN_VAL = ("china.jpg", "flower.jpg")
DEFAULT_NAME = "sample-photos"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the default images need the package {package!r}; install it or pass data root")
    return Path(next(iter(spec.submodule_search_locations)))


def default_image_files() -> tuple[list[Path], list[Path]]:
    """``(train, val)`` files of the default set: scikit-image's photographs, scikit-learn's two."""
    skimage_dir = _package_dir("skimage") / "data"
    sklearn_dir = _package_dir("sklearn") / "datasets" / "images"
    train = [skimage_dir / f for f in SKIMAGE_TRAIN]
    val = [sklearn_dir / f for f in SKLEARN_VAL]
    missing = [str(f) for f in [*train, *val] if not f.is_file()]
    if missing:
        raise ConfigError(f"default sample photographs missing: {', '.join(missing)}; pass data root")
    return train, val


def bicubic_downsample(hr: Tensor, scale: int) -> Tensor:
    """The degradation: ``hr (B, C, H, W)`` -> ``(B, C, H/scale, W/scale)``, bicubic with
    antialiasing, clamped to ``[-1, 1]``.

    >>> bicubic_downsample(torch.zeros(2, 3, 8, 8), 4).shape
    torch.Size([2, 3, 2, 2])
    """
    h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
    lr = F.interpolate(hr, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return lr.clamp(-1.0, 1.0)


def random_crops(
    images: list[Tensor], n: int, size: int, generator: torch.Generator, hflip: bool = False
) -> Tensor:
    """``n`` crops ``(n, C, size, size)`` (uint8): a uniform image, a uniform position, and a
    horizontal flip with probability 1/2 when ``hflip``; all drawn from ``generator``."""
    idx = torch.randint(len(images), (n,), generator=generator)
    u = torch.rand(n, 2, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    crops = []
    for k in range(n):
        img = images[int(idx[k])]
        top = int(u[k, 0] * (img.shape[-2] - size + 1))
        left = int(u[k, 1] * (img.shape[-1] - size + 1))
        crop = img[:, top : top + size, left : left + size]
        crops.append(crop.flip(-1) if hflip and flips[k] else crop)
    return torch.stack(crops)


class PairedImageDataModule(DrawnDataModule):
    """Batches ``(lr, hr)`` of random crops and their bicubic downsampling, in ``[-1, 1]``.

    Args:
        root: folder of training images; None: the default sample photographs (module docstring).
        val_root: folder of validation images; None: hold out ``val_images`` of ``root`` (or, with
            the default set, scikit-learn's two photographs).
        val_images: how many images of ``root`` to hold out when ``val_root`` is None; None: 20%
            (at least 1). ``root`` must then hold at least ``val_images + 1`` images.
        crop_size: high-res crop side ``S``; a multiple of ``scale``.
        scale: downsampling factor (4 for ×4 SR).
        channels: 3 (RGB) or 1 (BT.601 luma of the RGB image).
        batch_size: pairs per training step.
        val_crops: fixed crops per validation image.
        hflip: flip training crops horizontally with probability 1/2.
        seed: seed of the training crops; None takes the run's (:class:`~gan_lab.data.context.RunContext`).
        val_seed: seed of the held-out image choice and of the validation crop positions.
        steps_per_epoch: length of one (synthetic) epoch.

    Raises:
        ConfigError: a missing or empty folder, too few images to hold some out, a corrupt image
            (named), an image smaller than ``crop_size`` (named), bad sizes.

    >>> dm = PairedImageDataModule(batch_size=2, seed=0)
    >>> lr, hr = dm.sample(torch.device("cpu"))
    >>> tuple(lr.shape), tuple(hr.shape)
    ((2, 3, 16, 16), (2, 3, 64, 64))
    """

    def __init__(
        self,
        root: str | None = None,
        val_root: str | None = None,
        val_images: int | None = None,
        crop_size: int = 64,
        scale: int = 4,
        channels: int = 3,
        batch_size: int = 16,
        val_crops: int = 8,
        hflip: bool = True,
        seed: int | None = None,
        val_seed: int = 0,
        steps_per_epoch: int = 1000,
    ) -> None:
        super().__init__(check_int("data steps_per_epoch", steps_per_epoch))
        self.scale = check_int("data scale", scale)
        self.crop_size = check_int("data crop_size", crop_size)
        if crop_size % scale:
            raise ConfigError(f"data crop_size {crop_size} must be a multiple of scale {scale}")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise ConfigError(f"data channels must be 3 (RGB) or 1 (grayscale), got {channels!r}")
        self.channels = channels
        self.batch_size = check_int("data batch_size", batch_size)
        self.val_crops = check_int("data val_crops", val_crops)
        if val_images is not None:
            check_int("data val_images", val_images)
        self.hflip, self.seed, self.val_seed = bool(hflip), seed, int(val_seed)
        self.root, self.val_root = root, val_root

        if root is None:
            self.name = DEFAULT_NAME
            self.train_files, self.val_files = default_image_files()
            if val_root is not None:
                self.val_files = list_images(val_root, "data val_root")
        else:
            self.name = Path(root).expanduser().name or str(root)
            files = list_images(root)
            if val_root is not None:
                self.train_files, self.val_files = files, list_images(val_root, "data val_root")
            else:
                k = val_images if val_images is not None else max(1, round(0.2 * len(files)))
                if len(files) < k + 1:
                    raise ConfigError(
                        f"data root {root!r} holds {len(files)} image(s); holding out {k} for validation "
                        "needs at least one more, or pass data val_root"
                    )
                perm = torch.randperm(len(files), generator=torch.Generator().manual_seed(self.val_seed))
                held = set(perm[:k].tolist())
                self.val_files = [f for i, f in enumerate(files) if i in held]
                self.train_files = [f for i, f in enumerate(files) if i not in held]

        self.train_images: list[Tensor] | None = None
        self._val: tuple[Tensor, Tensor] | None = None

    # ------------------------------------------------------------------------------------------
    # Images
    # ------------------------------------------------------------------------------------------

    def _load(self, files: list[Path]) -> list[Tensor]:
        images = []
        for f in files:
            img = load_image(f, self.channels)
            if min(img.shape[-2:]) < self.crop_size:
                raise ConfigError(
                    f"image {str(f)!r} is {img.shape[-1]}×{img.shape[-2]}, smaller than data crop_size "
                    f"{self.crop_size}; remove it or lower crop_size"
                )
            images.append(img)
        return images

    def load(self) -> None:
        """Decode every image once (idempotent); corrupt or too small files fail here, named."""
        if self.train_images is None:
            self.train_images = self._load(self.train_files)
        if self._val is None:
            val_images = self._load(self.val_files)
            g = torch.Generator().manual_seed(self.val_seed)
            hr = torch.cat([random_crops([img], self.val_crops, self.crop_size, g) for img in val_images])
            hr = to_signed(hr)  # (N, C, S, S)
            self._val = (bicubic_downsample(hr, self.scale), hr)

    def validation_pairs(self) -> tuple[Tensor, Tensor]:
        """The fixed validation set ``(lr (N, C, S/s, S/s), hr (N, C, S, S))`` on the CPU,
        ``N = val_crops × validation images``."""
        self.load()
        assert self._val is not None
        return self._val

    # ------------------------------------------------------------------------------------------
    # Lightning
    # ------------------------------------------------------------------------------------------

    def setup(self, stage: str, context: RunContext | None = None) -> None:
        """An unset ``seed`` from ``context`` (None: the fitted module's), then the images."""
        if self.seed is None:
            self.seed = (context or run_context(self.trainer)).seed
        self.load()

    def _crop_generator(self) -> torch.Generator:
        """The (CPU) stream of random crops: one member, seeded per DDP rank, resumable."""
        return self.streams().generators("cpu", self.rank)[0]

    def sample(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """One training batch ``(lr (B, C, S/s, S/s), hr (B, C, S, S))`` on ``device``."""
        self.load()
        assert self.train_images is not None
        crops = random_crops(
            self.train_images, self.batch_size, self.crop_size, self._crop_generator(), self.hflip
        )
        hr = to_signed(crops.to(device))  # (B, C, S, S)
        return bicubic_downsample(hr, self.scale), hr

    def describe(self) -> dict:
        """JSON-serialisable facts: dataset name, sizes, validation files."""
        val = self.validation_pairs()[1]
        return {
            "dataset": self.name,
            "train_images": len(self.train_files),
            "val_images": [f.name for f in self.val_files],
            "val_pairs": int(val.shape[0]),
            "crop_size": self.crop_size,
            "scale": self.scale,
            "channels": self.channels,
            "lr_size": self.crop_size // self.scale,
        }
