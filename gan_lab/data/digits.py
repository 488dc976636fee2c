"""scikit-learn's 8×8 handwritten digits as images in [-1, 1]: the offline digit data of the lab.

The 1,797 digits (UCI optdigits test set, values 0..16) ship inside scikit-learn, so nothing is
downloaded. :func:`digit_images` scales them to ``x = v / 8 − 1 ∈ [−1, 1]`` and upsamples them to
``size × size`` with bilinear interpolation (``align_corners=False``, no antialiasing: it only
enlarges). Both the stacked-digits data (:mod:`gan_lab.data.stacked`) and the lab's digit
classifier (:mod:`gan_lab.metrics.digit_classifier`) read digits through this one function, so a
classifier sees digits exactly as the data sets draw them.

:func:`digit_split` is the fixed held-out split of the classifier: ``held_out`` digits chosen by a
permutation seeded ``seed``, the rest for training.

>>> x, y = digit_images(16)
>>> tuple(x.shape), x.dtype, float(x.min()), float(x.max()), tuple(y.shape)
((1797, 1, 16, 16), torch.float32, -1.0, 1.0, (1797,))
>>> train, test = digit_split(1797, held_out=300, seed=0)
>>> len(train), len(test), len(set(train.tolist()) & set(test.tolist()))
(1497, 300, 0)
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lab.errors import ConfigError

#: sizes the digits can be upsampled to (8 is the original)
DIGIT_SIZES = (8, 16, 28, 32, 64)


@lru_cache(maxsize=8)
def _digits_8x8() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32)  # (1797, 8, 8), 0..16
    labels = torch.as_tensor(digits.target, dtype=torch.int64)  # (1797,)
    return images, labels


def digit_images(size: int = 16) -> tuple[Tensor, Tensor]:
    """scikit-learn's digits as ``(images (1797, 1, size, size) in [-1, 1], labels (1797,) int64)``.

    Raises:
        ConfigError: ``size`` is not one of :data:`DIGIT_SIZES`.
    """
    if size not in DIGIT_SIZES:
        raise ConfigError(f"digit image size must be one of {list(DIGIT_SIZES)}, got {size!r}")
    images, labels = _digits_8x8()
    x = (images / 8.0 - 1.0).unsqueeze(1)  # (N, 1, 8, 8) in [-1, 1]
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(-1.0, 1.0)
    return x.contiguous(), labels.clone()


def digit_split(n: int, held_out: int = 300, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Indices ``(train, test)`` of a fixed split of ``n`` digits: ``held_out`` test digits chosen
    by ``torch.randperm(n)`` under ``seed``, sorted; the rest for training, sorted."""
    if not 0 < held_out < n:
        raise ConfigError(f"held_out must be between 1 and {n - 1}, got {held_out!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[held_out:].sort().values, perm[:held_out].sort().values
