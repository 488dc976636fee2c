"""``torch.compile``'d G and D for the training passes, and channels_last inputs.

``compile`` is a ``torch.compile`` mode (:data:`COMPILE_MODES`; ``True`` is ``"default"``).
``"reduce-overhead"`` (and ``"max-autotune"``) capture each compiled pass as a CUDA graph
(torch.compile's CUDA-graph trees): on a GPU a toy ensemble's step is then a few graph replays
instead of hundreds of kernel launches, which is what bounds a small net's step. The module marks
the start of every training step (``torch.compiler.cudagraph_mark_step_begin``), so that a graph's
outputs of the previous step are never read after a replay has overwritten them; on a CPU the
CUDA-graph part does not apply and the mode compiles as ``"default"`` does.

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

from gan_lab.errors import check_choice

#: ``torch.compile``'s modes (``torch._inductor.list_mode_options()``); the ones that capture CUDA graphs
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_mode(value: bool | str | None) -> str | None:
    """The ``torch.compile`` mode of a ``compile`` setting: None (off) for False / None, ``"default"``
    for True, a mode by name.

    >>> compile_mode(True), compile_mode(False), compile_mode("reduce-overhead")
    ('default', None, 'reduce-overhead')
    >>> compile_mode("fast")
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: unknown compile mode 'fast'; valid compile modes (or true / false): default, max-autotune, max-autotune-no-cudagraphs, reduce-overhead
    """
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    check_choice("compile mode", value, COMPILE_MODES, plural="compile modes (or true / false)")
    return value


class CompiledNets:
    """``torch.compile(G, mode=mode)``, ``torch.compile(D, mode=mode)``, made at the first :meth:`get`."""

    def __init__(self, mode: str = "default") -> None:
        self.mode = mode
        self.G: Callable | None = None
        self.D: Callable | None = None

    @property
    def cudagraphs(self) -> bool:
        """Whether the mode captures CUDA graphs (on a GPU)."""
        return self.mode in CUDAGRAPH_MODES

    def get(self, G: nn.Module, D: nn.Module) -> tuple[Callable, Callable]:
        if self.G is None:
            self.G, self.D = torch.compile(G, mode=self.mode), torch.compile(D, mode=self.mode)
        return self.G, self.D

    def __getstate__(self) -> dict:
        return {"mode": self.mode}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state.get("mode", "default"))


def channels_last(x):
    """A 4-D tensor in channels_last memory format; anything else unchanged.

    >>> channels_last(torch.zeros(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last)
    True
    >>> channels_last(None) is None
    True
    """
    return x.contiguous(memory_format=torch.channels_last) if isinstance(x, Tensor) and x.dim() == 4 else x
