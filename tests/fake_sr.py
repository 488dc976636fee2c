"""A stand-in for a paired super-resolution datamodule, shared by the SR evaluator and report tests."""

import torch
import torch.nn.functional as F

from gan_lab.paired.data import bicubic_downsample


class FakePairs:
    """What the SR evaluator reads of a datamodule: fixed validation pairs and a description."""

    def __init__(self, n: int = 6, size: int = 32, scale: int = 4) -> None:
        g = torch.Generator().manual_seed(1)
        base = torch.rand(n, 3, size // 4, size // 4, generator=g) * 2 - 1
        self.hr = F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
        self.lr = bicubic_downsample(self.hr, scale)

    def validation_pairs(self):
        return self.lr, self.hr

    def describe(self) -> dict:
        return {"dataset": "fake", "crop_size": 32, "scale": 4, "lr_size": 8, "channels": 3}
