"""What a data module takes from the run it feeds: :class:`RunContext`, handed over explicitly
instead of being read off the LightningModule attribute by attribute.

A data module's ``setup`` calls :func:`run_context` (``GANModule.run_context`` when the Trainer fits
one, else the defaults) or takes one given directly (``dm.setup("fit", RunContext(members=2))``).
Its own settings (``members``, ``seed``, ``pack`` not None) win over the context's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunContext", "run_context"]


@dataclass(frozen=True)
class RunContext:
    """The run's facts a data module follows.

    Args:
        members: the ensemble size E (one data stream per member); None: a single net.
        seed: the run's base seed (member ``k`` draws from ``seed + k``).
        seed_blocks: J of a mixed ensemble of J objectives, whose members repeat the run seeds per
            block (member ``j·S + i``: ``seed + i``); 1 otherwise.
        pack: PacGAN's packing degree ``m``: ``batch_size · m`` samples a step (1: no packing).
    """

    members: int | None = None
    seed: int = 0
    seed_blocks: int = 1
    pack: int = 1


def run_context(trainer) -> RunContext:
    """The context of the module ``trainer`` fits (its ``run_context``), or :class:`RunContext`'s
    defaults without a trainer or for a module without one.

    >>> from types import SimpleNamespace
    >>> run_context(SimpleNamespace(lightning_module=SimpleNamespace(run_context=RunContext(seed=3)))).seed
    3
    >>> run_context(None) == run_context(SimpleNamespace(lightning_module=object())) == RunContext()
    True
    """
    module = getattr(trainer, "lightning_module", None) if trainer is not None else None
    context = getattr(module, "run_context", None)
    return context if isinstance(context, RunContext) else RunContext()
