"""Image metrics of an image GAN every K generator steps: FD / KID / IS, precision / recall, density / coverage.

The protocol (docs/DESIGN.md, "Images"): G (eval mode, ``G_ema`` when kept and asked for) maps a
fixed set of ``n_samples`` noise vectors (:mod:`gan_lab.evaluators.fixed_samples`; the same set for
every run, seed and evaluation) to images, clamped to ``[-1, 1]``. A frozen feature network
(:mod:`gan_lab.metrics.features`: Inception-v3 pool3 from a local weights file, VGG16 fc2, or the
lab's digit classifier) maps them to features; the same network's features of ``n_real`` real
images (the datamodule's first ``n_real`` reference images of ``reference_split``, a fixed order)
are computed once and cached by (dataset, split, network hash, N) (:mod:`gan_lab.metrics.reference`).
Then, between the real and the generated features:

- ``fd``: the Fréchet distance of Gaussians fitted to both (Heusel et al. 2017): **FID** on
  Inception pool3 features, "FD on digit-classifier features" on the lab's classifier (never FID);
- ``kid``: the unbiased MMD² with the cubic polynomial kernel, mean over ``kid_subsets`` subsets of
  ``kid_subset_size`` (Bińkowski et al. 2018); ``kid_std`` is logged beside it;
- ``inception_score``: exp E KL(p(y|x) ‖ p(y)) over ``is_splits`` splits (Salimans et al. 2016),
  from the Inception logits; undefined (NaN) for a network without ImageNet logits;
- ``precision`` / ``recall`` (k = 3, Kynkäänniemi et al. 2019) and ``density`` / ``coverage``
  (k = 5, Naeem et al. 2020) by exact k-NN radii, computed in chunks.

Recall and coverage are the mode-collapse measures: they fall when G covers less of the real data.
Under DDP each rank generates and embeds its share of the samples and the metrics' states gather
them; the real features are every metric's fixed reference (the same on every rank).

The history (one row per evaluation, ``member`` 0: image nets train one seed per run) is kept in
checkpoints by :class:`~gan_lab.evaluators.base.ScheduledEvaluator`; the final samples'
grid (``samples_grid.png``, torchvision's ``make_grid``) goes into the run folder, and with a
per-seed W&B logger a grid of every evaluation's samples (``image/samples``) goes to that seed's run. How a study
shows this evaluator is :class:`gan_lab.evaluators.image_report.ImageMetricsReport` (:meth:`ImageMetricsEvaluator.report_section`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from lightning.pytorch.loggers import WandbLogger

from gan_lab.dashboard.media import image_grid
from gan_lab.errors import ConfigError, check_int
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.evaluators.fixed_samples import features_of, generate_fixed, rank_of
from gan_lab.evaluators.image_report import ImageMetricsReport
from gan_lab.metrics.features import load_feature_net
from gan_lab.metrics.reference import reference_features
from gan_lab.metrics.suite import SuiteSettings, image_metrics
from gan_lab.runs import run_folder


def reference_key(data: dict, split: str, n: int) -> dict:
    """The reference cache's key: the data set's facts (``describe()``), the split, and ``N``, the
    number of real images (the split's own size kept as ``split_size``); the feature net's name,
    hash and dimension are added by :func:`gan_lab.metrics.reference.reference_features`.

    >>> reference_key({"dataset": "cifar10", "split": "train", "N": 50000}, "test", 10000)
    {'dataset': 'cifar10', 'split': 'test', 'split_size': 50000, 'N': 10000}
    """
    key = {k: v for k, v in data.items() if k != "N"}
    key.update(split=split, split_size=data.get("N"), N=int(n))
    return key


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ConfigError(f"ImageMetricsEvaluator reference_split must be 'train' or 'test', got {split!r}")
    return split


class ImageMetricsEvaluator(ScheduledEvaluator):
    """Log FD, KID, IS, precision, recall, density and coverage every ``every_n_g_steps`` G steps.

    Args:
        every_n_g_steps: evaluation interval in G steps; the final state is always evaluated.
        n_samples: generated images per evaluation (50,000 in the FID papers; compare FDs only at
            equal ``n_samples``).
        n_real: real images of the reference statistics (default ``n_samples``).
        feature_net: a name in :data:`gan_lab.metrics.features.FEATURE_NETS` (``inception_v3``,
            ``vgg16_fc``, ``digit_classifier``) or a class path of a user feature network.
        feature_args: its keyword arguments (``{weights: PATH}`` for Inception-v3 and VGG16; the
            digit classifier's ``size`` defaults to the data's image size).
        reference_split: the real images' split (``train`` or ``test``).
        cache_dir: where reference statistics (and the digit classifier) are cached; None: the
            lab's cache (``$GAN_LAB_CACHE`` or ``~/.cache/gan_lab``).
        noise_seed: seed of the fixed noise set.
        use_ema: evaluate ``G_ema`` when the module keeps one.
        batch_size: images generated and embedded at a time.
        kid_subsets, kid_subset_size: KID's subsets (``kid_subset_size`` is lowered to the sample
            count when that is smaller, and the report says so).
        is_splits: Inception Score's splits.
        k_pr, k_dc: the k of precision/recall (3) and of density/coverage (5).
        chunk: rows × columns of each block of pairwise distances (work memory ~ 17·chunk² bytes).
        grid: images in the final samples grid (0: none).
    """

    NAME = "image"
    METRICS: ClassVar[tuple[str, ...]] = (
        "fd",
        "kid",
        "inception_score",
        "precision",
        "recall",
        "density",
        "coverage",
    )
    PRIMARY = "fd"

    def __init__(
        self,
        every_n_g_steps: int = 500,
        n_samples: int = 10_000,
        n_real: int | None = None,
        feature_net: str = "digit_classifier",
        feature_args: dict | None = None,
        reference_split: str = "train",
        cache_dir: str | None = None,
        noise_seed: int = 2027,
        use_ema: bool = True,
        batch_size: int = 500,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        k_pr: int = 3,
        k_dc: int = 5,
        chunk: int = 2048,
        grid: int = 64,
    ) -> None:
        super().__init__(every_n_g_steps)
        self.n_samples = check_int("ImageMetricsEvaluator n_samples", n_samples, minimum=2)
        self.n_real = check_int(
            "ImageMetricsEvaluator n_real", n_real if n_real is not None else n_samples, 2
        )
        self.batch_size = check_int("ImageMetricsEvaluator batch_size", batch_size)
        self.kid_subsets = check_int("ImageMetricsEvaluator kid_subsets", kid_subsets)
        self.kid_subset_size = min(
            check_int("ImageMetricsEvaluator kid_subset_size", kid_subset_size, 2),
            self.n_samples,
            self.n_real,
        )
        self.is_splits = check_int("ImageMetricsEvaluator is_splits", is_splits)
        self.k_pr = check_int("ImageMetricsEvaluator k_pr", k_pr)
        self.k_dc = check_int("ImageMetricsEvaluator k_dc", k_dc)
        if max(self.k_pr, self.k_dc) >= min(self.n_samples, self.n_real):
            raise ConfigError(
                f"ImageMetricsEvaluator needs more than k = {max(self.k_pr, self.k_dc)} samples per side for "
                f"k-NN radii, got n_samples {self.n_samples}, n_real {self.n_real}; raise them"
            )
        self.chunk = check_int("ImageMetricsEvaluator chunk", chunk)
        self.settings = SuiteSettings(
            self.kid_subsets, self.kid_subset_size, self.is_splits, self.k_pr, self.k_dc, self.chunk
        )
        self.grid = check_int("ImageMetricsEvaluator grid", grid, minimum=0)
        self.feature_net_name, self.feature_args = feature_net, dict(feature_args or {})
        self.reference_split = _check_split(reference_split)
        self.cache_dir, self.noise_seed, self.use_ema = cache_dir, noise_seed, use_ema
        self._net = None
        self._reference = None
        self.last_grid: torch.Tensor | None = None

    # -- the feature network and the real side, once per fit --------------------------------------

    def feature_net(self, trainer, pl_module):
        """The frozen feature network on the module's device (built on first use)."""
        if self._net is None:
            args = dict(self.feature_args)
            if self.feature_net_name == "digit_classifier":
                c, _, size = trainer.datamodule.image_shape
                args.setdefault("size", int(size))
                args.setdefault("channels", int(c))
                args.setdefault("cache_dir", self.cache_dir)
            self._net = load_feature_net(self.feature_net_name, **args)
        return self._net.to(pl_module.device)

    def reference(self, trainer, pl_module):
        """The real images' features and Gaussian statistics (:class:`ReferenceStats`), cached."""
        if self._reference is None:
            net, dm = self.feature_net(trainer, pl_module), trainer.datamodule
            key = reference_key(dm.describe(), self.reference_split, self.n_real)
            images = dm.reference_images(self.n_real, split=self.reference_split)
            self._reference = reference_features(
                net, images, key, cache_dir=self.cache_dir, batch_size=self.batch_size
            )
        return self._reference

    # -- one evaluation -----------------------------------------------------------------------------

    def _fake_features(self, trainer, pl_module, net):
        rank, world = rank_of(trainer)
        batches = generate_fixed(
            pl_module, self.n_samples, self.noise_seed, self.batch_size, self.use_ema, rank, world
        )
        grid, feats, logits = [], [], []
        has_logits = net.name == "inception_v3"  # IS: ImageNet logits only
        for x in batches:
            if len(grid) * self.batch_size < self.grid and rank == 0:
                grid.append(x.cpu())
            f, y = features_of(net, x, self.batch_size, pl_module.device, logits=has_logits)
            feats.append(f)
            if y is not None:
                logits.append(y)
        if grid:
            self.last_grid = torch.cat(grid)[: self.grid]
        return torch.cat(feats), (torch.cat(logits) if logits else None)

    def evaluate(self, trainer, pl_module) -> dict:
        net = self.feature_net(trainer, pl_module)  # (the digit classifier trains on first use)
        with torch.no_grad():
            ref = self.reference(trainer, pl_module)
            fake, logits = self._fake_features(trainer, pl_module, net)
        values = image_metrics(ref.features, fake, logits, self.settings, real_stats=(ref.mu, ref.sigma))
        row = {"g_steps": pl_module.g_steps, "member": 0, "seed": pl_module.seed}
        row.update({m: values[m] for m in self.METRICS})
        self.history.append(row)
        logged = {f"{self.NAME}/{k}": v for k, v in values.items() if math.isfinite(v)}
        self.log_metrics(trainer, pl_module, logged, {k: [v] for k, v in logged.items()}, self.media(trainer))
        self._last_eval = pl_module.g_steps
        return values

    def media(self, trainer) -> dict | None:
        """``image/samples``: a grid of this evaluation's first samples for a per-seed W&B logger
        (:func:`~gan_lab.dashboard.media.image_grid`), or None when no media are logged."""
        settings = self.media_settings(trainer)
        if settings is None or self.last_grid is None:
            return None
        return {f"{self.NAME}/samples": [image_grid(self.last_grid, settings.size, settings.count)]}

    # -- artifacts, facts ---------------------------------------------------------------------------

    def finish(self, trainer, pl_module) -> None:
        if self.last_grid is None or self.grid == 0 or run_folder(trainer) is None:
            return
        path = self.save_grid(Path(run_folder(trainer)))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[str(path)], step=int(pl_module.g_steps))

    def save_grid(self, run_dir: Path) -> Path:
        """The final samples as one image (``samples_grid.png``, ``make_grid`` with √n columns)."""
        from torchvision.utils import save_image

        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "samples_grid.png"
        images = (self.last_grid + 1.0) / 2.0
        save_image(images, path, nrow=max(1, round(math.sqrt(images.shape[0]))), padding=1)
        return path

    def save_artifacts(self, run_dir: Path, members: Sequence[int] | None = None) -> None:
        """``samples_grid.png`` (the final samples) in the run folder (image nets: one member)."""
        if self.last_grid is not None and self.grid:
            self.save_grid(Path(run_dir))

    @classmethod
    def report_section(cls):
        """:class:`~gan_lab.evaluators.image_report.ImageMetricsReport`."""
        return ImageMetricsReport()

    def info(self, trainer) -> dict:
        net = self._net
        ref = self._reference
        return {
            "feature_net": net.describe() if net is not None else {"name": self.feature_net_name},
            "n_samples": self.n_samples,
            "n_real": self.n_real,
            "reference_split": self.reference_split,
            "reference": dict(ref.key) if ref is not None else None,
            "kid_subsets": self.kid_subsets,
            "kid_subset_size": self.kid_subset_size,
            "is_splits": self.is_splits,
            "k_pr": self.k_pr,
            "k_dc": self.k_dc,
            "noise_seed": self.noise_seed,
            "use_ema": self.use_ema,
        }
