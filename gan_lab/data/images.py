"""Unconditional image data for the image GANs: torchvision sets and image folders, from a local root.

Sources (registered by name in :data:`IMAGE_DATASETS`; stacked digits in :mod:`gan_lab.data.stacked`):

========================  ==================================================  ========================
name                      files read (``download=False`` always)              splits
========================  ==================================================  ========================
``mnist``                 ``root/MNIST/raw/{train,t10k}-{images-idx3,         train, test
                          labels-idx1}-ubyte`` (torchvision's ``MNIST``)
``fashion_mnist``         the same under ``root/FashionMNIST/raw``            train, test
``cifar10``               ``root/cifar-10-batches-py/`` (``CIFAR10``, md5s    train, test
                          checked by torchvision)
``celeba``                ``root/celeba/img_align_celeba/*.jpg`` and the      train, valid, test, all
                          five ``.txt`` lists (``CelebA``, md5s checked)
``folder``                every ``.png`` / ``.jpg`` under ``root``: flat, or  all (``train`` = all)
                          class sub-folders (``ImageFolder``, labels)
``stacked_digits``,       see :mod:`gan_lab.data.stacked`                     train, test
``stacked_mnist``
========================  ==================================================  ========================

Every split is decoded **once, into memory, as uint8** ``(N, C, H, W)`` (then copied once to the
training device): ``N·C·H·W`` bytes, e.g. MNIST 60,000 × 28² = 47 MB, CIFAR-10 50,000 × 3 × 32² =
154 MB, CelebA at 64 × 64 162,770 × 3 × 64² = 2.0 GB (the full 178 × 218 CelebA would be 19 GB:
``celeba`` needs ``size``). Decoding CelebA's JPEGs takes minutes; MNIST and CIFAR-10 a second.

Preprocessing, once at load, in this order (then quantised back to uint8, as a resized copy of the
data set on disk would be):

1. channels: ``1 → 3`` repeats the grey channel; ``3 → 1`` is BT.601 luma
   (:func:`gan_lab.data.image_files.load_image`'s, ``round(0.299 R + 0.587 G + 0.114 B)``);
2. ``center_crop``: a centred ``center_crop × center_crop`` square (torchvision's ``center_crop``);
   with ``size`` set and no ``center_crop``, a non-square image is cropped to the centred square of
   its short side;
3. ``size``: ``F.interpolate(mode="bilinear", align_corners=False)`` to ``size × size``, with
   ``antialias=True`` when it shrinks the image (a low-pass filter before subsampling) and without
   when it enlarges (e.g. MNIST 28 → 32), then ``round().clamp(0, 255)``.

A batch is ``x = u8 / 127.5 − 1``, float32 ``(B, C, H, W)`` in ``[-1, 1]`` (``(E, B, C, H, W)`` for a
seed ensemble), gathered and converted on the training device: only the ``B`` indices cross from
the host each step.

Sampling (:class:`EpochSampler`): without replacement, by epochs. Epoch ``e`` of a stream is
``perm = randperm(N, g)`` then ``flip = rand(N, g) < 0.5`` (one horizontal flip bit per image, used
only with ``hflip``: the order does not depend on it), both drawn from the ``data`` stream ``g`` of
:mod:`gan_lab.seeding` (seed ``seed + k + 2_000_006`` for member ``k``), a CPU generator, so the
same seed gives the same batches on any device. Batches read ``perm`` in order and run on into the
next epoch without dropping or repeating an image.

DDP: every rank draws the same permutation (all ranks use rank 0's seeds) and takes its own shard
of each global batch: the ``B·W`` next indices of the epoch are split in ``W`` consecutive blocks
of ``B``, rank ``r`` taking block ``r``. Within an epoch the ranks' images are disjoint, and the
``W`` ranks together see exactly the batches of one process with batch ``B·W``. Because every rank
holds the same sampler state, rank 0's checkpoint resumes every rank.

Checkpoints (``state_dict``): per member, the stream's generator state *at the start of the current
epoch*, the epoch and the position in it; loading redraws that epoch's permutation and flips and
continues at the position, so a resumed run draws the batches of the run never stopped (with the
same world size and batch size; with others it continues the same global order of images).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lab.data.context import RunContext, run_context
from gan_lab.data.image_files import IMAGE_SUFFIXES, list_images, load_image
from gan_lab.data.steps import DrawnDataModule
from gan_lab.errors import ConfigError, check_choice, check_int
from gan_lab.registry import Registry

#: seed of the fixed order in which :meth:`ImageDataModule.reference_images` takes images
REFERENCE_SEED = 0


# --------------------------------------------------------------------------------------------------
# Preprocessing (pure functions on uint8 images)
# --------------------------------------------------------------------------------------------------


def to_channels(x: Tensor, channels: int) -> Tensor:
    """uint8 ``(N, c, H, W)`` → ``(N, channels, H, W)``: grey repeated to RGB, or RGB to BT.601 luma.

    >>> to_channels(torch.tensor([[[[10]], [[20]], [[30]]]], dtype=torch.uint8), 1).flatten().tolist()
    [18]
    """
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        luma = torch.tensor((0.299, 0.587, 0.114)).view(1, 3, 1, 1)
        return (x.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ConfigError(f"cannot convert {c}-channel images to {channels} channels; use channels 1 or 3")


def resize(x: Tensor, size: int) -> Tensor:
    """uint8 ``(N, C, h, w)`` → uint8 ``(N, C, size, size)``: bilinear (``align_corners=False``),
    antialiased when shrinking, rounded; unchanged when already ``size × size``.

    >>> resize(torch.full((1, 1, 28, 28), 200, dtype=torch.uint8), 32).unique().tolist()
    [200]
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    shrink = size < h or size < w
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def crop_square(x: Tensor, center_crop: int | None, size: int | None) -> Tensor:
    """The centred ``center_crop`` square of ``(..., H, W)``; without ``center_crop`` but with a
    ``size``, the centred square of the short side of a non-square image; else ``x``."""
    from torchvision.transforms.v2.functional import center_crop as tv_center_crop

    h, w = x.shape[-2:]
    side = center_crop if center_crop is not None else (min(h, w) if size is not None and h != w else None)
    return x if side is None or (h, w) == (side, side) else tv_center_crop(x, [side, side])


def prepare(
    x: Tensor, channels: int, size: int | None, center_crop: int | None = None, chunk: int = 4096
) -> Tensor:
    """Channels, crop, resize (module docstring) of uint8 ``(N, c, h, w)``, in chunks of ``chunk``
    images (bounded float memory)."""
    if center_crop is not None and min(x.shape[-2:]) < center_crop:
        raise ConfigError(
            f"images are {x.shape[-1]}×{x.shape[-2]}, smaller than data center_crop {center_crop}"
        )
    parts = []
    for part in x.split(chunk):
        part = crop_square(to_channels(part, channels), center_crop, size)
        parts.append(resize(part, size) if size is not None else part.contiguous())
    return torch.cat(parts) if len(parts) != 1 else parts[0]


def to_signed(x: Tensor) -> Tensor:
    """uint8 ``[0, 255]`` → float32 ``[-1, 1]``: ``x / 127.5 − 1`` (a float input passes through)."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


def flip_where(x: Tensor, flip: Tensor | None) -> Tensor:
    """``x (B, C, H, W)`` with the images where ``flip (B,)`` is true mirrored left-right."""
    if flip is None:
        return x
    return torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


# --------------------------------------------------------------------------------------------------
# A decoded split
# --------------------------------------------------------------------------------------------------


class ImageSet:
    """A decoded split: ``len`` images of ``image_shape``, ``labels`` or None, and
    :meth:`gather` of any of them as float ``[-1, 1]`` on the device its storage is on.

    >>> s = ImageSet(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
    >>> len(s), s.image_shape, s.gather(torch.tensor([0])).tolist()
    (1, (1, 1, 2), [[[[-1.0, 1.0]]]])
    """

    def __init__(self, images: Tensor, labels: Tensor | None = None) -> None:
        self.images, self.labels = images, labels  # uint8 (N, C, H, W); (N, ...) or None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> ImageSet:
        """The same images on ``device`` (itself when they are there already)."""
        images = self.images.to(device)
        return self if images is self.images else ImageSet(images, self.labels)

    def gather(self, idx: Tensor, flip: Tensor | None = None) -> Tensor:
        """Images ``idx (B,)`` as float32 ``(B, C, H, W)`` in ``[-1, 1]``, mirrored where ``flip``."""
        return to_signed(flip_where(self.images[idx], flip))


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


class ImageSource:
    """A data set read from disk: :meth:`check` (cheap: the files are there) and :meth:`load` of a
    split (decoded once, cached). Subclasses set ``name``, ``splits``, ``native_channels`` and
    implement :meth:`read` (uint8 images of the native channels, labels)."""

    name = ""
    splits: tuple[str, ...] = ("train", "test")
    native_channels = 3
    needs_root = True
    #: distinct modes of the data (1,000 for stacked digits), or None
    num_modes: int | None = None

    def __init__(
        self,
        root: str | None = None,
        size: int | None = None,
        channels: int | None = None,
        center_crop: int | None = None,
    ) -> None:
        if self.needs_root and root is None:
            raise ConfigError(f"data root is required for {self.name}: {self.expected_files('ROOT')}")
        if not self.needs_root and root is not None:
            raise ConfigError(f"{self.name} reads no files; leave data root unset (null), got {root!r}")
        if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
            raise ConfigError(f"data channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        for label, v in (("size", size), ("center_crop", center_crop)):
            if v is not None:
                check_int(f"data {label}", v)
        self.root = Path(root).expanduser() if root is not None else None
        self.size, self.center_crop = size, center_crop
        self.channels = channels if channels is not None else self.native_channels
        self._sets: dict[str, ImageSet] = {}
        self.check()

    def expected_files(self, root: str) -> str:
        """What must be under ``root``, and how to get it (for the messages)."""
        return f"pass the folder holding the {self.name} files"

    def check(self) -> None:
        """Raise one :class:`ConfigError` line when files are missing (no decoding)."""

    def check_split(self, split: str) -> str:
        check_choice(f"{self.name} split", split, self.splits, plural=f"{self.name} splits")
        return split

    def read(self, split: str) -> tuple[Tensor, Tensor | None]:
        """uint8 ``(N, native_channels, h, w)`` and labels ``(N, ...)`` or None."""
        raise NotImplementedError

    def build(self, split: str) -> ImageSet:
        images, labels = self.read(split)
        return ImageSet(prepare(images, self.channels, self.size, self.center_crop), labels)

    def load(self, split: str) -> ImageSet:
        """The decoded split (read once, then cached)."""
        split = self.check_split(split)
        if split not in self._sets:
            self._sets[split] = self.build(split)
        return self._sets[split]

    def describe(self) -> dict:
        """What identifies the data (dataset, root, size, channels, crop) beside the split."""
        return {
            "dataset": self.name,
            "root": str(self.root.resolve()) if self.root is not None else None,
            "size": self.size,
            "channels": self.channels,
            "center_crop": self.center_crop,
        }


#: name -> :class:`ImageSource` class; each takes ``root, size, channels, center_crop`` (and may
#: take more). Add one with ``@IMAGE_DATASETS.register(name=...)``.
IMAGE_DATASETS: Registry[ImageSource] = Registry("image dataset", base=ImageSource)


# --- MNIST, Fashion-MNIST ---------------------------------------------------------------------------

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def check_idx(path: Path, ndim: int) -> None:
    """Refuse (naming ``path``) an IDX file whose header is not uint8 with ``ndim`` dimensions or
    whose length is not ``4 + 4·ndim + prod(dims)`` bytes."""
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    size = path.stat().st_size
    ok = len(head) == 4 + 4 * ndim and head[:2] == b"\0\0" and head[2] == 0x08 and head[3] == ndim
    if ok:
        dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        ok = size == 4 + 4 * ndim + math.prod(dims)
    if not ok:
        raise ConfigError(
            f"corrupt IDX file {str(path)!r} (not a uint8 {ndim}-D IDX file of the right length); "
            "replace it with the original (gunzipped) file"
        )


@IMAGE_DATASETS.register(name="mnist")
class MNISTImages(ImageSource):
    """MNIST digits (1 × 28 × 28, labels 0..9) through ``torchvision.datasets.MNIST``."""

    name = "mnist"
    native_channels = 1
    folder = "MNIST"  # torchvision's folder under root (the class name)
    url = "https://ossci-datasets.s3.amazonaws.com/mnist/"

    def expected_files(self, root: str) -> str:
        raw = Path(root) / self.folder / "raw"
        return (
            f"expected {', '.join(MNIST_FILES)} in {str(raw)!r} (torchvision's layout); download the .gz files "
            f"from {self.url} on a machine with internet and gunzip them there"
        )

    def raw_folder(self) -> Path:
        assert self.root is not None
        return self.root / self.folder / "raw"

    def check(self) -> None:
        raw = self.raw_folder()
        processed = self.root / self.folder / "processed"
        if all((processed / f).is_file() for f in ("training.pt", "test.pt")):
            return  # torchvision's legacy cache
        missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
        if missing:
            hint = ""
            if (self.root / "raw" / MNIST_FILES[0]).is_file():
                hint = (
                    f" (data root should be the folder that holds {self.folder}/: {str(self.root.parent)!r})"
                )
            elif any((raw / f"{f}.gz").is_file() for f in missing):
                hint = " (gunzip the .gz files: torchvision reads the uncompressed files)"
            raise ConfigError(
                f"{self.name} files missing in {str(raw)!r}: {', '.join(missing)}{hint}; "
                f"{self.expected_files(str(self.root))}"
            )
        for f in MNIST_FILES:  # headers and lengths only: a truncated or foreign file is named
            check_idx(raw / f, 3 if "images" in f else 1)

    def dataset(self, train: bool):
        from torchvision.datasets import MNIST

        return MNIST(str(self.root), train=train, download=False)

    def read(self, split: str) -> tuple[Tensor, Tensor]:
        raw = self.raw_folder()
        try:
            ds = self.dataset(train=split == "train")
        except (RuntimeError, AssertionError, ValueError, TypeError) as e:
            raise ConfigError(
                f"cannot read {self.name} from {str(raw)!r}: {' '.join(str(e).split())[:160]}; "
                f"{self.expected_files(str(self.root))}"
            ) from None
        return ds.data.unsqueeze(1).contiguous(), ds.targets.clone()  # (N, 1, 28, 28) uint8, (N,) int64


@IMAGE_DATASETS.register(name="fashion_mnist")
class FashionMNISTImages(MNISTImages):
    """Fashion-MNIST (1 × 28 × 28, labels 0..9) through ``torchvision.datasets.FashionMNIST``."""

    name = "fashion_mnist"
    folder = "FashionMNIST"
    url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

    def dataset(self, train: bool):
        from torchvision.datasets import FashionMNIST

        return FashionMNIST(str(self.root), train=train, download=False)


# --- torchvision sets whose files have md5s ----------------------------------------------------------


def first_corrupt(folder: Path, files: list[tuple[str, str]]) -> str | None:
    """The first of ``(name, md5)`` under ``folder`` whose md5 differs (torchvision's check)."""
    from torchvision.datasets.utils import check_integrity

    return next((name for name, md5 in files if not check_integrity(str(folder / name), md5)), None)


@IMAGE_DATASETS.register(name="cifar10")
class CIFAR10Images(ImageSource):
    """CIFAR-10 (3 × 32 × 32, labels 0..9) through ``torchvision.datasets.CIFAR10``, which checks the
    md5 of every file of the python version (``cifar-10-python.tar.gz`` extracted)."""

    name = "cifar10"

    @staticmethod
    def files() -> list[tuple[str, str]]:
        from torchvision.datasets import CIFAR10

        meta = CIFAR10.meta
        return [(n, m) for n, m in CIFAR10.train_list + CIFAR10.test_list] + [(meta["filename"], meta["md5"])]

    def expected_files(self, root: str) -> str:
        return (
            f"expected the folder {str(Path(root) / 'cifar-10-batches-py')!r} with data_batch_1..5, test_batch and "
            "batches.meta; download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html on a "
            "machine with internet and extract it into data root"
        )

    def check(self) -> None:
        folder = self.root / "cifar-10-batches-py"
        missing = [n for n, _ in self.files() if not (folder / n).is_file()]
        if missing:
            raise ConfigError(
                f"{self.name} files missing in {str(folder)!r}: {', '.join(missing)}; "
                f"{self.expected_files(str(self.root))}"
            )

    def read(self, split: str) -> tuple[Tensor, Tensor]:
        from torchvision.datasets import CIFAR10

        folder = self.root / "cifar-10-batches-py"
        try:
            ds = CIFAR10(str(self.root), train=split == "train", download=False)
        except RuntimeError as e:
            bad = first_corrupt(folder, self.files())
            what = f"{str(folder / bad)!r} fails torchvision's md5 check" if bad else str(e)
            raise ConfigError(
                f"cannot read {self.name}: {what} (corrupt, or not the python version of CIFAR-10); "
                f"extract cifar-10-python.tar.gz again"
            ) from None
        images = (
            torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        )  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        return images, torch.as_tensor(ds.targets, dtype=torch.int64)


def decode_files(
    files: list[Path], channels: int, size: int | None, center_crop: int | None, what: str
) -> Tensor:
    """Decode, crop and resize ``files`` one by one into uint8 ``(N, channels, H, W)`` (the float
    copy of one image at a time only). Without ``size`` every image must have the first one's shape."""
    out: Tensor | None = None
    for i, f in enumerate(files):
        img = load_image(f, channels).unsqueeze(0)  # (1, C, h, w)
        if center_crop is not None and min(img.shape[-2:]) < center_crop:
            raise ConfigError(
                f"image {str(f)!r} is {img.shape[-1]}×{img.shape[-2]}, smaller than data center_crop {center_crop}"
            )
        img = prepare(img, channels, size, center_crop)[0]
        if out is None:
            out = torch.empty((len(files), *img.shape), dtype=torch.uint8)
        elif img.shape != out.shape[1:]:
            raise ConfigError(
                f"image {str(f)!r} is {img.shape[-1]}×{img.shape[-2]}, not {out.shape[-1]}×{out.shape[-2]} like "
                f"the others of {what}; set data size (and center_crop) to resize them all"
            )
        out[i] = img
    assert out is not None
    return out


@IMAGE_DATASETS.register(name="celeba")
class CelebAImages(ImageSource):
    """Aligned CelebA faces (178 × 218 JPEGs, 40 binary attributes as labels) through
    ``torchvision.datasets.CelebA`` (the split lists and their md5s); each image decoded with
    torchvision.io, then cropped and resized. ``size`` is required (64 is usual, with a
    ``center_crop`` of 108 to 178)."""

    name = "celeba"
    splits = ("train", "valid", "test", "all")
    lists = (
        "list_attr_celeba.txt",
        "identity_CelebA.txt",
        "list_bbox_celeba.txt",
        "list_landmarks_align_celeba.txt",
        "list_eval_partition.txt",
    )

    def expected_files(self, root: str) -> str:
        return (
            f"expected {str(Path(root) / 'celeba')!r} holding img_align_celeba/ (img_align_celeba.zip extracted) and "
            f"{', '.join(self.lists)}; download them from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
            "on a machine with internet"
        )

    def check(self) -> None:
        if self.size is None:
            raise ConfigError(
                "celeba needs data size (e.g. 64, with center_crop 108..178): its 178×218 images would take 19 GB"
            )
        folder = self.root / "celeba"
        missing = [n for n in self.lists if not (folder / n).is_file()]
        missing += [] if (folder / "img_align_celeba").is_dir() else ["img_align_celeba/"]
        if missing:
            raise ConfigError(
                f"{self.name} files missing in {str(folder)!r}: {', '.join(missing)}; "
                f"{self.expected_files(str(self.root))}"
            )

    def read(self, split: str) -> tuple[Tensor, Tensor]:
        from torchvision.datasets import CelebA

        folder = self.root / "celeba"
        try:
            ds = CelebA(str(self.root), split=split, target_type="attr", download=False)
        except RuntimeError as e:
            bad = first_corrupt(
                folder, [(name, md5) for _, md5, name in CelebA.file_list if name in self.lists]
            )
            what = f"{str(folder / bad)!r} fails torchvision's md5 check" if bad else str(e)
            raise ConfigError(
                f"cannot read {self.name}: {what}; {self.expected_files(str(self.root))}"
            ) from None
        files = [folder / "img_align_celeba" / name for name in ds.filename]
        missing = next((f for f in files if not f.is_file()), None)
        if missing is not None:
            raise ConfigError(f"celeba image {str(missing)!r} is missing; extract img_align_celeba.zip again")
        images = decode_files(files, self.channels, self.size, self.center_crop, f"celeba {split}")
        return images, ds.attr.clone()  # (N, C, size, size), (N, 40) in {0, 1}

    def build(self, split: str) -> ImageSet:
        return ImageSet(*self.read(split))  # decoded at the output channels and size already


@IMAGE_DATASETS.register(name="folder")
class FolderImages(ImageSource):
    """Every ``.png`` / ``.jpg`` / ``.jpeg`` under ``root``, sorted by path. Two layouts:

    - flat: some image lies directly in ``root`` → every image under it (recursively), no labels;
    - class folders (no image directly in ``root``): ``torchvision.datasets.ImageFolder``, labels =
      the class index of the sub-folder (sorted names).

    One set: split ``train`` and ``all`` both mean every image (``test`` is refused).
    """

    name = "folder"
    splits = ("train", "all")

    def expected_files(self, root: str) -> str:
        return "pass a folder of .png/.jpg images (flat, or one sub-folder per class)"

    def check(self) -> None:
        self.files()

    def layout(self) -> str:
        return (
            "flat"
            if any(p.suffix.lower() in IMAGE_SUFFIXES for p in self.root.iterdir() if p.is_file())
            else "classes"
        )

    def files(self) -> tuple[list[Path], Tensor | None]:
        files = list_images(self.root)  # refuses a missing / empty folder
        if self.layout() == "flat":
            return files, None
        from torchvision.datasets import ImageFolder

        ds = ImageFolder(str(self.root), is_valid_file=lambda p: Path(p).suffix.lower() in IMAGE_SUFFIXES)
        return [Path(p) for p, _ in ds.samples], torch.as_tensor(ds.targets, dtype=torch.int64)

    def check_split(self, split: str) -> str:
        return "all" if super().check_split(split) == "train" else split  # one set under two names

    def read(self, split: str) -> tuple[Tensor, Tensor | None]:
        files, labels = self.files()
        return decode_files(files, self.channels, self.size, self.center_crop, str(self.root)), labels

    def build(self, split: str) -> ImageSet:
        return ImageSet(*self.read(split))  # decoded at the output channels and size already

    def describe(self) -> dict:
        return {**super().describe(), "layout": self.layout()}


# --------------------------------------------------------------------------------------------------
# Sampling by epochs
# --------------------------------------------------------------------------------------------------


class EpochSampler:
    """Indices of ``n`` items without replacement, by epochs, from one CPU generator.

    Epoch ``e``: ``perm = randperm(n, g)``, then ``flip = rand(n, g) < 0.5``; :meth:`take` reads both
    in order and runs on into the next epoch. :meth:`state` is the generator's state at the start of
    the current epoch with the epoch and position: a sampler made on a generator set to that state,
    given ``position`` (the epoch, position, n), redraws that epoch and continues.

    >>> s = EpochSampler(5, torch.Generator().manual_seed(0))
    >>> a = s.take(3)[0].tolist() + s.take(3)[0].tolist()  # 6 = one epoch of 5, and one more
    >>> sorted(a[:5]), s.epoch, s.position
    ([0, 1, 2, 3, 4], 1, 1)
    """

    def __init__(self, n: int, generator: torch.Generator, position: dict | None = None) -> None:
        self.n, self.generator = n, generator
        self.epoch, self.position = 0, 0
        self._start_epoch()  # the generator is at the start of the epoch (a fresh or a restored stream)
        if position is not None:
            if int(position.get("n", n)) != n:
                raise ConfigError(
                    f"the checkpoint's data stream runs over {position['n']} images, this data set holds {n}; "
                    "resume with the data the run was started with"
                )
            self.epoch, self.position = int(position["epoch"]), int(position["position"])

    def _start_epoch(self) -> None:
        self.start_state = self.generator.get_state()
        self.perm = torch.randperm(self.n, generator=self.generator)  # (n,) int64
        self.flip = torch.rand(self.n, generator=self.generator) < 0.5  # (n,) bool

    def take(self, count: int) -> tuple[Tensor, Tensor]:
        """The next ``count`` indices ``(count,)`` and their flip bits ``(count,)``."""
        idx, flip = [], []
        while count > 0:
            if self.position == self.n:
                self.epoch, self.position = self.epoch + 1, 0
                self._start_epoch()
            k = min(count, self.n - self.position)
            idx.append(self.perm[self.position : self.position + k])
            flip.append(self.flip[self.position : self.position + k])
            self.position, count = self.position + k, count - k
        return (torch.cat(idx), torch.cat(flip)) if len(idx) != 1 else (idx[0], flip[0])

    def state(self) -> dict:
        return {"generator": self.start_state, "epoch": self.epoch, "position": self.position, "n": self.n}


# --------------------------------------------------------------------------------------------------
# The datamodule
# --------------------------------------------------------------------------------------------------


class ImageDataModule(DrawnDataModule):
    """Unconditional image batches ``(B, C, H, W)`` in ``[-1, 1]`` (module docstring), drawn on the
    training device from per-member epoch streams kept in checkpoints.

    Args:
        dataset: a name of :data:`IMAGE_DATASETS` (``mnist``, ``fashion_mnist``, ``cifar10``,
            ``celeba``, ``folder``, ``stacked_digits``, ``stacked_mnist``), built with ``root``,
            ``size``, ``channels``, ``center_crop``; or an :class:`ImageSource` (a ``class_path`` in
            YAML, for a source's own arguments), in which case those four must be left unset.
        root: the local folder torchvision's layout starts from; None only for ``stacked_digits``.
        split: the training split (``train`` / ``test``; ``folder``: every image).
        size: resize to ``size × size`` once at load (None: the native size).
        channels: 1 or 3 (None: the data set's own).
        center_crop: a centred square cropped before resizing (None: see the module docstring).
        hflip: mirror each image with probability 1/2, the bit drawn from the data stream.
        batch_size: images per step (per member, per DDP rank).
        steps_per_epoch: length of one (Lightning) epoch in steps.
        seed: base seed of the data streams; None takes the run's (:class:`~gan_lab.data.context.RunContext`).
        members: ensemble members E (batches ``(E, B, C, H, W)``, member k from its own stream);
            None takes the run's (image nets have none: plain batches).
        pack: PacGAN's packing degree m: a batch holds ``batch_size · pack`` images (``batch_size``
            packs for D); None takes the run's (``model.remedies.pack``; 1 without a GANModule).

    >>> dm = ImageDataModule("stacked_digits", size=16, batch_size=4, seed=0)
    >>> x = dm.sample("cpu")
    >>> tuple(x.shape), dm.image_shape, bool(x.min() >= -1) and bool(x.max() <= 1)
    ((4, 3, 16, 16), (3, 16, 16), True)
    """

    def __init__(
        self,
        dataset: str | ImageSource = "stacked_digits",
        root: str | None = None,
        split: str = "train",
        size: int | None = None,
        channels: int | None = None,
        center_crop: int | None = None,
        hflip: bool = False,
        batch_size: int = 64,
        steps_per_epoch: int = 1000,
        seed: int | None = None,
        members: int | None = None,
        pack: int | None = None,
    ) -> None:
        super().__init__(check_int("data steps_per_epoch", steps_per_epoch))
        if pack is not None:
            check_int("data pack", pack, hint=" or null (the model's)")
        self.batch_size = check_int("data batch_size", batch_size)
        if members is not None:
            check_int("data members", members)
        if isinstance(dataset, ImageSource):
            given = {"root": root, "size": size, "channels": channels, "center_crop": center_crop}
            set_args = [k for k, v in given.items() if v is not None]
            if set_args:
                raise ConfigError(
                    f"data {', '.join(set_args)} must be set on the dataset's init_args when dataset is a class, "
                    "not beside it"
                )
            self.source = dataset
        else:
            check_choice("image dataset", dataset, IMAGE_DATASETS)
            self.source = IMAGE_DATASETS[dataset](
                root=root, size=size, channels=channels, center_crop=center_crop
            )
        self.split = self.source.check_split(split)
        self.hflip, self.seed, self.members, self.pack = bool(hflip), seed, members, pack
        self._device_set: ImageSet | None = None
        self._samplers: list[EpochSampler] | None = None
        self._loaded_positions: list[dict] | None = None  # epochs / positions of a checkpoint

    # --- data ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.source.name

    def train_set(self) -> ImageSet:
        """The training split, decoded (once), on the CPU."""
        return self.source.load(self.split)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of a batch's images (what G must output and D read)."""
        return self.train_set().image_shape

    @property
    def channels(self) -> int:
        """Image channels C (known without decoding: what the nets' channels are checked against)."""
        return self.source.channels

    @property
    def labels(self) -> Tensor | None:
        """The training split's labels ``(N,)`` (``(N, 3)`` digits for stacked data, ``(N, 40)``
        attributes for CelebA), or None (a flat folder)."""
        return self.train_set().labels

    @property
    def num_modes(self) -> int | None:
        """Distinct modes of the data (1,000 for stacked digits), or None."""
        return self.source.num_modes

    def describe(self) -> dict:
        """JSON-serialisable identity of the training data (the reference-statistics cache key):
        dataset, root, split, N, size, channels, and what else the source names."""
        c, h, _ = self.image_shape
        return {
            **self.source.describe(),
            "split": self.split,
            "N": len(self.train_set()),
            "size": h,
            "channels": c,
        }

    def reference(self, n: int, split: str = "train") -> tuple[Tensor, Tensor | None]:
        """``(images (n, C, H, W) float in [-1, 1], labels (n, ...) or None)``: the first ``n`` of
        ``split`` in a fixed order (``randperm`` seeded :data:`REFERENCE_SEED`), the same for every
        run and training seed, on the CPU, unflipped.

        Raises:
            ConfigError: ``n`` is more than the split holds, or the source has no such split.
        """
        check_int("reference image count", n)
        data = self.source.load(split)
        if n > len(data):
            raise ConfigError(
                f"{n} reference images asked of {self.name} {split}, which holds {len(data)}; ask for at most "
                f"{len(data)}"
            )
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n]
        return data.gather(idx), (data.labels[idx] if data.labels is not None else None)

    def reference_images(self, n: int, split: str = "train") -> Tensor:
        """The images of :meth:`reference`: ``(n, C, H, W)`` float in ``[-1, 1]``."""
        return self.reference(n, split)[0]

    # --- Lightning ----------------------------------------------------------------------------

    def setup(self, stage: str, context: RunContext | None = None) -> None:
        """Unset ``members``, ``seed`` and ``pack`` from ``context`` (None: the fitted module's,
        :func:`~gan_lab.data.context.run_context`), then the training set."""
        context = context or run_context(self.trainer)
        if self.members is None:
            self.members = context.members
        if self.seed is None:
            self.seed = context.seed
        if self.pack is None:
            self.pack = context.pack
        self.train_set()

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def samplers(self) -> list[EpochSampler]:
        """One epoch sampler per member over the training split (rank 0's streams on every rank)."""
        if self._samplers is None:
            n = len(self.train_set())
            gens = self.streams().generators("cpu", 0)  # a checkpoint's epoch start states, if loaded
            positions = self._loaded_positions or [None] * len(gens)
            if len(positions) != len(gens):
                positions = [None] * len(gens)  # the streams warned: fresh streams for another member count
            self._samplers = [EpochSampler(n, g, pos) for g, pos in zip(gens, positions)]
            self._loaded_positions = None
        return self._samplers

    def sample(
        self, device: torch.device | str = "cpu", rank: int | None = None, world_size: int | None = None
    ):
        """One batch ``(B, C, H, W)`` (``(E, B, C, H, W)`` with members; ``B = batch_size · pack``)
        on ``device``: this rank's block of ``B`` of the next ``B · world_size`` images of each
        member's stream."""
        rank = self.rank if rank is None else rank
        world_size = self.world_size if world_size is None else world_size
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # "cuda" is the current device: compare as such
            device = torch.device("cuda", torch.cuda.current_device())
        if self._device_set is None or self._device_set.device != device:
            self._device_set = self.train_set().to(device)  # copied once per device
        b, batches = self.samples_per_batch, []
        for sampler in self.samplers():
            idx, flip = sampler.take(b * world_size)
            idx, flip = idx[rank * b : (rank + 1) * b], flip[rank * b : (rank + 1) * b]
            if self.hflip:  # one host-to-device copy: 2 · index + flip bit
                code = (idx * 2 + flip).to(device, non_blocking=True)
                batches.append(
                    self._device_set.gather(code.div(2, rounding_mode="floor"), code.remainder(2).bool())
                )
            else:
                batches.append(self._device_set.gather(idx.to(device, non_blocking=True)))
        return torch.stack(batches) if self.members is not None else batches[0]

    def state_dict(self) -> dict:
        if self._samplers is not None:
            states = [s.state() for s in self._samplers]
            return {
                "generators": [s["generator"] for s in states],
                "positions": [{k: s[k] for k in ("epoch", "position", "n")} for s in states],
            }
        if self._loaded is not None:
            return {"generators": self._loaded, "positions": self._loaded_positions}
        return {}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)  # the epochs' start states, applied when the streams are made
        self._loaded_positions = state.get("positions")
        self._samplers = None
