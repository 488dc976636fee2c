"""GANModule: the alternation of discriminator (D) and generator (G) steps, and nothing else.

Manual optimization, one D step per training batch and one G step every ``n_critic`` D steps.
The adversarial objective and the regularizers are plugged in; their per-sample losses are reduced
here as *the sum over ensemble members of each member's mean*, so that the E members of a seed
ensemble train exactly as E separate runs (Adam is elementwise)::

    reduce(loss (E, B)) = Σ_e mean_b loss[e, b]        (and mean_b loss[b] for a plain run)

Counting: ``d_steps`` and ``g_steps`` are the module's own counters (Lightning's ``global_step``
counts every optimizer step of both players). Lazy regularizers and the evaluation schedule use them.

Lazy regularization (StyleGAN2, Karras et al. 2020, sec. 3.1 / app. B): a D regularizer with
``every = k > 1`` runs as its own optimizer step on every k-th D step, multiplied by k, and D's Adam
hyper-parameters are corrected by ``c = k / (k + 1)``: ``lr ← c·lr``, ``β ← β^c``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_lab.errors import ConfigError, check_int, check_weight
from gan_lab.losses import Objective, get_objective
from gan_lab.nets.ema import ema_update_, make_ema
from gan_lab.nets.spec import net_spec
from gan_lab.regularizers import Constraint, PenaltyInputs, Regularizer, get_regularizer
from gan_lab.regularizers.base import full_precision
from gan_lab.seeding import (
    STREAMS,
    MemberStreams,
    global_rng_state,
    member_seeds,
    randn_members,
    set_global_rng_state,
)
from gan_lab.threads import apply_cpu_threads, choose_cpu_threads

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]

#: Offset of the penalty streams (WGAN-GP's ε, DRAGAN's α, u) from the noise streams' seeds.
PENALTY_STREAM_OFFSET = STREAMS["penalty"] - STREAMS["noise"]

#: Adam with DCGAN's β1 = 0.5, the usual default of GAN papers (Radford et al., 2016), in
#: PyTorch's fused implementation (one kernel for all parameters, on CPU and CUDA: the for-loop
#: Adam step was 7 % of a toy CPU step). The CLI writes it into every resolved config.
ADAM_DEFAULTS = {"lr": 2e-4, "betas": (0.5, 0.999), "fused": True}
default_adam: OptimizerFactory = partial(torch.optim.Adam, **ADAM_DEFAULTS)


def term_means(terms: dict[str, Tensor | float]) -> dict[str, Tensor | float]:
    """Each loss term as its mean: the step's terms are kept per sample (``(E, B)`` or ``(B,)``)
    or as scalars, and reduced only when logged or inspected.

    >>> term_means({"d/loss": torch.tensor([[1.0, 3.0]]), "d/r1": torch.tensor(0.5), "g_steps": 2.0})
    {'d/loss': tensor(2.), 'd/r1': tensor(0.5000), 'g_steps': 2.0}
    """
    return {k: v.mean() if isinstance(v, Tensor) and v.dim() else v for k, v in terms.items()}


def reduce_members(loss: Tensor) -> Tensor:
    """Σ over members of each member's mean over the batch (the last dim).

    >>> reduce_members(torch.tensor([[1.0, 3.0], [10.0, 20.0]]))  # (E=2, B=2): 2 + 15
    tensor(17.)
    >>> reduce_members(torch.tensor([1.0, 3.0]))  # a plain run: the batch mean
    tensor(2.)
    """
    return loss.mean(-1).sum()


def correct_for_lazy_interval(optimizer: Optimizer, every: int) -> None:
    """StyleGAN2's correction for a lazy regularizer run every ``every`` steps:
    ``c = every / (every + 1)``, ``lr ← c·lr``, ``(β1, β2) ← (β1^c, β2^c)``."""
    c = every / (every + 1)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * c
        if "betas" in group:
            group["betas"] = tuple(b**c for b in group["betas"])


class GANModule(L.LightningModule):
    """Alternating D/G training with a pluggable objective and regularizers.

    Args:
        generator: maps noise ``(B, z_dim)`` (or ``(E, B, z_dim)`` for an ensemble) to samples.
            Must expose ``z_dim``; an ensemble net exposes ``members`` (E).
        discriminator: maps samples to per-sample logits ``(B,)`` / ``(E, B)``; no sigmoid.
        objective: a name (``minimax``, ``non_saturating``, ``wasserstein``, ``hinge``,
            ``least_squares``, ``relativistic``) or an :class:`~gan_lab.losses.Objective`.
        regularizers: names or instances of :class:`~gan_lab.regularizers.Regularizer` /
            :class:`~gan_lab.regularizers.Constraint` (weight clipping).
        n_critic: D steps per G step (5 for WGAN / WGAN-GP).
        optimizer_g, optimizer_d: factories ``params -> Optimizer``; None gives
            ``Adam(lr=2e-4, betas=(0.5, 0.999), fused=True)`` (:data:`ADAM_DEFAULTS`). In YAML: ``class_path: torch.optim.Adam``.
        ema_beta: if set, keep ``G_ema`` with ``θ_ema ← β θ_ema + (1 − β) θ`` after each G step.
        conditional: paired run: batches are ``(condition, target)`` and G maps
            ``(condition, z)`` to an output for that target (``z`` is None when ``G.z_dim == 0``);
            regularizers that need a paired target (pixel, perceptual, ...) become allowed.
        d_conditional: in a paired run, D judges ``(output, condition)`` pairs, ``D(x, condition)``;
            otherwise D judges the output alone.
        adversarial_weight: multiplier of G's adversarial loss. 0 switches the adversarial game
            off (no D steps): G then trains on its regularizers alone, e.g. a pixel-loss baseline.
        max_g_steps: stop training after this many G steps (None: Trainer's limits only).
        gradient_clip_val: if set, clip each player's gradient norm (2-norm over that player's
            parameters) to this value before its optimizer step. It runs in
            ``on_before_optimizer_step``, after a 16-mixed GradScaler has unscaled the gradients
            (for a fused optimizer, which would unscale inside its step, the module unscales them
            first), so it always acts on true gradients. (``Trainer(gradient_clip_val=...)`` is
            refused by Lightning under manual optimization.)
        seed: base seed. Member ``k`` of an ensemble draws its initial weights and its noise from
            seed ``seed + k`` (see :mod:`gan_lab.seeding`); nets exposing ``reset_parameters(seeds)``
            are re-initialised from it.
        channels_last: store the 4-D (convolution) weights of G, D and G_ema in channels_last
            memory format (converted in ``setup``) and feed 4-D real batches and conditions in that
            format: faster convolutions on tensor-core GPUs. No effect on 2-D / 3-D (toy) tensors;
            numerics are those of the other memory format up to float rounding.
        compile: train through ``torch.compile``'d G and D: G for the fakes (``generate_fake``)
            and D for the objective's logits in both steps (``critic``). The compiled callables are
            built lazily at the first training step and held outside the registered submodules, so
            ``state_dict`` keys and checkpoints are those of an uncompiled run. The penalties
            (``PenaltyInputs.D``) get the *uncompiled* D, because the double backward of a
            gradient penalty through a compiled graph is unsupported; ``generate`` (evaluation)
            uses the plain nets too.
        cpu_threads: intra-op threads of a CPU run; None: the nets' choice (the toy MLPs: 1, see
            :mod:`gan_lab.threads`), else ``OMP_NUM_THREADS`` or torch's default. Applied in
            ``setup`` on a CPU only, logged, and kept in ``hparams`` as ``cpu_threads_used``.

    Raises:
        ConfigError: for combinations that cannot work: n_critic < 1, weight clipping together
            with a gradient penalty on D, a regularizer that needs a paired target in this
            unconditional run, G and D of different ensemble sizes, a repeated regularizer.
    """

    #: Attributes that hold plain values (never a parameter, buffer or submodule) and are set at
    #: every step: Lightning sets ``_current_fx_name`` twice per hook call, ~50 times a training step.
    #: They skip ``nn.Module.__setattr__``'s registry checks (1.4 µs against 0.2 µs on a CPU).
    _PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "d_steps", "g_steps", "last_losses"})

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        objective: Objective | str = "non_saturating",
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
        compile: bool = False,
        cpu_threads: int | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.objective = get_objective(objective)
        regs = [get_regularizer(r) for r in (regularizers or ())]
        _check_config(
            generator, discriminator, self.objective, regs, n_critic, ema_beta, max_g_steps, conditional
        )

        self.G, self.D = generator, discriminator
        self.members: int | None = getattr(generator, "members", None)
        self.batch_ndim = 2 if self.members is not None else 1
        self.seed, self.n_critic, self.ema_beta = int(seed), n_critic, ema_beta
        self.conditional, self.d_conditional = bool(conditional), bool(d_conditional)
        self.adversarial_weight = check_weight("adversarial_weight", adversarial_weight)
        if self.adversarial_weight == 0 and not any(getattr(r, "player", "") == "G" for r in regs):
            raise ConfigError("adversarial_weight is 0 and G has no regularizer: nothing would train G")
        self.optimizer_g = optimizer_g or default_adam
        self.optimizer_d = optimizer_d or default_adam
        self.max_g_steps = max_g_steps
        self.gradient_clip_val = (
            None if gradient_clip_val is None else check_weight("gradient_clip_val", gradient_clip_val)
        )

        self.channels_last, self.use_compile = bool(channels_last), bool(compile)
        self.cpu_threads = None if cpu_threads is None else check_int("cpu_threads", cpu_threads)
        self.cpu_threads_reason: str | None = None  # why, once ``setup`` chose (CPU runs only)
        #: torch.compile'd (G, D), built at first use; a plain holder, not a submodule
        self._compiled = _CompiledNets()

        self.penalties = nn.ModuleList([r for r in regs if isinstance(r, Regularizer)])
        self.constraints = nn.ModuleList([r for r in regs if isinstance(r, Constraint)])
        #: the penalties by player and schedule (``lazy``: every > 1; None: both), plain lists looked
        #: up at every step (the modules themselves are registered in ``penalties``)
        self._schedule: dict[tuple[str, bool | None], list[Regularizer]] = {
            (player, lazy): [r for r in self.penalties if r.player == player and lazy in (None, r.every > 1)]
            for player in ("D", "G")
            for lazy in (False, True, None)
        }
        self.d_steps = 0
        self.g_steps = 0

        if hasattr(self.G, "reset_parameters") and self.members is not None:
            self.G.reset_parameters(member_seeds(self.seed, self.members, "G"))
            self.D.reset_parameters(member_seeds(self.seed, self.members, "D"))
        self.G_ema = make_ema(self.G) if ema_beta is not None else None
        noise_seeds = member_seeds(self.seed, self.members or 1, "noise")
        #: G's noise, member k from its own stream
        self.noise_streams = MemberStreams(noise_seeds)
        #: the penalties' random points (WGAN-GP's ε, DRAGAN's α, u), member k from its own stream
        self.penalty_streams = MemberStreams(member_seeds(self.seed, self.members or 1, "penalty"))
        self._pending_rng_state: dict | None = None
        #: the run's resolved config (YAML text), set by the CLI and kept in every checkpoint
        self.resolved_config: str | None = None
        #: this step's loss terms (detached; per sample or scalar, logged as their means), for the
        #: divergence guard
        self.last_losses: dict[str, Tensor] = {}
        self.save_hyperparameters(
            {
                "objective": self.objective.name,
                "regularizers": [repr(r) for r in regs],
                "n_critic": n_critic,
                "ema_beta": ema_beta,
                "seed": self.seed,
                "members": self.members,
                "conditional": conditional,
                "d_conditional": d_conditional,
                "channels_last": self.channels_last,
                "compile": self.use_compile,
                # what `gan-lab sample` rebuilds G from, without the training stack
                "generator": net_spec(generator),
            }
        )

    def __setattr__(self, name: str, value) -> None:
        if name in GANModule._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ------------------------------------------------------------------------------------------
    # Regularizers by player and schedule
    # ------------------------------------------------------------------------------------------

    def _regs(self, player: str, lazy: bool | None = None) -> list[Regularizer]:
        """The player's penalties: eager (``lazy=False``), lazy (``True``) or all (None)."""
        return self._schedule[player, lazy]

    def check_ready(self) -> None:
        """Fail before training when a regularizer lacks what it needs (e.g. VGG16 weights)."""
        for reg in self.penalties:
            if hasattr(reg, "check"):
                reg.check()

    def check_data(self, datamodule) -> None:
        """Refuse data whose channels (or 2D dims) differ from what G makes and D reads."""
        data = getattr(datamodule, "channels", None)
        if data is None:
            return
        for role, net, attrs in (
            ("generator output", self.G, ("out_channels", "out_dim", "channels")),
            ("discriminator input", self.D, ("in_channels", "in_dim", "channels")),
        ):
            size = next((getattr(net, a) for a in attrs if getattr(net, a, None) is not None), None)
            if size is not None and size != data:
                raise ConfigError(
                    f"the data has {data} channels but the {role} has {size}; set the nets' channels to "
                    f"{data} or choose data with {size} channels"
                )

    def on_fit_start(self) -> None:
        self.check_ready()

    @property
    def regularizer_names(self) -> list[str]:
        return [r.name for r in [*self.penalties, *self.constraints]]

    # ------------------------------------------------------------------------------------------
    # Noise: member k from its own generator
    # ------------------------------------------------------------------------------------------

    def sample_uniform(self, shape: tuple[int, ...]) -> Tensor:
        """``U[0, 1)`` draws of ``shape`` (leading ``(E, B)`` or ``(B,)``) for the penalties' random
        points, member ``k`` from its own stream; each DDP rank has its own streams."""
        gens = self.penalty_streams.generators(self.device, self.global_rank)
        u = randn_members(gens, shape[self.batch_ndim - 1 :], self.device, draw=torch.rand)
        return u if self.members is not None else u[0]

    @property
    def grad_scaler(self):
        """The 16-mixed GradScaler of the Trainer's precision plugin, or None."""
        trainer = self._trainer
        return getattr(trainer.precision_plugin, "scaler", None) if trainer is not None else None

    def penalty_inputs(self, D, real: Tensor, fake: Tensor, **kw) -> PenaltyInputs:
        """What the penalties of this step see: with this module's random streams and scaler."""
        return PenaltyInputs(
            D, real, fake, self.batch_ndim, rand=self.sample_uniform, grad_scaler=self.grad_scaler, **kw
        )

    def sample_noise(self, batch_size: int) -> Tensor:
        """``z ~ N(0, I)``: ``(E, B, z_dim)`` for an ensemble, ``(B, z_dim)`` otherwise."""
        gens = self.noise_streams.generators(self.device, self.global_rank)
        z = randn_members(gens, (batch_size, self.G.z_dim), self.device)
        return z if self.members is not None else z[0]

    # ------------------------------------------------------------------------------------------
    # The two steps
    # ------------------------------------------------------------------------------------------

    def configure_optimizers(self):
        opt_g = self.optimizer_g(self.G.parameters())
        opt_d = self.optimizer_d(self.D.parameters())
        for player, opt in (("G", opt_g), ("D", opt_d)):
            lazy = {r.every for r in self._regs(player, lazy=True)}
            if lazy:
                correct_for_lazy_interval(opt, lazy.pop())
        return [opt_g, opt_d]

    def unpack(self, batch) -> tuple[Tensor, Tensor | None]:
        """``(real, condition)``: a paired batch is ``(condition, target)``; a plain one is
        ``x`` or ``(x, label)`` (labels are ignored by an unconditional GAN)."""
        if self.conditional:
            condition, target = batch[0], batch[1]
            return target, condition
        return (batch[0] if isinstance(batch, (list, tuple)) else batch), None

    def training_nets(self) -> tuple[Callable, Callable]:
        """``(G, D)`` for the training passes: the ``torch.compile``'d nets when ``compile`` (built
        here at first use, once the module is on its device), else the plain ones."""
        if not self.use_compile:
            return self.G, self.D
        if self._compiled.G is None:
            self._compiled.G, self._compiled.D = torch.compile(self.G), torch.compile(self.D)
        return self._compiled.G, self._compiled.D

    def generate_fake(self, batch_size: int, condition: Tensor | None = None) -> Tensor:
        """``G(z)``, or ``G(condition, z)`` in a paired run (``z = None`` when ``G.z_dim == 0``)."""
        z = self.sample_noise(batch_size) if self.G.z_dim > 0 else None
        G = self.training_nets()[0]
        return G(z) if condition is None else G(condition, z)

    def critic(self, condition: Tensor | None = None, compiled: bool = True) -> Callable[[Tensor], Tensor]:
        """D as a function of its input: ``D(x)``, or ``D(x, condition)`` when D judges pairs.
        ``compiled=False`` gives the plain D even when ``compile`` (the penalties' D)."""
        D = self.training_nets()[1] if compiled else self.D
        if condition is None or not self.d_conditional:
            return D
        return lambda x: D(x, condition)

    def training_step(self, batch, batch_idx: int) -> None:
        real, condition = self.unpack(batch)
        if self.channels_last:
            real, condition = _channels_last(real), _channels_last(condition)
        opt_g, opt_d = self.optimizers()
        batch_size = real.shape[self.batch_ndim - 1]
        if self.adversarial_weight > 0:
            self.discriminator_step(real, condition, opt_d, batch_size)
        if self.adversarial_weight == 0 or self.d_steps % self.n_critic == 0:
            self.generator_step(real, condition, opt_g, batch_size)
            if self.max_g_steps is not None and self.g_steps >= self.max_g_steps:
                self.trainer.should_stop = True

    def _add_penalties(
        self, player: str, inputs: PenaltyInputs, loss: Tensor | None, logs: dict
    ) -> Tensor | None:
        """``loss + Σ weight · reduce(penalty)`` over the player's eager (every = 1) regularizers
        (``loss`` None: the sum alone; None when there is nothing to sum)."""
        for reg in self._regs(player, lazy=False):
            term = reg.weight * reduce_members(reg.penalty(inputs))
            loss = term if loss is None else loss + term
            logs[f"{player.lower()}/{reg.name}"] = term.detach() / (self.members or 1)
        return loss

    def _lazy_steps(self, player: str, inputs: PenaltyInputs, opt, step: int, logs: dict) -> None:
        """Each lazy regularizer due at ``step`` as its own optimizer step, scaled by ``every``."""
        for reg in self._regs(player, lazy=True):
            if step % reg.every == 0:
                term = reg.weight * reg.every * reduce_members(reg.penalty(inputs))
                logs[f"{player.lower()}/{reg.name}"] = term.detach() / (reg.every * (self.members or 1))
                opt.zero_grad(set_to_none=True)
                self.manual_backward(term)
                opt.step()

    def discriminator_step(self, real: Tensor, condition: Tensor | None, opt_d, batch_size: int) -> None:
        """One D update: objective + eager penalties, then any lazy penalty as its own step. G's
        fakes are drawn under ``no_grad``, so G's parameters take no gradient here without a toggle."""
        D = self.critic(condition)
        with torch.no_grad():
            fake = self.generate_fake(batch_size, condition)
        d_loss = self.objective.d_loss(full_precision(D(real)), full_precision(D(fake)))  # (E, B) or (B,)
        logs = {"d/loss": d_loss.detach()}
        self.last_losses = logs  # the divergence guard names the non-finite term from it
        loss = reduce_members(d_loss)
        if self._regs("D"):
            inputs = self.penalty_inputs(
                self.critic(condition, compiled=False), real, fake, target=real, condition=condition
            )
            loss = self._add_penalties("D", inputs, loss, logs)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_d.step()
        if self._regs("D"):
            self._lazy_steps("D", inputs, opt_d, self.d_steps, logs)
        for constraint in self.constraints:
            constraint.apply_(self.D)
        self.d_steps += 1
        self._log_step(logs, batch_size)

    def generator_step(self, real: Tensor, condition: Tensor | None, opt_g, batch_size: int) -> None:
        """One G update through a D whose parameters take no gradient (``toggled_optimizer``)."""
        with self.toggled_optimizer(opt_g):
            fake = self.generate_fake(batch_size, condition)
            logs, loss = {}, None
            self.last_losses = logs
            if self.adversarial_weight > 0:
                D = self.critic(condition)
                real_logits = full_precision(D(real)) if self.objective.needs_real_for_g else None
                g_loss = self.objective.g_loss(full_precision(D(fake)), real_logits)
                logs["g/loss"] = g_loss.detach()
                loss = reduce_members(g_loss)
                if self.adversarial_weight != 1:
                    loss = self.adversarial_weight * loss
            if self._regs("G"):
                target = real if self.conditional else None
                inputs = self.penalty_inputs(
                    self.critic(condition, compiled=False), real, fake, target=target, condition=condition
                )
                loss = self._add_penalties("G", inputs, loss, logs)
            if loss is not None:  # None: no adversarial term and only lazy penalties on G
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                opt_g.step()
            if self._regs("G", lazy=True):
                inputs.fake = self.generate_fake(batch_size, condition)
                self._lazy_steps("G", inputs, opt_g, self.g_steps, logs)
        self.g_steps += 1
        if self.G_ema is not None:
            ema_update_(self.G_ema, self.G, self.ema_beta)
        self._log_step(logs, batch_size)

    def _log_step(self, logs: dict[str, Tensor | float], batch_size: int) -> None:
        """Log the step's loss terms, each as its mean (the objective's terms are kept per sample,
        ``(E, B)`` or ``(B,)``, and reduced only here), only on the steps the loggers write
        (``log_every_n_steps``): Lightning's per-key bookkeeping costs ~1 ms a key, a quarter of a
        toy step on a CPU. The tensors stay on the device (no host sync here); the divergence guard
        reads ``last_losses``."""
        trainer = self._trainer
        if trainer is not None and not trainer._logger_connector.should_update_logs:
            return
        # `step` is the loggers' x-axis (Lightning pops it from the logged dict): G steps, as
        # everywhere else the user looks; d_steps tells the D-only batches of n_critic > 1 apart.
        counters = {
            "step": float(self.g_steps),
            "g_steps": float(self.g_steps),
            "d_steps": float(self.d_steps),
        }
        self.log_dict({**term_means(logs), **counters}, on_step=True, on_epoch=False, batch_size=batch_size)

    @torch.no_grad()
    def generate(self, *inputs: Tensor | None, ema: bool = True) -> Tensor:
        """``G(*inputs)`` in eval mode, from ``G_ema`` when kept and ``ema``: ``generate(z)``, or
        ``generate(condition, z)`` in a paired run."""
        net = self.G_ema if (ema and self.G_ema is not None) else self.G
        was_training = net.training
        net.eval()
        try:
            return net(*inputs)
        finally:
            net.train(was_training)

    # ------------------------------------------------------------------------------------------
    # Checkpoint: counters and the noise streams (the rest is state_dict / optimizer state)
    # ------------------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Counters, the noise and penalty streams, the global RNG states, the resolved config and the
        run folder go in ``checkpoint["gan_lab"]``; weights, optimizers, the datamodule's streams and callback
        states are saved by Lightning itself."""
        checkpoint["gan_lab"] = {
            "d_steps": self.d_steps,
            "g_steps": self.g_steps,
            "noise_generators": self.noise_streams.state(),
            "penalty_generators": self.penalty_streams.state(),
            "rng": global_rng_state(),
            "config": self.resolved_config,
            # the run folder (version_N) a resumed run continues in, wherever the file is
            "run_dir": self._trainer.log_dir if self._trainer is not None and self._trainer.loggers else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("gan_lab", {})
        self.d_steps = int(state.get("d_steps", 0))
        self.g_steps = int(state.get("g_steps", 0))
        self.noise_streams.load(state.get("noise_generators"))
        self.penalty_streams.load(state.get("penalty_generators"))
        # Restored at the first batch, after Lightning has set up its loops and loaders.
        self._pending_rng_state = state.get("rng")

    # ------------------------------------------------------------------------------------------
    # Scale and precision: DDP and SyncBatchNorm checks, gradient clipping on unscaled gradients
    # ------------------------------------------------------------------------------------------

    def check_trainer(self, trainer) -> None:
        """Refuse, in one line, a Trainer this module cannot train correctly under.

        - DDP without ``find_unused_parameters``: one DDP wrapper holds G and D, and each
          backward reaches only one of them (D's step: G's fakes are drawn under no_grad; G's
          step: D's parameters are toggled off), so DDP must be told that some parameters get
          no gradient in a backward. (Parameters unused on every rank keep ``grad = None``.)
        - SyncBatchNorm with a gradient penalty on D: a per-sample input gradient needs samples
          that do not see each other, and SyncBatchNorm's backward is not twice differentiable.
        """
        from lightning.pytorch.strategies import DDPStrategy

        strategy = trainer.strategy
        gps = [r.name for r in self.penalties if r.player == "D" and r.is_gradient_penalty]
        sync_bn = getattr(strategy, "_layer_sync", None) is not None or any(
            isinstance(m, nn.SyncBatchNorm) for m in self.D.modules()
        )
        if gps and sync_bn:
            raise ConfigError(
                f"SyncBatchNorm cannot be combined with the gradient penalty {gps[0]!r} (its input gradient "
                "must be per sample and SyncBatchNorm is not twice differentiable); set sync_batchnorm=False "
                "and keep BatchNorm out of D"
            )
        if isinstance(strategy, DDPStrategy) and not getattr(strategy, "_ddp_kwargs", {}).get(
            "find_unused_parameters", False
        ):
            method = getattr(strategy, "_start_method", "popen")
            name = "ddp" if method == "popen" else f"ddp_{method}"
            raise ConfigError(
                "GANModule under DDP needs find_unused_parameters=True (each backward reaches only G or "
                f"only D); use strategy='{name}_find_unused_parameters_true' or "
                "DDPStrategy(find_unused_parameters=True)"
            )

    def setup(self, stage: str) -> None:
        if self._trainer is not None and stage == "fit":
            self.check_trainer(self.trainer)
            if self.trainer.strategy.root_device.type == "cpu":
                choice = apply_cpu_threads(choose_cpu_threads([self.G, self.D], self.cpu_threads))
                self.hparams["cpu_threads_used"] = choice.threads
                self.cpu_threads_reason = choice.reason
                for logger in self.trainer.loggers:  # (hparams were logged as first saved)
                    logger.log_hyperparams(
                        {"cpu_threads": choice.threads, "cpu_threads_reason": choice.reason}
                    )
        if self.channels_last:  # 4-D weights only; Lightning's later .to(device) keeps the format
            for net in (self.G, self.D, self.G_ema):
                if net is not None:
                    net.to(memory_format=torch.channels_last)

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip the gradient norm of the stepping player, on unscaled gradients.

        Under 16-mixed, Lightning unscales the gradients before this hook, except for optimizers
        that unscale inside their own step (``fused=True``: ``_step_supports_amp_scaling``). For
        those the scaler's ``unscale_`` runs here; the scaler's step then knows the gradients are
        unscaled and passes no scale to the fused kernel (it still skips non-finite steps)."""
        if self.gradient_clip_val is None:
            return
        scaler = self.grad_scaler
        if scaler is not None and getattr(optimizer, "_step_supports_amp_scaling", False):
            scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if params:
            nn.utils.clip_grad_norm_(params, self.gradient_clip_val, foreach=True)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._pending_rng_state is not None:
            set_global_rng_state(self._pending_rng_state)
            self._pending_rng_state = None


class _CompiledNets:
    """The ``torch.compile``'d G and D, held outside the module's registered submodules (so that
    ``state_dict`` has no ``_orig_mod`` keys); never pickled or deep-copied (rebuilt at first use)."""

    def __init__(self) -> None:
        self.G: Callable | None = None
        self.D: Callable | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def _channels_last(x):
    """A 4-D tensor in channels_last memory format; anything else unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if isinstance(x, Tensor) and x.dim() == 4 else x


def _check_config(
    G: nn.Module,
    D: nn.Module,
    objective: Objective,
    regs: list[Regularizer | Constraint],
    n_critic: int,
    ema_beta: float | None,
    max_g_steps: int | None,
    conditional: bool = False,
) -> None:
    """Refuse, in one line each, the combinations that cannot work."""
    check_int("n_critic", n_critic, hint=" (D steps per G step)")
    if max_g_steps is not None:
        check_int("max_g_steps", max_g_steps, hint=" or null")
    if ema_beta is not None and not (isinstance(ema_beta, (int, float)) and 0.0 <= ema_beta < 1.0):
        raise ConfigError(f"ema_beta must be in [0, 1) or null, got {ema_beta!r}")
    if not hasattr(G, "z_dim") or (G.z_dim < 1 and not conditional):
        raise ConfigError(
            f"the generator {type(G).__name__} must expose z_dim >= 1 (its noise size); only a "
            "conditional (paired) generator may have z_dim = 0"
        )
    g_members, d_members = getattr(G, "members", None), getattr(D, "members", None)
    if g_members != d_members:
        raise ConfigError(
            f"generator has {g_members} ensemble members but discriminator has {d_members}; set both "
            "to the same number of seeds"
        )
    names = [r.name for r in regs]
    for name in set(names):
        if names.count(name) > 1:
            raise ConfigError(f"regularizer {name!r} appears {names.count(name)} times; list it once")
    has_clip = any(isinstance(r, Constraint) and r.player == "D" for r in regs)
    gps = [r.name for r in regs if isinstance(r, Regularizer) and r.player == "D" and r.is_gradient_penalty]
    if has_clip and gps:
        raise ConfigError(
            f"weight clipping and the gradient penalty {gps[0]!r} both constrain D's Lipschitz "
            "constant and fight each other; keep one of them"
        )
    for r in regs:
        if getattr(r, "needs_target", False) and not conditional:
            raise ConfigError(
                f"regularizer {r.name!r} needs a paired target, but this run is unconditional; "
                "remove it or use a paired (conditional) dataset"
            )
    for player in ("D", "G"):
        lazy = {r.every for r in regs if isinstance(r, Regularizer) and r.player == player and r.every > 1}
        if len(lazy) > 1:
            raise ConfigError(
                f"lazy regularizers on {player} use different intervals {sorted(lazy)}; use one interval"
            )
    if objective.needs_lipschitz and not (has_clip or gps):
        rank_zero_warn(
            f"objective {objective.name!r} without a gradient penalty or weight clipping: the critic is "
            "unconstrained and its loss is not a Wasserstein estimate"
        )
