"""Per-member random streams of a seed ensemble.

Member ``k`` of a run with base seed ``s`` draws everything (G's and D's initial weights, the data
it sees, the noise fed to G) from streams of its own seed ``s + k``. Because the seed is linear in
``k``, member ``k`` of an E-member run starts and trains exactly like a 1-member run with base seed
``s + k``: an ensemble of E seeds *is* E single runs, only faster.

Two kinds of streams:

- the nets' initial weights (``G``, ``D``) and the image / paired datamodules: one
  ``torch.Generator`` per member seeded ``s + k + stream_offset`` (:class:`MemberStreams`);
- the training step's draws (the toy data, G's noise, the penalties' points): counter-based
  streams (:class:`CounterStream`), a keyed hash of (key, counter) computed for all members in
  one vectorised op, whose state is the counter (:func:`counter_words`).

Why two: the initial weights go through torch's own ``nn.init`` functions and the image data
through torch's samplers, which take a ``torch.Generator`` and are drawn once (or once per epoch);
a step's draws are made every step for all E members at once, where E generators would cost E
dispatches a step and their states would have to follow each DDP rank. Moving either kind onto the
other would change every number a run has produced (initial weights, data order, noise), so each
stays where it serves.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

# Distinct offsets keep the streams of one member apart (far larger than any ensemble).
STREAMS = {"G": 0, "D": 1_000_003, "data": 2_000_006, "noise": 3_000_009}
# The penalties' random points (WGAN-GP's ε, DRAGAN's α and u): 104,729 past the noise streams.
STREAMS["penalty"] = STREAMS["noise"] + 104_729


def member_seeds(seed: int, members: int, stream: str) -> list[int]:
    """Seeds of ``members`` members for one stream.

    >>> member_seeds(10, 3, "G")
    [10, 11, 12]
    """
    return stream_seeds(run_seeds(seed, members), stream)


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


# ----------------------------------------------------------------------------------------------
# Counter-based streams: a keyed hash of (key, counter), for all members in one vectorised op
# ----------------------------------------------------------------------------------------------

_M32, _M64 = 0xFFFF_FFFF, (1 << 64) - 1

#: Stream ids of the counter-based streams (part of each stream's key, next to the seed and rank).
STREAM_IDS = {"data": 1, "noise": 2, "penalty": 3, "order": 4}

#: prospector32 of skeeto/hash-prospector (C. Wellons 2018), ``[15 2c1b3c6d 12 297a2d39 15]``: a
#: bijective 32-bit mixer whose two multipliers are both below 2^31, so that on 32-bit words held in
#: int64 every product stays below 2^63 (no signed overflow on any device; results are exact integers).
_PROSPECTOR32 = (15, 0x2C1B3C6D, 12, 0x297A2D39, 15)


def splitmix64(x: int) -> int:
    """SplitMix64's output function (Steele, Lea & Flood 2014) on a Python int: the key derivation.

    >>> hex(splitmix64(0))
    '0xe220a8397b1dcdaf'
    """
    z = (int(x) + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def stream_keys(seeds: list[int], stream: str, rank: int = 0) -> list[tuple[int, int]]:
    """Each member's 64-bit key ``(k0, k1)`` (two 32-bit halves) of one stream: SplitMix64 chained over
    the member's run seed (``seed + k``: member ``k`` of an ensemble has the key of the single run
    with seed ``seed + k``), the stream's id and the DDP rank. Pure host arithmetic.

    >>> stream_keys([3], "noise") == stream_keys([0, 3], "noise")[1:]
    True
    >>> stream_keys([3], "noise") != stream_keys([3], "noise", rank=1)
    True
    """
    keys = []
    for s in seeds:
        h = splitmix64(splitmix64(splitmix64(int(s) & _M64) ^ STREAM_IDS[stream]) ^ int(rank))
        keys.append((h & _M32, h >> 32))
    return keys


def mix32(x: Tensor) -> Tensor:
    """prospector32 on int64 tensors of 32-bit words: ``x ^= x >> 15; x *= 0x2c1b3c6d; x ^= x >> 12;
    x *= 0x297a2d39; x ^= x >> 15`` (mod 2^32). In place on ``x``; a bijection of ``[0, 2^32)``.

    >>> mix32(torch.tensor([0, 1])).tolist()
    [0, 3979630085]
    """
    s1, c1, s2, c2, s3 = _PROSPECTOR32
    x.bitwise_xor_(x >> s1).mul_(c1).bitwise_and_(_M32)
    x.bitwise_xor_(x >> s2).mul_(c2).bitwise_and_(_M32)
    return x.bitwise_xor_(x >> s3)


def counter_words(keys: tuple[Tensor, Tensor], start: int, n: int) -> Tensor:
    """Words ``start .. start + n - 1`` of every member's stream: ``(E, n)`` int64 in ``[0, 2^32)``,

        w(c) = mix32(mix32(lo(c) ^ k0) ^ hi(c) ^ k1),   lo, hi: the low and high 32 bits of c,

    a two-round keyed counter hash (the shape of an Even–Mansour cipher over prospector32): for a
    fixed key a bijection of the low 32 bits of the counter, the key entering both rounds.
    ``keys``: ``(k0, k1)``, each ``(E, 1)`` int64 on the device. The same ~25 ops whatever E.
    """
    k0, k1 = keys
    c = torch.arange(start, start + n, device=k0.device, dtype=torch.int64)  # (n,)
    x = mix32(c.bitwise_and(_M32) ^ k0)  # (E, n)
    return mix32(x.bitwise_xor_(k1).bitwise_xor_(c >> 32))


def uniform_from_words(words: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``U[0, 1)`` from 32-bit words, as ``torch.rand``: ``⌊w / 2^8⌋ · 2^-24`` in float32 (24 bits,
    exact; the largest value ``1 − 2^-24``), ``w · 2^-32`` in float64; bfloat16 / float16 are the
    float32 values rounded (which may round up to 1).

    >>> uniform_from_words(torch.tensor([0, 2**32 - 1])).tolist() == [0.0, 1 - 2**-24]
    True
    """
    dtype = dtype or torch.get_default_dtype()
    if dtype == torch.float64:
        return words.to(dtype).mul_(2.0**-32)
    u = (words >> 8).to(torch.float32).mul_(2.0**-24)
    return u if dtype == torch.float32 else u.to(dtype)


def normal_from_words(words: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``N(0, 1)`` by the inverse CDF, one word a number: ``z = √2 erfinv(2u − 1)`` with
    ``u = (w + ½) 2^-32``, in float64 (``2u − 1`` exact), then cast to ``dtype``. Tails reach
    ``|z| ≈ 6.3`` (u = 2^-33). Monotone in ``w``: the uniformity of the words is that of ``z``.

    >>> z = normal_from_words(torch.tensor([2**31]), torch.float64).item()  # u = ½ + 2^-33
    >>> abs(z - math.sqrt(math.pi / 2) * 2**-32) < 1e-25  # √2 erfinv(t) ≈ √(π/2) t for small t
    True
    """
    dtype = dtype or torch.get_default_dtype()
    t = words.to(torch.float64).mul_(2.0**-31).add_(2.0**-32 - 1.0)  # 2u - 1, in (-1, 1)
    return t.erfinv_().mul_(math.sqrt(2.0)).to(dtype)


def below_from_words(words: Tensor, high: int) -> Tensor:
    """Integers uniform on ``0 .. high - 1`` from 32-bit words: ``⌊w · high / 2^32⌋`` (Lemire's
    multiply-shift; bias at most ``high / 2^32``), exact integer arithmetic for ``high < 2^31``.

    >>> below_from_words(torch.tensor([0, 2**31, 2**32 - 1]), 8).tolist()
    [0, 4, 7]
    """
    if not 0 < high < 2**31:
        raise ValueError(f"high must be in 1 .. 2^31 - 1, got {high}")
    return (words * high) >> 32


class CounterStream:
    """One counter-based random stream per ensemble member, of one kind (``data``, ``noise``, ...).

    Member ``k`` is keyed by its run seed ``seeds[k]``, the stream and the DDP rank
    (:func:`stream_keys`); every draw takes the next words ``counter .. counter + n - 1`` of every
    member at once (:func:`counter_words`) and advances the shared ``counter`` by ``n``. The state is
    that one int: the members draw in lockstep, and so do DDP ranks (the same shapes every step),
    so a checkpoint's counter resumes every member on every rank, each with its own key — on the
    same device type bit for bit; on another one the integers are the same and only the float
    rounding of ``erfinv`` may differ in the last bits.

    >>> s = CounterStream([0, 1], "noise")
    >>> s.normal((3,), "cpu").shape, s.counter
    (torch.Size([2, 3]), 3)
    """

    def __init__(self, seeds: list[int], stream: str) -> None:
        if stream not in STREAM_IDS:
            raise ValueError(f"unknown stream {stream!r}; valid: {', '.join(STREAM_IDS)}")
        self.seeds, self.stream = [int(s) for s in seeds], stream
        self.counter = 0
        self._keys: tuple[Tensor, Tensor] | None = None
        self._device, self._rank = None, None  # the arguments of the last keys() call

    @property
    def members(self) -> int:
        return len(self.seeds)

    def keys(self, device, rank: int = 0) -> tuple[Tensor, Tensor]:
        """``(k0, k1)``, each ``(E, 1)`` int64 on ``device``: made once per device and rank."""
        if self._keys is not None and device is self._device and rank == self._rank:
            return self._keys  # the step's path: the same device object as last time
        target = torch.device(device)
        if self._keys is None or self._rank != rank or self._keys[0].device != target:
            k = torch.tensor(stream_keys(self.seeds, self.stream, rank), dtype=torch.int64)  # (E, 2)
            k = k.to(target)
            self._keys = (k[:, :1], k[:, 1:])
        self._device, self._rank = device, rank
        return self._keys

    def words(self, n: int, device, rank: int = 0) -> Tensor:
        """The next ``n`` words of every member, ``(E, n)``; advances the counter by ``n``."""
        words = counter_words(self.keys(device, rank), self.counter, n)
        self.counter += n
        return words

    def words_at(self, start: int, n: int, device, rank: int = 0) -> Tensor:
        """Words ``start .. start + n - 1`` of every member, ``(E, n)``, leaving the counter alone."""
        return counter_words(self.keys(device, rank), start, n)

    def normal(self, shape: tuple[int, ...], device, rank: int = 0, dtype=None) -> Tensor:
        """``(E, *shape)`` standard normal (:func:`normal_from_words`)."""
        shape = tuple(shape)
        return normal_from_words(self.words(math.prod(shape), device, rank), dtype).view(-1, *shape)

    def uniform(self, shape: tuple[int, ...], device, rank: int = 0, dtype=None) -> Tensor:
        """``(E, *shape)`` in ``U[0, 1)`` (:func:`uniform_from_words`)."""
        shape = tuple(shape)
        return uniform_from_words(self.words(math.prod(shape), device, rank), dtype).view(-1, *shape)

    def state(self) -> int:
        return self.counter

    def load(self, counter: int | None) -> None:
        if counter is not None:
            self.counter = int(counter)


def run_seeds(seed: int, members: int, blocks: int = 1) -> list[int]:
    """The run seeds of an ensemble's members (the counter streams' first key field): ``seed + k``;
    with ``blocks`` configurations side by side (a mixed ensemble, :class:`gan_lab.losses.PerMember`:
    ``S = members / blocks`` seeds each), member ``k = j·S + i`` has seed ``seed + i``, so that it is
    the single run of configuration ``j`` with seed ``seed + i``.

    >>> run_seeds(10, 3)
    [10, 11, 12]
    >>> run_seeds(10, 4, blocks=2)
    [10, 11, 10, 11]
    """
    if members % blocks:
        raise ValueError(f"{members} members do not split into {blocks} equal blocks")
    per_block = members // blocks
    return [int(seed) + k % per_block for k in range(members)]


def stream_seeds(seeds: list[int], stream: str) -> list[int]:
    """The ``torch.Generator`` seeds of one stream (G's or D's initial weights) of members with run
    seeds ``seeds``: ``seed + STREAMS[stream]``, as :func:`member_seeds` for ``seed + k``.

    >>> stream_seeds([10, 11, 10], "G") == [10, 11, 10]
    True
    """
    return [int(s) + STREAMS[stream] for s in seeds]


class RunStreams:
    """A run's random streams of the training step, counter-based (:class:`CounterStream`):
    ``noise`` (G's input z) and ``penalty`` (WGAN-GP's ε, DRAGAN's α and u); their counters go into
    checkpoints (``noise_counter``, ``penalty_counter``)."""

    def __init__(self, seeds: list[int], members: int | None) -> None:
        """``seeds``: each member's run seed (:func:`run_seeds`); ``members`` None: a plain run."""
        self.members = members
        self.noise = CounterStream(seeds, "noise")
        self.penalty = CounterStream(seeds, "penalty")

    def _shaped(self, x: Tensor) -> Tensor:
        return x if self.members is not None else x[0]

    def normal(self, shape: tuple[int, ...], device, rank: int = 0) -> Tensor:
        """G's noise: ``(E, *shape)`` for an ensemble, ``shape`` for a plain run."""
        return self._shaped(self.noise.normal(shape, device, rank))

    def uniform(self, shape: tuple[int, ...], device, rank: int = 0) -> Tensor:
        """The penalties' points: ``(E, *shape)`` for an ensemble, ``shape`` for a plain run."""
        return self._shaped(self.penalty.uniform(shape, device, rank))

    def state(self) -> dict:
        return {"noise_counter": self.noise.state(), "penalty_counter": self.penalty.state()}

    def load(self, state: dict) -> None:
        if "noise_counter" not in state and "noise_generators" in state:
            warnings.warn(
                "the checkpoint holds torch.Generator streams of an older gan_lab; this run continues with "
                "the counter-based streams from their start, so it will not repeat an uninterrupted run",
                stacklevel=2,
            )
        self.noise.load(state.get("noise_counter"))
        self.penalty.load(state.get("penalty_counter"))
