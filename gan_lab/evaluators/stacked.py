"""The stacked-digits mode count every K generator steps (VEEGAN's stacked-MNIST protocol).

The protocol (docs/DESIGN.md; Srivastava et al. 2017, as PacGAN's code runs it): G (eval mode,
``G_ema`` when kept) maps a fixed set of ``n_samples`` noise vectors (26,000 in the protocol) to
images of C = 3 channels; the lab's digit classifier (:mod:`gan_lab.metrics.digit_classifier`,
trained on the same digits as the data: scikit-learn's for stacked digits, MNIST for stacked
MNIST) labels each channel; a mode is a triple (d1, d2, d3) — 1,000 of them — and

- ``modes``: the number of distinct triples among the samples;
- ``kl``: KL(p̂ ‖ uniform over 1,000) in nats, p̂ the triples' histogram (0 is best, ln 1000 ≈ 6.91
  when every sample is one triple).

That is VEEGAN's count: every sample is labelled, digit or blob (a classifier always names some
digit). Beside it, the **confident count** (:mod:`gan_lab.metrics.stacked_modes`):

- ``confident_modes``: distinct triples among the samples whose three channels the classifier
  recognises with max-softmax confidence ≥ τ;
- ``confident_fraction``: the share of samples so recognised;
- ``confidence``: the classifier's mean max-softmax over all generated channels.

**Real data, once per evaluator** (at its first evaluation, then cached; :meth:`real_facts`): the
same count on the data set's own images — the first ``min(n_samples, len(train))`` of the training
split in the datamodule's fixed order (``ImageDataModule.reference``: a ``randperm`` under a fixed
seed) — its modes, KL, mean confidence, and the threshold τ calibrated on them: the 1st percentile
of the real channels' max-softmax (τ keeps 99 % of real channels). The real row and τ go into
:meth:`info`, so the report prints them beside the generated rows. (Every rank computes them whole:
they are the same on each.)

The per-channel digit histograms of the final evaluation go into the run folder
(``channel_histograms.npy``, ``(C, 10)`` counts), with the first :attr:`GRID` final samples and real
images as ``stacked_samples.png`` / ``stacked_real.png`` (the report's sample figure). Under DDP each
rank classifies its share and :class:`~gan_lab.metrics.StackedModeCount` sums the histograms. The
classifier's held-out accuracy is in :meth:`info`, so every report states it.

A classifier without logits (``classify`` only) gives no confidences: the confident metrics are
then NaN and τ is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from gan_lab.errors import ConfigError, check_int
from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.evaluators.fixed_samples import generate_fixed, rank_of
from gan_lab.evaluators.image_report import StackedModeReport
from gan_lab.metrics.features import load_feature_net
from gan_lab.metrics.stacked_modes import (
    REAL_KEEP,
    StackedModeCount,
    confidence_threshold,
    confident_statistics,
    max_softmax,
    stacked_mode_statistics,
)


def classify_with_confidence(net, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(digits (B, C), max-softmax confidence (B, C) float64 or None)`` of images ``x``: from the
    classifier's logits (``features_and_logits(x)[1]``, ``(B, C, 10)``) when it gives them, else
    ``net.classify(x)`` and no confidence."""
    if callable(getattr(net, "features_and_logits", None)):
        logits = net.features_and_logits(x)[1]
        if logits.dim() == 3 and logits.shape[:2] == (x.shape[0], x.shape[1]):
            return max_softmax(logits)
    return net.classify(x), None


class StackedModeEvaluator(ScheduledEvaluator):
    """Log the modes covered and KL(p̂ ‖ uniform) of stacked digits every ``every_n_g_steps`` G steps.

    Args:
        every_n_g_steps: evaluation interval in G steps; the final state is always evaluated.
        n_samples: generated samples classified per evaluation (26,000 in VEEGAN's protocol).
        classifier: the digit classifier: ``digit_classifier`` (the lab's,
            :class:`~gan_lab.metrics.features.DigitClassifierFeatures`) or the class path of a feature
            net with ``classify(x) -> (B, C)`` digits.
        classifier_args: its keyword arguments; for the lab's, ``size`` and ``channels`` default to
            the data's and its training data to the datamodule's digits (``mnist`` for stacked
            MNIST, with the datamodule's root).
        cache_dir: where the classifier is cached (None: the lab's cache).
        noise_seed: seed of the fixed noise set.
        use_ema: evaluate ``G_ema`` when the module keeps one.
        batch_size: samples generated and classified at a time.
        real_keep: the share of real channels the confidence threshold τ keeps (0.99: τ is their
            1st percentile).
    """

    NAME = "stacked"
    METRICS: ClassVar[tuple[str, ...]] = (
        "modes",
        "kl",
        "confident_modes",
        "confident_fraction",
        "confidence",
    )
    PRIMARY = "modes"
    #: final samples and real images in the run folder's sample grids
    GRID: ClassVar[int] = 64

    def __init__(
        self,
        every_n_g_steps: int = 500,
        n_samples: int = 26_000,
        classifier: str = "digit_classifier",
        classifier_args: dict | None = None,
        cache_dir: str | None = None,
        noise_seed: int = 2028,
        use_ema: bool = True,
        batch_size: int = 1000,
        real_keep: float = REAL_KEEP,
    ) -> None:
        super().__init__(every_n_g_steps)
        if isinstance(real_keep, bool) or not isinstance(real_keep, (int, float)) or not 0 < real_keep <= 1:
            raise ConfigError(f"StackedModeEvaluator real_keep must be in (0, 1], got {real_keep!r}")
        self.real_keep = float(real_keep)
        self.real: dict | None = None
        self._real_grid: torch.Tensor | None = None
        self.last_grid: torch.Tensor | None = None
        self.n_samples = check_int("StackedModeEvaluator n_samples", n_samples)
        self.batch_size = check_int("StackedModeEvaluator batch_size", batch_size)
        self.classifier_name, self.classifier_args = classifier, dict(classifier_args or {})
        self.cache_dir, self.noise_seed, self.use_ema = cache_dir, noise_seed, use_ema
        self._net = None
        self.channel_histograms: np.ndarray | None = None
        self.num_modes: int | None = None

    def classifier(self, trainer, pl_module):
        """The digit classifier's features (built and cached on first use), on the module's device."""
        if self._net is None:
            dm = trainer.datamodule
            args = dict(self.classifier_args)
            if self.classifier_name == "digit_classifier":
                c, _, size = dm.image_shape
                args.setdefault("size", int(size))
                args.setdefault("channels", int(c))
                args.setdefault("cache_dir", self.cache_dir)
                if dm.name == "stacked_mnist":  # classify MNIST digits with a classifier trained on MNIST
                    args.setdefault("data", "mnist")
                    args.setdefault("mnist_root", dm.describe().get("root"))
            net = load_feature_net(self.classifier_name, **args)
            if not callable(getattr(net, "classify", None)):
                raise ConfigError(
                    f"StackedModeEvaluator classifier {self.classifier_name!r} has no classify(x) -> (B, C) digits"
                )
            self._net = net
        return self._net.to(pl_module.device)

    def real_facts(self, trainer, pl_module, net) -> dict:
        """The real-data row (module docstring), computed once and cached: ``n`` real triples, their
        ``modes`` and ``kl`` as the classifier reads them, its mean ``confidence`` on their channels,
        ``threshold`` τ and its ``calibration_n`` channels, the share of real triples recognised
        (``confident_fraction``) and their ``confident_modes``, the classifier's ``triple_accuracy``
        and ``channel_accuracy`` against the data's own labels, and ``true_modes`` (distinct true
        triples)."""
        if self.real is not None:
            return self.real
        dm = trainer.datamodule
        n = min(self.n_samples, len(dm.source.load("train")))
        images, truth = dm.reference(n, "train")  # a fixed order, the same for every run and seed
        self._real_grid = images[: self.GRID].clone()
        labels, confs = [], []
        with torch.no_grad():
            for x in images.split(self.batch_size):
                digits, conf = classify_with_confidence(net, x.to(pl_module.device))
                labels.append(digits.cpu())
                confs.append(conf.cpu() if conf is not None else None)
        labels = torch.cat(labels)
        stats = stacked_mode_statistics(labels, labels.shape[1])
        real = {
            "n": n,
            "split": "train",
            "modes": float(stats["modes"]),
            "kl": float(stats["kl"]),
            "keep": self.real_keep,
            "threshold": None,
            "calibration_n": 0,
            "confidence": None,
            "confident_modes": None,
            "confident_fraction": None,
        }
        if all(c is not None for c in confs):
            conf = torch.cat(confs)
            threshold = confidence_threshold(conf, self.real_keep)
            confident = confident_statistics(labels, conf, threshold)
            real.update(
                threshold=threshold,
                calibration_n=int(conf.numel()),
                **{k: float(v) for k, v in confident.items()},
            )
        if truth is not None and truth.shape == labels.shape:
            truth = truth.long().cpu()
            real["triple_accuracy"] = float((labels == truth).all(1).double().mean())
            real["channel_accuracy"] = float((labels == truth).double().mean())
            real["true_modes"] = float(stacked_mode_statistics(truth, truth.shape[1])["modes"])
        self.real = real
        return real

    def evaluate(self, trainer, pl_module) -> dict:
        net = self.classifier(trainer, pl_module)  # (trained on first use: outside no_grad)
        with torch.no_grad():
            return self._evaluate(trainer, pl_module, net)

    def _evaluate(self, trainer, pl_module, net) -> dict:
        real = self.real_facts(trainer, pl_module, net)
        rank, world = rank_of(trainer)
        count, grid = None, []
        for x in generate_fixed(
            pl_module, self.n_samples, self.noise_seed, self.batch_size, self.use_ema, rank, world
        ):
            if sum(len(g) for g in grid) < self.GRID:
                grid.append(x[: self.GRID].cpu())
            labels, conf = classify_with_confidence(net, x)  # (b, C) digits, confidences
            if count is None:
                tau = real["threshold"] if conf is not None else None
                count = StackedModeCount(channels=labels.shape[1], threshold=tau)
                count = count.to(pl_module.device)
            count.update(labels, conf)
        result = count.compute()
        values = {k: float(result.get(k, math.nan)) for k in self.METRICS}  # no τ: NaN confident metrics
        self.last_grid = torch.cat(grid)[: self.GRID] if grid else None
        self.channel_histograms = result["channel_histograms"].detach().cpu().numpy()
        self.num_modes = 10 ** int(self.channel_histograms.shape[0])
        self.history.append({"g_steps": pl_module.g_steps, "member": 0, "seed": pl_module.seed, **values})
        logged = {f"{self.NAME}/{k}": v for k, v in values.items()}
        self.log_metrics(trainer, pl_module, logged, {k: [v] for k, v in logged.items()})
        self._last_eval = pl_module.g_steps
        return values

    def save_artifacts(self, run_dir: Path, members: Sequence[int] | None = None) -> None:
        """``channel_histograms.npy``: the final evaluation's digit counts per channel, ``(C, 10)``;
        ``stacked_samples.png`` / ``stacked_real.png``: the first :attr:`GRID` final samples and real
        images (image nets: one member)."""
        from torchvision.utils import save_image

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.channel_histograms is not None:
            np.save(run_dir / "channel_histograms.npy", self.channel_histograms)
        for name, images in (("stacked_samples.png", self.last_grid), ("stacked_real.png", self._real_grid)):
            if images is not None and len(images):
                nrow = max(1, round(math.sqrt(images.shape[0])))
                save_image((images.float() + 1.0) / 2.0, run_dir / name, nrow=nrow, padding=1)

    @classmethod
    def report_section(cls):
        """:class:`~gan_lab.evaluators.image_report.StackedModeReport`."""
        return StackedModeReport()

    def info(self, trainer) -> dict:
        net = self._net
        return {
            "classifier": net.describe() if net is not None else {"name": "digit_classifier"},
            "n_samples": self.n_samples,
            "num_modes": self.num_modes,
            "kl_max": math.log(self.num_modes) if self.num_modes else None,
            "noise_seed": self.noise_seed,
            "use_ema": self.use_ema,
            "real": self.real,
        }
