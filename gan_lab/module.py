"""GANModule: the alternation of discriminator (D) and generator (G) steps, and nothing else.

Manual optimization. A training batch runs the phases that are due, as stylegan3's training loop
does (``Dmain``, ``Dreg``, ``Gmain``, ``Greg``), each on its own interval of the module's counters:

    Dmain   every batch              objective + eager D penalties, one D step
    Dreg    every k-th D step        a lazy D penalty (×k) as its own D step (StyleGAN2 R1)
    Gmain   every n_critic-th batch  objective + eager G penalties, one G step
    Greg    every k-th G step        a lazy G penalty (×k) as its own G step

With ``adversarial_weight = 0`` there is no D phase and G trains on its penalties alone. Losses are
per sample and reduced by :func:`~gan_lab.losses.reduction.reduce_members` (Σ over members of each
member's mean), so that the E members of a seed ensemble train exactly as E separate runs.
``d_steps`` / ``g_steps`` are the module's own counters (Lightning's ``global_step`` counts every
optimizer step of both players).

Mode-collapse remedies on D's side, for every objective, net and dataset:

- ``pack = m`` (PacGAN, Lin et al. 2018): D judges packs of ``m`` samples
  (:func:`gan_lab.nets.layers.pack`: features side by side for toy data, channels for images, so D
  is built with ``in_dim = m·2`` / ``in_channels = m·C``). A batch of ``N`` real samples becomes
  ``N/m`` packs, G makes ``N`` fakes a step (``m`` × the packs), real and fake are packed alike and
  every penalty sees packs. The toy datamodule draws ``batch_size · m`` samples (``batch_size`` =
  packs per step); ``m = 1`` is the plain run.
- ``unrolled_steps = k`` (Metz et al. 2017): G's loss against D after ``k`` differentiable look-ahead
  updates of D's own optimizer (:mod:`gan_lab.unrolled`); D is updated normally; ``k = 0`` is the
  plain run.
- ``simultaneous = True``: simultaneous gradient descent, the update of ALI's and PacGAN's code
  (``ali_algorithm``): one fake batch a step; D's gradient of ``L_D`` and G's gradient of ``L_G`` are
  both taken at the current ``(θ_D, θ_G)``, then both players step (one D step and one G step per
  batch). The default (False) alternates: D steps, then G steps against the updated D on fresh fakes.
- Minibatch standard deviation (Karras et al. 2018) and LinearMaxout are layers of D
  (:mod:`gan_lab.nets.layers`; ``ToyDiscriminator(minibatch_std=True, activation="maxout")``).

The checks, the optimizers' defaults and corrections, the
compiled nets and the random streams live in modules of their own (:mod:`gan_lab.checks`,
:mod:`gan_lab.optim`, :mod:`gan_lab.compiled`, :mod:`gan_lab.seeding`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from gan_lab.checks import (
    check_config,
    check_data,
    check_gradient_clip_val,
    check_ready,
    check_remedies,
    check_simultaneous,
    check_trainer,
)
from gan_lab.compiled import CompiledNets, channels_last, compile_mode
from gan_lab.errors import ConfigError, check_int, check_weight
from gan_lab.losses import Objective, PerMember, get_objective
from gan_lab.losses.reduction import member_means, reduce_members, term_means
from gan_lab.nets.ema import ema_beta, ema_update_, make_ema
from gan_lab.nets.layers import pack
from gan_lab.nets.spec import net_spec, with_seed
from gan_lab.optim import ADAM_DEFAULTS, clip_unscaled_, correct_for_lazy_interval, default_adam
from gan_lab.regularizers import Constraint, PenaltyInputs, Regularizer, get_regularizer
from gan_lab.regularizers.base import full_precision
from gan_lab.seeding import (
    STREAMS,
    RunStreams,
    global_rng_state,
    run_seeds,
    set_global_rng_state,
    stream_seeds,
)
from gan_lab.threads import use_cpu_threads
from gan_lab.unrolled import check_optimizer, lookahead_critic, lookahead_parameters

__all__ = ["ADAM_DEFAULTS", "GANModule", "correct_for_lazy_interval", "reduce_members", "term_means"]

#: Offset of the penalty streams (WGAN-GP's ε, DRAGAN's α, u) from the noise streams' seeds.
PENALTY_STREAM_OFFSET = STREAMS["penalty"] - STREAMS["noise"]


class GANModule(L.LightningModule):
    """Alternating D/G training with a pluggable objective and regularizers.

    Args:
        generator: maps noise ``(B, z_dim)`` (``(E, B, z_dim)`` for an ensemble; it exposes
            ``members`` E) to samples; must expose ``z_dim``.
        discriminator: maps samples to per-sample logits ``(B,)`` / ``(E, B)``; no sigmoid.
        objective: a name (``minimax``, ``non_saturating``, ``wasserstein``, ``hinge``,
            ``least_squares``, ``relativistic``) or an :class:`~gan_lab.losses.Objective`; a list
            of names makes a mixed ensemble (:class:`~gan_lab.losses.PerMember`): ``J`` objectives,
            ``S = E / J`` members each, member ``j·S + i`` the single run of ``objective[j]`` with
            seed ``seed + i`` (everything else, nets, optimizers and penalties, is shared).
        regularizers: names or instances of :class:`~gan_lab.regularizers.Regularizer` /
            :class:`~gan_lab.regularizers.Constraint` (weight clipping). A penalty of weight 0 is
            not computed at all.
        n_critic: D steps per G step (5 for WGAN / WGAN-GP).
        optimizer_g, optimizer_d: factories ``params -> Optimizer``; None: :data:`ADAM_DEFAULTS`.
        ema_beta: keep ``G_ema`` with a fixed ``θ_ema ← β θ_ema + (1 − β) θ`` after each G step.
        ema_kimg: keep ``G_ema`` with StyleGAN2's β: a half-life of this many thousand samples,
            ramped up over ``ema_rampup · samples seen`` (:func:`~gan_lab.nets.ema.ema_beta`).
        ema_rampup: StyleGAN2's ramp-up (0.05); None: no ramp-up.
        seed: member ``k`` draws its initial weights and noise from seed ``seed + k`` (``seed + i``
            for member ``j·S + i`` of a mixed ensemble: :attr:`run_seeds`); a net with a
            ``seed`` argument of its own and no members (DCGAN, SN-ResNet) is built again with ``seed``
            (:func:`~gan_lab.nets.spec.with_seed`).
        max_g_steps: stop after this many G steps (None: the Trainer's limits only).
        conditional: paired run: batches are ``(condition, target)``, G maps ``(condition, z)``
            (``z`` None when ``G.z_dim == 0``); regularizers that need a target become allowed.
        d_conditional: in a paired run, D judges ``(output, condition)`` pairs.
        adversarial_weight: multiplier of G's adversarial loss; 0 switches D off.
        gradient_clip_val: clip each player's gradient 2-norm to this (> 0) before its step, on
            unscaled gradients (:func:`~gan_lab.optim.clip_unscaled_`); None: off.
        channels_last: 4-D weights and batches in channels_last memory format.
        compile: train through ``torch.compile``'d G and D (:mod:`gan_lab.compiled`): True, or a
            ``torch.compile`` mode; ``"reduce-overhead"`` captures the passes as CUDA graphs on a GPU.
        cpu_threads: intra-op threads of a CPU run; None: the nets' choice (:mod:`gan_lab.threads`).
        pack: PacGAN's packing degree ``m``: D judges packs of ``m`` samples (1: off).
        unrolled_steps: Unrolled GAN's ``k``: G's loss through ``k`` look-ahead steps of D (0: off).
        simultaneous: both players' gradients at the same parameters from one fake batch, then both
            steps (ALI / PacGAN's ``ali_algorithm``); needs ``n_critic = 1`` and no lazy or G-side
            regularizer. False: alternating D and G steps.

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
        ema_beta: float | None = None,
        seed: int = 0,
        max_g_steps: int | None = None,
        conditional: bool = False,
        d_conditional: bool = False,
        adversarial_weight: float = 1.0,
        gradient_clip_val: float | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        cpu_threads: int | None = None,
        ema_kimg: float | None = None,
        ema_rampup: float | None = 0.05,
        pack: int = 1,
        unrolled_steps: int = 0,
        simultaneous: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.objective = get_objective(objective)
        regs = [get_regularizer(r) for r in (regularizers or ())]
        check_config(
            generator, discriminator, self.objective, regs, n_critic, ema_beta, max_g_steps, conditional
        )
        # image nets (a `seed` argument, no ensemble) are built again with the run's seed
        generator, discriminator = with_seed(generator, int(seed)), with_seed(discriminator, int(seed))
        self.G, self.D = generator, discriminator
        self.members: int | None = getattr(generator, "members", None)
        blocks = len(self.objective.parts) if isinstance(self.objective, PerMember) else 1
        if blocks > 1 and self.members is None:
            raise ConfigError(
                f"objectives {self.objective.names} side by side need an ensemble G and D (members = seeds × {blocks})"
            )
        if blocks > 1:
            self.objective.block_size(self.members)  # E must split evenly
        #: each member's run seed: ``seed + k``, or ``seed + i`` for member ``j·S + i`` of a mixed ensemble
        self.run_seeds = run_seeds(int(seed), self.members or 1, blocks)
        self.seed_blocks = blocks  # J: the data module repeats the run seeds as the members do
        self.batch_ndim = 2 if self.members is not None else 1
        self.seed, self.n_critic, self.max_g_steps = int(seed), n_critic, max_g_steps
        self.conditional, self.d_conditional = bool(conditional), bool(d_conditional)
        self.adversarial_weight = check_weight("adversarial_weight", adversarial_weight)
        if self.adversarial_weight == 0 and not any(getattr(r, "player", "") == "G" for r in regs):
            raise ConfigError("adversarial_weight is 0 and G has no regularizer: nothing would train G")
        self.optimizer_g, self.optimizer_d = optimizer_g or default_adam, optimizer_d or default_adam
        self.gradient_clip_val = check_gradient_clip_val(gradient_clip_val)
        self.compile_mode = compile_mode(compile)
        self.channels_last, self.use_compile = bool(channels_last), self.compile_mode is not None
        self.cpu_threads = None if cpu_threads is None else check_int("cpu_threads", cpu_threads)
        self.cpu_threads_reason: str | None = None  # why, once ``setup`` chose (CPU runs only)
        self.pack, self.unrolled_steps = check_remedies(
            pack, unrolled_steps, conditional, self.gradient_clip_val
        )
        self.simultaneous = check_simultaneous(
            simultaneous, n_critic, unrolled_steps, regs, adversarial_weight
        )
        self._compiled = CompiledNets(self.compile_mode or "default")  # a plain holder, not a submodule

        self.penalties = nn.ModuleList([r for r in regs if isinstance(r, Regularizer)])
        self.constraints = nn.ModuleList([r for r in regs if isinstance(r, Constraint)])
        #: the penalties each phase computes (a weight-0 penalty is not computed: no double backward)
        self._phase_regs = {
            (player, lazy): [
                r for r in self.penalties if r.player == player and (r.every > 1) == lazy and r.weight
            ]
            for player in ("D", "G")
            for lazy in (False, True)
        }
        self.d_steps = self.g_steps = 0
        if hasattr(self.G, "reset_parameters") and self.members is not None:
            self.G.reset_parameters(stream_seeds(self.run_seeds, "G"))
            self.D.reset_parameters(stream_seeds(self.run_seeds, "D"))
        if ema_kimg is not None:
            check_weight("ema_kimg", ema_kimg)
        self.ema_beta, self.ema_kimg, self.ema_rampup = ema_beta, ema_kimg, ema_rampup
        self.G_ema = make_ema(self.G) if (ema_beta is not None or ema_kimg is not None) else None
        self.streams = RunStreams(self.run_seeds, self.members)  # G's noise, the penalties' points
        self._pending_rng_state: dict | None = None
        self.resolved_config: str | None = None  # the run's config (YAML), set by the CLI
        #: this step's loss terms (detached; per sample or scalar), read by the divergence guard
        self.last_losses: dict[str, Tensor] = {}
        self._lazy_logs: dict[str, Tensor] = {}  # each lazy term's last value, logged at every log step
        self.save_hyperparameters(
            {
                "objective": self.objective.names if blocks > 1 else self.objective.name,
                "regularizers": [repr(r) for r in regs],
                **{"n_critic": n_critic, "ema_beta": ema_beta, "ema_kimg": ema_kimg, "seed": self.seed},
                **{"members": self.members, "conditional": conditional, "d_conditional": d_conditional},
                **{"channels_last": self.channels_last, "compile": self.compile_mode or False},
                **{
                    "pack": self.pack,
                    "unrolled_steps": self.unrolled_steps,
                    "simultaneous": self.simultaneous,
                },
                "generator": net_spec(generator),  # what `gan-lab sample` rebuilds G from
            }
        )

    def __setattr__(self, name: str, value) -> None:
        if name in GANModule._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

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
        check_ready(self.penalties)

    def check_data(self, datamodule) -> None:
        check_data(self.G, self.D, datamodule, self.pack)

    def check_trainer(self, trainer) -> None:
        check_trainer(trainer, self.D, self.penalties, self.simultaneous)

    # -- what a step draws and feeds -----------------------------------------------------------

    def sample_noise(self, batch_size: int) -> Tensor:
        """``z ~ N(0, I)``: ``(E, B, z_dim)`` for an ensemble, ``(B, z_dim)`` otherwise; all members at
        once from the counter-based ``noise`` streams (:class:`~gan_lab.seeding.CounterStream`)."""
        return self.streams.normal((batch_size, self.G.z_dim), self.device, self.global_rank)

    def sample_uniform(self, shape: tuple[int, ...]) -> Tensor:
        """``U[0, 1)`` of ``shape`` (leading ``(E, B)`` or ``(B,)``) for the penalties' points, from the
        counter-based ``penalty`` streams."""
        rest = shape[self.batch_ndim - 1 :]
        return self.streams.uniform(rest, self.device, self.global_rank)

    @property
    def grad_scaler(self):
        """The 16-mixed GradScaler of the Trainer's precision plugin, or None."""
        return getattr(self._trainer.precision_plugin, "scaler", None) if self._trainer is not None else None

    def penalty_inputs(self, D, real: Tensor, fake: Tensor, **kw) -> PenaltyInputs:
        return PenaltyInputs(
            D, real, fake, self.batch_ndim, rand=self.sample_uniform, grad_scaler=self.grad_scaler, **kw
        )

    def unpack(self, batch) -> tuple[Tensor, Tensor | None]:
        """``(real, condition)``: a paired batch is ``(condition, target)``; a plain one is ``x``
        or ``(x, label)`` (labels are ignored by an unconditional GAN)."""
        if self.conditional:
            return batch[1], batch[0]
        return (batch[0] if isinstance(batch, (list, tuple)) else batch), None

    def training_nets(self) -> tuple[Callable, Callable]:
        """``(G, D)`` of the training passes: compiled when ``compile``, else the plain nets."""
        return self._compiled.get(self.G, self.D) if self.use_compile else (self.G, self.D)

    def generate_fake(self, batch_size: int, condition: Tensor | None = None) -> Tensor:
        """``G(z)``, or ``G(condition, z)`` in a paired run (``z = None`` when ``G.z_dim == 0``)."""
        z = self.sample_noise(batch_size) if self.G.z_dim > 0 else None
        G = self.training_nets()[0]
        return G(z) if condition is None else G(condition, z)

    def pack_batch(self, x: Tensor) -> Tensor:
        """``x`` as D reads it: packs of ``pack`` samples (:func:`gan_lab.nets.layers.pack`); ``x``
        itself when ``pack = 1``."""
        return pack(x, self.pack, self.batch_ndim - 1)

    def critic(self, condition: Tensor | None = None, compiled: bool = True) -> Callable[[Tensor], Tensor]:
        """D as a function of its input (``D(x, condition)`` when D judges pairs); ``compiled=False``:
        the plain D (the penalties')."""
        D = self.training_nets()[1] if compiled else self.D
        return D if condition is None or not self.d_conditional else (lambda x: D(x, condition))

    def configure_optimizers(self):
        opt_g, opt_d = self.optimizer_g(self.G.parameters()), self.optimizer_d(self.D.parameters())
        if self.unrolled_steps:
            check_optimizer(opt_d)
        for player, opt in (("G", opt_g), ("D", opt_d)):
            lazy = {r.every for r in self._phase_regs[player, True]}
            if lazy:
                correct_for_lazy_interval(opt, lazy.pop())
        return [opt_g, opt_d]

    # -- the phases ------------------------------------------------------------------------------

    def training_step(self, batch, batch_idx: int) -> None:
        real, condition = self.unpack(batch)
        if self.use_compile and self._compiled.cudagraphs and real.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs are not read again
        if self.channels_last:
            real, condition = channels_last(real), channels_last(condition)
        opt_g, opt_d = self.optimizers()
        batch_size = real.shape[self.batch_ndim - 1]
        if self.simultaneous:
            self.simultaneous_step(real, condition, opt_g, opt_d, batch_size)
        else:
            if self.adversarial_weight > 0:
                self.discriminator_step(real, condition, opt_d, batch_size)
            if self.adversarial_weight == 0 or self.d_steps % self.n_critic == 0:
                self.generator_step(real, condition, opt_g, batch_size)
            else:
                return
        if self.max_g_steps is not None and self.g_steps >= self.max_g_steps:
            self.trainer.should_stop = True

    def simultaneous_step(
        self, real: Tensor, condition: Tensor | None, opt_g, opt_d, batch_size: int
    ) -> None:
        """Simultaneous gradient descent (ALI / PacGAN's ``ali_algorithm``): from one fake batch
        ``x̃ = G(z)``, ``∇_θD L_D(x, x̃)`` and ``∇_θG L_G(x̃)`` at the current parameters of both, then
        D's step (and its constraints) and G's step. ``L_D`` carries D's eager penalties (on the
        detached fakes); G's gradient is taken with D's parameters toggled off."""
        D = self.critic(condition)
        fake = self.generate_fake(batch_size, condition)  # attached: G's loss goes through it
        real, fake = self.pack_batch(real), self.pack_batch(fake)
        loss_d, _, real_logits = self.d_loss_terms(real, fake.detach(), condition)
        logs = self.last_losses
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)  # D's gradient only: the fakes are detached
        with self.toggled_optimizer(opt_g):  # G's gradient only, at the same (not yet stepped) D
            # D is not stepped yet: its real logits are those of L_D (they carry no gradient for G)
            g_real = real_logits.detach() if self.objective.needs_real_for_g else None
            g_loss = self.objective.g_loss(full_precision(D(fake)), g_real)
            logs["g/loss"] = g_loss.detach()
            loss_g = reduce_members(g_loss)
            self.manual_backward(loss_g if self.adversarial_weight == 1 else self.adversarial_weight * loss_g)
        opt_d.step()
        for constraint in self.constraints:
            constraint.apply_(self.D)
        opt_g.step()
        self.d_steps += 1
        self.g_steps += 1
        self._update_ema(batch_size)
        self._log_step(logs, batch_size)

    def discriminator_step(self, real: Tensor, condition: Tensor | None, opt_d, batch_size: int) -> None:
        """D's turn: Dmain, Dreg when due, then the constraints (weight clipping)."""
        inputs = self.d_main(real, condition, opt_d, batch_size)
        if inputs is not None:
            self.lazy_phase("D", inputs, opt_d, self.d_steps)
        for constraint in self.constraints:
            constraint.apply_(self.D)
        self.d_steps += 1
        self._log_step(self.last_losses, batch_size)

    def generator_step(self, real: Tensor, condition: Tensor | None, opt_g, batch_size: int) -> None:
        """G's turn with D's parameters toggled off: Gmain, Greg when due (on a fresh fake), EMA."""
        with self.toggled_optimizer(opt_g):
            inputs = self.g_main(real, condition, opt_g, batch_size)
            if self._phase_regs["G", True]:
                inputs.fake = self.pack_batch(self.generate_fake(batch_size, condition))
                self.lazy_phase("G", inputs, opt_g, self.g_steps)
        self.g_steps += 1
        self._update_ema(batch_size)
        self._log_step(self.last_losses, batch_size)

    def d_main(self, real: Tensor, condition: Tensor | None, opt_d, batch_size: int) -> PenaltyInputs | None:
        """Dmain: objective + eager D penalties, one D step. G's fakes are drawn under ``no_grad``, so
        G's parameters take no gradient without a toggle. Returns the penalties' inputs (for Dreg),
        or None when D has no penalties."""
        with torch.no_grad():
            fake = self.generate_fake(batch_size, condition)
        real, fake = self.pack_batch(real), self.pack_batch(fake)  # packs of `pack` samples (m = 1: as is)
        loss, inputs, _ = self.d_loss_terms(real, fake, condition)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        return inputs

    def d_loss_terms(
        self, real: Tensor, fake: Tensor, condition: Tensor | None
    ) -> tuple[Tensor, PenaltyInputs | None, Tensor]:
        """D's loss on packed ``real`` and (detached) ``fake``: the objective's ``L_D`` (reduced over
        each member's batch) + D's eager penalties; sets ``last_losses``. Returns ``(loss, the
        penalties' inputs or None when D has none, D's real logits)``."""
        D = self.critic(condition)
        real_logits = full_precision(D(real))
        d_loss = self.objective.d_loss(real_logits, full_precision(D(fake)))  # (E, B) or (B,)
        self.last_losses = logs = {"d/loss": d_loss.detach()}
        loss, inputs = reduce_members(d_loss), None
        if self._phase_regs["D", False] or self._phase_regs["D", True]:
            inputs = self.penalty_inputs(
                self.critic(condition, False), real, fake, target=real, condition=condition
            )
            loss = self._add_penalties("D", inputs, loss, logs)
        return loss, inputs, real_logits

    def g_main(self, real: Tensor, condition: Tensor | None, opt_g, batch_size: int) -> PenaltyInputs | None:
        """Gmain: the adversarial loss (× ``adversarial_weight``) + eager G penalties, one G step."""
        fake = self.generate_fake(batch_size, condition)
        real, fake = self.pack_batch(real), self.pack_batch(fake)
        self.last_losses = logs = {}
        loss = inputs = None
        if self.adversarial_weight > 0:
            D = self.lookahead(real, fake, condition) if self.unrolled_steps else self.critic(condition)
            real_logits = full_precision(D(real)) if self.objective.needs_real_for_g else None
            g_loss = self.objective.g_loss(full_precision(D(fake)), real_logits)
            logs["g/loss"] = g_loss.detach()
            loss = reduce_members(g_loss)
            loss = loss if self.adversarial_weight == 1 else self.adversarial_weight * loss
        if self._phase_regs["G", False] or self._phase_regs["G", True]:
            target = real if self.conditional else None
            inputs = self.penalty_inputs(
                self.critic(condition, False), real, fake, target=target, condition=condition
            )
            loss = self._add_penalties("G", inputs, loss, logs)
        if loss is not None:  # None: no adversarial term and only lazy penalties on G
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_g.step()
        return inputs

    def lookahead(self, real: Tensor, fake: Tensor, condition: Tensor | None) -> Callable[[Tensor], Tensor]:
        """Unrolled GAN: D after ``unrolled_steps`` differentiable updates of its optimizer on the
        objective's D loss of this step's ``real`` and (attached) ``fake`` packs (:mod:`gan_lab.unrolled`)."""
        opt_d = self.optimizers()[1]
        opt_d = getattr(opt_d, "optimizer", opt_d)  # Lightning's wrapper

        def d_loss(D: Callable[[Tensor], Tensor]) -> Tensor:
            return reduce_members(self.objective.d_loss(full_precision(D(real)), full_precision(D(fake))))

        project = None
        if len(self.constraints):  # weight clipping: the look-ahead's updates are projected as D's are

            def project(name: str, p: Tensor) -> Tensor:
                for constraint in self.constraints:
                    p = constraint.project(name, p)
                return p

        params = lookahead_parameters(self.D, opt_d, d_loss, self.unrolled_steps, project)
        return lookahead_critic(self.D, params)

    def _add_penalties(
        self, player: str, inputs: PenaltyInputs, loss: Tensor | None, logs: dict
    ) -> Tensor | None:
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
        if self.G_ema is None:
            return
        beta = self.ema_beta
        if beta is None:  # StyleGAN2's half-life in samples, per member, over all ranks
            world = self._trainer.world_size if self._trainer is not None else 1
            seen = (self.g_steps - 1) * batch_size * world
            beta = ema_beta(batch_size * world, seen, self.ema_kimg, self.ema_rampup)
        ema_update_(self.G_ema, self.G, beta)

    def _log_step(self, logs: dict[str, Tensor | float], batch_size: int) -> None:
        """Log the step's terms as means, with each lazy term's last value, on the steps the loggers
        write only (Lightning's per-key bookkeeping is ~1 ms a key); tensors stay on the device.
        ``step`` is the loggers' x-axis (Lightning pops it): G steps, as everywhere the user looks.
        A per-seed logger (``log_member_metrics``) of an ensemble also gets each member's own terms
        (:func:`~gan_lab.losses.reduction.member_terms`); nothing per member for a single net."""
        trainer = self._trainer
        if trainer is not None and not trainer._logger_connector.should_update_logs:
            return
        counters = {
            "step": float(self.g_steps),
            "g_steps": float(self.g_steps),
            "d_steps": float(self.d_steps),
        }
        terms = {**term_means({**self._lazy_logs, **logs}), **counters}
        self.log_dict(terms, on_step=True, on_epoch=False, batch_size=batch_size)
        # The per-seed W&B runs of an ensemble (gan_lab.dashboard.SeedRunsLogger) get each member's
        # own terms: one transfer to the host for all of them, only on log steps, only for them.
        members = self.members or 1
        per_seed = [lg for lg in trainer.loggers if hasattr(lg, "log_member_metrics")] if trainer else []
        if members > 1 and per_seed:
            from gan_lab.losses.reduction import member_terms

            per = member_terms({**self._lazy_logs, **logs}, members)
            if per:
                values = torch.stack([v.float() for v in per.values()]).cpu().tolist()
                for logger in per_seed:
                    logger.log_member_metrics(
                        dict(zip(per, values)), step=self.g_steps, shared={"d_steps": float(self.d_steps)}
                    )

    @torch.no_grad()
    def generate(self, *inputs: Tensor | None, ema: bool = True) -> Tensor:
        """``G(*inputs)`` in eval mode, from ``G_ema`` when kept and ``ema``."""
        net = self.G_ema if (ema and self.G_ema is not None) else self.G
        was_training = net.training
        net.eval()
        try:
            return net(*inputs)
        finally:
            net.train(was_training)

    # -- checkpoint, devices, precision ---------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Counters, random streams, the global RNG states, the resolved config and the run folder
        (weights, optimizers, data streams and callbacks are Lightning's)."""
        trainer = self._trainer
        checkpoint["gan_lab"] = {
            "d_steps": self.d_steps,
            "g_steps": self.g_steps,
            **self.streams.state(),  # counters, the same on every rank: each rank resumes its own keys
            "rng": global_rng_state(),
            "config": self.resolved_config,
            "run_dir": trainer.log_dir
            if trainer is not None and trainer.loggers
            else None,  # resumes continue it
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("gan_lab", {})
        self.d_steps, self.g_steps = int(state.get("d_steps", 0)), int(state.get("g_steps", 0))
        self.streams.load(state)
        self._pending_rng_state = state.get("rng")  # restored at the first batch, after Lightning's set-up

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._pending_rng_state is not None:
            set_global_rng_state(self._pending_rng_state)
            self._pending_rng_state = None

    def on_fit_start(self) -> None:
        self.check_ready()

    def setup(self, stage: str) -> None:
        if self._trainer is not None and stage == "fit":
            self.check_trainer(self.trainer)
            choice = use_cpu_threads(self.trainer, [self.G, self.D], self.cpu_threads)
            if choice is not None:
                self.hparams["cpu_threads_used"], self.cpu_threads_reason = choice
        if self.channels_last:  # 4-D weights only; Lightning's later .to(device) keeps the format
            for net in (self.G, self.D, self.G_ema):
                if net is not None:
                    net.to(memory_format=torch.channels_last)

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.gradient_clip_val is not None:
            clip_unscaled_(optimizer, self.gradient_clip_val, self.grad_scaler)
