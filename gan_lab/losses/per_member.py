"""Members of one seed ensemble under different objectives (a mixed ensemble).

An ensemble of ``E = J · S`` members holds ``J`` objectives side by side, ``S`` seeds each: member
``k = j·S + i`` trains under ``objectives[j]`` with run seed ``seed + i``
(:func:`gan_lab.seeding.run_seeds` with ``blocks = J``). Every objective is elementwise in the
logits and the ensemble's loss is a sum over members of each member's mean
(:func:`~gan_lab.losses.reduction.reduce_members`), so splitting the ``(E, B)`` logits into ``J``
blocks of ``S`` rows and applying each block's objective makes member ``k`` the single run of its
objective and seed: one process (one kernel per layer on a GPU) trains a whole objectives × seeds
study whose configurations differ in the objective only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gan_lab.errors import ConfigError
from gan_lab.losses.objectives import Objective


class PerMember(Objective):
    """``J`` objectives over consecutive blocks of an ensemble's members.

    Args:
        objectives: the blocks' objectives (at least two, distinct), in member order.

    ``d_loss`` / ``g_loss`` take ``(E, B)`` logits with ``E`` a multiple of ``J`` and return the
    ``(E, B)`` per-sample losses, row block ``j`` from ``objectives[j]``. ``needs_real_for_g`` and
    ``needs_lipschitz`` hold when they hold for any block (the real logits are then computed for
    every member; the objectives that do not read them are unaffected).
    """

    name = "per_member"

    def __init__(self, objectives: Sequence[Objective]) -> None:
        names = [o.name for o in objectives]
        if len(objectives) < 2 or len(set(names)) < len(names):
            raise ConfigError(
                f"a mixed ensemble needs two or more distinct objectives, got {names}; "
                "give one objective by name for a plain ensemble"
            )
        self.parts = list(objectives)
        self.needs_real_for_g = any(o.needs_real_for_g for o in objectives)
        self.needs_lipschitz = any(o.needs_lipschitz for o in objectives)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.parts]

    def member_names(self, members: int) -> list[str]:
        """Each member's objective: ``S = members / J`` consecutive members per objective.

        >>> from gan_lab.losses import get_objective
        >>> PerMember([get_objective("hinge"), get_objective("minimax")]).member_names(4)
        ['hinge', 'hinge', 'minimax', 'minimax']
        """
        return [name for name in self.names for _ in range(self.block_size(members))]

    def block_size(self, members: int) -> int:
        if members % len(self.parts):
            raise ConfigError(
                f"{members} ensemble members do not split evenly among the {len(self.parts)} objectives "
                f"{self.names}; use members = seeds × {len(self.parts)}"
            )
        return members // len(self.parts)

    def _blocks(self, *logits: Tensor | None) -> list[tuple]:
        """Per objective, its ``(S, B)`` rows of each logits tensor (None stays None)."""
        if logits[0].dim() != 2:
            raise ConfigError("a mixed ensemble's objectives need (E, B) logits: an ensemble G and D")
        size = self.block_size(logits[0].shape[0])
        split = [x.split(size) if x is not None else [None] * len(self.parts) for x in logits]
        return list(zip(*split))

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return torch.cat(
            [o.d_loss(r, f) for o, (r, f) in zip(self.parts, self._blocks(real_logits, fake_logits))]
        )

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        blocks = self._blocks(fake_logits, real_logits)
        return torch.cat(
            [o.g_loss(f, r if o.needs_real_for_g else None) for o, (f, r) in zip(self.parts, blocks)]
        )

    def __repr__(self) -> str:
        return f"PerMember({', '.join(self.names)})"
