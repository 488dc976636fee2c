"""Layers with a leading member dimension E: E independent networks evaluated in one batched matmul.

A seed ensemble stacks the weights of E networks, so that ``(E, B, d_in) -> (E, B, d_out)`` is one
``torch.baddbmm`` instead of E small matmuls. Member ``k``'s parameters are drawn from member ``k``'s
own generator in a fixed order, so member ``k`` of an E-member ensemble starts exactly like a
1-member network built from the same seed, and since every operation acts on each member alone
(and Adam is elementwise), it trains exactly like it too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: Weight initialisations of :class:`EnsembleLinear` (see ``reset_parameters``).
INITS = ("uniform", "normal")


class EnsembleLinear(nn.Module):
    """E stacked affine maps ``y_e = x_e W_e + b_e``.

    Shapes: input ``(E, B, in_features)``, weight ``(E, in_features, out_features)``,
    bias ``(E, 1, out_features)``, output ``(E, B, out_features)``. Initialised like ``nn.Linear``
    (``U(-1/sqrt(in), 1/sqrt(in))`` for weight and bias), member by member. ``bias=False`` for a
    layer followed by BatchNorm, which removes any bias: its gradient there is pure round-off, which
    Adam (``m / (sqrt(v) + eps)``) would blow up into steps of size ``lr``.
    """

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features)) if bias else None

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator], init: str = "uniform") -> None:
        """Draw member ``k``'s weight then bias from ``generators[k]``.

        ``init``: ``"uniform"`` (``nn.Linear``'s ``U(-1/sqrt(in), 1/sqrt(in))`` for weight and bias)
        or ``"normal"`` (PacGAN's / DCGAN's: weight ``N(0, 0.02)``, bias 0; nothing drawn for it).
        """
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
        bound = 1.0 / math.sqrt(self.in_features)
        for k, g in enumerate(generators):
            w = torch.empty(self.in_features, self.out_features)
            w = (
                w.uniform_(-bound, bound, generator=g)
                if init == "uniform"
                else w.normal_(0.0, 0.02, generator=g)
            )
            self.weight[k].copy_(w)
            if self.bias is not None:
                if init == "uniform":
                    self.bias[k].copy_(torch.empty(1, self.out_features).uniform_(-bound, bound, generator=g))
                else:
                    self.bias[k].zero_()

    def forward(self, x: Tensor) -> Tensor:
        if self.out_features == 1:
            # A batched dot product: unlike bmm, whose kernel (and last-bit rounding) changes with
            # E, it gives member k the same bits for any ensemble size.
            y = (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True)  # (E, B, 1)
            return y if self.bias is None else y + self.bias
        if self.bias is None:
            return torch.bmm(x, self.weight)  # (E, B, out)
        return torch.baddbmm(self.bias, x, self.weight)  # (E, B, out)

    def extra_repr(self) -> str:
        return (
            f"members={self.members}, in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class EnsembleBatchNorm(nn.Module):
    """BatchNorm over the batch dim, separately for each member and feature.

    ``(E, B, C)`` is viewed as ``(B, E·C)`` so that one ``BatchNorm1d(E·C)`` keeps E·C independent
    sets of statistics and affine parameters (γ = 1, β = 0 at start, as in ``nn.BatchNorm1d``).
    """

    def __init__(self, members: int, features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.members, self.features = members, features
        self.bn = nn.BatchNorm1d(members * features, momentum=momentum, eps=eps)

    def reset_parameters(self, generators: list[torch.Generator], init: str = "uniform") -> None:
        self.bn.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        E, B, C = x.shape
        # always a copy (a reshape would be a view at E = 1 and a copy at E > 1: the same ops for every E)
        h = x.transpose(0, 1).clone(memory_format=torch.contiguous_format).view(B, E * C)  # (B, E*C)
        return self.bn(h).view(B, E, C).transpose(0, 1)  # (E, B, C)
