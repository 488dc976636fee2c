"""A DataLoader of step indices, for datamodules that draw each batch after the transfer."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


class StepIndex(Dataset):
    """``steps`` items, each its own index: the real batch is drawn on the device afterwards."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> Tensor:
        return torch.tensor(i)


def step_loader(steps: int) -> DataLoader:
    """One index per batch, in order. The loader has its own generator, so creating its iterator
    draws nothing from the global RNG: a resumed run draws the same numbers as one never stopped."""
    return DataLoader(StepIndex(steps), batch_size=None, shuffle=False, generator=torch.Generator())
