"""Simultaneous gradient descent, the update of ALI's and PacGAN's code (``ali_algorithm``), as
:class:`~gan_lab.module.GANModule`'s alternative to its alternation (``remedies.simultaneous``).

One fake batch ``x̃ = G(z)`` a step; ``∇_θD L_D(x, x̃)`` and ``∇_θG L_G(x̃)`` are both taken at the
current ``(θ_D, θ_G)``, then D steps (and its constraints apply) and G steps: one D step and one G
step per batch. ``L_D`` carries D's eager penalties (on the detached fakes); G's gradient is taken
with D's parameters toggled off. The alternation instead steps D, then G against the updated D on
fresh fakes. Needs ``n_critic = 1`` and no lazy or G-side regularizer
(:func:`gan_lab.checks.check_simultaneous`), and no 16-mixed precision (one GradScaler for two
backward passes: :func:`gan_lab.checks.check_trainer`).
"""

from __future__ import annotations

from torch import Tensor

from gan_lab.losses.reduction import reduce_members
from gan_lab.regularizers.base import full_precision
from gan_lab.step_logs import log_step


def simultaneous_step(module, real: Tensor, condition: Tensor | None, opt_g, opt_d, batch_size: int) -> None:
    """One simultaneous D and G step of ``module`` (a :class:`~gan_lab.module.GANModule`) on a batch."""
    D = module.critic(condition)
    fake = module.generate_fake(batch_size, condition)  # attached: G's loss goes through it
    real, fake = module.pack_batch(real), module.pack_batch(fake)
    loss_d, _, real_logits = module.d_loss_terms(real, fake.detach(), condition)
    logs = module.last_losses
    opt_d.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    module.manual_backward(loss_d)  # D's gradient only: the fakes are detached
    with module.toggled_optimizer(opt_g):  # G's gradient only, at the same (not yet stepped) D
        # D is not stepped yet: its real logits are those of L_D (they carry no gradient for G)
        g_real = real_logits.detach() if module.objective.needs_real_for_g else None
        g_loss = module.objective.g_loss(full_precision(D(fake)), g_real)
        logs["g/loss"] = g_loss.detach()
        loss_g = reduce_members(g_loss)
        weight = module.adversarial_weight
        module.manual_backward(loss_g if weight == 1 else weight * loss_g)
    opt_d.step()
    for constraint in module.constraints:
        constraint.apply_(module.D)
    opt_g.step()
    module.d_steps += 1
    module.g_steps += 1
    module._update_ema(batch_size)
    log_step(module, logs, module._lazy_logs, batch_size)
