"""MLP generator and discriminator for 2D toy mixtures, with a seed-ensemble dimension.

Defaults follow PacGAN's 2D experiments (Lin et al., 2018): G maps 2D Gaussian noise through
4 hidden layers of 400 ReLU units with BatchNorm (no bias before a BatchNorm); D has 3 hidden layers
of 200 units. D returns raw logits (no sigmoid) and holds no BatchNorm, so that its per-sample input
gradients are well defined for gradient penalties. Every tensor carries a leading member dim E (see
``ensemble.py``): ``G: (E, B, z_dim) -> (E, B, 2)``, ``D: (E, B, in_dim) -> (E, B)``.

PacGAN's exact 2D nets (their code, ``synthetic_data_experiments/*/config.py``) are
``ToyGenerator(init="normal")`` and ``ToyDiscriminator(activation="maxout", pieces=5, init="normal")``:
LinearMaxout units with 5 pieces, weights ``N(0, 0.02)``, biases 0. A packed D (PacGAN``m``) reads
``in_dim = 2·m`` (``GANModule(remedies=Remedies(pack=m))`` packs the batches). ``minibatch_std=True`` puts a
:class:`~gan_lab.nets.layers.MinibatchStdDev` (over each member's batch) before D's head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gan_lab.errors import ConfigError, check_choice, check_int
from gan_lab.nets.ensemble import INITS, EnsembleBatchNorm, EnsembleLinear
from gan_lab.nets.layers import LinearMaxout, MinibatchStdDev
from gan_lab.nets.spec import RecordsInit
from gan_lab.seeding import member_generators, member_seeds

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh}
#: hidden units of D besides :data:`ACTIVATIONS`: LinearMaxout (Goodfellow et al. 2013)
MAXOUT = "maxout"


def _check(members: int, hidden: int, layers: int, activation: str, init: str, valid=ACTIVATIONS) -> None:
    for name, v in (("members", members), ("hidden", hidden), ("layers", layers)):
        check_int(f"toy net '{name}'", v)
    check_choice("activation", activation, valid)
    check_choice("init", init, INITS)


class _EnsembleMLP(RecordsInit, nn.Module):
    """Stack of EnsembleLinear (+ optional EnsembleBatchNorm) + activation (or LinearMaxout units),
    an optional minibatch standard deviation feature, then a linear head."""

    #: CPU intra-op threads these nets train with (see :mod:`gan_lab.threads`): their kernels are
    #: too small to share, and a second thread spins whenever another process holds a core.
    cpu_threads = 1

    def __init__(
        self,
        members: int,
        d_in: int,
        d_out: int,
        hidden: int,
        layers: int,
        batch_norm: bool,
        activation: str,
        init: str = "uniform",
        pieces: int = 5,
        minibatch_std: bool = False,
    ) -> None:
        super().__init__()
        self.members, self.init = members, init
        blocks: list[nn.Module] = []
        width = d_in
        for _ in range(layers):
            if activation == MAXOUT:
                blocks.append(LinearMaxout(members, width, hidden, pieces))
            else:
                blocks.append(EnsembleLinear(members, width, hidden, bias=not batch_norm))
                if batch_norm:
                    blocks.append(EnsembleBatchNorm(members, hidden))
                blocks.append(ACTIVATIONS[activation]())
            width = hidden
        if minibatch_std:
            blocks.append(MinibatchStdDev(group_size=None, batch_dim=1))
            width += 1
        blocks.append(EnsembleLinear(members, width, d_out))
        self.net = nn.Sequential(*blocks)

    def reset_parameters(self, seeds: Sequence[int]) -> None:
        """Initialise member ``k`` from ``seeds[k]`` alone (layer by layer, in order)."""
        if len(seeds) != self.members:
            raise ConfigError(f"got {len(seeds)} seeds for {self.members} ensemble members")
        generators = member_generators(list(seeds))
        for m in self.net:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters(generators, self.init)


class ToyGenerator(_EnsembleMLP):
    """PacGAN's 2D generator: ``z (E, B, z_dim) -> x (E, B, 2)``; 4 × 400 ReLU + BatchNorm."""

    def __init__(
        self,
        members: int = 1,
        z_dim: int = 2,
        hidden: int = 400,
        layers: int = 4,
        out_dim: int = 2,
        batch_norm: bool = True,
        activation: str = "relu",
        seed: int = 0,
        init: str = "uniform",
    ) -> None:
        _check(members, hidden, layers, activation, init)
        super().__init__(members, z_dim, out_dim, hidden, layers, batch_norm, activation, init)
        self.z_dim, self.out_dim = z_dim, out_dim
        self.reset_parameters(member_seeds(seed, members, "G"))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)  # (E, B, out_dim)


class ToyDiscriminator(_EnsembleMLP):
    """PacGAN-sized 2D critic: ``x (E, B, in_dim) -> logits (E, B)``; 3 × 200 ReLU, no BatchNorm.

    Args:
        in_dim: 2, or ``2·m`` for a D of packs of ``m`` (``remedies.pack = m``).
        activation: ``relu``, ``leaky_relu``, ``tanh`` or ``maxout`` (LinearMaxout units of ``pieces``).
        init: ``uniform`` (``nn.Linear``'s) or ``normal`` (PacGAN's: ``N(0, 0.02)``, biases 0).
        minibatch_std: append the minibatch standard deviation (Karras et al. 2018) before the head.
    """

    def __init__(
        self,
        members: int = 1,
        in_dim: int = 2,
        hidden: int = 200,
        layers: int = 3,
        activation: str = "relu",
        seed: int = 0,
        init: str = "uniform",
        pieces: int = 5,
        minibatch_std: bool = False,
    ) -> None:
        _check(members, hidden, layers, activation, init, valid=[*ACTIVATIONS, MAXOUT])
        check_int("toy net 'in_dim'", in_dim)
        super().__init__(members, in_dim, 1, hidden, layers, False, activation, init, pieces, minibatch_std)
        self.in_dim = in_dim
        self.reset_parameters(member_seeds(seed, members, "D"))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)  # (E, B)


def member(net: _EnsembleMLP, k: int) -> dict[str, torch.Tensor]:
    """Member ``k``'s parameters and buffers as a 1-member state_dict (for comparison and export)."""
    out = {}
    for name, t in net.state_dict().items():
        if t.dim() == 0:  # num_batches_tracked
            out[name] = t.clone()
        elif name.endswith(("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")):
            C = t.shape[0] // net.members
            out[name] = t[k * C : (k + 1) * C].clone()
        else:
            out[name] = t[k : k + 1].clone()  # (1, ...) of (E, ...)
    return out
