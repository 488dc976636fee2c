"""Image terms on the generator: pixel, perceptual (VGG16 content), style (Gram) and Sobel edge.

Each term is a pure function of images or feature maps returning one value per sample, plus a
thin :class:`~gan_lab.regularizers.base.Regularizer` that only picks its inputs out of
:class:`~gan_lab.regularizers.base.PenaltyInputs` (``fake`` is the output, ``target`` the paired
target, ``real`` the unpaired style reference) and delegates. All act on G (``player = "G"``).

Images are ``(B, C, H, W)``, in ``[-1, 1]`` for the VGG terms (G's ``tanh`` range). An ensemble
batch ``(E, B, C, H, W)`` (``batch_ndim=2``) is folded to ``(E·B, C, H, W)`` and the penalty
unfolded to ``(E, B)``; only the unpaired style term, a batch statistic, refuses it.

| name        | penalty per sample                                   | paper                            |
|-------------|------------------------------------------------------|----------------------------------|
| pixel       | mean |o − t|  (p=1)  or  mean (o − t)²  (p=2)         | Isola et al. 2017 (pix2pix, L1)  |
| perceptual  | Σ_l w_l · mean (φ_l(o) − φ_l(t))²                     | Johnson, Alahi & Fei-Fei 2016    |
| style       | Σ_l w_l · mean (G(φ_l(o)) − G(φ_l(t)))²               | Gatys et al. 2016; Johnson 2016  |
| sobel_edge  | mean | ‖∇o‖ − ‖∇t‖ |,  ‖∇‖ from ``kornia.filters.sobel`` | —                               |

VGG16 weights are never downloaded: :class:`VGG16Features` reads a local file (an explicit path,
or torchvision's cache file ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``) and fails with a
one-line message naming the path it looked for. The VGG regularizers load it lazily, on first use,
so that building a config by name never needs the file; call their :meth:`~_VGGRegularizer.check`
before training to fail early.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor

from gan_lab.errors import ConfigError, check_choice, check_weight
from gan_lab.regularizers.base import PenaltyInputs, Regularizer, full_precision
from gan_lab.weights import default_vgg16_path, load_vgg16_state

#: Layer names of VGG16 (Simonyan & Zisserman, 2015) -> index of that ReLU in ``vgg16().features``
#: (its node ``features.<index>`` for torchvision's feature extraction).
VGG16_LAYERS: dict[str, int] = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
#: Johnson et al. (2016) take style from these four layers; the perceptual default uses them too.
DEFAULT_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------------
# Functional cores
# --------------------------------------------------------------------------------------------------


def _check_same_shape(output: Tensor, target: Tensor, what: str) -> None:
    if output.shape != target.shape:
        raise ValueError(
            f"{what}: output and target must have the same shape, got {tuple(output.shape)} "
            f"and {tuple(target.shape)}"
        )


def _check_images(x: Tensor, what: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{what}: expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")


def pixel_loss(output: Tensor, target: Tensor, p: int = 1, batch_ndim: int = 1) -> Tensor:
    """Per-sample pixel loss: ``mean |o − t|`` (``p=1``, L1) or ``mean (o − t)²`` (``p=2``, L2).

    L1 against the paired target is pix2pix's term (Isola et al., CVPR 2017): it keeps the
    low frequencies right and leaves the sharp detail to the adversarial loss.

    Args:
        output: ``(B, ...)``, any value range.
        target: same shape as ``output``.
        p: 1 or 2.
        batch_ndim: leading batch dims; the mean runs over every dim after them.

    Returns:
        ``output.shape[:batch_ndim]``, values >= 0; zero iff ``output == target``.

    Raises:
        ValueError: shapes differ, or ``p`` is not 1 or 2.

    >>> target = torch.tensor([1.0, -3.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)  # (B, C, H, W)
    >>> pixel_loss(torch.zeros(2, 1, 2, 2), target)
    tensor([1., 3.])
    >>> pixel_loss(torch.zeros(2, 1, 2, 2), target, p=2)
    tensor([1., 9.])
    """
    if p not in (1, 2):
        raise ValueError(f"pixel loss p must be 1 or 2, got {p!r}")
    _check_same_shape(output, target, "pixel_loss")
    diff = (output - target).flatten(batch_ndim)  # (B, N)
    return (diff.abs() if p == 1 else diff.square()).mean(-1)


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of feature maps, normalised by their size: ``G = F Fᵀ / (C·H·W)``.

    ``F`` is ``features`` reshaped to ``(B, C, H·W)``; ``G[b, i, j]`` is the (scaled) correlation of
    channels ``i`` and ``j`` over all positions (Gatys, Ecker & Bethge, CVPR 2016), normalised as in
    Johnson et al. (ECCV 2016) so that its scale does not depend on the layer's size. Computed in
    float32 at least (autocast off): the sums over ``H·W`` overflow float16.

    Args:
        features: ``(B, C, H, W)``.

    Returns:
        ``(B, C, C)``, symmetric positive semi-definite.

    >>> gram_matrix(torch.ones(1, 2, 2, 2))  # every entry: 4 products of 1, over C·H·W = 8
    tensor([[[0.5000, 0.5000],
             [0.5000, 0.5000]]])
    """
    _check_images(features, "gram_matrix")
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        f = full_precision(features.reshape(b, c, h * w))  # (B, C, HW)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)  # (B, C, C)


def _layer_weights(
    feats: Mapping[str, Tensor], layer_weights: Mapping[str, float] | None
) -> dict[str, float]:
    if layer_weights is None:
        return dict.fromkeys(feats, 1.0)
    missing = [name for name in feats if name not in layer_weights]
    if missing:
        raise ValueError(f"no layer weight for layer(s) {', '.join(missing)}")
    return {name: float(layer_weights[name]) for name in feats}


def _check_same_layers(output_feats: Mapping[str, Tensor], target_feats: Mapping[str, Tensor]) -> None:
    if set(output_feats) != set(target_feats):
        raise ValueError(
            f"output and target features must have the same layers, got {sorted(output_feats)} "
            f"and {sorted(target_feats)}"
        )


def perceptual_loss(
    output_feats: Mapping[str, Tensor],
    target_feats: Mapping[str, Tensor],
    layer_weights: Mapping[str, float] | None = None,
) -> Tensor:
    """Perceptual (feature reconstruction) loss: ``Σ_l w_l · mean_{C,H,W} (φ_l(o) − φ_l(t))²``.

    Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
    Super-Resolution", ECCV 2016 (their ℓ_feat, summed over layers).

    Args:
        output_feats: layer name -> ``(B, C_l, H_l, W_l)`` features of the output (e.g. from
            :class:`VGG16Features`).
        target_feats: the same layers for the target.
        layer_weights: layer name -> ``w_l``; None weights every layer 1.

    Returns:
        ``(B,)``, values >= 0; zero when the features agree.

    Raises:
        ValueError: different layers or shapes, or a layer without a weight.

    >>> o = {"a": torch.ones(2, 1, 2, 2), "b": torch.zeros(2, 3, 1, 1)}
    >>> t = {"a": torch.zeros(2, 1, 2, 2), "b": torch.full((2, 3, 1, 1), 2.0)}
    >>> perceptual_loss(o, t, {"a": 1.0, "b": 0.5})  # 1·1 + 0.5·4
    tensor([3., 3.])
    """
    _check_same_layers(output_feats, target_feats)
    weights = _layer_weights(output_feats, layer_weights)
    total = None
    for name, w in weights.items():
        o, t = output_feats[name], target_feats[name]
        _check_same_shape(o, t, f"perceptual_loss layer {name}")
        term = w * (o - t).flatten(1).square().mean(-1)  # (B,)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("perceptual_loss needs at least one layer")
    return total


def style_loss(
    output_feats: Mapping[str, Tensor],
    target_feats: Mapping[str, Tensor],
    paired: bool = True,
    layer_weights: Mapping[str, float] | None = None,
) -> Tensor:
    """Style loss: ``Σ_l w_l · mean_{i,j} (G(φ_l(o)) − G(φ_l(t)))²`` with :func:`gram_matrix` ``G``.

    That is Johnson et al.'s squared Frobenius norm ``‖G(o) − G(t)‖²_F`` divided by the ``C_l²``
    entries (Gatys, Ecker & Bethge, CVPR 2016; Johnson, Alahi & Fei-Fei, ECCV 2016).

    - ``paired=True``: each output is compared with its own target; one value per sample.
    - ``paired=False``: the *batch-mean* Gram of the outputs is compared with the batch-mean Gram
      of the targets (any real images, possibly of another batch size; their Grams must have the
      same ``C_l``). This is a statistic of the whole batch: the single value is broadcast to every
      sample, so the module's mean over the batch gives back exactly that value (and its
      gradient); a sum over the batch would count it ``B`` times.

    Args:
        output_feats: layer name -> ``(B, C_l, H_l, W_l)``.
        target_feats: the same layers, ``(B, ...)`` when paired, ``(B', ...)`` when unpaired.
        paired: see above.
        layer_weights: layer name -> ``w_l``; None weights every layer 1.

    Returns:
        ``(B,)`` float32 (or float64), values >= 0.

    >>> o = {"a": torch.ones(2, 1, 2, 2)}
    >>> t = {"a": torch.cat([torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)])}
    >>> style_loss(o, t)  # Grams 1 vs (1, 0)
    tensor([0., 1.])
    >>> style_loss(o, t, paired=False)  # batch-mean Grams 1 vs 0.5
    tensor([0.2500, 0.2500])
    """
    _check_same_layers(output_feats, target_feats)
    weights = _layer_weights(output_feats, layer_weights)
    total = None
    batch = None
    for name, w in weights.items():
        g_o, g_t = gram_matrix(output_feats[name]), gram_matrix(target_feats[name])  # (B, C, C)
        batch = g_o.shape[0]
        if paired:
            _check_same_shape(g_o, g_t, f"style_loss layer {name}")
            term = w * (g_o - g_t).flatten(1).square().mean(-1)  # (B,)
        else:
            if g_o.shape[1:] != g_t.shape[1:]:
                raise ValueError(
                    f"style_loss layer {name}: output and target have {g_o.shape[1]} and "
                    f"{g_t.shape[1]} channels"
                )
            term = w * (g_o.mean(0) - g_t.mean(0)).square().mean()  # ()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_loss needs at least one layer")
    return total if paired else total.expand(batch)


def sobel_edge_loss(output: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Sobel edge loss: ``mean_{C,H,W} | ‖∇o‖ − ‖∇t‖ |`` per sample.

    ``‖∇x‖ = sqrt(g_x² + g_y² + eps)`` per channel is :func:`kornia.filters.sobel` (normalised
    kernels ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] / 8``, so a ramp of slope ``s`` answers ``|s|``;
    the border is replicated, so a constant image has no edge at its border). ``eps`` keeps the
    square root differentiable where the gradient is zero; flat regions answer ``sqrt(eps)`` in
    both images and cancel.

    Args:
        output: ``(B, C, H, W)``, any channel count (each channel on its own).
        target: same shape.
        eps: inside the square root (kornia's default).

    Returns:
        ``(B,)``, values >= 0; zero when the edge maps agree.

    >>> step = torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(1, 1, 4, 4)  # vertical step edge
    >>> sobel_edge_loss(step, torch.zeros(1, 1, 4, 4), eps=0.0)  # 2 of 4 columns answer 1/2
    tensor([0.2500])
    """
    _check_images(output, "sobel_edge_loss")
    _check_same_shape(output, target, "sobel_edge_loss")
    import kornia  # here, not at import time: the GPU check machine has no kornia

    edges_o = kornia.filters.sobel(output, eps=eps)  # (B, C, H, W)
    edges_t = kornia.filters.sobel(target, eps=eps)
    return (edges_o - edges_t).abs().flatten(1).mean(-1)


# --------------------------------------------------------------------------------------------------
# VGG16 features
# --------------------------------------------------------------------------------------------------


def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers:
        raise ConfigError(f"VGG16 layers must not be empty; valid layers: {', '.join(VGG16_LAYERS)}")
    for name in layers:
        check_choice("VGG16 layer", name, VGG16_LAYERS)
    if len(set(layers)) != len(layers):
        raise ConfigError(f"VGG16 layers must not repeat, got {list(layers)}")
    return layers


class VGG16Features(nn.Module):
    """Frozen VGG16 feature extractor (Simonyan & Zisserman, ICLR 2015), torchvision's weights.

    torchvision's feature extraction (``create_feature_extractor``) of ``vgg16()``, returning the
    nodes ``features.<i>`` of the requested ReLUs (:data:`VGG16_LAYERS`); it keeps only the layers
    up to the deepest of them. The net is built on the meta device and the extractor's weights
    (``features.<i>.weight`` / ``.bias``, torchvision's own keys) are assigned from the file, so
    nothing is randomly initialised and nothing is downloaded.

    Inputs are ``(B, C, H, W)`` images in ``[-1, 1]``: mapped to ``[0, 1]`` and normalised with
    ImageNet's mean/std, as torchvision's weights expect. One channel is repeated to three.

    Frozen: every parameter has ``requires_grad=False`` (gradients flow to the *input* only), and
    the module is always in eval mode (:meth:`train` keeps it there).

    Args:
        layers: names among ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``.
        weights: path to a torchvision VGG16 state dict (``features.*`` keys are used); None means
            :func:`default_vgg16_path` (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``).

    Raises:
        MissingWeightsError: the file is not there (a ``FileNotFoundError`` and a ``ConfigError``;
            one line naming the path and how to get the file).
        ConfigError: unknown layer, or the file does not hold VGG16's feature weights.
    """

    def __init__(self, layers: Sequence[str] = DEFAULT_LAYERS, weights: str | Path | None = None) -> None:
        super().__init__()
        self.layers = _check_layers(layers)
        self.path = Path(weights).expanduser() if weights is not None else default_vgg16_path()
        with torch.device("meta"):
            vgg16 = torchvision.models.vgg16(weights=None).eval()
        return_nodes = {f"features.{VGG16_LAYERS[name]}": name for name in self.layers}
        features = create_feature_extractor(vgg16, return_nodes)  # features.0 .. the deepest node
        state = load_vgg16_state(self.path, set(features.state_dict()))
        try:
            features.load_state_dict(state, assign=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ConfigError(f"{self.path} does not hold VGG16 feature weights: {first}") from None
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGG16Features:
        """Stay in eval mode whatever ``mode`` is (a frozen extractor)."""
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Features of images ``x`` ``(B, C, H, W)`` in ``[-1, 1]``, ``C`` in {1, 3}.

        Returns:
            layer name -> ``(B, C_l, H / 2^k, W / 2^k)`` (post-ReLU, so >= 0), in ``layers`` order.

        Raises:
            ValueError: not 4-d, or a channel count other than 1 or 3.
        """
        _check_images(x, "VGG16Features")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (B, 3, H, W)
        elif x.shape[1] != 3:
            raise ValueError(
                f"VGG16Features takes 1 or 3 channels, got {x.shape[1]} (shape {tuple(x.shape)})"
            )
        h = ((x + 1.0) / 2.0 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = self.features(h)  # in the net's order
        return {name: out[name] for name in self.layers}

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}, weights={str(self.path)!r}"


class _Unregistered:
    """Holds a module out of sight of ``nn.Module``: not a child, so not in the owner's
    ``state_dict()``, ``parameters()``, ``.to()``, ``.train()`` or DDP's parameter sync.

    Pickling (checkpoints of the whole object, DDP spawn) drops the module; the owner reloads it
    from its file on first use.
    """

    __slots__ = ("module",)

    def __init__(self) -> None:
        self.module: nn.Module | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.module = None


# --------------------------------------------------------------------------------------------------
# Regularizers
# --------------------------------------------------------------------------------------------------


def _fold(x: Tensor, batch_ndim: int, what: str) -> Tensor:
    """``(*lead, C, H, W)`` with ``batch_ndim`` lead dims -> ``(N, C, H, W)``."""
    if x.dim() != batch_ndim + 3:
        raise ValueError(
            f"{what}: expected images (*batch, C, H, W) with {batch_ndim} batch dim(s), "
            f"got shape {tuple(x.shape)}"
        )
    return x.reshape(-1, *x.shape[batch_ndim:])


def _target(inputs: PenaltyInputs, name: str) -> Tensor:
    if inputs.target is None:
        raise ValueError(f"{name} needs a paired target, but inputs.target is None (an unpaired run?)")
    return inputs.target


class PixelLoss(Regularizer):
    """Pixel loss against the paired target, :func:`pixel_loss` (L1 by default, as in pix2pix)."""

    name = "pixel"
    player = "G"
    needs_target = True

    def __init__(self, weight: float = 1.0, p: int = 1, every: int = 1) -> None:
        super().__init__(weight, every)
        if isinstance(p, bool) or p not in (1, 2):
            raise ConfigError(f"pixel p must be 1 (L1) or 2 (L2), got {p!r}")
        self.p = p

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        target = _target(inputs, self.name)
        return pixel_loss(inputs.fake, target, self.p, inputs.batch_ndim)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class SobelEdgeLoss(Regularizer):
    """Sobel edge loss against the paired target, :func:`sobel_edge_loss`."""

    name = "sobel_edge"
    player = "G"
    needs_target = True

    def __init__(self, weight: float = 1.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        lead = inputs.fake.shape[: inputs.batch_ndim]
        fake = _fold(inputs.fake, inputs.batch_ndim, self.name)
        target = _fold(_target(inputs, self.name), inputs.batch_ndim, self.name)
        return sobel_edge_loss(fake, target).view(lead)


class _VGGRegularizer(Regularizer):
    """A term on VGG16 features; the extractor is loaded lazily and kept unregistered.

    Why unregistered: VGG16 is a frozen, external network. Registered as a child it would be
    written into every Lightning checkpoint (~60 MB), be returned by ``parameters()`` (and so
    risk landing in an optimizer), be switched to train mode by the LightningModule and be
    synchronised by DDP. Held in :class:`_Unregistered` it is none of these; :meth:`extract` moves
    it to the input's device and dtype on use.

    Why lazy: ``get_regularizer("perceptual")`` and config parsing must work without the file.
    :meth:`check` (or :meth:`load`) loads it now, so a missing file fails before training starts.
    """

    player = "G"
    needs_target = True

    def __init__(
        self,
        weight: float,
        layers: Sequence[str],
        layer_weights: Sequence[float] | Mapping[str, float] | None,
        weights: str | Path | None,
        every: int,
    ) -> None:
        super().__init__(weight, every)
        self.layers = _check_layers(layers)
        self.layer_weights = self._check_layer_weights(layer_weights)
        self.weights = None if weights is None else str(weights)
        self._vgg = _Unregistered()

    def _check_layer_weights(
        self, layer_weights: Sequence[float] | Mapping[str, float] | None
    ) -> dict[str, float]:
        if layer_weights is None:
            return dict.fromkeys(self.layers, 1.0)
        if isinstance(layer_weights, Mapping):
            if set(layer_weights) != set(self.layers):
                raise ConfigError(
                    f"{self.name} layer_weights must name exactly the layers {list(self.layers)}, "
                    f"got {sorted(layer_weights)}"
                )
            values = [layer_weights[name] for name in self.layers]
        else:
            values = list(layer_weights)
            if len(values) != len(self.layers):
                raise ConfigError(
                    f"{self.name} needs one layer weight per layer ({len(self.layers)}: "
                    f"{', '.join(self.layers)}), got {len(values)}"
                )
        return {
            name: check_weight(f"{self.name} layer weight of {name}", v)
            for name, v in zip(self.layers, values)
        }

    def load(self) -> VGG16Features:
        """The VGG16 extractor, loaded from its file on the first call.

        Raises:
            MissingWeightsError: the weights file is missing (one line naming the path).
        """
        if self._vgg.module is None:
            self._vgg.module = VGG16Features(self.layers, self.weights)
        return self._vgg.module

    def check(self) -> None:
        """Fail early: load the weights now, so that a missing file is reported before training."""
        self.load()

    def extract(self, x: Tensor) -> dict[str, Tensor]:
        """VGG16 features of images ``(N, C, H, W)``; the extractor follows ``x``'s device/dtype."""
        vgg = self.load()
        param = next(vgg.parameters())
        if param.device != x.device or (x.is_floating_point() and param.dtype != x.dtype):
            vgg.to(device=x.device, dtype=x.dtype if x.is_floating_point() else None)
        return vgg(x)

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={v:g}" for k, v in self.layer_weights.items())
        return f"{super().extra_repr()}, layers=[{weights}], weights={self.weights!r}"


class PerceptualLoss(_VGGRegularizer):
    """Perceptual loss on VGG16 features against the paired target, :func:`perceptual_loss`.

    Johnson, Alahi & Fei-Fei, ECCV 2016. The target's features are computed without gradient.

    Args:
        weight: multiplier of the per-sample penalty.
        layers: VGG16 layer names, see :data:`VGG16_LAYERS`.
        layer_weights: one weight per layer (a list in ``layers`` order, or a name -> weight map);
            None weights every layer 1.
        weights: path to VGG16's weights; None: ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``.
        every: lazy regularization interval.
    """

    name = "perceptual"

    def __init__(
        self,
        weight: float = 1.0,
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | Mapping[str, float] | None = None,
        weights: str | None = None,
        every: int = 1,
    ) -> None:
        super().__init__(weight, layers, layer_weights, weights, every)

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        lead = inputs.fake.shape[: inputs.batch_ndim]
        fake = _fold(inputs.fake, inputs.batch_ndim, self.name)
        target = _fold(_target(inputs, self.name), inputs.batch_ndim, self.name)
        with torch.no_grad():
            target_feats = self.extract(target)
        return perceptual_loss(self.extract(fake), target_feats, self.layer_weights).view(lead)


class StyleLoss(_VGGRegularizer):
    """Style loss on Gram matrices of VGG16 features, :func:`style_loss`.

    Paired (default): each fake against its target (``needs_target``). Unpaired: the batch-mean
    Gram of the fakes against that of ``inputs.real``, the same value for every sample (see
    :func:`style_loss`); no target needed. The reference's features are computed without gradient.

    Gram entries are small (normalised by ``C·H·W``), so useful weights are large; tune ``weight``.

    Args:
        weight, layers, layer_weights, weights, every: as :class:`PerceptualLoss`.
        paired: compare with the paired target (True) or with the real batch's style (False).
    """

    name = "style"

    def __init__(
        self,
        weight: float = 1.0,
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | Mapping[str, float] | None = None,
        paired: bool = True,
        weights: str | None = None,
        every: int = 1,
    ) -> None:
        super().__init__(weight, layers, layer_weights, weights, every)
        if not isinstance(paired, bool):
            raise ConfigError(f"style paired must be true or false, got {paired!r}")
        self.paired = paired
        self.needs_target = paired

    def penalty(self, inputs: PenaltyInputs) -> Tensor:
        lead = inputs.fake.shape[: inputs.batch_ndim]
        if not self.paired and inputs.batch_ndim != 1:
            raise ValueError("unpaired style is a batch statistic; it takes batch_ndim=1 only")
        fake = _fold(inputs.fake, inputs.batch_ndim, self.name)
        reference = _target(inputs, self.name) if self.paired else inputs.real
        reference = _fold(reference, inputs.batch_ndim, self.name)
        with torch.no_grad():
            reference_feats = self.extract(reference)
        loss = style_loss(self.extract(fake), reference_feats, self.paired, self.layer_weights)
        return loss.view(lead)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, paired={self.paired}"
