"""Datamodules that draw each batch on the device, from resumable streams: the training "loader"
yields step indices and :class:`DrawnDataModule` draws the batch in Lightning's transfer hook."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch import Tensor

from gan_lab.seeding import MemberStreams, member_seeds


class StepIndices:
    """``steps`` batches, each its own index (an ``int``): the datamodule's
    ``transfer_batch_to_device`` replaces it by the real batch, drawn on the device from its own
    streams. Nothing is copied to the device but the batch itself.

    A plain sized iterable rather than a ``DataLoader``: no sampler, workers or collation to pay for
    at every step (about 0.03 ms on a CPU), and making its iterator draws nothing from any random
    generator, so a resumed run draws the same numbers as one never stopped. Under DDP, Lightning
    leaves it as it is (no ``DistributedSampler``): each rank draws from its own streams.

    >>> steps = StepIndices(3)
    >>> len(steps), list(steps)
    (3, [0, 1, 2])
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.steps))


class DrawnDataModule(L.LightningDataModule):
    """The part every drawing datamodule shares: ``steps_per_epoch`` step indices as the training
    loader, ``transfer_batch_to_device`` → ``sample(device)``, and the ``data`` streams of
    :mod:`gan_lab.seeding` (one per member, seeded per DDP rank) kept in checkpoints.

    Subclasses set ``seed`` (None: the module's) and ``batch_size``, implement ``sample(device)``
    and, for ensembles and packing, set ``members`` and ``pack``.
    """

    def __init__(self, steps_per_epoch: int) -> None:
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.seed: int | None = None
        self.members: int | None = None  # ensemble size E (None: a single net)
        self.pack: int | None = None  # PacGAN's packing degree m (None: 1)
        self._streams: MemberStreams | None = None
        self._loaded: list[Tensor] | None = None  # a checkpoint's states, until the streams exist

    @property
    def stream_members(self) -> int:
        """How many data streams (ensemble members) to draw from."""
        return self.members or 1

    @property
    def samples_per_batch(self) -> int:
        """``batch_size · pack``: the real samples of one step (per member, per rank)."""
        return self.batch_size * (self.pack or 1)

    @property
    def rank(self) -> int:
        """The DDP rank whose streams this process draws from."""
        return self.trainer.global_rank if self.trainer is not None else 0

    @property
    def world_size(self) -> int:
        """The number of DDP ranks (1 without DDP)."""
        return int(getattr(self.trainer, "world_size", 1)) if self.trainer is not None else 1

    def streams(self) -> MemberStreams:
        """The data streams (made once ``seed`` and the member count are known)."""
        if self._streams is None:
            self._streams = MemberStreams(member_seeds(self.seed or 0, self.stream_members, "data"))
            self._streams.load(self._loaded)
        return self._streams

    def sample(self, device: torch.device):
        raise NotImplementedError

    def train_dataloader(self) -> StepIndices:
        return StepIndices(self.steps_per_epoch)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """A step index (an ``int``) stays on the host: the real batch is drawn on ``device``. Batches
        of any other loader (validation, test) are moved as Lightning moves them."""
        if not isinstance(batch, int):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return self.sample(device)

    def state_dict(self) -> dict:
        states = self._streams.state() if self._streams is not None else self._loaded
        return {} if states is None else {"generators": states}

    def load_state_dict(self, state: dict) -> None:
        self._loaded = state.get("generators")
        if self._streams is not None:
            self._streams.load(self._loaded)
