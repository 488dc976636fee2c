"""Reading checkpoints: one weights-only loader for resuming (``gan-lab fit --ckpt_path``) and for
``gan-lab sample``, the check that a checkpoint fits the model about to resume from it, and the
counters a checkpoint records (the writer that writes one whole is
:class:`gan_lab.callbacks.checkpoint.WholeCheckpointIO`: this module imports no Lightning).

The file is read with ``torch.load(weights_only=True)``: tensors and plain data only, so no code
pickled into it runs. A file that names Python objects (``GLOBAL module.name`` in its pickle) is
refused as such; a file that is not a torch file at all (random bytes, a text file) is named as
"not a checkpoint". Every failure is one line (:class:`~gan_lab.errors.ConfigError`).

The lab's own entry of a checkpoint, ``checkpoint["gan_lab"]``, is written by :func:`run_state` and
read back by :func:`restore_run_state` (and its counters by :func:`checkpoint_counters`).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile

import torch

from gan_lab.errors import ConfigError
from gan_lab.seeding import global_rng_state


def _refused_global(message: str) -> str | None:
    """The ``GLOBAL module.name`` torch's weights-only unpickler refused, or None when the error is
    of another kind (e.g. ``Unsupported operand 105``: the bytes are no pickle of ours at all).

    >>> _refused_global("WeightsUnpickler error: Unsupported global: GLOBAL os.system was not an allowed global")
    'GLOBAL os.system'
    >>> _refused_global("WeightsUnpickler error: Unsupported operand 105") is None
    True
    """
    m = re.search(r"GLOBAL [\w.]+", message)
    return m.group(0) if m else None


def load_checkpoint(path: str) -> dict:
    """``torch.load(path, map_location="cpu", weights_only=True)``, refusing with one line a missing
    file, a folder, a file that is not a torch checkpoint, one that holds arbitrary Python objects,
    and one without a Lightning ``state_dict``."""
    if not os.path.exists(path):
        raise ConfigError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"checkpoint {path} is a folder, not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": one line only
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_global(str(e))
        if refused is not None:
            raise ConfigError(
                f"refused {path}: it holds arbitrary Python objects ({refused}), which would run code if "
                "unpickled; gan_lab loads weights only (torch.load weights_only=True)"
            ) from None
        raise ConfigError(f"{path} is not a checkpoint (torch cannot read it as one)") from None
    except Exception as e:  # zip / EOF / key errors of a file that is not a torch file
        kind = "a zip archive, but not a torch checkpoint" if zipfile.is_zipfile(path) else "not a checkpoint"
        raise ConfigError(f"{path} is {kind} ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ConfigError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def state_dict_mismatch(state, shapes, required=None, here: str = "this model") -> str | None:
    """How a state dict does not fit the tensor ``shapes`` (name -> shape) it is meant for, in a few
    words (the first misshapen tensor, else the first missing one, else the first unexpected one),
    or None when it fits. ``required``: the names that must be there (default: all of ``shapes``).

    >>> import torch
    >>> shapes = {"w": (2, 3), "b": (2,)}
    >>> state_dict_mismatch({"w": torch.zeros(2, 3), "b": torch.zeros(2)}, shapes) is None
    True
    >>> state_dict_mismatch({"w": torch.zeros(3, 3), "b": torch.zeros(2)}, shapes)
    'w has shape (3, 3) there but (2, 3) here'
    >>> state_dict_mismatch({"w": torch.zeros(2, 3)}, shapes)
    'it lacks b'
    >>> state_dict_mismatch({**{k: torch.zeros(s) for k, s in shapes.items()}, "x": torch.zeros(1)}, shapes, here="the graph")
    'it has x, which the graph lacks'
    """
    required = set(shapes) if required is None else set(required)
    missing = sorted(required - set(state))
    unexpected = sorted(set(state) - set(shapes))
    wrong = [k for k in shapes if k in state and tuple(state[k].shape) != tuple(shapes[k])]
    if wrong:
        k = wrong[0]
        return f"{k} has shape {tuple(state[k].shape)} there but {tuple(shapes[k])} here"
    if missing:
        return f"it lacks {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    if unexpected:
        return f"it has {unexpected[0]}, which {here} lacks"
    return None


def check_checkpoint_fits(ckpt_path: str, model, ckpt: dict | None = None) -> dict:
    """Refuse a checkpoint whose weights do not fit ``model`` (another config), before any work;
    return the loaded checkpoint (``ckpt``: the file already read, not read again)."""
    ckpt = load_checkpoint(ckpt_path) if ckpt is None else ckpt
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    what = state_dict_mismatch(ckpt["state_dict"], shapes)
    if what is not None:
        raise ConfigError(
            f"checkpoint {ckpt_path!r} was trained with another config ({what}); resume with the config "
            "saved beside it (config.yaml)"
        )
    return ckpt


def checkpoint_counters(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(g_steps, d_steps)`` that a checkpoint records, or None when the file is no valid
    checkpoint (torn by a kill, empty, not ours). Read memory-mapped: a large checkpoint costs little."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        return None
    state = ckpt.get("gan_lab") or {}
    try:
        return int(state.get("g_steps", 0)), int(state.get("d_steps", 0))
    except (TypeError, ValueError):
        return None


def run_state(module) -> dict:
    """``checkpoint["gan_lab"]`` of a :class:`~gan_lab.module.GANModule`: its counters, its random
    streams' counters (the same on every rank: each rank resumes its own keys), the global RNG
    states, the resolved config and the run folder (which a resume continues). Weights, optimizers,
    the data streams and the callbacks are Lightning's."""
    trainer = module._trainer
    return {
        "d_steps": module.d_steps,
        "g_steps": module.g_steps,
        **module.streams.state(),
        "rng": global_rng_state(),
        "config": module.resolved_config,
        "run_dir": trainer.log_dir if trainer is not None and trainer.loggers else None,
    }


def restore_run_state(module, state: dict) -> dict | None:
    """Set the counters and random streams of ``module`` from a :func:`run_state`; return the global
    RNG states it holds (None without), which the module restores at its first batch, after
    Lightning's set-up has drawn from them."""
    module.d_steps, module.g_steps = int(state.get("d_steps", 0)), int(state.get("g_steps", 0))
    module.streams.load(state)
    return state.get("rng")
