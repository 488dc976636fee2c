"""``gan-lab metrics``: the lab's image metrics between two sets of images that need not come from
the lab, printed as JSON.

    gan-lab metrics FAKE_DIR REAL_DIR --feature-net inception_v3 --weights PATH
    gan-lab metrics FAKE_DIR --dataset cifar10 --root data/cifar10 --split train --n-real 50000 --weights PATH
    gan-lab metrics samples/ --dataset stacked_digits                   # FD on digit-classifier features

Images. ``FAKE_DIR`` (and ``REAL_DIR``) are folders of ``.png`` / ``.jpg`` images of one size, read
recursively in sorted order, up to ``--n`` (``--n-real``) of them (``gan-lab sample --png DIR``
writes such a folder). Every image is decoded to RGB, whatever mode its file stores; a folder whose
images are all grey (R = G = B in every pixel) is read as one channel, any other as three. Both
sides are then compared at one channel count: three when either side has colour (a grey side is
repeated to RGB, so that no colour of the other side is thrown away), one when both are grey.
``--dataset`` takes the first ``--n-real`` reference images of a data set the lab reads, at the
generated images' size (or ``--size``) and at its own channel count (three when the generated
images have colour) (:class:`~gan_lab.data.images.ImageDataModule`, from its local ``--root``;
nothing is downloaded), with its real features cached like a study's.

Feature network: ``--feature-net``; by default ``digit_classifier`` with ``--dataset``
``stacked_digits`` / ``stacked_mnist`` (as the lab's image evaluator scores them: "FD on
digit-classifier features", no Inception weights needed) and ``inception_v3`` otherwise (``--weights``
or the torch hub cache); ``vgg16_fc``; or a class path. The digit classifier classifies each
channel of the images at their size (three channels for stacked digits), trained once by the lab
and cached (``--cache-dir``); it takes no ``--weights``.

KID subset size: ``--kid-subset-size M`` with fewer than ``M`` images on a side is refused (exit 2;
two folders: from their listings, before any image is decoded); without the flag it is the paper's 1,000, lowered to the smaller image
count when a side has fewer, which the output states (``settings.kid_subset_size`` and a line in
``notes``). Subsets of equal size per side, as torchmetrics and torch-fidelity draw them.

The output names the feature network and its weights hash, the sample counts, the settings, any
``notes`` and every metric (:func:`gan_lab.metrics.suite.image_metrics`). Bad input is one line and
exit code 2, before any image goes through the feature net: flags out of range, a missing weights
file (a given ``--weights`` file is loaded with the flags), a folder without images, an unreadable
image, images of mixed sizes, too few images for a metric (FD: 2 per side; precision / recall:
more than ``--k-pr`` per side; density / coverage: more than ``--k-dc`` real; KID: see above); and,
once computed, features that are not finite (NaN / inf: the message says how many, and the first
image that gave one), for which no metric is defined.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from gan_lab.data.image_files import list_images, load_image, to_signed
from gan_lab.data.images import ImageDataModule, to_channels
from gan_lab.errors import ConfigError, fail
from gan_lab.evaluators.fixed_samples import features_of
from gan_lab.evaluators.image import reference_key
from gan_lab.metrics.features import load_feature_net
from gan_lab.metrics.reference import reference_features
from gan_lab.metrics.suite import SuiteSettings, image_metrics
from gan_lab.weights import MissingWeightsError

#: data sets whose default feature net is the lab's digit classifier (as the image evaluator's)
DIGIT_DATASETS: tuple[str, ...] = ("stacked_digits", "stacked_mnist")
#: KID's subset size without ``--kid-subset-size`` (Bińkowski et al.'s), lowered to the image count
DEFAULT_KID_SUBSET_SIZE = 1000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage + message and exit
        raise ConfigError(f"{message} (see gan-lab metrics --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gan-lab metrics", description="Image metrics between two image sets, as JSON.")
    p.add_argument("fake", help="folder of generated images (.png/.jpg, one size)")
    p.add_argument("real", nargs="?", default=None, help="folder of real images (or use --dataset)")
    p.add_argument("--dataset", default=None, help="a data set the lab reads, instead of REAL")
    p.add_argument("--root", default=None, help="the data set's local root")
    p.add_argument("--split", default="train", choices=("train", "test"), help="the data set's split")
    p.add_argument(
        "--size", type=int, default=None, help="resize the data set to this (default: the fake size)"
    )
    p.add_argument("--n", type=int, default=None, help="generated images to use (default: all)")
    p.add_argument("--n-real", type=int, default=None, help="real images to use (default: all / 10,000)")
    p.add_argument(
        "--feature-net",
        default=None,
        help="inception_v3, vgg16_fc, digit_classifier, or a class path (default: digit_classifier for "
        f"--dataset {' / '.join(DIGIT_DATASETS)}, else inception_v3)",
    )
    p.add_argument("--weights", default=None, help="weights file of the feature network")
    p.add_argument("--cache-dir", default=None, help="cache of reference features (default: the lab's)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument(
        "--kid-subset-size",
        type=int,
        default=None,
        help=f"KID's samples per side and subset; more than a side's images is refused (default: "
        f"{DEFAULT_KID_SUBSET_SIZE}, lowered to the smaller image count, as the output notes)",
    )
    p.add_argument("--k-pr", type=int, default=3)
    p.add_argument("--k-dc", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


def image_files(root: str, n: int | None, what: str = "image folder") -> list[Path]:
    """The first ``n`` image files (sorted, recursively) under ``root``.

    Raises:
        ConfigError: ``root`` is not a folder, or holds no image.
    """
    files = list_images(root, what=what)
    return files[:n] if n is not None else files


def read_images(files: Sequence[Path], root: str = "the folder") -> Tensor:
    """``files`` as uint8 ``(n, C, H, W)``: every image decoded to RGB, whatever mode its file stores,
    then ``C = 1`` when all of them are grey (R = G = B everywhere), else ``C = 3`` (grey images
    among colour ones stay R = G = B).

    Raises:
        ConfigError: an image that cannot be decoded, or images of different sizes (the message
            names one of each).
    """
    images: list[Tensor] = []
    for f in files:
        img = load_image(f, 3)  # (3, H, W) uint8
        if images and img.shape != images[0].shape:
            raise ConfigError(
                f"images of different sizes in {str(root)!r}: {files[0].name} is {tuple(images[0].shape[1:])}, "
                f"{f.name} is {tuple(img.shape[1:])}; resize them to one size first"
            )
        images.append(img)
    x = torch.stack(images)  # (n, 3, H, W)
    grey = bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all())
    return x[:, :1].contiguous() if grey else x


def read_folder(root: str, n: int | None, channels: int | None = None) -> Tensor:
    """The first ``n`` images (sorted) under ``root`` as ``(n, C, H, W)`` float in [-1, 1]: ``C`` as
    :func:`read_images` decides it, or ``channels`` (grey repeated to RGB, RGB to BT.601 luma).

    Raises:
        ConfigError: no images, an image that cannot be decoded, images of different sizes.
    """
    images = read_images(image_files(root, n), root)
    return to_signed(to_channels(images, channels or images.shape[1]))


# ----------------------------------------------------------------------------------------------
# The steps
# ----------------------------------------------------------------------------------------------


def _net_name(args) -> str:
    if args.feature_net is not None:
        return args.feature_net
    return "digit_classifier" if args.dataset in DIGIT_DATASETS else "inception_v3"


def _feature_net(args, size: int | None = None, channels: int | None = None):
    name = _net_name(args)
    kwargs = {}
    if args.weights is not None:
        kwargs["weights"] = args.weights
    if name == "digit_classifier":  # as the image evaluator builds it: the data's size and channels
        kwargs.update(size=size, channels=channels, cache_dir=args.cache_dir)
    try:
        return load_feature_net(name, **kwargs)
    except MissingWeightsError as e:  # its message names the init argument; here it is a flag
        raise ConfigError(str(e).replace("weights=PATH", "--weights PATH")) from None


class _Real:
    """The real side before any feature is computed: a folder's images, or a data set's module."""

    def __init__(self, args, files: list[Path], fake_channels: int, fake_size: int) -> None:
        self.images: Tensor | None = None
        self.files = files
        self.dm: ImageDataModule | None = None
        self.notes: list[str] = []
        if args.real is not None:
            self.images = read_images(files, args.real)
            self.n, own = len(files), int(self.images.shape[1])
            self.size = int(self.images.shape[-1])
        else:
            self.size = args.size or fake_size  # the generated images' size, unless --size says otherwise
            source = dict(dataset=args.dataset, root=args.root, split=args.split, size=self.size)
            own = int(ImageDataModule(**source).channels)
        self.channels = max(fake_channels, own)  # colour on either side: both compared in RGB
        if fake_channels != own:
            grey = "generated" if fake_channels < own else "real"
            self.notes.append(f"the {grey} images are grey, the others colour: grey repeated to RGB")
        if args.real is not None:
            return
        self.dm = ImageDataModule(**source, channels=None if self.channels == own else self.channels)
        self.dm.setup("fit")
        available = int(self.dm.describe()["N"])
        self.n = args.n_real or min(10_000, available)
        if self.n > available:
            raise ConfigError(
                f"--n-real {self.n}: the {args.dataset} {args.split} split holds {available} images; "
                f"ask for at most {available}"
            )

    def features(self, args, net, device) -> tuple[Tensor, dict]:
        if self.images is not None:
            real = to_signed(to_channels(self.images, self.channels))
            feats, _ = _features(net, real, args, device)
            return feats, {"folder": str(args.real), "n": self.n, "shape": list(real.shape[1:])}
        key = reference_key(self.dm.describe(), args.split, self.n)
        ref = reference_features(
            net,
            self.dm.reference_images(self.n, split=args.split),
            key,
            cache_dir=args.cache_dir,
            batch_size=args.batch_size,
        )
        return ref.features.to(device), {**ref.key, "cache": str(ref.path)}


def _check_counts(args, n_fake: int, n_real: int) -> tuple[int, list[str]]:
    """KID's subset size (and notes) for these image counts; too few images for a metric is one line."""
    counts = f"{n_fake} generated / {n_real} real images"
    if min(n_fake, n_real) < 2:
        raise ConfigError(f"a Fréchet distance needs at least 2 images per side, got {counts}")
    notes = []
    if args.kid_subset_size is not None:
        subset = args.kid_subset_size
        if subset > min(n_fake, n_real):
            raise ConfigError(
                f"--kid-subset-size {subset} is more than the {counts}; "
                f"pass --kid-subset-size {min(n_fake, n_real)} or fewer, or more images"
            )
    else:
        subset = min(DEFAULT_KID_SUBSET_SIZE, n_fake, n_real)
        if subset < DEFAULT_KID_SUBSET_SIZE:
            notes.append(
                f"KID subset size {subset}, not {DEFAULT_KID_SUBSET_SIZE}: the {counts} "
                "(KID at another subset size is not comparable: pass --kid-subset-size to fix it)"
            )
    if n_fake <= args.k_pr or n_real <= max(args.k_pr, args.k_dc):
        raise ConfigError(
            f"precision / recall (k = {args.k_pr}) need more than {args.k_pr} images per side and "
            f"density / coverage (k = {args.k_dc}) more than {args.k_dc} real ones, got {counts}; "
            "add images or lower --k-pr / --k-dc"
        )
    return subset, notes


def _features(net, images: Tensor, args, device, logits: bool = False) -> tuple[Tensor, Tensor | None]:
    """``features_of``, with a net that refuses the images' shape as one line (not a traceback)."""
    try:
        return features_of(net, images, args.batch_size, device, logits=logits)
    except ConfigError:
        raise
    except (ValueError, RuntimeError) as e:
        reason = " ".join(str(e).split())[:200]
        raise ConfigError(
            f"feature net {net.name} cannot take images of shape {tuple(images.shape[1:])}: {reason}"
        ) from None


def _check_finite(feats: Tensor, side: str, files: list[Path]) -> None:
    """One line naming how many features (and of which images) are NaN or infinite."""
    bad = ~torch.isfinite(feats)
    if bool(bad.any()):
        rows = bad.any(1)
        first = int(rows.nonzero()[0, 0])
        where = f" (the first: {files[first].name})" if first < len(files) else ""
        raise ConfigError(
            f"the feature net gave {int(bad.sum())} non-finite feature values (NaN / inf) for "
            f"{int(rows.sum())} of the {feats.shape[0]} {side} images{where}; the metrics are undefined: "
            "check those images and the feature net"
        )


def compare(args) -> dict:
    """The JSON of ``gan-lab metrics`` for parsed ``args``."""
    if (args.real is None) == (args.dataset is None):
        raise ConfigError("give either REAL (a folder of real images) or --dataset NAME, not both or neither")
    name = _net_name(args)
    if name == "digit_classifier" and args.weights is not None:
        raise ConfigError(
            "--weights does not apply to --feature-net digit_classifier: the lab trains and caches it "
            "(see --cache-dir)"
        )
    device = torch.device(args.device)
    net = _feature_net(args) if args.weights is not None else None  # a given weights file: checked first
    fake_files = image_files(args.fake, args.n, what="generated image folder")
    real_files = [] if args.real is None else image_files(args.real, args.n_real, what="real image folder")
    if real_files:  # image counts known from the listings: checked before any image is decoded
        _check_counts(args, len(fake_files), len(real_files))
    fake_u8 = read_images(fake_files, args.fake)
    fake_size = int(fake_u8.shape[-1])
    real = _Real(args, real_files, int(fake_u8.shape[1]), fake_size)
    if name == "digit_classifier" and real.size != fake_size:
        raise ConfigError(
            f"the digit classifier reads one image size: generated images are {fake_size}×{fake_size}, "
            f"real ones {real.size}×{real.size}; resize one side (or leave --size unset)"
        )
    kid_subset_size, notes = _check_counts(args, len(fake_files), real.n)
    notes += real.notes
    fake = to_signed(to_channels(fake_u8, real.channels))
    if net is None:
        net = _feature_net(args, fake_size, real.channels)
    net = net.to(device)
    has_logits = net.name == "inception_v3"  # IS: ImageNet logits only
    fake_feats, logits = _features(net, fake, args, device, logits=has_logits)
    _check_finite(fake_feats, "generated", fake_files)
    real_feats, real_facts = real.features(args, net, device)
    _check_finite(real_feats, "real", real.files)
    settings = SuiteSettings(
        kid_subsets=args.kid_subsets, kid_subset_size=kid_subset_size, k_pr=args.k_pr, k_dc=args.k_dc
    )
    values = image_metrics(real_feats, fake_feats.to(device), logits, settings)
    return {
        "feature_net": net.describe(),
        "fake": {"folder": str(args.fake), "n": int(fake.shape[0]), "shape": list(fake.shape[1:])},
        "real": real_facts,
        "settings": settings.__dict__,
        "notes": notes,
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in values.items()},
    }


def metrics_main(argv: Sequence[str]) -> int:
    """``gan-lab metrics``: print the JSON; bad input is one line and exit code 2."""
    try:
        args = build_parser().parse_args(list(argv))
        for name in ("n", "n_real", "size", "batch_size", "kid_subsets", "k_pr", "k_dc"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if args.kid_subset_size is not None and args.kid_subset_size < 2:
            raise ConfigError(f"--kid-subset-size must be an integer >= 2, got {args.kid_subset_size}")
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("--device cuda, but no CUDA device is available; use --device cpu")
        if args.weights is not None and not Path(args.weights).expanduser().is_file():
            raise ConfigError(
                f"weights file {args.weights!r} not found; pass the path of the feature network's weights"
            )
        out = compare(args)
    except ConfigError as e:
        return fail(str(e))
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0
