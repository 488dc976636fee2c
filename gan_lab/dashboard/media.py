"""The media an evaluator logs at every evaluation, as uint8 RGB arrays ``(H, W, 3)``.

Two kinds, both pure functions of tensors (no W&B here: the per-seed logger wraps the arrays in
``wandb.Image``):

- :func:`scatter_image`: a toy run's samples over the mixture means, rasterised without
  matplotlib (≈ 1 ms for 2,500 points, so that a study can draw one per seed and evaluation). The
  view is fixed by the means alone (``± 1.35 · max |mean|``, as in the report's ``samples.png``),
  so the frames of one run line up as a media panel steps through training.
- :func:`image_grid`: the first ``count`` generated images in a square grid
  (``torchvision.utils.make_grid``), resized to ``size`` pixels on the longest side.

:class:`MediaSettings` says whether media are logged, and at what size and count; the per-seed
logger holds it (``gan-lab study --no-media``, ``--media-size``, ``--media-count``) and evaluators
ask for it with :meth:`gan_lab.evaluators.base.ScheduledEvaluator.media_settings`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gan_lab.errors import ConfigError, check_int

#: colours (RGB) of the scatter: background, samples, mixture means
BACKGROUND, SAMPLE, MEAN = (255, 255, 255), (31, 119, 180), (214, 39, 40)


@dataclass(frozen=True)
class MediaSettings:
    """Whether and how media are logged at each evaluation.

    Args:
        enabled: log media at all (False: no image is drawn).
        size: the longest side of each image, pixels (≥ 16).
        count: samples drawn in a scatter, images in a grid (≥ 1); None: every sample of the
            evaluation's fixed set (scatter), 64 (grid).
    """

    enabled: bool = True
    size: int = 256
    count: int | None = None

    def __post_init__(self) -> None:
        check_int("media size", self.size)
        if self.size < 16:
            raise ConfigError(f"media size must be at least 16 pixels, got {self.size}")
        if self.count is not None:
            check_int("media count", self.count)

    @classmethod
    def from_env(cls) -> MediaSettings:
        """The settings of ``GAN_LAB_MEDIA`` (``off`` / ``0``: none), ``GAN_LAB_MEDIA_SIZE`` and
        ``GAN_LAB_MEDIA_COUNT``, for ``gan-lab fit`` (a study passes its flags instead)."""
        enabled = os.environ.get("GAN_LAB_MEDIA", "on").strip().lower() not in ("off", "0", "false", "no")
        try:
            size = int(os.environ.get("GAN_LAB_MEDIA_SIZE", cls.size))
            count = os.environ.get("GAN_LAB_MEDIA_COUNT")
            return cls(enabled, size, int(count) if count else None)
        except ValueError as e:
            raise ConfigError(f"GAN_LAB_MEDIA_SIZE / GAN_LAB_MEDIA_COUNT must be integers: {e}") from None


def scatter_image(samples: Tensor, means: Tensor, size: int = 256, count: int | None = None) -> np.ndarray:
    """The first ``count`` samples ``(N, 2)`` as 2×2-pixel dots over the means ``(K, 2)`` (5×5 crosses).

    The view is the square ``± 1.35 · max |mean|`` around 0 (``y`` up); samples outside it or not
    finite are not drawn. Returns uint8 ``(size, size, 3)``.

    >>> img = scatter_image(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), size=64)
    >>> img.shape, img.dtype
    ((64, 64, 3), dtype('uint8'))
    >>> img[32, 32].tolist(), img[0, 0].tolist()  # a sample at the centre; the corner is background
    ([31, 119, 180], [255, 255, 255])
    >>> img[32, 55].tolist()  # the mean (1, 0): column (1 + 1.35) / 2.7 · 63 ≈ 55
    [214, 39, 40]
    """
    samples = samples.detach().float().cpu()[: count if count is not None else None]
    means = means.detach().float().cpu()
    lim = 1.35 * float(means.abs().max())
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = BACKGROUND

    def pixels(points: Tensor) -> tuple[np.ndarray, np.ndarray]:
        keep = torch.isfinite(points).all(-1) & (points.abs() <= lim).all(-1)
        p = points[keep].numpy()
        col = np.rint((p[:, 0] + lim) / (2 * lim) * (size - 1)).astype(np.int64)
        row = np.rint((lim - p[:, 1]) / (2 * lim) * (size - 1)).astype(np.int64)
        return row, col

    row, col = pixels(samples)
    for dr in (0, 1):
        for dc in (0, 1):
            img[np.clip(row + dr, 0, size - 1), np.clip(col + dc, 0, size - 1)] = SAMPLE
    row, col = pixels(means)
    for d in range(-2, 3):
        img[np.clip(row + d, 0, size - 1), col] = MEAN
        img[row, np.clip(col + d, 0, size - 1)] = MEAN
    return img


def image_grid(images: Tensor, size: int = 256, count: int | None = None) -> np.ndarray:
    """The first ``count`` (default 64) images ``(N, C, H, W)`` in ``[-1, 1]`` (C = 1 or 3) in a
    square grid (``torchvision.utils.make_grid``, 2-pixel padding), resized (antialiased) so that
    its longest side is ``size``. Returns uint8 ``(H', W', 3)``.

    >>> g = image_grid(torch.zeros(4, 1, 8, 8), size=20)  # 2 x 2 tiles of 8 px + padding: 22 px
    >>> g.shape, int(g[5, 5, 0])  # a grey tile pixel (0 in [-1, 1])
    ((20, 20, 3), 128)
    """
    import torch.nn.functional as F
    from torchvision.utils import make_grid

    images = images.detach().float().cpu()[: 64 if count is None else count]
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid takes (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
    nrow = math.ceil(math.sqrt(images.shape[0]))
    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)  # (3, H, W)
    scale = size / max(grid.shape[-2:])
    if scale != 1:
        out = [max(1, round(s * scale)) for s in grid.shape[-2:]]
        grid = F.interpolate(grid[None], size=out, mode="bilinear", antialias=True, align_corners=False)[0]
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
