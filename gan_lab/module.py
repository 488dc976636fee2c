"""GANModule: the alternation of discriminator (D) and generator (G) steps, and nothing else.

Manual optimization. A training batch runs the phases that are due, as stylegan3's training loop
does, each on its own interval of the module's counters ``d_steps`` / ``g_steps`` (Lightning's
``global_step`` counts every optimizer step of both players):

    Dmain   every batch              objective + eager D penalties, one D step
    Dreg    every k-th D step        a lazy D penalty (×k) as its own D step (StyleGAN2 R1)
    Gmain   every n_critic-th batch  objective + eager G penalties, one G step
    Greg    every k-th G step        a lazy G penalty (×k) as its own G step

Losses are per sample and reduced by :func:`~gan_lab.losses.reduction.reduce_members` (Σ over
members of each member's mean), so that the E members of a seed ensemble train exactly as E
separate runs. The grouped settings are :mod:`gan_lab.settings`; the checks, the simultaneous steps,
the unrolled look-ahead and the step logs live in :mod:`gan_lab.checks`, :mod:`gan_lab.simultaneous`,
:mod:`gan_lab.unrolled` and :mod:`gan_lab.step_logs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from gan_lab import checks
from gan_lab.checkpoints import restore_run_state, run_state
from gan_lab.compiled import CompiledNets, channels_last
from gan_lab.data.context import RunContext
from gan_lab.losses import Objective, PerMember, get_objective
from gan_lab.losses.reduction import member_means, reduce_members, term_means
from gan_lab.nets.ema import make_ema
from gan_lab.nets.layers import pack
from gan_lab.nets.spec import net_spec, with_seed
from gan_lab.optim import ADAM_DEFAULTS, clip_unscaled_, correct_for_lazy_interval, default_adam
from gan_lab.regularizers import Constraint, PenaltyInputs, Regularizer, get_regularizer
from gan_lab.regularizers.base import full_precision
from gan_lab.seeding import RunStreams, run_seeds, set_global_rng_state, stream_seeds
from gan_lab.settings import EMA, Paired, Remedies, Speed
from gan_lab.simultaneous import simultaneous_step
from gan_lab.step_logs import log_step
from gan_lab.threads import use_cpu_threads
from gan_lab.unrolled import check_optimizer, lookahead

__all__ = ["ADAM_DEFAULTS", "GANModule", "correct_for_lazy_interval", "reduce_members", "term_means"]


class GANModule(L.LightningModule):
    """Alternating D/G training with a pluggable objective and regularizers.

    Args:
        generator: maps noise ``(B, z_dim)`` (``(E, B, z_dim)`` for an ensemble of ``members`` E) to
            samples; must expose ``z_dim``.
        discriminator: maps samples to per-sample logits ``(B,)`` / ``(E, B)``; no sigmoid.
        objective: a name (:data:`~gan_lab.losses.OBJECTIVES`) or an :class:`~gan_lab.losses.Objective`;
            a list of ``J`` names makes a mixed ensemble (:class:`~gan_lab.losses.PerMember`): member
            ``j·S + i`` (``S = E / J``) is the single run of ``objective[j]`` with seed ``seed + i``.
        regularizers: names or instances of :class:`~gan_lab.regularizers.Regularizer` /
            :class:`~gan_lab.regularizers.Constraint` (weight clipping); a weight-0 penalty is not computed.
        n_critic: D steps per G step (5 for WGAN / WGAN-GP).
        optimizer_g, optimizer_d: factories ``params -> Optimizer``; None: :data:`ADAM_DEFAULTS`.
        seed: member ``k`` draws its weights and noise from seed ``seed + k`` (:attr:`run_seeds`); a
            net with a ``seed`` argument and no members (DCGAN) is built again with it (:func:`~gan_lab.nets.spec.with_seed`).
        max_g_steps: stop after this many G steps (None: the Trainer's limits only).
        gradient_clip_val: clip each player's unscaled gradient 2-norm to this (> 0) before its step
            (:func:`~gan_lab.optim.clip_unscaled_`); None: off.
        ema: ``G_ema``, the moving average of G's weights (:class:`~gan_lab.settings.EMA`; ``EMA()``: none).
        remedies: packing, the unrolled look-ahead, simultaneous steps (:class:`~gan_lab.settings.Remedies`).
        speed: ``torch.compile``, channels_last, CPU threads (:class:`~gan_lab.settings.Speed`).
        paired: a paired (conditional) run (:class:`~gan_lab.settings.Paired`); None: unconditional.

    Raises:
        ConfigError: for combinations that cannot work (:func:`gan_lab.checks.check_config`).
    """

    #: Plain values set at every step: they skip ``nn.Module.__setattr__``'s registry checks
    #: (Lightning sets ``_current_fx_name`` ~50 times a step; 1.4 µs against 0.2 µs each).
    _PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "d_steps", "g_steps", "last_losses"})

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        objective: Objective | str | list[str] = "non_saturating",
        regularizers: Sequence[Regularizer | Constraint | str] = (),
        n_critic: int = 1,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        seed: int = 0,
        max_g_steps: int | None = None,
        gradient_clip_val: float | None = None,
        ema: EMA = EMA(),
        remedies: Remedies = Remedies(),
        speed: Speed = Speed(),
        paired: Paired | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.objective = get_objective(objective)
        regs = [get_regularizer(r) for r in (regularizers or ())]
        self.gradient_clip_val = checks.check_gradient_clip_val(gradient_clip_val)
        checks.check_config(generator, discriminator, self.objective, regs, n_critic, max_g_steps, paired)
        checks.check_remedies(remedies, regs, n_critic, paired, self.gradient_clip_val)
        self.conditional = paired is not None  # batches are (condition, target)
        self.d_conditional = self.conditional and paired.d_conditional
        self.adversarial_weight = float(paired.adversarial_weight) if paired else 1.0  # 0: no D phase
        # image nets (a `seed` argument, no ensemble) are built again with the run's seed
        generator, discriminator = with_seed(generator, int(seed)), with_seed(discriminator, int(seed))
        self.G, self.D = generator, discriminator
        self.members: int | None = getattr(generator, "members", None)
        #: J of a mixed ensemble (1 otherwise): the data module repeats the run seeds as the members do
        self.seed_blocks = len(self.objective.parts) if isinstance(self.objective, PerMember) else 1
        #: each member's run seed: ``seed + k``, or ``seed + i`` for member ``j·S + i`` of a mixed ensemble
        self.run_seeds = run_seeds(int(seed), self.members or 1, self.seed_blocks)
        self.batch_ndim = 2 if self.members is not None else 1
        self.seed, self.n_critic, self.max_g_steps = int(seed), n_critic, max_g_steps
        self.ema, self.remedies, self.speed, self.paired = ema, remedies, speed, paired
        self.optimizer_g, self.optimizer_d = optimizer_g or default_adam, optimizer_d or default_adam
        self.use_compile = speed.compile_mode is not None
        self._compiled = CompiledNets(speed.compile_mode or "default")  # a plain holder, not a submodule
        self.cpu_threads_reason: str | None = None  # why, once ``setup`` chose (CPU runs only)
        self.penalties = nn.ModuleList([r for r in regs if isinstance(r, Regularizer)])
        self.constraints = nn.ModuleList([r for r in regs if isinstance(r, Constraint)])
        #: the penalties each phase computes (a weight-0 penalty is not computed: no double backward)
        self._phase_regs = {
            (who, lazy): [r for r in self.penalties if r.player == who and (r.every > 1) == lazy and r.weight]
            for who in ("D", "G")
            for lazy in (False, True)
        }
        self.d_steps = self.g_steps = 0
        if hasattr(self.G, "reset_parameters") and self.members is not None:
            self.G.reset_parameters(stream_seeds(self.run_seeds, "G"))
            self.D.reset_parameters(stream_seeds(self.run_seeds, "D"))
        self.G_ema = make_ema(self.G) if ema.on else None
        self.streams = RunStreams(self.run_seeds, self.members)  # G's noise, the penalties' points
        self._pending_rng_state: dict | None = None
        self.resolved_config: str | None = None  # the run's config (YAML), set by the CLI
        #: this step's loss terms (detached; per sample or scalar), read by the divergence guard
        self.last_losses: dict[str, Tensor] = {}
        self._lazy_logs: dict[str, Tensor] = {}  # each lazy term's last value, logged at every log step
        settings = {"ema": asdict(ema), "remedies": asdict(remedies), "paired": paired and asdict(paired)}
        self.save_hyperparameters(
            {
                "objective": self.objective.names if self.seed_blocks > 1 else self.objective.name,
                "regularizers": [repr(r) for r in regs],
                **{"n_critic": n_critic, "seed": self.seed, "members": self.members, **settings},
                "speed": {**asdict(speed), "compile": speed.compile_mode or False},
                "generator": net_spec(generator),  # what `gan-lab sample` rebuilds G from
            }
        )

    def __setattr__(self, name: str, value) -> None:
        if name in GANModule._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def run_context(self) -> RunContext:
        """What the data module follows: members, seed, seed blocks, pack (:mod:`gan_lab.data.context`)."""
        return RunContext(self.members, self.seed, self.seed_blocks, self.remedies.pack)

    @property
    def member_objectives(self) -> list[str]:
        """Each member's objective name (one for a plain run)."""
        if isinstance(self.objective, PerMember):
            return self.objective.member_names(self.members)
        return [self.objective.name] * (self.members or 1)

    @property
    def regularizer_names(self) -> list[str]:
        return [r.name for r in [*self.penalties, *self.constraints]]

    def check_ready(self) -> None:
        checks.check_ready(self.penalties)

    def check_data(self, datamodule) -> None:
        checks.check_data(self.G, self.D, datamodule, self.remedies.pack)

    def check_trainer(self, trainer) -> None:
        checks.check_trainer(trainer, self.D, self.penalties, self.remedies.simultaneous)

    # -- what a step draws and feeds -----------------------------------------------------------

    def sample_noise(self, batch_size: int) -> Tensor:
        """``z ~ N(0, I)`` ``(E, B, z_dim)`` (``(B, z_dim)`` for one net) from the ``noise`` streams."""
        return self.streams.normal((batch_size, self.G.z_dim), self.device, self.global_rank)

    def sample_uniform(self, shape: tuple[int, ...]) -> Tensor:
        """``U[0, 1)`` of ``shape`` (leading ``(E, B)`` or ``(B,)``) from the ``penalty`` streams."""
        return self.streams.uniform(shape[self.batch_ndim - 1 :], self.device, self.global_rank)

    @property
    def grad_scaler(self):
        """The 16-mixed GradScaler of the Trainer's precision plugin, or None."""
        return getattr(self._trainer.precision_plugin, "scaler", None) if self._trainer is not None else None

    def penalty_inputs(self, real: Tensor, fake: Tensor, condition, target) -> PenaltyInputs:
        """What the penalties read: the plain D (of pairs with ``condition``), the packs, the streams."""
        D, rand = self.critic(condition, compiled=False), self.sample_uniform
        return PenaltyInputs(D, real, fake, self.batch_ndim, target, condition, rand, self.grad_scaler)

    def unpack(self, batch) -> tuple[Tensor, Tensor | None]:
        """``(real, condition)`` of a paired batch ``(condition, target)``, or of ``x`` / ``(x, label)``."""
        if self.conditional:
            return batch[1], batch[0]
        return (batch[0] if isinstance(batch, (list, tuple)) else batch), None

    def training_nets(self) -> tuple[Callable, Callable]:
        """``(G, D)`` of the training passes: compiled when ``speed.compile``, else the plain nets."""
        return self._compiled.get(self.G, self.D) if self.use_compile else (self.G, self.D)

    def generate_fake(self, batch_size: int, condition: Tensor | None = None) -> Tensor:
        """``G(z)``, or ``G(condition, z)`` in a paired run (``z = None`` when ``G.z_dim == 0``)."""
        z = self.sample_noise(batch_size) if self.G.z_dim > 0 else None
        G = self.training_nets()[0]
        return G(z) if condition is None else G(condition, z)

    def pack_batch(self, x: Tensor) -> Tensor:
        """``x`` as D reads it: packs of ``remedies.pack`` samples (:func:`gan_lab.nets.layers.pack`)."""
        return pack(x, self.remedies.pack, self.batch_ndim - 1)

    def critic(self, condition: Tensor | None = None, compiled: bool = True) -> Callable[[Tensor], Tensor]:
        """D as a function of ``x`` (``D(x, condition)`` if D judges pairs); the penalties' is not compiled."""
        D = self.training_nets()[1] if compiled else self.D
        return D if condition is None or not self.d_conditional else (lambda x: D(x, condition))

    def configure_optimizers(self):
        opt_g, opt_d = self.optimizer_g(self.G.parameters()), self.optimizer_d(self.D.parameters())
        if self.remedies.unrolled_steps:
            check_optimizer(opt_d)
        for opt, lazy in ((opt_g, self._phase_regs["G", True]), (opt_d, self._phase_regs["D", True])):
            if lazy:  # one interval per player (checked)
                correct_for_lazy_interval(opt, lazy[0].every)
        return [opt_g, opt_d]

    # -- the phases ------------------------------------------------------------------------------

    def training_step(self, batch, batch_idx: int) -> None:
        real, condition = self.unpack(batch)
        if self.use_compile and self._compiled.cudagraphs and real.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs are not read again
        if self.speed.channels_last:
            real, condition = channels_last(real), channels_last(condition)
        opt_g, opt_d = self.optimizers()
        batch_size = real.shape[self.batch_ndim - 1]
        if self.remedies.simultaneous:
            simultaneous_step(self, real, condition, opt_g, opt_d, batch_size)
        else:
            if self.adversarial_weight > 0:
                self.discriminator_step(real, condition, opt_d, batch_size)
            if self.adversarial_weight == 0 or self.d_steps % self.n_critic == 0:
                self.generator_step(real, condition, opt_g, batch_size)
            else:
                return
        if self.max_g_steps is not None and self.g_steps >= self.max_g_steps:
            self.trainer.should_stop = True

    def discriminator_step(self, real: Tensor, condition: Tensor | None, opt_d, batch_size: int) -> None:
        """D's turn: Dmain, Dreg when due, then the constraints (weight clipping)."""
        inputs = self.d_main(real, condition, opt_d, batch_size)
        if inputs is not None:
            self.lazy_phase("D", inputs, opt_d, self.d_steps)
        for constraint in self.constraints:
            constraint.apply_(self.D)
        self.d_steps += 1
        log_step(self, self.last_losses, self._lazy_logs, batch_size)

    def generator_step(self, real: Tensor, condition: Tensor | None, opt_g, batch_size: int) -> None:
        """G's turn with D's parameters toggled off: Gmain, Greg when due (on a fresh fake), EMA."""
        with self.toggled_optimizer(opt_g):
            inputs = self.g_main(real, condition, opt_g, batch_size)
            if self._phase_regs["G", True]:
                inputs.fake = self.pack_batch(self.generate_fake(batch_size, condition))
                self.lazy_phase("G", inputs, opt_g, self.g_steps)
        self.g_steps += 1
        self._update_ema(batch_size)
        log_step(self, self.last_losses, self._lazy_logs, batch_size)

    def d_main(self, real: Tensor, condition: Tensor | None, opt_d, batch_size: int) -> PenaltyInputs | None:
        """Dmain: objective + eager D penalties, one D step (G's fakes under ``no_grad``: no toggle
        needed). Returns the penalties' inputs (for Dreg), or None when D has no penalties."""
        with torch.no_grad():
            fake = self.generate_fake(batch_size, condition)
        real, fake = self.pack_batch(real), self.pack_batch(fake)  # packs of m samples (m = 1: as is)
        loss, inputs, _ = self.d_loss_terms(real, fake, condition)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        return inputs

    def d_loss_terms(
        self, real: Tensor, fake: Tensor, condition
    ) -> tuple[Tensor, PenaltyInputs | None, Tensor]:
        """D's loss on packs ``real`` and (detached) ``fake``, ``L_D`` + eager D penalties; sets ``last_losses``.
        Returns ``(loss, the penalties' inputs or None when D has none, D's real logits)``."""
        D = self.critic(condition)
        real_logits = full_precision(D(real))
        d_loss = self.objective.d_loss(real_logits, full_precision(D(fake)))  # (E, B) or (B,)
        self.last_losses = logs = {"d/loss": d_loss.detach()}
        loss, inputs = reduce_members(d_loss), None
        if self._phase_regs["D", False] or self._phase_regs["D", True]:
            inputs = self.penalty_inputs(real, fake, condition, target=real)
            loss = self._add_penalties("D", inputs, loss, logs)
        return loss, inputs, real_logits

    def g_main(self, real: Tensor, condition: Tensor | None, opt_g, batch_size: int) -> PenaltyInputs | None:
        """Gmain: the adversarial loss (× ``adversarial_weight``) + eager G penalties, one G step."""
        fake = self.generate_fake(batch_size, condition)
        real, fake = self.pack_batch(real), self.pack_batch(fake)
        self.last_losses = logs = {}
        loss = inputs = None
        if self.adversarial_weight > 0:
            D = lookahead(self, real, fake) if self.remedies.unrolled_steps else self.critic(condition)
            real_logits = full_precision(D(real)) if self.objective.needs_real_for_g else None
            g_loss = self.objective.g_loss(full_precision(D(fake)), real_logits)
            logs["g/loss"] = g_loss.detach()
            loss = reduce_members(g_loss)
            loss = loss if self.adversarial_weight == 1 else self.adversarial_weight * loss
        if self._phase_regs["G", False] or self._phase_regs["G", True]:
            inputs = self.penalty_inputs(real, fake, condition, target=real if self.conditional else None)
            loss = self._add_penalties("G", inputs, loss, logs)
        if loss is not None:  # None: no adversarial term and only lazy penalties on G
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_g.step()
        return inputs

    def _add_penalties(self, player: str, inputs: PenaltyInputs, loss: Tensor | None, logs) -> Tensor | None:
        """``loss + Σ weight · reduce(penalty)`` over the player's eager (every = 1) penalties."""
        for reg in self._phase_regs[player, False]:
            per = reg.weight * member_means(reg.penalty(inputs))  # (E,) per member, or () for a plain run
            term = per.sum()  # = weight · reduce_members(penalty)
            loss = term if loss is None else loss + term
            logs[f"{player.lower()}/{reg.name}"] = per.detach()  # per member: the per-seed W&B runs get it
        return loss

    def lazy_phase(self, player: str, inputs: PenaltyInputs, opt, step: int) -> None:
        """Dreg / Greg: each lazy penalty due at ``step`` as its own optimizer step, × ``every``."""
        for reg in self._phase_regs[player, True]:
            if step % reg.every == 0:
                per = reg.weight * reg.every * member_means(reg.penalty(inputs))  # (E,) or ()
                term = per.sum()
                key, value = f"{player.lower()}/{reg.name}", per.detach() / reg.every
                self._lazy_logs[key] = self.last_losses[key] = value  # the guard names it too
                opt.zero_grad(set_to_none=True)
                self.manual_backward(term)
                opt.step()

    def _update_ema(self, batch_size: int) -> None:
        """``G_ema`` after this G step (:meth:`~gan_lab.settings.EMA.update_`; samples of every rank)."""
        if self.G_ema is not None:
            world = self._trainer.world_size if self._trainer is not None else 1
            self.ema.update_(self.G_ema, self.G, self.g_steps, batch_size * world)

    @torch.no_grad()
    def generate(self, *inputs: Tensor | None, ema: bool = True) -> Tensor:
        """``G(*inputs)`` in eval mode, from ``G_ema`` when kept and ``ema``."""
        net = self.G_ema if (ema and self.G_ema is not None) else self.G
        was_training = net.training
        try:
            return net.eval()(*inputs)
        finally:
            net.train(was_training)

    # -- checkpoint, devices, precision ---------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gan_lab"] = run_state(self)  # counters, random streams, RNG states, config, run folder

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._pending_rng_state = restore_run_state(self, checkpoint.get("gan_lab", {}))  # set at batch 1

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._pending_rng_state is not None:
            set_global_rng_state(self._pending_rng_state)
            self._pending_rng_state = None

    def on_fit_start(self) -> None:
        self.check_ready()

    def setup(self, stage: str) -> None:
        if self._trainer is not None and stage == "fit":
            self.check_trainer(self.trainer)
            choice = use_cpu_threads(self.trainer, [self.G, self.D], self.speed.cpu_threads)
            if choice is not None:
                self.hparams["cpu_threads_used"], self.cpu_threads_reason = choice
        if self.speed.channels_last:  # 4-D weights only; Lightning's later .to(device) keeps the format
            for net in [n for n in (self.G, self.D, self.G_ema) if n is not None]:
                net.to(memory_format=torch.channels_last)

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.gradient_clip_val is not None:
            clip_unscaled_(optimizer, self.gradient_clip_val, self.grad_scaler)
