"""Per-member random streams of a seed ensemble.

Member ``k`` of a run with base seed ``s`` draws everything (G's and D's initial weights, the data
it sees, the noise fed to G) from streams seeded ``s + k + stream_offset``. Because the seed is
linear in ``k``, member ``k`` of an E-member run starts and trains exactly like a 1-member run
with base seed ``s + k``: an ensemble of E seeds *is* E single runs, only faster.
"""

from __future__ import annotations

import warnings

import torch

# Distinct offsets keep the streams of one member apart (far larger than any ensemble).
STREAMS = {"G": 0, "D": 1_000_003, "data": 2_000_006, "noise": 3_000_009}
# The penalties' random points (WGAN-GP's ε, DRAGAN's α and u): 104,729 past the noise streams.
STREAMS["penalty"] = STREAMS["noise"] + 104_729


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
    generators: list[torch.Generator], shape: tuple[int, ...], device, dtype=None, draw=torch.randn
) -> torch.Tensor:
    """Draws ``(E, *shape)``, member ``k`` from ``generators[k]`` alone: standard normal, or
    ``draw=torch.rand`` for ``U[0, 1)``."""
    if len(generators) == 1:  # the same numbers, without stack's copy
        return draw(shape, generator=generators[0], device=device, dtype=dtype).unsqueeze(0)
    return torch.stack([draw(shape, generator=g, device=device, dtype=dtype) for g in generators])


def generator_states(generators: list[torch.Generator]) -> list[torch.Tensor]:
    return [g.get_state() for g in generators]


def set_generator_states(generators: list[torch.Generator], states: list[torch.Tensor]) -> bool:
    """Restore saved generator states; False (and nothing set) when they were saved on another
    device type: a CPU generator's state is 5,056 bytes (Mersenne Twister), a CUDA one's 16
    (Philox seed and offset), and neither converts into the other.

    >>> g = torch.Generator().manual_seed(0)
    >>> set_generator_states([g], [torch.zeros(16, dtype=torch.uint8)])  # a CUDA generator's state
    False
    """
    states = [s.cpu() for s in states]
    if len(states) != len(generators) or any(
        s.numel() != g.get_state().numel() for g, s in zip(generators, states)
    ):
        return False
    for g, s in zip(generators, states):
        g.set_state(s)
    return True


def global_rng_state() -> dict:
    """Every global random state that training may draw from, as plain tensors and numbers
    (so that a checkpoint holding it still loads with ``torch.load(weights_only=True)``)."""
    import random

    import numpy as np

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict) -> None:
    """Restore what :func:`global_rng_state` saved."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        # the devices both runs have (a checkpoint of an 8-GPU node may resume on one GPU)
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


#: Seed offset between DDP ranks: rank r draws from seed + RANK_SEED_STRIDE · r.
RANK_SEED_STRIDE = 7_919


class MemberStreams:
    """One ``torch.Generator`` per ensemble member (and DDP rank), made on the device of first use,
    whose states go into checkpoints and come back on resume.

    Args:
        seeds: member ``k``'s seed on rank 0 (rank ``r`` adds ``RANK_SEED_STRIDE · r``).
    """

    def __init__(self, seeds: list[int]) -> None:
        self.seeds = [int(s) for s in seeds]
        self._generators: list[torch.Generator] | None = None
        self._pending: list[torch.Tensor] | None = None
        self._device, self._rank = None, None  # the arguments of the last generators() call

    def generators(self, device: torch.device | str, rank: int = 0) -> list[torch.Generator]:
        """The members' generators on ``device`` (made, or restored from a loaded state, on first use)."""
        if self._generators is not None and device is self._device and rank == self._rank:
            return self._generators  # the step's path: the same device object as last time
        requested = device
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if self._generators is None or self._generators[0].device != device:
            self._generators = member_generators([s + RANK_SEED_STRIDE * rank for s in self.seeds], device)
            if self._pending is not None and not set_generator_states(self._generators, self._pending):
                warnings.warn(
                    f"the checkpoint's random streams ({len(self._pending)} generators) were saved on another "
                    f"device type than {device.type} (or for another number of members); this run continues with "
                    "fresh streams from the same seeds, so it will not repeat an uninterrupted run",
                    stacklevel=2,
                )
            self._pending = None
        self._device, self._rank = requested, rank
        return self._generators

    def state(self) -> list[torch.Tensor] | None:
        """The generators' states: a loaded state not yet applied, or None before first use."""
        return generator_states(self._generators) if self._generators is not None else self._pending

    def load(self, states: list[torch.Tensor] | None) -> None:
        """Restore saved states; applied when the generators are next made."""
        if states is not None:
            self._pending = [s.cpu() for s in states]
            self._generators = None


def fixed_noise(n: int, z_dim: int, seed: int, members: int | None = None) -> torch.Tensor:
    """The evaluation noise set: ``(n, z_dim)`` from ``seed``, or ``(E, n, z_dim)`` with the same
    noise for every member of an ensemble (so that members are compared on equal inputs)."""
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(int(seed)))  # (n, z_dim)
    return z if members is None else z.expand(int(members), -1, -1)  # (E, n, z_dim)


class RunStreams:
    """A run's random streams of the training step, one generator per member (and DDP rank):
    ``noise`` (G's input z) and ``penalty`` (WGAN-GP's ε, DRAGAN's α and u), kept in checkpoints."""

    def __init__(self, seed: int, members: int | None) -> None:
        self.members = members
        self.noise = MemberStreams(member_seeds(seed, members or 1, "noise"))
        self.penalty = MemberStreams(member_seeds(seed, members or 1, "penalty"))

    def draw(self, stream: MemberStreams, shape: tuple[int, ...], device, rank: int, draw=torch.randn):
        """``(E, *shape)`` for an ensemble, ``shape`` for a plain run; member k from its own stream."""
        x = randn_members(stream.generators(device, rank), shape, device, draw=draw)
        return x if self.members is not None else x[0]

    def state(self) -> dict:
        return {"noise_generators": self.noise.state(), "penalty_generators": self.penalty.state()}

    def load(self, state: dict) -> None:
        self.noise.load(state.get("noise_generators"))
        self.penalty.load(state.get("penalty_generators"))
