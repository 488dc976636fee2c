"""Image files on disk: listing a folder's images and decoding one to uint8 ``(C, H, W)``.

Shared by the image data sets (:mod:`gan_lab.data.images`), the paired super-resolution data
(:mod:`gan_lab.paired.data`) and ``gan-lab metrics`` (:mod:`gan_lab.compare`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from gan_lab.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: ITU-R BT.601 luma weights (PIL's ``convert("L")``, kornia's ``rgb_to_grayscale``).
LUMA = (0.299, 0.587, 0.114)


def list_images(root: str | Path, what: str = "data root") -> list[Path]:
    """Every ``.png`` / ``.jpg`` / ``.jpeg`` under ``root`` (recursively), sorted.

    Raises:
        ConfigError: ``root`` is not a folder, or holds no such image.
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{what} {str(root)!r} is not a folder; pass a folder of .png/.jpg images")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"{what} {str(root)!r} holds no .png/.jpg/.jpeg image")
    return files


def load_image(path: Path, channels: int) -> Tensor:
    """Decode ``path`` to uint8 ``(channels, H, W)``: RGB, or BT.601 luma when ``channels == 1``.

    Raises:
        ConfigError: the file cannot be read or decoded (the message names it).
    """
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2.functional import to_dtype

    try:
        img = decode_image(str(path), mode=ImageReadMode.RGB)  # (3, H, W)
    except (RuntimeError, OSError, ValueError) as e:
        reason = " ".join(str(e).split())[-120:] or type(e).__name__
        raise ConfigError(
            f"cannot decode image file {str(path)!r} (corrupt or not a png/jpg image): {reason}"
        ) from None
    if img.dtype != torch.uint8:  # 16-bit PNG
        img = to_dtype(img, torch.uint8, scale=True)
    if channels == 1:
        luma = torch.tensor(LUMA).view(3, 1, 1)
        img = (img.float() * luma).sum(0, keepdim=True).round().clamp(0, 255).to(torch.uint8)  # (1, H, W)
    return img


def to_signed(x: Tensor) -> Tensor:
    """uint8 ``[0, 255]`` -> float ``[-1, 1]``: ``x / 127.5 − 1``."""
    return x.float() / 127.5 - 1.0
