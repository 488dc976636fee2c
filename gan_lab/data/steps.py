"""The training "loader" of datamodules that draw each batch after the transfer: step indices."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class StepIndices:
    """``steps`` batches, each its own index as a 0-d tensor: Lightning moves it to the device and
    the datamodule's ``on_after_batch_transfer`` draws the real batch there, from its own streams.

    A plain sized iterable rather than a ``DataLoader``: no sampler, workers or collation to pay for
    at every step (about 0.03 ms on a CPU), and making its iterator draws nothing from any random
    generator, so a resumed run draws the same numbers as one never stopped. Under DDP, Lightning
    leaves it as it is (no ``DistributedSampler``): each rank draws from its own streams.

    >>> steps = StepIndices(3)
    >>> len(steps), [int(i) for i in steps]
    (3, [0, 1, 2])
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Tensor]:
        return (torch.tensor(i) for i in range(self.steps))


def step_loader(steps: int) -> StepIndices:
    """The step indices ``0 … steps - 1`` (see :class:`StepIndices`)."""
    return StepIndices(steps)
