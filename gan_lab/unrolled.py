"""Unrolled GAN (Metz, Poole, Pfau & Sohl-Dickstein, ICLR 2017): G's loss through ``k``
differentiable look-ahead steps of D.

G's step takes its loss against ``D_{θ_k}``, where ``θ_0`` are D's current parameters and

    θ_{i+1} = update(θ_i, ∇_θ L_D(θ_i; x, G(z)), optimizer state_i)

is D's own optimizer update (Adam / AdamW / SGD, with its hyper-parameters and its current state:
moments and step count), written as differentiable tensor arithmetic and evaluated with
``torch.func.functional_call`` over D's parameters. The gradient ``∂L_G/∂φ`` of G's parameters
flows both through ``D_{θ_k}(G(z))`` and through ``θ_k``'s dependence on ``G(z)`` (the second-order
term of Metz et al., eq. 12, ``create_graph=True``). D's projections after its step (weight
clipping, :meth:`~gan_lab.regularizers.Constraint.project`) are applied to each ``θ_{i+1}`` as well, so
that the look-ahead is D's real update. D itself is not changed by the look-ahead: its parameters are
detached copies and its buffers (BatchNorm's running statistics, spectral norm's power-iteration
vectors) are cloned for the look-ahead's forward passes; D is updated normally in its own step. As in
Metz et al.'s 2D code, every look-ahead step reuses the step's real batch and G's fakes, and ``L_D``
is the objective's D loss alone (no gradient penalties). ``k = 0`` is the plain G step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gan_lab.errors import ConfigError
from gan_lab.losses.reduction import reduce_members
from gan_lab.regularizers.base import full_precision

#: optimizers whose update the look-ahead can differentiate through
SUPPORTED = ("Adam", "AdamW", "SGD")


def check_optimizer(opt: torch.optim.Optimizer) -> None:
    """Refuse (one line) an optimizer whose update is not written out here, or an option of it that is not."""
    name = type(opt).__name__
    if name not in SUPPORTED:
        raise ConfigError(
            f"unrolled_steps > 0 differentiates through D's optimizer update, written out for "
            f"{', '.join(SUPPORTED)}; D's optimizer is {name}: use one of those or unrolled_steps=0"
        )
    for group in opt.param_groups:
        for flag in ("amsgrad", "maximize"):
            if group.get(flag):
                raise ConfigError(f"unrolled_steps > 0 does not support {name}({flag}=True); switch it off")


def _safe_sqrt(v: Tensor) -> Tensor:
    """``sqrt(v)`` whose derivative at ``v = 0`` is 0 instead of ``inf`` (``inf · 0 = nan`` otherwise:
    a parameter whose gradient is exactly 0, e.g. behind a dead ReLU)."""
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))


def update_step(
    opt: torch.optim.Optimizer, p: Tensor, g: Tensor, group: dict, state: dict
) -> tuple[Tensor, dict]:
    """One differentiable update of parameter ``p`` with gradient ``g``: ``(p', state')``.

    ``state``: ``{"step", "exp_avg", "exp_avg_sq"}`` (Adam / AdamW) or ``{"momentum_buffer"}`` (SGD),
    as the optimizer keeps them (empty before its first step). Formulas as ``torch.optim``'s:

    - Adam: ``g ← g + λp``; ``m ← β₁m + (1−β₁)g``; ``v ← β₂v + (1−β₂)g²``;
      ``p ← p − lr · (m / (1−β₁ᵗ)) / (sqrt(v / (1−β₂ᵗ)) + ε)``. AdamW, or Adam with
      ``decoupled_weight_decay=True`` (Loshchilov & Hutter 2019): ``p ← p(1 − lr·λ)`` instead of ``g + λp``.
    - SGD: ``g ← g + λp``; ``b ← μb + (1−τ)g`` (``b = g`` at the first step); nesterov ``g ← g + μb``,
      else ``g ← b``; ``p ← p − lr·g``.
    """
    name = type(opt).__name__
    lr, wd = group["lr"], group.get("weight_decay", 0.0)
    if name in ("Adam", "AdamW"):
        beta1, beta2 = group["betas"]
        t = float(state["step"]) + 1 if "step" in state else 1.0
        m = state.get("exp_avg", torch.zeros_like(p))
        v = state.get("exp_avg_sq", torch.zeros_like(p))
        if wd and (name == "AdamW" or group.get("decoupled_weight_decay", False)):
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        return p - lr * m_hat / (_safe_sqrt(v_hat) + group["eps"]), {"step": t, "exp_avg": m, "exp_avg_sq": v}
    mu, dampening, nesterov = (
        group.get("momentum", 0.0),
        group.get("dampening", 0.0),
        group.get("nesterov", False),
    )
    if wd:
        g = g + wd * p
    if mu:
        buf = state.get("momentum_buffer")
        buf = g if buf is None else mu * buf + (1 - dampening) * g
        g = g + mu * buf if nesterov else buf
        return p - lr * g, {"momentum_buffer": buf}
    return p - lr * g, {}


def lookahead_parameters(
    D: nn.Module,
    opt: torch.optim.Optimizer,
    d_loss: Callable[[Callable[[Tensor], Tensor]], Tensor],
    steps: int,
    project: Callable[[str, Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """D's parameters and buffers after ``steps`` differentiable updates of ``opt`` on ``d_loss``.

    ``d_loss(critic)`` returns the (reduced) D loss of a critic function ``x -> logits``; it should
    hold G's fakes *attached*, so that the result depends on G. The start ``θ_0`` is detached from
    D (D's own parameters get no gradient from the look-ahead). ``project(name, θ)``: D's
    post-step projection of one parameter (weight clipping), applied after every update. The
    result holds clones of D's buffers, which the look-ahead's forward passes update in place of
    D's own (:func:`lookahead_critic` goes on with them).
    """
    owner = {id(p): p for group in opt.param_groups for p in group["params"]}
    group_of = {id(p): group for group in opt.param_groups for p in group["params"]}
    names = [n for n, p in D.named_parameters() if id(p) in owner]
    params = {n: p.detach().requires_grad_(True) for n, p in D.named_parameters() if id(p) in owner}
    originals = dict(D.named_parameters())
    states = {
        n: {k: v.detach() for k, v in opt.state.get(originals[n], {}).items() if torch.is_tensor(v)}
        for n in names
    }
    for n in names:  # step counters are tensors in torch.optim; keep them as numbers
        if "step" in states[n]:
            states[n]["step"] = float(states[n]["step"])
    buffers = {n: b.clone() for n, b in D.named_buffers()}
    for _ in range(steps):
        loss = d_loss(lambda x, params=params: functional_call(D, {**buffers, **params}, (x,)))
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True, allow_unused=True)
        new = dict(params)
        for n, g in zip(names, grads):
            if g is None:
                continue
            new[n], states[n] = update_step(opt, params[n], g, group_of[id(originals[n])], states[n])
            if project is not None:
                new[n] = project(n, new[n])
        params = new
    return {**buffers, **params}


def lookahead_critic(D: nn.Module, params: dict[str, Tensor]) -> Callable[[Tensor], Tensor]:
    """D with ``params`` (parameters and buffers) in place of its own: ``x -> functional_call(D, params, (x,))``."""
    return lambda x: functional_call(D, params, (x,))


def lookahead(module, real: Tensor, fake: Tensor) -> Callable[[Tensor], Tensor]:
    """The critic of G's unrolled loss: the D of ``module`` (a :class:`~gan_lab.module.GANModule`)
    after ``remedies.unrolled_steps`` differentiable updates of its own optimizer on the objective's
    D loss of this step's ``real`` and (attached) ``fake`` packs, each update projected by D's
    constraints (weight clipping) as D's own step is."""

    def d_loss(D: Callable[[Tensor], Tensor]) -> Tensor:
        return reduce_members(module.objective.d_loss(full_precision(D(real)), full_precision(D(fake))))

    opt = module.optimizers()[1]
    opt = getattr(opt, "optimizer", opt)  # Lightning's wrapper
    project = None
    if len(module.constraints):

        def project(name: str, p: Tensor) -> Tensor:
            for constraint in module.constraints:
                p = constraint.project(name, p)
            return p

    params = lookahead_parameters(module.D, opt, d_loss, module.remedies.unrolled_steps, project)
    return lookahead_critic(module.D, params)
