"""``gan-lab sample``: samples from a checkpoint's generator, without the training stack.

    gan-lab sample --ckpt runs/fit/checkpoints/last.ckpt --n 64 --out grid.png
    gan-lab sample --ckpt last.ckpt --n 2500 --out ring.png --npz ring.npz --seed 1 --member 2

The checkpoint is read with ``torch.load(weights_only=True)``: tensors and plain data only, so no
code pickled into the file runs (a file that holds other Python objects is refused). G is rebuilt
from the spec the module stores in ``hyper_parameters["generator"]`` (see
:mod:`gan_lab.nets.spec`; a class path that is not one of the lab's generators,
:data:`ALLOWED_GENERATORS`, is refused before anything is imported or built), its weights are the
``G_ema.`` entries of the state_dict (``--ema``, the default when the run kept an EMA) or the ``G.``
entries (``--no-ema``), and it runs in eval mode on the CPU. No dataset, logger or W&B is touched.

Noise: ``z ~ N(0, I)`` of shape ``(n, z_dim)`` from a ``torch.Generator`` seeded ``--seed``; an
ensemble G (``members`` E in its spec) gets the same noise for every member, ``(E, n, z_dim)``,
and ``--member K`` keeps member K's samples only. (``--seed 2024 --n 2500`` gives the fixed noise set
that :class:`~gan_lab.evaluators.ModeCoverageEvaluator` scores by default.)

Output: 2D samples ``(..., n, 2)`` as a scatter plot (one colour per member); images
``(n, C, H, W)`` in [-1, 1] as a grid (one row per member for an ensemble). The format follows
``--out``'s extension, one of :data:`OUTPUT_FORMATS` (``.png``, ``.jpg`` / ``.jpeg``, ``.pdf``,
``.svg``, in any case); ``--out`` defaults to ``grid.png``, or to no figure with ``--png``.
``--npz`` (a name ending in ``.npz``) also writes ``samples``, ``z`` and ``seed`` (and ``member``,
``ema``) as arrays.

``--png DIR`` writes every image sample as its own PNG file, ``DIR/00000.png``, ``00001.png``, ...
(``DIR/member<K>/...`` per member for an ensemble without ``--member``): 8-bit, ``round((x + 1) ·
127.5)`` clamped to 0..255 (:func:`~gan_lab.metrics.features.quantize_uint8`, what Inception reads),
grey (``L``) for one channel and RGB for three, each file written whole
(:func:`~gan_lab.files.write_whole`). That is a folder ``gan-lab metrics`` reads back exactly
(``gan-lab metrics DIR --dataset stacked_digits``). ``DIR`` must be a new or an empty folder: an
existing non-empty one is refused, nothing in it is overwritten.

Bad input (a missing or foreign file, a file with arbitrary Python objects, no generator spec, a
class that is not one of the lab's generators, ``--n < 1``, an output format not in
:data:`OUTPUT_FORMATS`, an ``--npz`` name not ending in ``.npz``, an output folder that cannot be
written, a ``--png`` folder that holds anything, ``--png`` for samples that are not images) ends
with exit code 2 and one line on stderr; the names and folders of the outputs are checked before the
checkpoint is read, and nothing is written before the samples are known to fit every output.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

import torch
from torch import Tensor

from gan_lab.checkpoints import load_checkpoint
from gan_lab.errors import ConfigError, fail, writable_folder
from gan_lab.files import write_whole
from gan_lab.nets.spec import GENERATOR_CLASSES, build_net
from gan_lab.seeding import fixed_noise

#: The classes a checkpoint's generator spec may name (exact ``module.QualName``): the lab's generators.
ALLOWED_GENERATORS: tuple[str, ...] = GENERATOR_CLASSES

#: Extensions ``--out`` may end in (compared in lower case): formats that both figures can be
#: written in, the scatter by matplotlib's ``savefig``, the image grid by Pillow (raster) or
#: matplotlib (vector, :func:`save_grid`).
OUTPUT_FORMATS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
#: the formats :func:`save_grid` writes through matplotlib (Pillow writes no SVG)
VECTOR_FORMATS: tuple[str, ...] = (".pdf", ".svg")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage + message and exit
        raise ConfigError(f"{message} (see gan-lab sample --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gan-lab sample", description="Samples from a checkpoint's generator.")
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint (.ckpt) of a GANModule run")
    p.add_argument("--n", type=int, default=64, help="number of samples (per member); default 64")
    p.add_argument(
        "--out",
        default=None,
        help=f"figure to write, format from its extension ({', '.join(OUTPUT_FORMATS)}); default grid.png "
        "(none with --png)",
    )
    p.add_argument("--npz", default=None, help="also write samples, z and seed to this file (ending in .npz)")
    p.add_argument(
        "--png",
        default=None,
        metavar="DIR",
        help="also write each image sample as DIR/00000.png, ... (a new or empty folder), for gan-lab metrics",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise; default 0")
    p.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample G_ema (default when the checkpoint has one) or G (--no-ema)",
    )
    p.add_argument("--member", type=int, default=None, help="ensemble member K only (default: all)")
    return p


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def generator_from_checkpoint(ckpt: dict, path: str, ema: bool | None) -> tuple[torch.nn.Module, bool]:
    """G rebuilt from its spec with the ``G_ema.`` (``ema``) or ``G.`` weights, in eval mode.
    ``ema=None`` takes G_ema when the checkpoint has one. Returns ``(G, used_ema)``."""
    hparams = ckpt.get("hyper_parameters") or {}
    spec = hparams.get("generator") if isinstance(hparams, dict) else None
    if spec is None:
        raise ConfigError(
            f"{path} holds no generator spec (hyper_parameters['generator']): it was written before "
            "gan_lab stored one, or its generator does not record its arguments (gan_lab.nets.spec.RecordsInit)"
        )
    # first of all: a class that is not one of the lab's generators is refused before it is
    # imported or built (building a class runs its constructor: it may train, download, write)
    G = build_net(spec, allowed_classes=ALLOWED_GENERATORS, what="generator")
    state = ckpt["state_dict"]
    has_ema = any(k.startswith("G_ema.") for k in state)
    if ema and not has_ema:
        raise ConfigError(f"--ema: {path} keeps no G_ema (the run set no model.ema); use --no-ema")
    use_ema = has_ema if ema is None else bool(ema)
    prefix = "G_ema." if use_ema else "G."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ConfigError(f"{path} holds no {prefix}* weights in its state_dict")
    try:
        G.load_state_dict(weights, strict=True)
    except RuntimeError as e:  # missing / unexpected keys, shape mismatch
        raise ConfigError(
            f"{prefix}* weights of {path} do not fit {spec.get('class_path')}: {str(e).splitlines()[0]}"
        ) from None
    return G.eval(), use_ema


def sample_noise(G: torch.nn.Module, n: int, seed: int) -> Tensor:
    """``z (n, z_dim)``, or ``(E, n, z_dim)`` (the same noise for every member) for an ensemble G."""
    z_dim = getattr(G, "z_dim", None)
    if not isinstance(z_dim, int) or z_dim < 1:
        raise ConfigError(
            f"{type(G).__name__} has no noise input (z_dim={z_dim!r}); gan-lab sample draws from "
            "unconditional generators only"
        )
    members = (getattr(G, "init_args", None) or {}).get("members", getattr(G, "members", None))
    return fixed_noise(n, z_dim, seed, members).contiguous()  # (n, z_dim) or (E, n, z_dim)


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def save_scatter(samples: Tensor, path: str, title: str, members: Sequence[int]) -> None:
    """2D samples ``(E, n, 2)`` as a scatter plot, one colour per member."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for k, xy in zip(members, samples.numpy(), strict=True):
        xy = xy[torch.isfinite(torch.from_numpy(xy)).all(1).numpy()]
        ax.scatter(xy[:, 0], xy[:, 1], s=3, alpha=0.5, color=f"C{k % 10}", label=f"member {k}")
    if len(members) > 1:
        ax.legend(fontsize=7, markerscale=3, loc="upper right")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_grid(images: Tensor, path: str, nrow: int) -> None:
    """Images ``(N, C, H, W)`` in [-1, 1] as one grid image, ``nrow`` images per row: PNG / JPEG
    through Pillow (one pixel per pixel), PDF / SVG through matplotlib (the grid embedded at 100 dpi)."""
    from torchvision.utils import make_grid, save_image

    grid = make_grid(images.clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
    if os.path.splitext(path)[1].lower() not in VECTOR_FORMATS:
        save_image(grid, path)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    # (3, H, W) in [0, 1] -> (H, W, 3) uint8, as save_image rounds it (make_grid gives 3 channels)
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    matplotlib.image.imsave(path, pixels)


def check_output_names(out: str | None, npz: str | None) -> None:
    """Refuse an ``--out`` whose extension is not one of :data:`OUTPUT_FORMATS` and an ``--npz``
    that does not end in ``.npz`` (numpy would append one), before anything is read or written
    (``None``: no such output).

    >>> check_output_names("ring.PDF", "ring.npz")
    >>> check_output_names("ring.foo", None)
    Traceback (most recent call last):
    ...
    gan_lab.errors.ConfigError: --out ring.foo: unknown output format '.foo'; valid formats: .png, .jpg, .jpeg, .pdf, .svg
    """
    valid = ", ".join(OUTPUT_FORMATS)
    suffix = os.path.splitext(out)[1] if out is not None else ".png"
    if not suffix:
        raise ConfigError(f"--out {out}: no file extension, so no output format; end it in one of {valid}")
    if suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"--out {out}: unknown output format {suffix!r}; valid formats: {valid}")
    if npz is not None and not npz.lower().endswith(".npz"):
        raise ConfigError(
            f"--npz {npz}: the file name must end in .npz (e.g. {os.path.splitext(npz)[0]}.npz)"
        )


def check_png_folder(folder: str) -> None:
    """Refuse a ``--png`` folder that is a file, holds anything, has no parent folder, or cannot be
    written (before anything is read or written): nothing existing is ever overwritten."""
    path = os.path.abspath(folder)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ConfigError(f"--png {folder} is a file; give a new or an empty folder")
        if os.listdir(path):
            raise ConfigError(
                f"--png {folder} is not empty; give a new or an empty folder (nothing in it is overwritten)"
            )
    elif not os.path.isdir(os.path.dirname(path)):
        raise ConfigError(f"--png {folder}: folder {os.path.dirname(path)} does not exist")
    if not writable_folder(path):
        raise ConfigError(f"--png {folder}: the folder is not writable")


def png_names(n: int) -> list[str]:
    """``00000.png``, ``00001.png``, ... (at least 5 digits, so that the names sort as the samples).

    >>> png_names(2), png_names(100_001)[-1]
    (['00000.png', '00001.png'], '100000.png')
    """
    width = max(5, len(str(n - 1)))
    return [f"{i:0{width}d}.png" for i in range(n)]


def save_pngs(images: Tensor, folder: str, members: Sequence[int] | None) -> int:
    """Images ``(E', n, C, H, W)`` in [-1, 1] as 8-bit PNG files (grey for C = 1, RGB for C = 3),
    each written whole: ``folder/NNNNN.png``, or ``folder/member<K>/NNNNN.png`` per member when
    ``members`` is given. Returns the number of files written."""
    from torchvision.io import encode_png

    from gan_lab.metrics.features import quantize_uint8

    os.makedirs(folder, exist_ok=True)
    written = 0
    for k, block in enumerate(images):  # (n, C, H, W)
        where = folder if members is None else os.path.join(folder, f"member{members[k]}")
        pixels = quantize_uint8(block)  # round((x + 1) · 127.5), clamped
        for name, img in zip(png_names(block.shape[0]), pixels, strict=True):
            write_whole(os.path.join(where, name), bytes(encode_png(img).numpy()))
            written += 1
    return written


def _check_writable(path: str, flag: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{flag} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path} is a folder; give a file name")
    if not writable_folder(folder):
        raise ConfigError(f"{flag} {path}: folder {folder} is not writable")


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def _run(argv: Sequence[str]) -> str:
    args = build_parser().parse_args(list(argv))
    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if args.member is not None and args.member < 0:
        raise ConfigError(f"--member must be >= 0, got {args.member}")
    if args.out is None and args.png is None:
        args.out = "grid.png"
    if args.out is not None:
        _check_writable(args.out, "--out")
    if args.npz:
        _check_writable(args.npz, "--npz")
    if args.png is not None:
        check_png_folder(args.png)
        png = os.path.abspath(args.png)
        if args.out is not None and os.path.abspath(args.out).startswith(png + os.sep):
            raise ConfigError(
                f"--out {args.out} is inside the --png folder, where gan-lab metrics would read it as a "
                "sample; write it elsewhere"
            )
    check_output_names(args.out, args.npz)

    ckpt = load_checkpoint(args.ckpt)
    G, used_ema = generator_from_checkpoint(ckpt, args.ckpt, args.ema)
    z = sample_noise(G, args.n, args.seed)
    ensemble = z.dim() == 3
    if args.member is not None:
        if not ensemble:
            raise ConfigError("--member applies to ensemble generators only; this one has no members")
        if args.member >= z.shape[0]:
            raise ConfigError(
                f"--member {args.member} is out of range: the generator has {z.shape[0]} members"
            )
    with torch.no_grad():
        samples = G(z).float()
    members = list(range(z.shape[0])) if ensemble else [0]
    if args.member is not None:
        samples, z, members = samples[args.member], z[args.member], [args.member]  # (n, ...)
    stacked = samples if (ensemble and args.member is None) else samples.unsqueeze(0)  # (E', n, ...)

    name = "G_ema" if used_ema else "G"
    points = stacked.dim() == 3 and stacked.shape[-1] == 2
    images = stacked.dim() == 5 and stacked.shape[2] in (1, 3)
    if not (points or images):
        raise ConfigError(
            f"cannot draw samples of shape {tuple(samples.shape)}: expected 2D points (..., n, 2) "
            "or images (n, C, H, W) with C = 1 or 3"
        )
    if args.png is not None and not images:
        raise ConfigError(
            f"--png writes image samples; this generator gives 2D points {tuple(samples.shape)}: "
            "use --out (a scatter plot) or --npz"
        )
    written = []
    try:
        if args.out is None:
            pass
        elif points:
            who = f"member {args.member}" if args.member is not None else f"{len(members)} member(s)"
            title = f"{args.n} samples x {who} from {name}, seed {args.seed}\n{os.path.basename(args.ckpt)}"
            save_scatter(stacked, args.out, title, members)
        else:
            save_grid(
                stacked.flatten(0, 1), args.out, nrow=args.n if len(members) > 1 else round(math.sqrt(args.n))
            )
        if args.out is not None:
            written.append(args.out)
        if args.png is not None:
            count = save_pngs(stacked, args.png, members if len(members) > 1 else None)
            written.append(f"{count} PNG files in {args.png}")
        if args.npz:
            import numpy as np

            np.savez(
                args.npz,
                samples=samples.numpy(),
                z=z.numpy(),
                seed=np.int64(args.seed),
                member=np.int64(-1 if args.member is None else args.member),
                ema=np.bool_(used_ema),
            )
            written.append(args.npz)
    except OSError as e:
        raise ConfigError(f"cannot write the output: {e}") from None
    return (
        f"wrote {' and '.join(written)}: {args.n} samples x {len(members)} member(s) from {name}, "
        f"seed {args.seed}"
    )


def sample_main(argv: Sequence[str]) -> int:
    """``gan-lab sample ...``; returns the exit code (0, or 2 with one line on stderr)."""
    try:
        print(_run(argv))
    except ConfigError as e:
        return fail(str(e))
    except SystemExit as e:  # --help
        return int(e.code or 0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(sample_main(sys.argv[1:]))
