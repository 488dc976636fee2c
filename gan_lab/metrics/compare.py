"""``gan-lab metrics``: the lab's image metrics between two sets of images that need not come from
the lab, printed as JSON.

    gan-lab metrics FAKE_DIR REAL_DIR --feature-net inception_v3 --weights PATH
    gan-lab metrics FAKE_DIR --dataset cifar10 --root data/cifar10 --split train --n-real 50000 --weights PATH
    gan-lab metrics samples/ --dataset stacked_digits                   # FD on digit-classifier features

``FAKE_DIR`` (and ``REAL_DIR``) are folders of ``.png`` / ``.jpg`` images of one size, read
recursively in sorted order, up to ``--n`` (``--n-real``) of them; ``--dataset`` takes the first
``--n-real`` reference images of a data set the lab reads, at the generated images' size (or ``--size``) (:class:`~gan_lab.data.images.ImageDataModule`,
from its local ``--root``; nothing is downloaded), with its real features cached like a study's. The
feature network is ``--feature-net`` (default ``inception_v3`` with ``--weights`` or the torch hub
cache; ``digit_classifier`` for digits, trained and cached by the lab; ``vgg16_fc``). The output
names the feature network and its weights hash, the sample counts and every metric
(:func:`gan_lab.metrics.suite.image_metrics`). Bad input (a folder without images, images of mixed
sizes, a missing weights file, fewer images than KID's subset size) is one line and exit code 2.
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

from gan_lab.errors import ConfigError, fail
from gan_lab.metrics.suite import SuiteSettings, image_metrics


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
    p.add_argument("--feature-net", default="inception_v3", help="inception_v3, vgg16_fc, digit_classifier")
    p.add_argument("--weights", default=None, help="weights file of the feature network")
    p.add_argument("--cache-dir", default=None, help="cache of reference features (default: the lab's)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    p.add_argument("--k-pr", type=int, default=3)
    p.add_argument("--k-dc", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p


def read_folder(root: str, n: int | None, channels: int | None = None) -> Tensor:
    """The first ``n`` images (sorted) under ``root`` as ``(n, C, H, W)`` float in [-1, 1].

    Raises:
        ConfigError: no images, or images of different sizes (the message names one of each).
    """
    from gan_lab.data.paired import list_images, load_image, to_signed

    files = list_images(root, what="image folder")
    files = files[:n] if n is not None else files
    first = load_image(files[0], 3)
    gray = bool((first[0] == first[1]).all() and (first[1] == first[2]).all())
    c = channels or (1 if gray else 3)
    images = []
    for f in files:
        img = load_image(f, c)
        if img.shape[1:] != first.shape[1:]:
            raise ConfigError(
                f"images of different sizes in {root!r}: {files[0].name} is {tuple(first.shape[1:])}, "
                f"{f.name} is {tuple(img.shape[1:])}; resize them to one size first"
            )
        images.append(img)
    return to_signed(torch.stack(images))


def _feature_net(args, size: int):
    from gan_lab.metrics.features import load_feature_net

    kwargs = {}
    if args.weights is not None:
        kwargs["weights"] = args.weights
    if args.feature_net == "digit_classifier":
        kwargs.update(size=size, cache_dir=args.cache_dir)
    return load_feature_net(args.feature_net, **kwargs)


def _real_features(args, net, fake_shape, device):
    from gan_lab.callbacks.fixed_samples import features_of

    if args.real is not None:
        real = read_folder(args.real, args.n_real, channels=fake_shape[0])
        feats, _ = features_of(net, real, args.batch_size, device)
        return feats, {"folder": str(args.real), "n": int(real.shape[0])}
    from gan_lab.callbacks.image_eval import reference_key
    from gan_lab.data.images import ImageDataModule
    from gan_lab.metrics.reference import reference_features

    # the data set at the generated images' size and channel count, unless --size says otherwise
    size = args.size or int(fake_shape[-1])
    dm = ImageDataModule(
        dataset=args.dataset, root=args.root, split=args.split, size=size, channels=fake_shape[0]
    )
    dm.setup("fit")
    n_real = args.n_real or min(10_000, int(dm.describe()["N"]))
    key = reference_key(dm.describe(), args.split, n_real)
    ref = reference_features(
        net,
        dm.reference_images(n_real, split=args.split),
        key,
        cache_dir=args.cache_dir,
        batch_size=args.batch_size,
    )
    return ref.features.to(device), {**ref.key, "cache": str(ref.path)}


def compare(args) -> dict:
    """The JSON of ``gan-lab metrics`` for parsed ``args``."""
    from gan_lab.callbacks.fixed_samples import features_of

    if (args.real is None) == (args.dataset is None):
        raise ConfigError("give either REAL (a folder of real images) or --dataset NAME, not both or neither")
    device = torch.device(args.device)
    fake = read_folder(args.fake, args.n)
    net = _feature_net(args, int(fake.shape[-1])).to(device)
    has_logits = net.name == "inception_v3"  # IS: ImageNet logits only
    fake_feats, logits = features_of(net, fake, args.batch_size, device, logits=has_logits)
    real_feats, real_facts = _real_features(args, net, tuple(fake.shape[1:]), device)
    settings = SuiteSettings(
        kid_subsets=args.kid_subsets,
        kid_subset_size=min(args.kid_subset_size, fake_feats.shape[0], real_feats.shape[0]),
        k_pr=args.k_pr,
        k_dc=args.k_dc,
    )
    values = image_metrics(real_feats, fake_feats.to(device), logits, settings)
    return {
        "feature_net": net.describe(),
        "fake": {"folder": str(args.fake), "n": int(fake.shape[0]), "shape": list(fake.shape[1:])},
        "real": real_facts,
        "settings": settings.__dict__,
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in values.items()},
    }


def metrics_main(argv: Sequence[str]) -> int:
    """``gan-lab metrics``: print the JSON; bad input is one line and exit code 2."""
    try:
        args = build_parser().parse_args(list(argv))
        for name in ("n", "n_real", "size", "batch_size", "kid_subsets", "kid_subset_size", "k_pr", "k_dc"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
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
