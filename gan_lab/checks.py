"""The checks GANModule makes before training: each refuses, in one line (ConfigError), a setting
that cannot work. They are separate from the alternation so that the module reads as the
alternation, and so that the CLI can run them before anything is written.

- :func:`check_config` (at construction): the objective, the regularizers and their schedule, the
  nets' ensemble sizes and noise, n_critic, max_g_steps, what trains G in a paired run.
- :func:`check_trainer` (in ``setup``): DDP needs find_unused_parameters; SyncBatchNorm cannot go
  with an input-gradient penalty on D.
- :func:`check_remedies` / :func:`check_simultaneous` (at construction): the remedies
  (:class:`~gan_lab.settings.Remedies`) with the rest of the run. Each settings dataclass of
  :mod:`gan_lab.settings` checks its own fields.
- :func:`check_data` / :func:`check_ready` (before fit): data channels that fit the nets (D reads
  ``pack`` × the data's channels); regularizers that have what they need (pretrained weights).
"""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from gan_lab.errors import ConfigError, check_int, check_weight
from gan_lab.losses import PerMember
from gan_lab.nets.layers import mixes_samples
from gan_lab.regularizers import Constraint


def _d_penalties(regs, flag: str) -> list[str]:
    """Names of D's penalties (not constraints) with ``flag`` set: ``needs_input_grad`` (it takes
    D's input gradient) or ``enforces_lipschitz`` (it makes WGAN's critic Lipschitz)."""
    return [r.name for r in regs if r.player == "D" and not _is_constraint(r) and getattr(r, flag)]


def _is_constraint(reg) -> bool:
    return isinstance(reg, Constraint)


def check_config(G: nn.Module, D: nn.Module, objective, regs, n_critic, max_g_steps, paired=None) -> None:
    """Refuse, in one line each, the combinations that cannot work (at construction); ``paired``:
    the run's :class:`~gan_lab.settings.Paired`, None for an unconditional run."""
    check_int("n_critic", n_critic, hint=" (D steps per G step)")
    if max_g_steps is not None:
        check_int("max_g_steps", max_g_steps, hint=" or null")
    conditional = paired is not None
    trains_g = (
        not conditional or paired.adversarial_weight > 0 or any(getattr(r, "player", "") == "G" for r in regs)
    )
    if not trains_g:
        raise ConfigError("paired.adversarial_weight is 0 and G has no regularizer: nothing would train G")
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
    blocks = len(objective.parts) if isinstance(objective, PerMember) else 1
    if blocks > 1 and g_members is None:
        raise ConfigError(
            f"objectives {objective.names} side by side need an ensemble G and D (members = seeds × {blocks})"
        )
    if blocks > 1:
        objective.block_size(g_members)  # E must split evenly
    names = [r.name for r in regs]
    for name in set(names):
        if names.count(name) > 1:
            raise ConfigError(f"regularizer {name!r} appears {names.count(name)} times; list it once")
    has_clip = any(_is_constraint(r) and r.player == "D" and r.enforces_lipschitz for r in regs)
    lipschitz = _d_penalties(regs, "enforces_lipschitz")
    if has_clip and lipschitz:
        raise ConfigError(
            f"weight clipping and the gradient penalty {lipschitz[0]!r} both constrain D's Lipschitz "
            "constant and fight each other; keep one of them"
        )
    for r in regs:
        if getattr(r, "needs_target", False) and not conditional:
            raise ConfigError(
                f"regularizer {r.name!r} needs a paired target, but this run is unconditional; "
                "remove it or use a paired (conditional) dataset"
            )
    for player in ("D", "G"):
        lazy = {r.every for r in regs if not _is_constraint(r) and r.player == player and r.every > 1}
        if len(lazy) > 1:
            raise ConfigError(
                f"lazy regularizers on {player} use different intervals {sorted(lazy)}; use one interval"
            )
    input_grad = _d_penalties(regs, "needs_input_grad")
    if input_grad and mixes_samples(D):
        rank_zero_warn(
            f"D holds a minibatch standard deviation layer, so the input gradient of {input_grad[0]!r} is not "
            "exactly per sample (each sample's logit depends on its group); ProGAN uses the two together"
        )
    if objective.needs_lipschitz and not (has_clip or lipschitz):
        rank_zero_warn(
            f"objective {objective.name!r} without a Lipschitz constraint on D (wgan_gp, one_sided_gp or "
            "weight_clipping; r1, r2 and dragan do not bound the critic): its loss is not a Wasserstein estimate"
        )


def check_remedies(remedies, regs, n_critic: int, paired=None, gradient_clip_val=None) -> None:
    """The :class:`~gan_lab.settings.Remedies` with the run: neither packing nor look-ahead in a
    paired run (``paired`` not None), whose D judges ``(output, condition)`` pairs; no look-ahead
    with ``gradient_clip_val`` (it does not clip D's gradient as D's own step does); simultaneous
    steps as :func:`check_simultaneous` allows.

    >>> from gan_lab.settings import Paired, Remedies
    >>> check_remedies(Remedies(pack=2), [], 1)
    >>> check_remedies(Remedies(pack=2), [], 1, paired=Paired())
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: remedies.pack=2 is not supported in a paired (conditional) run; set remedies.pack=1 there
    """
    for name, off in (("pack", 1), ("unrolled_steps", 0)):
        value = getattr(remedies, name)
        if paired is not None and value != off:
            raise ConfigError(
                f"remedies.{name}={value} is not supported in a paired (conditional) run; set remedies.{name}={off} there"
            )
    if remedies.unrolled_steps and gradient_clip_val is not None:
        raise ConfigError(
            "remedies.unrolled_steps > 0 with gradient_clip_val: the look-ahead does not clip D's gradient "
            "as D's own step does; set gradient_clip_val=null or remedies.unrolled_steps=0"
        )
    weight = paired.adversarial_weight if paired is not None else 1.0
    check_simultaneous(remedies.simultaneous, n_critic, remedies.unrolled_steps, regs, weight)


def check_simultaneous(
    simultaneous: bool, n_critic: int, unrolled_steps: int, regs, adversarial_weight: float
) -> bool:
    """``remedies.simultaneous`` with the run: one D and one G step per batch (``n_critic = 1``), no
    look-ahead, no lazy penalty and no G-side regularizer (each is a step of its own), and a D phase.

    >>> check_simultaneous(True, 1, 0, [], 1.0)
    True
    >>> check_simultaneous(True, 5, 0, [], 1.0)
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: simultaneous=True takes one D and one G step per batch, so n_critic must be 1 (got 5); set n_critic=1 or remedies.simultaneous=false
    """
    if not simultaneous:
        return False
    fix = "or remedies.simultaneous=false"
    if n_critic != 1:
        raise ConfigError(
            f"simultaneous=True takes one D and one G step per batch, so n_critic must be 1 (got {n_critic}); "
            f"set n_critic=1 {fix}"
        )
    if unrolled_steps:
        raise ConfigError(
            f"simultaneous=True cannot be combined with unrolled_steps={unrolled_steps}; set "
            f"remedies.unrolled_steps=0 {fix}"
        )
    if not adversarial_weight:
        raise ConfigError(
            f"simultaneous=True needs the adversarial game (paired.adversarial_weight > 0); {fix[3:]}"
        )
    for reg in regs:
        if getattr(reg, "player", "D") == "G" or getattr(reg, "every", 1) > 1:
            what = "a G-side regularizer" if getattr(reg, "player", "D") == "G" else "a lazy penalty"
            raise ConfigError(
                f"simultaneous=True does not support {what} ({reg.name}): it is a step of its own; "
                f"remove it {fix}"
            )
    return True


def check_gradient_clip_val(value) -> float | None:
    """``gradient_clip_val``: None (off) or a number > 0. 0 is refused: Lightning reads ``<= 0`` as
    off, but ``clip_grad_norm_(max_norm=0)`` scales every gradient to zero.

    >>> check_gradient_clip_val(None), check_gradient_clip_val(1)
    (None, 1.0)
    >>> check_gradient_clip_val(0)
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: gradient_clip_val must be > 0 or null (off); 0 would scale every gradient to zero
    """
    if value is None:
        return None
    value = check_weight("gradient_clip_val", value)
    if value == 0:
        raise ConfigError("gradient_clip_val must be > 0 or null (off); 0 would scale every gradient to zero")
    return value


def check_trainer(trainer, D: nn.Module, penalties, simultaneous: bool = False) -> None:
    """Refuse, in one line, a Trainer the module cannot train correctly under.

    - DDP without ``find_unused_parameters``: one DDP wrapper holds G and D, and each backward
      reaches only one of them (D's step: G's fakes are drawn under no_grad; G's step: D's
      parameters are toggled off), so DDP must be told that some parameters get no gradient in a
      backward. (Parameters unused on every rank keep ``grad = None``.)
    - ``simultaneous`` under 16-mixed: the GradScaler updates its scale after D's step, and G's
      gradient, scaled before it, would be unscaled with the new scale.
    - SyncBatchNorm with an input-gradient penalty on D: a per-sample input gradient needs samples
      that do not see each other, and SyncBatchNorm's backward is not twice differentiable.
    """
    from lightning.pytorch.strategies import DDPStrategy

    strategy = trainer.strategy
    if simultaneous and getattr(trainer.precision_plugin, "scaler", None) is not None:
        raise ConfigError(
            "simultaneous=True cannot train under 16-mixed precision (one GradScaler scale for two "
            "backward passes and two steps); use precision bf16-mixed or 32-true, or remedies.simultaneous=false"
        )
    gps = _d_penalties(penalties, "needs_input_grad")
    sync_bn = getattr(strategy, "_layer_sync", None) is not None or any(
        isinstance(m, nn.SyncBatchNorm) for m in D.modules()
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


def check_data(G: nn.Module, D: nn.Module, datamodule, pack: int = 1) -> None:
    """Refuse data whose channels (or 2D dims) differ from what G makes and D reads (D reads packs
    of ``pack`` samples: ``pack`` × the data's channels), and a data module whose own ``pack`` is not
    the model's (it draws ``batch_size · pack`` samples a step; unset, it follows the model)."""
    data_pack = getattr(datamodule, "pack", None)
    if data_pack is not None and data_pack != pack:
        raise ConfigError(
            f"the data module packs {data_pack} samples per pack but the model's pack is {pack}; "
            f"set data.pack to {pack} or leave it unset (it follows model.remedies.pack)"
        )
    data = getattr(datamodule, "channels", None)
    if data is None:
        return
    for role, net, attrs, want in (
        ("generator output", G, ("out_channels", "out_dim", "channels"), data),
        ("discriminator input", D, ("in_channels", "in_dim", "channels"), pack * data),
    ):
        size = next((getattr(net, a) for a in attrs if getattr(net, a, None) is not None), None)
        if size is not None and size != want:
            if pack > 1 and net is D:
                raise ConfigError(
                    f"with pack={pack} the discriminator reads packs of {pack} samples of {data} channels, "
                    f"{want} in all, but its input has {size}; set its in_dim / in_channels to {want}"
                )
            raise ConfigError(
                f"the data has {data} channels but the {role} has {size}; set the nets' channels to "
                f"{data} or choose data with {size} channels"
            )


def check_ready(penalties) -> None:
    """Fail before training when a regularizer lacks what it needs (e.g. VGG16 weights)."""
    for reg in penalties:
        if hasattr(reg, "check"):
            reg.check()
