"""Stacked digits: three digit images as the R, G, B channels of one image, 1,000 modes (d1, d2, d3).

VEEGAN's stacked-MNIST protocol (Srivastava et al. 2017; as PacGAN's code runs it,
``stacked_MNIST_experiments/*/model.py``): a **fixed training set of 128,000 triples**, each channel
a digit drawn uniformly with replacement from the digit pool, at **28 × 28** (PacGAN's config:
``input_height = output_height = 28``; its pool is MNIST's train and test digits together, 70,000).
A generated sample's mode is ``100·d1 + 10·d2 + d3`` with each channel's digit given by a classifier;
the evaluation counts distinct modes among 26,000 samples (:mod:`gan_lab.metrics`).

- :class:`StackedDigits` (``stacked_digits``, the offline default): the pool is scikit-learn's 1,797
  8×8 digits, through :func:`gan_lab.data.digits.digit_images` (upsampled to ``size``, default 32),
  exactly as the lab's digit classifier reads them.
- :class:`StackedMNIST` (``stacked_mnist``): the pool is MNIST from a local root (torchvision,
  ``download=False``), default 28 × 28 as the protocol; ``size: 32`` upsamples the pool bilinearly.

The training set is drawn once per **data-set seed**, ``dataset_seed`` (default 0), never from the
training seed: every run and member of a study trains on one fixed set. Triples are
``randint(pool, (n_train, 3))`` under ``Generator().manual_seed(dataset_seed)``; split ``test`` is a
fresh draw of as many triples under ``dataset_seed + TEST_SEED_OFFSET`` (a held-out sample of the same
distribution, for reference statistics). Only the triples (int16 / int32 indices into the pool) and
the pool itself are stored; a batch gathers its channels on the device. (PacGAN's code then resamples
its 128,000 triples once more with replacement into the training array; this set is used as drawn.)

Labels ``(n, 3)``: the digit of each channel (the pool's own labels), so ``mode_ids(labels)`` is the
mode of every training image; ``num_modes = 1000``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_lab.data.digits import DIGIT_SIZES, digit_images
from gan_lab.data.images import (
    IMAGE_DATASETS,
    ImageSet,
    ImageSource,
    MNISTImages,
    flip_where,
    prepare,
    to_signed,
)
from gan_lab.errors import ConfigError, check_choice, check_int

#: the VEEGAN / PacGAN training-set size
N_TRAIN = 128_000
#: seed offset of the ``test`` split's triples from ``dataset_seed``
TEST_SEED_OFFSET = 1_000_003
NUM_MODES = 1000


def mode_ids(labels: Tensor) -> Tensor:
    """``(..., 3)`` channel digits → mode ``100·d1 + 10·d2 + d3`` ``(...)`` in ``0..999``.

    >>> mode_ids(torch.tensor([[3, 0, 7], [9, 9, 9]])).tolist()
    [307, 999]
    """
    return labels[..., 0] * 100 + labels[..., 1] * 10 + labels[..., 2]


def draw_triples(pool: int, n: int, seed: int) -> Tensor:
    """``(n, 3)`` indices into a pool of ``pool`` digits, uniform with replacement, drawn by
    ``torch.randint`` under ``seed``; int16 when the pool allows it, else int32.

    >>> draw_triples(1797, 4, 0).dtype, tuple(draw_triples(70_000, 4, 0).shape)
    (torch.int16, (4, 3))
    """
    t = torch.randint(pool, (n, 3), generator=torch.Generator().manual_seed(int(seed)))
    return t.to(torch.int16 if pool <= torch.iinfo(torch.int16).max else torch.int32)


class StackedImages(ImageSet):
    """Triples of a digit pool: ``digits (M, 1, H, W)`` (float in [-1, 1] or uint8), ``triples
    (n, 3)`` indices, ``digit_labels (M,)``; image ``i`` is ``digits[triples[i]]`` as 3 channels.

    >>> s = StackedImages(torch.linspace(-1, 1, 4).view(4, 1, 1, 1), torch.tensor([[0, 3, 1]]), torch.arange(4))
    >>> s.gather(torch.tensor([0])).flatten().tolist(), s.labels.tolist()
    ([-1.0, 1.0, -0.3333333134651184], [[0, 3, 1]])
    """

    def __init__(self, digits: Tensor, triples: Tensor, digit_labels: Tensor) -> None:
        self.digits, self.triples, self.digit_labels = digits, triples, digit_labels
        self.labels = digit_labels[triples.long()]  # (n, 3)

    def __len__(self) -> int:
        return int(self.triples.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, int(self.digits.shape[-2]), int(self.digits.shape[-1]))

    @property
    def device(self) -> torch.device:
        return self.digits.device

    def to(self, device) -> StackedImages:
        digits, triples = self.digits.to(device), self.triples.to(device)
        if digits is self.digits and triples is self.triples:
            return self
        moved = StackedImages.__new__(StackedImages)
        moved.digits, moved.triples, moved.digit_labels, moved.labels = (
            digits,
            triples,
            self.digit_labels,
            self.labels,
        )
        return moved

    def gather(self, idx: Tensor, flip: Tensor | None = None) -> Tensor:
        """Images ``idx (B,)`` as float32 ``(B, 3, H, W)`` in ``[-1, 1]``, mirrored where ``flip``."""
        t = self.triples[idx.to(self.triples.device)].long()  # (B, 3)
        x = self.digits[t.flatten()].view(t.shape[0], 3, *self.digits.shape[-2:])  # (B, 3, H, W)
        return to_signed(flip_where(x, flip))


class StackedSource(ImageSource):
    """What both stacked sources share: a digit pool (:meth:`pool`), ``n_train`` fixed triples per
    ``dataset_seed``, 3 channels, 1,000 modes."""

    splits = ("train", "test")
    num_modes = NUM_MODES
    default_size = 32

    def __init__(
        self,
        root: str | None = None,
        size: int | None = None,
        channels: int | None = None,
        center_crop: int | None = None,
        n_train: int = N_TRAIN,
        dataset_seed: int = 0,
    ) -> None:
        if channels not in (None, 3):
            raise ConfigError(
                f"{self.name} images have 3 channels (one digit each); leave data channels unset"
            )
        if center_crop is not None:
            raise ConfigError(f"{self.name} takes no center_crop; leave it unset")
        self.n_train = check_int(f"{self.name} n_train", n_train)
        self.dataset_seed = check_int(f"{self.name} dataset_seed", dataset_seed, minimum=0)
        super().__init__(root, size if size is not None else self.default_size, 3, None)
        self._pool: tuple[Tensor, Tensor] | None = None

    def pool(self) -> tuple[Tensor, Tensor]:
        """``(digits (M, 1, size, size), labels (M,))``."""
        raise NotImplementedError

    def build(self, split: str) -> StackedImages:
        if self._pool is None:
            self._pool = self.pool()
        digits, labels = self._pool
        seed = self.dataset_seed + (TEST_SEED_OFFSET if split == "test" else 0)
        return StackedImages(digits, draw_triples(len(labels), self.n_train, seed), labels)

    def describe(self) -> dict:
        return {**super().describe(), "n_train": self.n_train, "dataset_seed": self.dataset_seed}


@IMAGE_DATASETS.register(name="stacked_digits")
class StackedDigits(StackedSource):
    """Stacked scikit-learn digits (offline): each channel one of the 1,797 digits of
    :func:`~gan_lab.data.digits.digit_images` at ``size`` (16 or 32; default 32), floats kept as
    that function gives them.

    >>> s = StackedDigits(size=16, n_train=1000)
    >>> data = s.load("train")
    >>> len(data), data.image_shape, tuple(data.labels.shape), s.num_modes
    (1000, (3, 16, 16), (1000, 3), 1000)
    """

    name = "stacked_digits"
    needs_root = False

    def check(self) -> None:
        if self.size not in DIGIT_SIZES:
            raise ConfigError(f"stacked_digits size must be one of {list(DIGIT_SIZES)}, got {self.size!r}")

    def pool(self) -> tuple[Tensor, Tensor]:
        return digit_images(self.size)


@IMAGE_DATASETS.register(name="stacked_mnist")
class StackedMNIST(StackedSource):
    """Stacked MNIST (VEEGAN / PacGAN): each channel an MNIST digit, 28 × 28 by default.

    Args:
        pool: ``all``: MNIST's 60,000 training and 10,000 test digits together (PacGAN's code);
            ``train``: the 60,000 training digits only.
        (the rest as :class:`StackedSource`; ``root`` holds ``MNIST/raw``, see ``mnist``.)
    """

    name = "stacked_mnist"
    default_size = 28

    def __init__(
        self,
        root: str | None = None,
        size: int | None = None,
        channels: int | None = None,
        center_crop: int | None = None,
        n_train: int = N_TRAIN,
        dataset_seed: int = 0,
        pool: str = "all",
    ) -> None:
        check_choice("stacked_mnist pool", pool, ("all", "train"), plural="stacked_mnist pools")
        self.pool_name = pool
        super().__init__(root, size, channels, center_crop, n_train, dataset_seed)

    def expected_files(self, root: str) -> str:
        return self.mnist().expected_files(root)

    def mnist(self) -> MNISTImages:
        return MNISTImages.__new__(MNISTImages)  # for its messages only (no root check)

    def check(self) -> None:
        self._mnist = MNISTImages(root=str(self.root))  # refuses missing files, naming them

    def pool(self) -> tuple[Tensor, Tensor]:
        splits = ("train", "test") if self.pool_name == "all" else ("train",)
        parts = [self._mnist.read(s) for s in splits]
        digits = torch.cat([d for d, _ in parts])  # (M, 1, 28, 28) uint8
        labels = torch.cat([y for _, y in parts])
        return prepare(digits, 1, self.size), labels  # bilinear, no antialiasing when enlarging

    def describe(self) -> dict:
        return {**super().describe(), "pool": self.pool_name}
