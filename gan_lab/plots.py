"""The figures of runs and study reports (matplotlib, Agg backend): toy sample scatters, coverage
curves, image panels and metric curves against G steps (mean ± s.e. over seeds)."""

from __future__ import annotations

import math
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from gan_lab.metrics import mean_and_se


def _summary(rows: list[dict]) -> str:
    if not rows:
        return ""
    mean, se = mean_and_se(torch.tensor([r["modes"] for r in rows], dtype=torch.float64))
    hq, _ = mean_and_se(torch.tensor([r["hq_fraction"] for r in rows], dtype=torch.float64))
    se_txt = f" ± {se:.1f}" if math.isfinite(se) else ""
    return f"modes {mean:.1f}{se_txt}, HQ {100 * hq:.0f}%"


def _seed_summary(row: dict | None) -> str:
    if row is None:
        return ""
    return f"{row['modes']:.0f} modes, HQ {100 * row['hq_fraction']:.0f}%"


def save_samples_figure(panels: dict, path: str, max_seeds: int = 10) -> list[list[str]]:
    """One row per entry, one panel per seed: each seed's samples over the mixture means, so that one
    seed's collapse shows (an ensemble's mean can hide it).

    Args:
        panels: ``title -> (samples (E, N, 2), means (K, 2), final metric rows)``; the rows, one per
            seed in member order, give each panel's seed and its modes / HQ % (none: no numbers).
        path: where to write the PNG.
        max_seeds: panels per row at most; further seeds are drawn into the last panel, one colour each.

    Returns:
        the panels' titles, one list per entry (``"seed 3: 8 modes, HQ 91%"``).
    """
    n = len(panels)
    seeds = max(
        np.asarray(samples).reshape(-1, *np.asarray(samples).shape[-2:]).shape[0]
        for samples, _, _ in panels.values()
    )
    cols = min(max_seeds, seeds)
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols + 0.6, 2.4 * n), squeeze=False)
    n_samples, titles = 0, []
    for r, (title, (samples, means, final)) in enumerate(panels.items()):
        titles.append([])
        samples, means = np.asarray(samples), np.asarray(means)
        samples = samples[None] if samples.ndim == 2 else samples
        n_samples = samples.shape[1]
        lim = 1.35 * float(np.abs(means).max())
        final = list(final)
        for k, member in enumerate(samples):
            ax = axes[r, min(k, cols - 1)]
            inside = member[np.all(np.isfinite(member), axis=1)]
            ax.scatter(inside[:, 0], inside[:, 1], s=1.5, alpha=0.35, color=f"C{k % 10}")
            row = final[k] if k < len(final) else None
            if k < cols:
                seed = row["seed"] if row is not None and "seed" in row else k
                titles[-1].append(f"seed {seed}: {_seed_summary(row)}")
                ax.set_title(titles[-1][-1], fontsize=7)
        for c in range(cols):
            ax = axes[r, c]
            ax.scatter(means[:, 0], means[:, 1], marker="x", s=20, color="black", lw=0.8)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= samples.shape[0]:
                ax.axis("off")
        axes[r, 0].set_ylabel(f"{title}\n{_summary(final)}", fontsize=8)
    fig.suptitle(
        f"final samples, {n_samples} per seed (one panel per seed); x = the mixture's means", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return titles


def mean_se_curve(rows: list[dict], key: str, scale: float = 1.0) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(steps, mean, se)`` of ``key`` over the seeds at each G step (s.e. 0 where undefined)."""
    by_step = defaultdict(list)
    for r in rows:
        by_step[int(r["g_steps"])].append(float(r[key]) * scale)
    steps = sorted(by_step)
    stats = [mean_and_se(torch.tensor(by_step[s], dtype=torch.float64)) for s in steps]
    return steps, np.array([m for m, _ in stats]), np.nan_to_num(np.array([s for _, s in stats]))


def save_coverage_figure(histories: dict[str, list[dict]], path: str, num_modes: int) -> None:
    """Modes covered and HQ % against G steps: mean over seeds with a ± s.e. band, one line per
    objective. Coverage alone saturates early (one HQ sample covers a mode); HQ % shows quality."""
    fig, (ax_modes, ax_hq) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (name, rows) in enumerate(histories.items()):
        for ax, key, scale in ((ax_modes, "modes", 1.0), (ax_hq, "hq_fraction", 100.0)):
            steps, mean, se = mean_se_curve(rows, key, scale)
            ax.plot(steps, mean, color=f"C{i}", label=name)
            ax.fill_between(steps, mean - se, mean + se, color=f"C{i}", alpha=0.2)
    ax_modes.axhline(num_modes, color="gray", lw=0.8, ls="--")
    ax_modes.set_ylabel(f"modes covered (of {num_modes})")
    ax_modes.set_ylim(0, num_modes + 0.5)
    ax_hq.set_ylabel("high-quality samples (%)")
    ax_hq.set_ylim(0, 100)
    for ax in (ax_modes, ax_hq):
        ax.set_xlabel("generator steps")
    ax_modes.legend(fontsize=8, loc="lower right")
    fig.suptitle("mean ± s.e. over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_image_panels(panels: list[tuple[str, np.ndarray]], path: str, title: str) -> None:
    """Images side by side, one titled panel each.

    Args:
        panels: ``(panel title, image (H, W, C) uint8)``; a one-channel image is drawn in grey.
        path: where to write the PNG.
        title: the figure's title, above the panels.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.9), squeeze=False)
    for ax, (label, img) in zip(axes.flat, panels):
        ax.imshow(img, cmap="gray" if img.shape[-1] == 1 else None, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))  # keep the panel titles below the suptitle
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_image_rows(
    rows: list[tuple[str, list[tuple[str, np.ndarray]]]],
    path: str,
    title: str,
    real: np.ndarray | None = None,
) -> None:
    """Image panels in rows: one row per configuration, one panel per seed, and a real-data panel
    in the first column (first row; the cells below it left empty).

    Args:
        rows: ``(row label, [(panel title, image (H, W, C) uint8), ...])``.
        path: where to write the PNG.
        title: the figure's title.
        real: the real-data grid (H, W, C) uint8, or None (no real column).
    """
    lead = 1 if real is not None else 0
    ncols = lead + max(len(panels) for _, panels in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 3.1 * len(rows) + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if real is not None:
        axes[0, 0].imshow(real, interpolation="nearest")
        axes[0, 0].set_title("real data", fontsize=8)
    for i, (label, panels) in enumerate(rows):
        for j, (panel_title, img) in enumerate(panels):
            ax = axes[i, lead + j]
            ax.imshow(img, cmap="gray" if img.shape[-1] == 1 else None, interpolation="nearest")
            ax.set_title(f"{label}\n{panel_title}" if j == 0 else panel_title, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=1.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_curves_figure(
    histories: dict[str, list[dict]],
    key: str,
    path: str,
    ylabel: str,
    title: str,
    baseline: tuple[str, float] | None = None,
) -> None:
    """``key`` against G steps, one line per configuration: mean over seeds with a ± s.e. band.

    Args:
        histories: ``label -> rows`` (``g_steps`` and ``key`` in each).
        baseline: ``(label, value)`` drawn as a dashed horizontal line (when finite).
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, rows) in enumerate(histories.items()):
        steps, mean, se = mean_se_curve(rows, key)
        if not steps:
            continue
        ax.plot(steps, mean, color=f"C{i}", label=label)
        ax.fill_between(steps, mean - se, mean + se, color=f"C{i}", alpha=0.2)
    if baseline is not None and math.isfinite(baseline[1]):
        ax.axhline(baseline[1], color="gray", lw=1.0, ls="--", label=baseline[0])
    ax.set_xlabel("generator steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
