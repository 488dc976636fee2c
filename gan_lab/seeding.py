"""Per-member random streams of a seed ensemble.

Member ``k`` of a run with base seed ``s`` draws everything (G's and D's initial weights, the data
it sees, the noise fed to G) from streams seeded ``s + k + stream_offset``. Because the seed is
linear in ``k``, member ``k`` of an E-member run starts and trains exactly like a 1-member run
with base seed ``s + k``: an ensemble of E seeds *is* E single runs, only faster.
"""

from __future__ import annotations

import torch

# Distinct offsets keep the streams of one member apart (far larger than any ensemble).
STREAMS = {"G": 0, "D": 1_000_003, "data": 2_000_006, "noise": 3_000_009}


def member_seeds(seed: int, members: int, stream: str) -> list[int]:
    """Seeds of ``members`` members for one stream.

    >>> member_seeds(10, 3, "G")
    [10, 11, 12]
    """
    return [int(seed) + k + STREAMS[stream] for k in range(members)]


def member_generators(seeds: list[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One ``torch.Generator`` per member on ``device``, seeded with that member's seed."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def randn_members(
    generators: list[torch.Generator], shape: tuple[int, ...], device, dtype=None
) -> torch.Tensor:
    """Standard normal draws ``(E, *shape)``, member ``k`` from ``generators[k]`` alone."""
    return torch.stack([torch.randn(shape, generator=g, device=device, dtype=dtype) for g in generators])


def generator_states(generators: list[torch.Generator]) -> list[torch.Tensor]:
    return [g.get_state() for g in generators]


def set_generator_states(generators: list[torch.Generator], states: list[torch.Tensor]) -> None:
    for g, s in zip(generators, states, strict=True):
        g.set_state(s.cpu() if s.device.type != "cpu" else s)
