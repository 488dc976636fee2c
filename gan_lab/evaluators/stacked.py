"""The stacked-digits mode count every K generator steps (VEEGAN's stacked-MNIST protocol).

The protocol (docs/DESIGN.md; Srivastava et al. 2017, as PacGAN's code runs it): G (eval mode,
``G_ema`` when kept) maps a fixed set of ``n_samples`` noise vectors (26,000 in the protocol) to
images of C = 3 channels; the lab's digit classifier (:mod:`gan_lab.metrics.digit_classifier`,
trained on the same digits as the data: scikit-learn's for stacked digits, MNIST for stacked
MNIST) labels each channel; a mode is a triple (d1, d2, d3) — 1,000 of them — and

- ``modes``: the number of distinct triples among the samples;
- ``kl``: KL(p̂ ‖ uniform over 1,000) in nats, p̂ the triples' histogram (0 is best, ln 1000 ≈ 6.91
  when every sample is one triple).

The per-channel digit histograms of the final evaluation go into the run folder
(``channel_histograms.npy``, ``(C, 10)`` counts). Under DDP each rank classifies its share and
:class:`~gan_lab.metrics.StackedModeCount` sums the histograms. The classifier's held-out accuracy is
in :meth:`info`, so every report states it.
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
from gan_lab.metrics import StackedModeCount
from gan_lab.metrics.features import load_feature_net


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
    """

    NAME = "stacked"
    METRICS: ClassVar[tuple[str, ...]] = ("modes", "kl")
    PRIMARY = "modes"

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
    ) -> None:
        super().__init__(every_n_g_steps)
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

    def evaluate(self, trainer, pl_module) -> dict:
        net = self.classifier(trainer, pl_module)  # (trained on first use: outside no_grad)
        with torch.no_grad():
            return self._evaluate(trainer, pl_module, net)

    def _evaluate(self, trainer, pl_module, net) -> dict:
        rank, world = rank_of(trainer)
        count = None
        for x in generate_fixed(
            pl_module, self.n_samples, self.noise_seed, self.batch_size, self.use_ema, rank, world
        ):
            labels = net.classify(x)  # (b, C) digits
            if count is None:
                count = StackedModeCount(channels=labels.shape[1]).to(pl_module.device)
            count.update(labels)
        result = count.compute()
        values = {"modes": float(result["modes"]), "kl": float(result["kl"])}
        self.channel_histograms = result["channel_histograms"].detach().cpu().numpy()
        self.num_modes = 10 ** int(self.channel_histograms.shape[0])
        self.history.append({"g_steps": pl_module.g_steps, "member": 0, "seed": pl_module.seed, **values})
        logged = {f"{self.NAME}/{k}": v for k, v in values.items()}
        self.log_metrics(trainer, pl_module, logged, {k: [v] for k, v in logged.items()})
        self._last_eval = pl_module.g_steps
        return values

    def save_artifacts(self, run_dir: Path, members: Sequence[int] | None = None) -> None:
        """``channel_histograms.npy``: the final evaluation's digit counts per channel, ``(C, 10)``
        (image nets: one member)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.channel_histograms is not None:
            np.save(run_dir / "channel_histograms.npy", self.channel_histograms)

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
        }
