"""The settings of :class:`~gan_lab.module.GANModule` that belong together, each a small frozen
dataclass: ``model.ema``, ``model.remedies``, ``model.speed`` and ``model.paired`` in a config.

Each refuses a bad value of its own fields at construction, in one line (:class:`~gan_lab.errors.ConfigError`);
the combinations with the rest of the run are checked by the module (:mod:`gan_lab.checks`). In a
config they are nested keys, with their defaults when left out::

    model:
      ema: {kimg: 10.0}                   # --model.ema.kimg 10
      remedies: {pack: 2}                 # --model.remedies.pack 2
      speed: {cpu_threads: 1}             # --model.speed.cpu_threads 1
      paired: {d_conditional: true}       # --model.paired.d_conditional true (a paired run)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gan_lab.compiled import compile_mode
from gan_lab.errors import ConfigError, check_int, check_weight
from gan_lab.nets.ema import ema_beta, ema_update_

__all__ = ["EMA", "Paired", "Remedies", "Speed"]


@dataclass(frozen=True)
class EMA:
    """An exponential moving average of G's weights, ``G_ema`` (Karras et al., ICLR 2018; StyleGAN2's
    half-life: Karras et al., CVPR 2020): ``θ_ema ← β θ_ema + (1 − β) θ`` after each G step
    (:mod:`gan_lab.nets.ema`). Kept when ``beta`` or ``kimg`` is set; ``EMA()`` keeps none.

    Args:
        beta: a fixed β in [0, 1) (e.g. 0.999). Default None; it wins over ``kimg`` when both are set.
        kimg: StyleGAN2's β instead: a half-life of this many thousand samples (10 in StyleGAN2),
            per member, over all ranks (:func:`~gan_lab.nets.ema.ema_beta`). Default None.
        rampup: StyleGAN2's ramp-up: the half-life is at most ``rampup ×`` the samples seen so far
            (0.05, the default); None: no ramp-up. Used with ``kimg`` only.

    >>> EMA().on, EMA(kimg=10.0).on
    (False, True)
    >>> EMA(beta=1.5)
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: ema.beta must be in [0, 1) or null, got 1.5
    """

    beta: float | None = None
    kimg: float | None = None
    rampup: float | None = 0.05

    def __post_init__(self) -> None:
        beta = self.beta
        if beta is not None and not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
            raise ConfigError(f"ema.beta must be in [0, 1) or null, got {beta!r}")
        for name in ("kimg", "rampup"):
            if getattr(self, name) is not None:
                check_weight(f"ema.{name}", getattr(self, name))

    @property
    def on(self) -> bool:
        """Whether the run keeps ``G_ema``."""
        return self.beta is not None or self.kimg is not None

    def update_(self, ema: nn.Module, net: nn.Module, g_steps: int, batch: int) -> None:
        """Average ``net`` into ``ema`` after G step number ``g_steps`` (1 for the first) of ``batch``
        samples (all ranks): β fixed, or StyleGAN2's after ``(g_steps − 1) · batch`` samples seen."""
        beta = self.beta
        if beta is None:
            beta = ema_beta(batch, (g_steps - 1) * batch, self.kimg, self.rampup)
        ema_update_(ema, net, beta)


@dataclass(frozen=True)
class Remedies:
    """Mode-collapse remedies on D's side and the update rule, for every objective, net and data set
    (the guide: Mode-collapse remedies and PacGAN). Minibatch standard deviation (Karras et al.
    2018) and LinearMaxout are layers of D instead (:mod:`gan_lab.nets.layers`). None of them in a
    paired run.

    Args:
        pack: PacGAN's packing degree ``m`` (Lin et al., NeurIPS 2018): D judges packs of ``m``
            samples (:func:`gan_lab.nets.layers.pack`: features side by side for toy data, channels
            for images, so D is built with ``in_dim = m·2`` / ``in_channels = m·C``). A batch of
            ``N`` real samples becomes ``N/m`` packs, G makes ``N`` fakes a step, real and fake are
            packed alike and every penalty sees packs; the data modules draw ``batch_size · m``
            samples (``batch_size`` = packs per step). Default 1: no packing.
        unrolled_steps: Unrolled GAN's ``k`` (Metz et al., ICLR 2017): G's loss against D after
            ``k`` differentiable look-ahead updates of D's own optimizer (:mod:`gan_lab.unrolled`);
            D is updated normally. Default 0: off.
        simultaneous: simultaneous gradient descent, the update of ALI's and PacGAN's code
            (``ali_algorithm``): one fake batch a step, D's gradient of ``L_D`` and G's of ``L_G``
            both at the current ``(θ_D, θ_G)``, then both players step. Needs ``n_critic = 1`` and
            no lazy or G-side regularizer. Default False: D steps, then G steps against the updated
            D on fresh fakes.

    >>> Remedies(pack=0)
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: remedies.pack must be an integer >= 1 (samples per pack judged by D; 1: no packing), got 0
    """

    pack: int = 1
    unrolled_steps: int = 0
    simultaneous: bool = False

    def __post_init__(self) -> None:
        check_int("remedies.pack", self.pack, hint=" (samples per pack judged by D; 1: no packing)")
        check_int(
            "remedies.unrolled_steps",
            self.unrolled_steps,
            minimum=0,
            hint=" (look-ahead steps of D in G's loss; 0: off)",
        )
        if not isinstance(self.simultaneous, bool):
            raise ConfigError(f"remedies.simultaneous must be true or false, got {self.simultaneous!r}")


@dataclass(frozen=True)
class Speed:
    """Settings that change speed, not results (the guide: Speed and CPU threads); a resume may
    change them freely.

    Args:
        compile: train through ``torch.compile``'d G and D (:mod:`gan_lab.compiled`): True, or a
            ``torch.compile`` mode; ``"reduce-overhead"`` captures the passes as CUDA graphs on a GPU.
            Default False.
        channels_last: 4-D weights and batches in channels_last memory format. Default False.
        cpu_threads: intra-op threads of a CPU run; None (the default): the nets' choice
            (:mod:`gan_lab.threads`).

    >>> Speed(compile=True).compile_mode
    'default'
    """

    compile: bool | str = False
    channels_last: bool = False
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        compile_mode(self.compile)  # refuses an unknown mode
        if self.cpu_threads is not None:
            check_int("speed.cpu_threads", self.cpu_threads)

    @property
    def compile_mode(self) -> str | None:
        """The ``torch.compile`` mode, or None when not compiling."""
        return compile_mode(self.compile)


@dataclass(frozen=True)
class Paired:
    """A paired (conditional) run, e.g. super-resolution: batches are ``(condition, target)``, G maps
    ``(condition, z)`` (``z`` None when ``G.z_dim == 0``), and the regularizers that compare G's
    output with its target (pixel, perceptual, ...) become allowed. ``paired: null`` (the default
    of ``GANModule``) is an unconditional run.

    Args:
        d_conditional: D judges ``(output, condition)`` pairs, ``D(x, condition)`` (pix2pix, Isola
            et al. 2017). Default False: D judges the output alone.
        adversarial_weight: the multiplier of G's adversarial loss (SRGAN: 1e-3, Ledig et al.
            2017); 0 switches D off and G trains on its penalties alone. Default 1.

    >>> Paired(adversarial_weight=-1)
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: paired.adversarial_weight must be a number >= 0, got -1
    """

    d_conditional: bool = False
    adversarial_weight: float = 1.0

    def __post_init__(self) -> None:
        check_weight("paired.adversarial_weight", self.adversarial_weight)
