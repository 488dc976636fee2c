"""``torch.compile``'d G and D for the training passes, and channels_last inputs.

The compiled callables are built lazily, at the first training step (once the module is on its
device), and held outside the module's registered submodules, so ``state_dict`` keys and
checkpoints are those of an uncompiled run; the holder is never pickled or deep-copied (rebuilt
at first use). The gradient penalties get the *uncompiled* D (a double backward through a compiled
graph is unsupported), and evaluation uses the plain nets too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class CompiledNets:
    """``torch.compile(G)``, ``torch.compile(D)``, made at the first :meth:`get`."""

    def __init__(self) -> None:
        self.G: Callable | None = None
        self.D: Callable | None = None

    def get(self, G: nn.Module, D: nn.Module) -> tuple[Callable, Callable]:
        if self.G is None:
            self.G, self.D = torch.compile(G), torch.compile(D)
        return self.G, self.D

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def channels_last(x):
    """A 4-D tensor in channels_last memory format; anything else unchanged.

    >>> channels_last(torch.zeros(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last)
    True
    >>> channels_last(None) is None
    True
    """
    return x.contiguous(memory_format=torch.channels_last) if isinstance(x, Tensor) and x.dim() == 4 else x
