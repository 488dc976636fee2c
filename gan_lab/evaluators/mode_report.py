"""How a study shows :class:`~gan_lab.evaluators.mode.ModeCoverageEvaluator` (its report
section, :meth:`~gan_lab.evaluators.mode.ModeCoverageEvaluator.report_section`): the table's
headers, the PacGAN / VEEGAN protocol paragraph, ``mode_samples.png`` (final samples of each
objective over the mixture means), ``mode_coverage.png`` (modes covered and HQ % against G steps)
and the workspace's "mode coverage" section."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import ClassVar

from gan_lab.errors import ConfigError
from gan_lab.evaluators.section import REDO, EvaluatorReport


def _natural(path: Path) -> list:
    """A sort key that orders the numbers in a path by value (``seed2`` before ``seed10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def load_samples_array(path: Path):
    """One ``final_samples.npy``: a numeric ``(E, N, 2)`` array, read with ``allow_pickle=False``
    (a file of Python objects is refused, never unpickled).

    Raises:
        ConfigError: one line naming the file: not a numpy file, an object array, another shape.
    """
    import numpy as np

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise ConfigError(f"cannot read {path} ({e.strerror or type(e).__name__}); {REDO}") from None
    if magic != b"\x93NUMPY":  # numpy would take anything else for a pickle (or an .npz)
        raise ConfigError(f"{path} is not a numpy array file (.npy); {REDO}")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ConfigError(
                f"refused {path}: it holds Python objects (an object array), which would run code if "
                f"unpickled; the lab reads numeric arrays only; {REDO}"
            ) from None
        raise ConfigError(f"{path} is not a numpy array file (.npy); {REDO}") from None
    except (OSError, EOFError) as e:
        raise ConfigError(f"cannot read {path} ({type(e).__name__}); {REDO}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under the name
        raise ConfigError(f"{path} is not a numpy array file (.npy); {REDO}")
    if array.dtype.kind not in "fiu" or array.ndim != 3 or array.shape[-1] != 2:
        raise ConfigError(
            f"{path} holds a {array.dtype} array of shape {tuple(array.shape)}, not 2D samples "
            f"(members, N, 2) of numbers; {REDO}"
        )
    return array


def load_run_samples(run_dir: Path):
    """Every ``final_samples.npy`` under ``run_dir`` (seed2 before seed10), joined: ``(seeds, N, 2)``.

    Raises:
        ConfigError: no such file, a file :func:`load_samples_array` refuses, or files of
            different sample counts.
    """
    import numpy as np

    files = sorted(Path(run_dir).glob("**/final_samples.npy"), key=_natural)  # seed2 before seed10
    if not files:
        raise ConfigError(f"no final_samples.npy under the run folder {run_dir}; {REDO}")
    arrays = [load_samples_array(f) for f in files]
    for f, a in zip(files, arrays):
        if a.shape[1] != arrays[0].shape[1]:
            raise ConfigError(
                f"{f} holds {a.shape[1]} samples per member, {files[0]} {arrays[0].shape[1]}; {REDO}"
            )
    return np.concatenate(arrays)


class ModeCoverageReport(EvaluatorReport):
    """The report of mode coverage on toy Gaussian mixtures (``info``: ``mixture``, ``means``,
    ``std``, ``n_samples``, as the evaluator's ``info`` gives them)."""

    TABLE: ClassVar[dict[str, tuple[str, float, int]]] = {
        "modes": ("modes covered", 1.0, 2),
        "hq_fraction": ("HQ %", 100.0, 1),
        "reverse_kl": ("reverse KL (nats)", 1.0, 3),
        "js": ("JS (nats)", 1.0, 3),
    }
    #: changes over the last quarter of training that count as "still moving" (see ``still_moving``):
    #: half a mode, 2 points of HQ %, 0.05 nats of reverse KL, 0.02 nats of JS
    SETTLED: ClassVar[dict[str, float]] = {"modes": 0.5, "hq_fraction": 0.02, "reverse_kl": 0.05, "js": 0.02}
    HIGHER_IS_BETTER: ClassVar[dict[str, bool]] = {
        "modes": True,
        "hq_fraction": True,
        "reverse_kl": False,
        "js": False,
    }
    PHRASES: ClassVar[dict[str, tuple[str, str]]] = {
        "modes": ("covers more modes than", "covers fewer modes than")
    }
    SECTION = "mode coverage"

    def protocol(self, info: dict) -> str:
        k = len(info["means"])
        return (
            f"Protocol (PacGAN / VEEGAN): `{info['mixture']}`, {k} equal-weight Gaussians, std {info['std']}. "
            f"G (eval mode) maps a fixed set of {info['n_samples']:,} noise vectors to samples; each sample "
            "is assigned to its nearest mean and is high quality (HQ) if its distance is below 3 std; a mode "
            "is covered if at least one HQ sample is assigned to it. Reverse KL is KL(p̂ ‖ uniform) and JS is "
            f"JS(p̂, uniform), in nats, for the histogram p̂ of HQ samples over the {k} modes (0 is best; "
            f"ln {k} = {math.log(k):.2f} and ln 2 = 0.69 are the worst); both are undefined for a seed with "
            "no HQ sample, and such seeds are left out of their mean (n shown)."
        )

    def check_files(self, runs) -> None:
        """Every run folder's ``final_samples.npy`` is a numeric ``(E, N, 2)`` array."""
        for _, run_dir in runs:
            load_run_samples(run_dir)

    def figures(
        self, study_dir, runs, results, history, info, file_prefix: str = ""
    ) -> list[tuple[str, str]]:
        """``<prefix>samples.png`` (final samples per objective, from each run folder's
        ``final_samples.npy``) and ``<prefix>coverage.png`` (modes vs G steps)."""
        import numpy as np

        from gan_lab.plots import save_coverage_figure, save_samples_figure

        study_dir = Path(study_dir)
        means = np.array(info["means"])
        panels = {}
        for label, run_dir in runs:
            samples = load_run_samples(run_dir)  # (seeds, N, 2)
            rows = sorted((r for r in results if r["objective"] == label), key=lambda r: r["member"])
            panels[label] = (samples, means, rows)
        samples_png, coverage_png = f"{file_prefix}samples.png", f"{file_prefix}coverage.png"
        save_samples_figure(panels, str(study_dir / samples_png))
        save_coverage_figure(
            {label: [r for r in history if r["objective"] == label] for label, _ in runs},
            str(study_dir / coverage_png),
            num_modes=len(means),
        )
        return [("final samples", samples_png), ("mode coverage", coverage_png)]
