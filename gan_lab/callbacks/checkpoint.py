"""Writing checkpoints: :class:`WholeCheckpointIO` (every checkpoint written whole), and files
named by G steps: Lightning's :class:`ModelCheckpoint` names them by its ``global_step``, which counts the optimizer steps of both players (a 200-G-step WGAN-GP fit wrote
``epoch=0-step=1200.ckpt``). :class:`GStepCheckpoint` is ModelCheckpoint with the module's own
``g_steps`` among the values a file name may use, and ``{g_steps}`` as the default name
(``g_steps=200.ckpt``); ``last.ckpt``, top-k, monitoring and intervals are ModelCheckpoint's.

One difference: a file of the same name is replaced, never versioned (``enable_version_counter``
off): ``last.ckpt`` is always the newest state, with no ``last-v1.ckpt`` beside it that a later
``--ckpt_path last`` would pass over (a resumed run continues in its own folder, whose files these are).
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins import TorchCheckpointIO

from gan_lab.files import write_whole


class GStepCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` whose file names can use ``{g_steps}`` (the default name)."""

    def __init__(
        self, *args, filename: str | None = "{g_steps}", enable_version_counter: bool = False, **kwargs
    ) -> None:
        super().__init__(*args, filename=filename, enable_version_counter=enable_version_counter, **kwargs)
        self._module = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._module = pl_module

    def format_checkpoint_name(
        self, metrics: dict, filename: str | None = None, ver=None, prefix=None
    ) -> str:
        g_steps = getattr(self._module, "g_steps", 0)
        return super().format_checkpoint_name(
            {**metrics, "g_steps": torch.tensor(g_steps)}, filename, ver=ver, prefix=prefix
        )


class WholeCheckpointIO(TorchCheckpointIO):
    """Lightning's :class:`TorchCheckpointIO`, but a local checkpoint is written whole
    (:func:`gan_lab.files.write_whole`: a temporary file in the checkpoint's own folder, fsync,
    rename). Lightning's writer stages the file through fsspec's temporary file in ``$TMPDIR`` and
    *moves* it: across filesystems a move is a copy, and a kill -9 during it tore ``last.ckpt``."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options=storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options for a local file")
        write_whole(path, lambda f: torch.save(checkpoint, f))
