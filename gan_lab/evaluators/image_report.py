"""How a study shows the image evaluators (their report sections): the protocol paragraphs of
:class:`~gan_lab.evaluators.image.ImageMetricsEvaluator` (feature network and its hash, N real
and N fake, the reference split, the resize) and of
:class:`~gan_lab.evaluators.stacked.StackedModeEvaluator` (the classifier and its held-out
accuracy), their tables, and the figures: a grid of final samples per objective
(``image_samples.png``), the main metric against G steps (``image_fd.png``; ``stacked_modes.png``
and ``stacked_kl.png`` for stacked digits).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from gan_lab.evaluators.section import EvaluatorReport


def distance_name(feature_net: dict) -> str:
    """What the report calls the Fréchet distance: FID only on Inception-v3 features.

    >>> distance_name({"name": "inception_v3"}), distance_name({"name": "vgg16_fc"})
    ('FID', 'FD on vgg16_fc features')
    >>> distance_name({"name": "digit_classifier", "distance_name": "FD on digit-classifier features"})
    'FD on digit-classifier features'

    """
    if "distance_name" in feature_net:
        return str(feature_net["distance_name"])
    return (
        "FID"
        if feature_net.get("name") == "inception_v3"
        else f"FD on {feature_net.get('name', '?')} features"
    )


def _net_facts(net: dict) -> str:
    """One sentence on a feature network: name, weights hash, input handling, accuracy."""
    parts = [f"`{net.get('name', '?')}`"]
    if net.get("weights_hash") or net.get("hash"):
        parts.append(f"weights sha256 `{net.get('weights_hash') or net.get('hash')}`")
    if net.get("dim"):
        parts.append(f"{net['dim']}-d features")
    if net.get("input"):
        parts.append(f"input: {net['input']}")
    trained = net.get("classifier") or {}  # the lab's digit classifier: how it was trained
    if trained.get("accuracy") is not None:
        parts.append(
            f"trained by the lab on {trained.get('n_train', '?')} {trained.get('data', '')} digits "
            f"(seed {trained.get('seed', '?')}), held-out accuracy {100 * float(trained['accuracy']):.1f} % "
            f"on {trained.get('n_test', '?')}"
        )
    return ", ".join(parts)


def _grids_figure(study_dir: Path, runs, path: str, title: str) -> bool:
    """The ``samples_grid.png`` of each configuration's first run folder, side by side."""
    from torchvision.io import decode_image

    from gan_lab.plots import save_image_panels

    panels = []
    for label, run_dir in runs:
        files = sorted(Path(run_dir).glob("**/samples_grid.png"))
        if files:
            panels.append((label, decode_image(str(files[0])).permute(1, 2, 0).numpy()))
    if panels:
        save_image_panels(panels, str(study_dir / path), title)
    return bool(panels)


def _curve(study_dir: Path, runs, history, key: str, path: str, ylabel: str, title: str) -> None:
    from gan_lab.plots import save_curves_figure

    save_curves_figure(
        {label: [r for r in history if r["objective"] == label] for label, _ in runs},
        key,
        str(study_dir / path),
        ylabel=ylabel,
        title=title,
    )


class ImageMetricsReport(EvaluatorReport):
    """The report of :class:`~gan_lab.evaluators.image.ImageMetricsEvaluator`."""

    TABLE: ClassVar[dict[str, tuple[str, float, int]]] = {
        "fd": ("FD", 1.0, 2),
        "kid": ("KID ×10³", 1000.0, 2),
        "inception_score": ("IS", 1.0, 2),
        "precision": ("precision", 1.0, 3),
        "recall": ("recall", 1.0, 3),
        "density": ("density", 1.0, 3),
        "coverage": ("coverage", 1.0, 3),
    }
    HIGHER_IS_BETTER: ClassVar[dict[str, bool]] = {
        "fd": False,
        "kid": False,
        "inception_score": True,
        "precision": True,
        "recall": True,
        "density": True,
        "coverage": True,
    }

    def table(self, metrics, info: dict | None = None) -> dict[str, tuple[str, float, int]]:
        """The FD column named as the report calls it (FID only on Inception-v3); on another feature
        net no IS column (it would be undefined in every row) and KID unscaled (×10³ is the convention
        for Inception features, whose KIDs are ~10⁻³; other features have their own scale)."""
        table = dict(self.TABLE)
        net = (info or {}).get("feature_net") or {}
        if net:
            table["fd"] = (distance_name(net), *table["fd"][1:])
            if net.get("name") != "inception_v3":  # KID ×10³ is Inception's convention; IS needs its logits
                del table["inception_score"]
                table["kid"] = ("KID", 1.0, 2)
        return table

    def protocol(self, info: dict) -> str:
        net = info["feature_net"]
        name = distance_name(net)
        ref = info.get("reference") or {}
        dataset = ref.get("dataset", "?")
        is_text = (
            f"IS over {info['is_splits']} splits of the Inception logits"
            if net.get("name") == "inception_v3"
            else "no IS (it needs Inception's ImageNet logits)"
        )
        return (
            f"Protocol (image metrics): the distance is **{name}**. Feature network: {_net_facts(net)}. "
            f"{info['n_samples']:,} generated images (a fixed noise set, seed {info['noise_seed']}, "
            f"G in eval mode{', G_ema' if info.get('use_ema') else ''}, clamped to [-1, 1]) against "
            f"{info['n_real']:,} real images of `{dataset}` ({info['reference_split']} split, a fixed order; "
            "their features cached by dataset, split, network hash and N). FD: the Fréchet distance of "
            "Gaussians fitted in float64 (Heusel et al. 2017); KID: unbiased MMD² with the cubic kernel, "
            f"mean over {info['kid_subsets']} subsets of {info['kid_subset_size']:,} (Bińkowski et al. 2018), "
            f"{'shown ×10³' if net.get('name') == 'inception_v3' else 'on the scale of these features'}; {is_text}; precision / recall with k = {info['k_pr']} (Kynkäänniemi et al. 2019) "
            f"and density / coverage with k = {info['k_dc']} (Naeem et al. 2020), by exact k-NN radii. "
            "Lower FD and KID are better; recall and coverage fall with mode collapse. Compare FDs only "
            "at equal sample counts and on the same feature network."
        )

    def figures(
        self, study_dir, runs, results, history, info, file_prefix: str = ""
    ) -> list[tuple[str, str]]:
        study_dir = Path(study_dir)
        figures = []
        grids = f"{file_prefix}samples.png"
        if _grids_figure(study_dir, runs, grids, "final samples (first seed of each objective)"):
            figures.append(("final samples", grids))
        if history:
            name = distance_name(info["feature_net"])
            path = f"{file_prefix}fd.png"
            _curve(study_dir, runs, history, "fd", path, name, f"{name}: mean ± s.e. over seeds")
            figures.append((f"{name} against G steps", path))
        return figures


class StackedModeReport(EvaluatorReport):
    """The report of :class:`~gan_lab.evaluators.stacked.StackedModeEvaluator`."""

    TABLE: ClassVar[dict[str, tuple[str, float, int]]] = {
        "modes": ("modes covered", 1.0, 1),
        "kl": ("KL(p̂ ‖ uniform) (nats)", 1.0, 3),
    }
    HIGHER_IS_BETTER: ClassVar[dict[str, bool]] = {"modes": True, "kl": False}
    PHRASES: ClassVar[dict[str, tuple[str, str]]] = {
        "modes": ("covers more modes than", "covers fewer modes than")
    }
    SECTION = "mode coverage"

    def protocol(self, info: dict) -> str:
        k = info["num_modes"]
        return (
            f"Protocol (stacked digits, VEEGAN / PacGAN): {info['n_samples']:,} samples from a fixed noise "
            f"set (seed {info['noise_seed']}); each of the 3 channels is labelled by the digit classifier "
            f"({_net_facts(info['classifier'])}); a mode is a triple (d1, d2, d3), {k:,} in all. Modes "
            f"covered = distinct triples among the samples (best {k:,}); KL(p̂ ‖ uniform over {k:,}) in "
            f"nats (0 is best, ln {k} = {info['kl_max']:.2f} when all samples are one triple)."
        )

    def figures(
        self, study_dir, runs, results, history, info, file_prefix: str = ""
    ) -> list[tuple[str, str]]:
        study_dir = Path(study_dir)
        figures = []
        if history:
            for key, (label, _, _) in self.TABLE.items():
                path = f"{file_prefix}{key}.png"
                _curve(study_dir, runs, history, key, path, label, f"{label}: mean ± s.e. over seeds")
                figures.append((f"{label} against G steps", path))
        return figures
