"""How a study shows the image evaluators (their report sections): the protocol paragraphs of
:class:`~gan_lab.evaluators.image.ImageMetricsEvaluator` (feature network and its hash, N real
and N fake, the reference split, the resize) and of
:class:`~gan_lab.evaluators.stacked.StackedModeEvaluator` (the classifier and its held-out
accuracy), their tables, and the figures: a grid of final samples per objective
(``image_samples.png``), the main metric against G steps (``image_fd.png``); for stacked digits every
seed's final samples beside real data (``stacked_samples.png``) and each metric against G steps
(``stacked_modes.png``, ``stacked_kl.png``, ...).
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


#: below this share of recognised samples, the stacked report says the samples are mostly not digits
RECOGNISED_MAJORITY = 0.5


def _fraction(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _ordinal(q: float) -> str:
    """``1 -> '1st'``, ``2.5 -> '2.5th'``.

    >>> [_ordinal(q) for q in (1, 2, 3, 5, 11, 2.5)]
    ['1st', '2nd', '3rd', '5th', '11th', '2.5th']
    """
    q = round(q, 6)
    if q != int(q):
        return f"{q:g}th"
    q = int(q)
    suffix = "th" if 10 <= q % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(q % 10, "th")
    return f"{q}{suffix}"


def recognition_sentence(results: list[dict], info: dict) -> str:
    """The stacked report's plain sentence on whether the samples are digits at all: the objectives
    whose mean ``confident_fraction`` over seeds is below :data:`RECOGNISED_MAJORITY` (most samples
    not recognised as digits), or that every objective's samples mostly are. Empty without a
    threshold (a classifier without confidences) or without rows.

    >>> info = {"real": {"threshold": 0.9, "keep": 0.99}}
    >>> rows = [{"objective": "a", "confident_fraction": 0.1}, {"objective": "a", "confident_fraction": 0.2},
    ...         {"objective": "b", "confident_fraction": 0.8}]
    >>> print(recognition_sentence(rows, info))  # doctest: +ELLIPSIS
    **Most samples are not recognised as digits** for a (15 % of samples kept): ...
    >>> print(recognition_sentence(rows[2:], info))  # doctest: +ELLIPSIS
    Most samples are recognised as digits for every objective (kept: b 80 %)...
    """
    real = info.get("real") or {}
    if real.get("threshold") is None or not results:
        return ""
    kept: dict[str, list[float]] = {}
    for r in results:
        kept.setdefault(str(r["objective"]), []).append(_fraction(r.get("confident_fraction")))
    means = {lab: sum(v) / len(v) for lab, v in kept.items()}
    low = [lab for lab, m in means.items() if not m >= RECOGNISED_MAJORITY]  # NaN counts as low
    tau = f"τ = {float(real['threshold']):.3f}"

    def pct(m: float) -> str:
        return f"{100 * m:.0f} %" if m == m else "n/a"

    if low:
        which = ", ".join(f"{lab} ({pct(means[lab])} of samples kept)" for lab in low)
        return (
            f"**Most samples are not recognised as digits** for {which}: fewer than half of their samples "
            f"have all three channels at the classifier's confidence on real digits ({tau}, which "
            f"{100 * float(real.get('keep', 0.99)):.0f} % of real channels reach), so their `modes` count "
            "is the classifier naming a digit for what is not one, not digits drawn; read the "
            "confident modes column instead."
        )
    which = ", ".join(f"{lab} {pct(m)}" for lab, m in means.items())
    return (
        f"Most samples are recognised as digits for every objective (kept: {which}): at least half of "
        f"each objective's samples have all three channels at the classifier's confidence on real digits ({tau})."
    )


class StackedModeReport(EvaluatorReport):
    """The report of :class:`~gan_lab.evaluators.stacked.StackedModeEvaluator`: VEEGAN's count (every
    sample), the confident count (recognised samples only), the real-data row and the classifier's
    confidence on real and generated channels, and a sample figure of every seed beside real data.
    No KID here: the stacked count has none (the study's image section states its KID's features and
    scale)."""

    TABLE: ClassVar[dict[str, tuple[str, float, int]]] = {
        "modes": ("modes covered", 1.0, 1),
        "kl": ("KL(p̂ ‖ uniform) (nats)", 1.0, 3),
        "confident_modes": ("confident modes", 1.0, 1),
        "confident_fraction": ("recognised (%)", 100.0, 1),
        "confidence": ("mean confidence", 1.0, 3),
    }
    HIGHER_IS_BETTER: ClassVar[dict[str, bool]] = {
        "modes": True,
        "kl": False,
        "confident_modes": True,
        "confident_fraction": True,
        "confidence": True,
    }
    PHRASES: ClassVar[dict[str, tuple[str, str]]] = {
        "modes": ("covers more modes than", "covers fewer modes than"),
        "confident_modes": ("covers more recognised modes than", "covers fewer recognised modes than"),
    }
    SECTION = "mode coverage"

    def protocol(self, info: dict) -> str:
        k = info["num_modes"]
        text = (
            f"Protocol (stacked digits, VEEGAN / PacGAN): {info['n_samples']:,} samples from a fixed noise "
            f"set (seed {info['noise_seed']}); each of the 3 channels is labelled by the digit classifier "
            f"({_net_facts(info['classifier'])}); a mode is a triple (d1, d2, d3), {k:,} in all. Modes "
            f"covered = distinct triples among the samples (best {k:,}); KL(p̂ ‖ uniform over {k:,}) in "
            f"nats (0 is best, ln {k} = {info['kl_max']:.2f} when all samples are one triple). "
            "That is VEEGAN's count: every sample is labelled, digit or not."
        )
        real = info.get("real")
        return f"{text} {self.real_text(real)}" if real else text

    def notes(self, results, info: dict) -> str:
        """Whether the samples are digits at all (:func:`recognition_sentence`)."""
        return recognition_sentence(list(results), info)

    @staticmethod
    def real_text(real: dict) -> str:
        """The real-data row and the confidence threshold, in words."""
        text = (
            f"**Real data** ({real['n']:,} of the data set's own triples, {real['split']} split, a fixed "
            f"order): {real['modes']:,.0f} modes covered, KL {real['kl']:.3f} nats"
        )
        if real.get("true_modes") is not None:
            text += (
                f" ({real['true_modes']:,.0f} distinct true triples; the classifier reads "
                f"{100 * real['triple_accuracy']:.1f} % of triples and {100 * real['channel_accuracy']:.1f} % "
                "of channels right)"
            )
        if real.get("threshold") is None:
            return text + "; the classifier gives no confidences, so there is no confident count."
        return text + (
            f"; the classifier's mean confidence (max softmax) on real channels is {real['confidence']:.3f} "
            "(generated: the mean confidence column). Confident count: a sample counts only when all three "
            f"channels reach τ = {real['threshold']:.3f}, the {_ordinal(100 * (1 - real['keep']))} percentile "
            f"of the max softmax on {real['calibration_n']:,} real channels (τ keeps "
            f"{100 * real['keep']:.0f} % of them); real data under this rule: "
            f"{100 * real['confident_fraction']:.1f} % of triples recognised, {real['confident_modes']:,.0f} "
            "confident modes. Recognised (%) = the share of samples kept."
        )

    def figures(
        self, study_dir, runs, results, history, info, file_prefix: str = ""
    ) -> list[tuple[str, str]]:
        study_dir = Path(study_dir)
        figures = []
        samples = f"{file_prefix}samples.png"
        if _seed_samples_figure(study_dir, runs, results, samples):
            figures.append(("final samples of every seed, beside real data", samples))
        if history:
            for key, (label, _, _) in self.TABLE.items():
                path = f"{file_prefix}{key}.png"
                _curve(study_dir, runs, history, key, path, label, f"{label}: mean ± s.e. over seeds")
                figures.append((f"{label} against G steps", path))
        return figures


def _seed_folders(run_dir: Path, seeds: list[int]) -> list[tuple[int | None, Path]]:
    """The run folders of a configuration's seeds: ``<label>/seed<s>`` beside the first one (one run
    per seed), or the one folder (an ensemble)."""
    run_dir = Path(run_dir)
    if run_dir.name.startswith("seed") and seeds:
        return [(s, run_dir.parent / f"seed{s}") for s in seeds]
    return [(None, run_dir)]


def _seed_samples_figure(study_dir: Path, runs, results, path: str) -> bool:
    """One row per configuration, one panel per seed (``stacked_samples.png``, titled with the share
    of its samples recognised), a real-data grid (``stacked_real.png``) in the first column."""
    from torchvision.io import decode_image

    from gan_lab.plots import save_image_rows

    def read(p: Path):
        return decode_image(str(p)).permute(1, 2, 0).numpy()

    rows, real = [], None
    for label, run_dir in runs:
        own = [r for r in results if r["objective"] == label]
        seeds = sorted({int(r["seed"]) for r in own})
        panels = []
        for seed, folder in _seed_folders(run_dir, seeds):
            if not (folder / "stacked_samples.png").is_file():
                continue
            title = "samples" if seed is None else f"seed {seed}"
            kept = [
                _fraction(r.get("confident_fraction")) for r in own if seed is None or int(r["seed"]) == seed
            ]
            if kept and kept[0] == kept[0]:
                title += f" · {100 * kept[0]:.0f} % recognised"
            panels.append((title, read(folder / "stacked_samples.png")))
            if real is None and (folder / "stacked_real.png").is_file():
                real = read(folder / "stacked_real.png")
        if panels:
            rows.append((label, panels))
    if not rows:
        return False
    save_image_rows(rows, str(study_dir / path), "final samples per seed (each row one objective)", real)
    return True
