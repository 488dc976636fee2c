"""2D Gaussian mixtures for mode-collapse studies, sampled on the training device each step.

The mixtures follow the PacGAN / VEEGAN protocol as docs/DESIGN.md fixes it:

- ``ring8``: 8 Gaussians with means ``(cos 2πi/8, sin 2πi/8)``, i = 0..7 (radius 1), std 0.01,
  equal weights. (``linspace(0, 2π, 8)`` would repeat a mode: the angles are ``2πi/8``.)
- ``grid25``: 25 Gaussians at ``{-4, -2, 0, 2, 4}²``, std 0.05, equal weights.
- ``ring8_veegan``: VEEGAN's ring, radius 2, std 0.02 (an easier, wider variant).

:class:`ToyMixtureDataModule` yields no data through its training loader: each item is a step index,
and ``transfer_batch_to_device`` draws the real batch ``(E, B, 2)`` on the device, every member at
once from its own counter-based ``data`` stream (keyed by ``seed + k``, the stream and the DDP rank;
:class:`gan_lab.seeding.CounterStream`): the ops of a draw do not depend on E, and the state kept in
checkpoints is one counter (``data_counter``).

Two ways to draw, per member:

- fresh draws (``train_size`` None, the default): every batch is new samples from the mixture;
- a fixed training set (``train_size = S``, PacGAN's protocol: 100,000): ``S · pack`` samples, the
  first words of the member's ``data`` stream, iterated in epochs of ``S // batch_size`` batches,
  each epoch in its own random order (the stable argsort of words ``epoch · S·pack ..`` of the
  member's ``order`` stream: the same permutation on every device), so within an epoch no sample is
  seen twice. The position is a counter of batches drawn, kept in checkpoints: a
  run resumed mid-epoch continues with the very batch it would have drawn.

With ``remedies.pack = m`` (:class:`~gan_lab.settings.Remedies`) a batch holds ``batch_size · m``
samples: ``batch_size`` is the number of packs D judges per step (PacGAN's "batch 100" is 100
packs), and the fixed set holds ``S`` packs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from gan_lab.data.context import RunContext, run_context
from gan_lab.data.steps import DrawnDataModule
from gan_lab.errors import ConfigError, check_int
from gan_lab.registry import Registry
from gan_lab.seeding import CounterStream, below_from_words, normal_from_words, run_seeds


@dataclass(frozen=True)
class GaussianMixture2D:
    """An equal-weight mixture of isotropic Gaussians: ``means (K, 2)``, one ``std``."""

    name: str
    means: Tensor
    std: float

    @property
    def num_modes(self) -> int:
        return self.means.shape[0]

    def to(self, device) -> GaussianMixture2D:
        """The same mixture with its means on ``device`` (itself when they are there already): move
        it once, not at every draw (on a GPU each move is a blocking host-to-device copy).

        >>> m = ring(4)
        >>> m.to("cpu") is m
        True
        """
        means = self.means.to(device)
        return self if means is self.means else replace(self, means=means)

    def sample(self, n: int, generator: torch.Generator, device=None) -> Tensor:
        """``n`` samples ``(n, 2)``: a uniform component index, then ``mean + std · N(0, I)``."""
        device = device if device is not None else generator.device
        means = self.means.to(device)
        idx = torch.randint(self.num_modes, (n,), generator=generator, device=device)
        eps = torch.randn(n, means.shape[1], generator=generator, device=device)
        return means[idx] + self.std * eps

    @property
    def words_per_sample(self) -> int:
        """Stream words one sample takes in :meth:`from_words`: a component, then ``d`` normals."""
        return 1 + int(self.means.shape[1])

    def from_words(self, words: Tensor) -> Tensor:
        """Samples ``(E, n, d)`` from counter-stream words ``(E, n · (1 + d))``: the first ``n`` pick
        the components (:func:`~gan_lab.seeding.below_from_words`), the rest are the ``n · d``
        normals (:func:`~gan_lab.seeding.normal_from_words`) of ``mean + std · N(0, I)``."""
        d = int(self.means.shape[1])
        n = words.shape[-1] // (1 + d)
        idx = below_from_words(words[:, :n], self.num_modes)  # (E, n)
        eps = normal_from_words(words[:, n:], self.means.dtype).view(words.shape[0], n, d)
        return self.means[idx] + self.std * eps  # (E, n, d)


def ring(k: int = 8, radius: float = 1.0, std: float = 0.01, name: str | None = None) -> GaussianMixture2D:
    """``k`` Gaussians evenly on a circle: means ``radius · (cos 2πi/k, sin 2πi/k)``.

    >>> ring(4).means.round(decimals=4)
    tensor([[ 1.,  0.],
            [ 0.,  1.],
            [-1.,  0.],
            [-0., -1.]])
    """
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture2D(name or f"ring{k}", means.float(), std)


def grid(n: int = 5, spacing: float = 2.0, std: float = 0.05, name: str | None = None) -> GaussianMixture2D:
    """``n × n`` Gaussians on a centred square grid with the given spacing (``{-4,...,4}²`` for 5, 2)."""
    ticks = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * spacing
    xs, ys = torch.meshgrid(ticks, ticks, indexing="ij")
    return GaussianMixture2D(name or f"grid{n * n}", torch.stack([xs.flatten(), ys.flatten()], 1), std)


#: name -> factory of a :class:`GaussianMixture2D`; add one with ``@MIXTURES.register(name=...)``
MIXTURES: Registry[GaussianMixture2D] = Registry("dataset", base=GaussianMixture2D)


@MIXTURES.register(name="ring8")
def ring8() -> GaussianMixture2D:
    """PacGAN / VEEGAN's ring: 8 Gaussians on the unit circle, std 0.01."""
    return ring(8, 1.0, 0.01, "ring8")


@MIXTURES.register(name="grid25")
def grid25() -> GaussianMixture2D:
    """PacGAN / VEEGAN's grid: 25 Gaussians at ``{-4, -2, 0, 2, 4}²``, std 0.05."""
    return grid(5, 2.0, 0.05, "grid25")


@MIXTURES.register(name="ring8_veegan")
def ring8_veegan() -> GaussianMixture2D:
    """VEEGAN's wider ring: 8 Gaussians on a circle of radius 2, std 0.02."""
    return ring(8, 2.0, 0.02, "ring8_veegan")


def get_mixture(name: str | GaussianMixture2D) -> GaussianMixture2D:
    """The mixture registered as ``name`` (a :class:`GaussianMixture2D` passes through).

    >>> get_mixture("grid25").num_modes
    25
    >>> get_mixture("ring9")
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: unknown dataset 'ring9'; valid datasets: grid25, ring8, ring8_veegan
    """
    return MIXTURES.get(name)


class ToyMixtureDataModule(DrawnDataModule):
    """Real batches ``(E, B, 2)`` from a 2D mixture, drawn on the training device.

    Args:
        name: ``ring8``, ``grid25`` or ``ring8_veegan``.
        batch_size: samples per member per step.
        members: ensemble size E; ``None`` takes the run's (:class:`~gan_lab.data.context.RunContext`).
        seed: base seed; ``None`` takes the run's.
        steps_per_epoch: length of one (synthetic) epoch of fresh draws.
        pack: samples per pack (``batch_size · pack`` samples a batch); ``None`` takes the run's
            (``model.remedies.pack``; 1 without a GANModule).
        train_size: a fixed training set of this many packs (samples when ``pack = 1``) per member,
            iterated in epochs of ``train_size // batch_size`` batches; None: fresh draws every step.
            Under DDP every rank holds the same set and epoch order, and rank ``r`` reads slice ``r``
            of each global batch of ``W · batch_size`` packs (epochs of ``train_size // (W ·
            batch_size)`` steps), as a ``DistributedSampler`` would.
    """

    def __init__(
        self,
        name: str = "ring8",
        batch_size: int = 256,
        members: int | None = None,
        seed: int | None = None,
        steps_per_epoch: int = 1000,
        pack: int | None = None,
        train_size: int | None = None,
    ) -> None:
        for label, v in (("batch_size", batch_size), ("steps_per_epoch", steps_per_epoch)):
            check_int(f"data {label}", v)
        if pack is not None:
            check_int("data pack", pack, hint=" or null (the model's)")
        if train_size is not None:
            check_int("data train_size", train_size, hint=" or null (fresh draws every step)")
            if train_size < batch_size:
                raise ConfigError(
                    f"data train_size {train_size} is smaller than one batch ({batch_size}); "
                    "use a training set of at least batch_size packs"
                )
            steps_per_epoch = train_size // batch_size  # Lightning's epochs are the data's epochs
        super().__init__(steps_per_epoch)
        self.mixture = get_mixture(name)
        self._device_mixture = self.mixture  # the mixture with its means on the training device
        self.name, self.batch_size = name, batch_size
        self.members, self.seed, self.pack, self.train_size = members, seed, pack, train_size
        self.seed_blocks = 1  # J of a mixed ensemble (its members repeat seed + i per block)
        self.draws = 0  # batches drawn so far (the fixed set's position), kept in checkpoints
        self._fixed: Tensor | None = None  # the fixed set (E, train_size · pack, 2) on the device
        self._order: tuple[int, Tensor] | None = None  # (epoch, its permutations (E, S))

    @property
    def channels(self) -> int:
        """Dimension of a sample (2): what G must output and D read."""
        return int(self.mixture.means.shape[1])

    def setup(self, stage: str, context: RunContext | None = None) -> None:
        """Unset ``members``, ``seed`` and ``pack`` from ``context`` (None: the fitted module's,
        :func:`~gan_lab.data.context.run_context`)."""
        context = context or run_context(self.trainer)
        if self.members is None:
            self.members = context.members or 1
        if self.seed is None:
            self.seed = context.seed
        # a mixed ensemble's members repeat seeds (member j·S + i: seed + i), whichever seed the data has
        if context.seed_blocks > 1 and self.stream_members % context.seed_blocks == 0:
            self.seed_blocks = context.seed_blocks
        if self.pack is None:
            self.pack = context.pack
        if self.train_size is not None:  # Lightning's epochs are the data's epochs, on every rank
            self.steps_per_epoch = self.train_size // (self.batch_size * self.world_size)
            if self.steps_per_epoch < 1:
                raise ConfigError(
                    f"data train_size {self.train_size} is smaller than one global batch of "
                    f"{self.world_size} ranks x {self.batch_size} packs; use a larger training set"
                )

    def stream_seeds(self) -> list[int]:
        """Each member's run seed, the first key field of its streams: the module's (a mixed
        ensemble's) when taken from it, else ``seed + k``."""
        return run_seeds(self.seed or 0, self.stream_members, self.seed_blocks)

    def streams(self) -> CounterStream:
        """The members' counter-based ``data`` streams (made once ``seed`` and E are known)."""
        if self._streams is None:
            self._streams = CounterStream(self.stream_seeds(), "data")
            self._streams.load(self._loaded)
        return self._streams

    def sample(self, device: torch.device) -> Tensor:
        """One real batch ``(E, B·pack, 2)``, every member at once from its own stream (or fixed set)."""
        if self.train_size is not None:
            return self._fixed_batch(device)
        mixture = self._device_mixture = self._device_mixture.to(device)  # moved once per device
        words = self.streams().words(self.samples_per_batch * mixture.words_per_sample, device, self.rank)
        return mixture.from_words(words)  # (E, B, 2)

    def fixed_set(self, device) -> Tensor:
        """The fixed training set ``(E, train_size · pack, 2)``: member ``k``'s from the first words of
        its ``data`` stream (the same set whenever it is made again, e.g. after resuming), rank 0's on
        every DDP rank."""
        device = torch.device(device)
        if self._fixed is None or self._fixed.device != device:
            mixture = self._device_mixture = self._device_mixture.to(device)
            n = self.train_size * (self.pack or 1) * mixture.words_per_sample
            self._fixed = mixture.from_words(self.streams().words_at(0, n, device, 0))
            self._order = None
        return self._fixed

    def epoch_order(self, epoch: int, device) -> Tensor:
        """Each member's order of the fixed set in ``epoch``: ``(E, S)`` permutations, the stable
        argsort of words ``epoch · S .. (epoch + 1) · S - 1`` of the member's ``order`` stream (rank
        0's on every rank)."""
        if self._order is None or self._order[0] != epoch or self._order[1].device != torch.device(device):
            size = self.train_size * (self.pack or 1)
            order = CounterStream(self.stream_seeds(), "order")
            words = order.words_at(epoch * size, size, device, 0)  # (E, S)
            self._order = (epoch, torch.argsort(words, dim=1, stable=True))
        return self._order[1]

    def _fixed_batch(self, device) -> Tensor:
        """Global batch ``i = draws mod (S // (W·n))`` of epoch ``draws // (S // (W·n))``, of which
        rank ``r`` reads positions ``(i·W + r)·n ..`` (``n`` samples a rank, ``W`` ranks), then
        ``draws += 1``."""
        data = self.fixed_set(device)
        n, world = self.samples_per_batch, self.world_size
        per_epoch = data.shape[1] // (n * world)
        epoch, i = divmod(self.draws, per_epoch)
        at = (i * world + self.rank) * n
        idx = self.epoch_order(epoch, device)[:, at : at + n]  # (E, n)
        self.draws += 1
        return torch.gather(data, 1, idx.unsqueeze(-1).expand(-1, -1, data.shape[-1]))  # (E, n, 2)

    def state_dict(self) -> dict:
        """``data_counter`` (words drawn, once any) and, with a fixed set, ``draws`` (batches drawn)."""
        counter = self._streams.state() if self._streams is not None else self._loaded
        state = {"data_counter": counter} if counter else {}
        return {**state, "draws": self.draws} if self.train_size is not None else state

    def load_state_dict(self, state: dict) -> None:
        if "data_counter" not in state and "generators" in state:
            warnings.warn(
                "the checkpoint holds the toy data's torch.Generator streams of an older gan_lab; this run "
                "draws from the counter-based streams from their start (it will not repeat the old run)",
                stacklevel=2,
            )
        self._loaded = state.get("data_counter")
        if self._streams is not None:
            self._streams.load(self._loaded)
        self.draws = int(state.get("draws", 0))
