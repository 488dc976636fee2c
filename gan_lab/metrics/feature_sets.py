"""The states every feature-set metric shares (KID, precision / recall / density / coverage): the
real and the generated features, each a concatenation state gathered under DDP
(:func:`gather_features`, also used by the Inception Score), or a fixed real reference set once (the
same on every rank, never gathered, kept across ``reset``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

from gan_lab.errors import ConfigError

_GATHER_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32)


def gather_features(x: Tensor, group: Any = None) -> list[Tensor]:
    """``torchmetrics``' ``gather_all_tensors`` for ``(N, d)`` feature states (a Metric's
    ``dist_sync_fn``), also when some rank holds no samples of a side.

    torchmetrics hands a rank's empty list state over as a 1-D ``tensor([])`` of the metric's
    dtype, which ``gather_all_tensors`` cannot gather with the other ranks' ``(N, d)`` tensors (a
    collective mismatch). So each rank first shares whether it has samples, their ``d`` and dtype,
    and an empty rank sends a ``(0, d)`` tensor of the others' dtype instead (e.g. the evaluator's
    real features, updated on one rank only).
    """
    empty = x.dim() == 1 and x.numel() == 0
    code = _GATHER_DTYPES.index(x.dtype) if x.dtype in _GATHER_DTYPES else -1
    meta = torch.tensor([0 if empty else 1, 0 if empty else x.shape[-1], code], device=x.device)
    metas = [torch.zeros_like(meta) for _ in range(dist.get_world_size(group))]
    dist.all_gather(metas, meta, group=group)
    full = [m for m in metas if int(m[0]) == 1]
    if empty and full:
        d, code = int(full[0][1]), int(full[0][2])
        x = x.reshape(0, d).to(_GATHER_DTYPES[code] if code >= 0 else x.dtype)
    return gather_all_tensors(x, group)


class FeatureSetsMetric(Metric):
    """A Metric over two feature sets ``(N, d)`` and ``(M, d)``: ``update(features, real=False)``
    adds a batch to one side; :meth:`sides` gives both at ``compute`` time. Subclasses name
    themselves in :attr:`LABEL` (for the messages) and implement ``compute`` from :meth:`sides`.

    Under DDP the sides are gathered with :func:`gather_features`, which also
    works when a rank holds no sample of a side."""

    full_state_update = False
    LABEL = "this metric"

    real: list[Tensor]
    fake: list[Tensor]
    ref_features: Tensor | None

    def __init__(self, reference: Tensor | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("dist_sync_fn", gather_features)  # a rank may hold no real samples
        super().__init__(**kwargs)
        self.add_state("real", default=[], dist_reduce_fx="cat")
        self.add_state("fake", default=[], dist_reduce_fx="cat")
        self.register_buffer("ref_features", None, persistent=False)
        if reference is not None:
            self.set_reference(reference)

    def set_reference(self, features: Tensor) -> None:
        """Fix the real features ``(N, d)`` (kept across ``reset``)."""
        features = torch.as_tensor(features).detach()
        if features.dim() != 2:
            raise ConfigError(f"{self.LABEL} reference features must be (N, d), got {tuple(features.shape)}")
        self.ref_features = features.to(self.device).clone()

    def update(self, features: Tensor, real: bool = False) -> None:
        """Add a batch of features ``(B, d)``: fake by default, real with ``real=True``.

        Raises:
            ValueError: for another shape, or real features when a fixed reference is set.
        """
        x = torch.as_tensor(features).detach()
        if x.dim() != 2:
            raise ValueError(f"features must be (B, d), got {tuple(x.shape)}")
        if real and self.ref_features is not None:
            raise ValueError(
                f"this {self.LABEL} has a fixed reference (set_reference); do not update it with real=True"
            )
        (self.real if real else self.fake).append(x)

    def sides(self, fake_required: bool = True) -> tuple[Tensor, Tensor]:
        """``(real (N, d), fake (M, d))``: the reference or the gathered real batches, and the fake
        ones (an empty ``(0, d)`` when none and not ``fake_required``).

        Raises:
            ConfigError: no real features, or (``fake_required``) no fake ones.
        """
        if self.ref_features is not None:
            real = self.ref_features
        elif isinstance(self.real, Tensor) or len(self.real) > 0:
            real = dim_zero_cat(self.real)
        else:
            raise ConfigError(
                f"{self.LABEL} has no real features: call set_reference or update(features, real=True)"
            )
        if isinstance(self.fake, Tensor) or len(self.fake) > 0:
            return real, dim_zero_cat(self.fake)
        if fake_required:
            raise ConfigError(f"{self.LABEL} has no fake features: call update(features) first")
        return real, real[:0]
