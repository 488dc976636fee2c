"""Reference statistics of real data, cached on disk by what they were computed from.

FID-style distances compare a generator's features with those of *real* images. The real side is the
same for every run of a study, so it is computed once per (dataset, split, N, feature net and its
weights hash, resize) and kept in a file:

- :func:`reference_features` returns a :class:`ReferenceStats`: ``features`` ``(N, d)`` float32
  (precision/recall and density/coverage need the samples themselves), ``mu`` ``(d,)`` and
  ``sigma`` ``(d, d)`` float64 (the Fréchet distance, Heusel et al. 2017, needs only these).
  ``sigma`` is the unbiased covariance (divisor N − 1), as ``numpy.cov`` and torchmetrics'
  ``FrechetInceptionDistance`` compute it.
- The file is named by a hash of its **key** (:func:`key_hash`), holds the key beside plain
  tensors (``torch.save``; read back with ``torch.load(weights_only=True)``), and is read only
  after the stored key is compared with the wanted one: a file whose key differs (stale or
  foreign) is refused in one line naming the file and the first differing field, never used.
- Under DDP (``torch.distributed`` initialised, world size W) rank r computes the features of
  images r, r + W, r + 2W, … (:func:`rank_share`); the shares are all-gathered and put back in the
  original order (:func:`reassemble`), so every rank holds exactly the one-process result; only
  rank 0 writes the file (:func:`save_atomic`: a temporary file, then ``os.replace``).

The cache helpers here (:func:`default_cache_dir`, :func:`key_hash`, :func:`state_hash`,
:func:`file_hash`, :func:`save_atomic`, :func:`load_keyed`) also serve the lab's digit classifier
(:mod:`gan_lab.metrics.digit_classifier`) and the feature nets' weight hashes.

>>> key_hash({"dataset": "digits", "N": 10}) == key_hash({"N": 10, "dataset": "digits"})
True
>>> rank_share(5, rank=1, world=2)
tensor([1, 3])
>>> shares = [torch.tensor([[0.0], [2.0], [4.0]]), torch.tensor([[1.0], [3.0]])]
>>> reassemble(shares, 5).flatten().tolist()
[0.0, 1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_lab.errors import ConfigError
from gan_lab.files import write_whole

#: the environment variable naming the lab's cache folder (default ``~/.cache/gan_lab``)
CACHE_ENV = "GAN_LAB_CACHE"
#: the ``format`` entry of a reference statistics file
REFERENCE_FORMAT = "gan_lab.reference_stats/1"

# --------------------------------------------------------------------------------------------------
# Cache files: keys, hashes, atomic writes, weights-only reads that check the key
# --------------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$GAN_LAB_CACHE`` when set, else ``~/.cache/gan_lab`` (read at call time)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gan_lab"


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON data (tuples become lists), or a ConfigError naming ``where``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(
        f"cache key field {where} is a {type(value).__name__}, not plain data (str, number, list)"
    )


def plain_key(key: Mapping[str, Any]) -> dict[str, Any]:
    """``key`` as plain JSON data (a dict of str, numbers, bools, None, lists, dicts).

    Raises:
        ConfigError: ``key`` is not a mapping, or a field holds something else (a tensor, a path).
    """
    if not isinstance(key, Mapping):
        raise ConfigError(f"a cache key must be a dict of plain values, got {type(key).__name__}")
    return _plain(key, "key")


def key_hash(key: Mapping[str, Any]) -> str:
    """The first 16 hex digits of the SHA-256 of ``key`` as canonical JSON (sorted keys)."""
    text = json.dumps(plain_key(key), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def state_hash(state: Mapping[str, Tensor]) -> str:
    """The first 16 hex digits of the SHA-256 of a state dict's names, dtypes, shapes and bytes
    (in sorted name order): equal iff the weights are bit-identical.

    >>> a = {"w": torch.zeros(2), "b": torch.ones(1)}
    >>> state_hash(a) == state_hash({"b": torch.ones(1), "w": torch.zeros(2)})
    True
    >>> state_hash(a) == state_hash({"w": torch.tensor([0.0, 1e-30]), "b": torch.ones(1)})
    False
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@lru_cache(maxsize=32)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def file_hash(path: str | os.PathLike) -> str:
    """The first 16 hex digits of the SHA-256 of a file's bytes (as study.json names pretrained
    weights), remembered per (path, size, mtime) so that a large weights file is read once."""
    st = os.stat(path)
    return _file_hash(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` written whole (:func:`gan_lab.files.write_whole`: a temporary file beside
    ``path``, fsync, rename): a reader never sees a half-written file."""
    return write_whole(path, lambda f: torch.save(obj, f))


def first_difference(stored: Any, wanted: Any, where: str = "") -> str | None:
    """The first field (dotted path) where two plain keys differ, with both values, or None.

    >>> first_difference({"N": 10, "net": {"hash": "ab"}}, {"N": 10, "net": {"hash": "cd"}})
    "net.hash: stored 'ab', wanted 'cd'"
    >>> first_difference({"N": 10}, {"N": 10, "split": "train"})
    "split: stored (missing), wanted 'train'"
    """
    if isinstance(stored, Mapping) and isinstance(wanted, Mapping):
        for name in sorted(set(stored) | set(wanted), key=str):
            field = f"{where}.{name}" if where else str(name)
            if name not in stored or name not in wanted:
                s = repr(stored[name]) if name in stored else "(missing)"
                w = repr(wanted[name]) if name in wanted else "(missing)"
                return f"{field}: stored {s}, wanted {w}"
            diff = first_difference(stored[name], wanted[name], field)
            if diff is not None:
                return diff
        return None
    if stored != wanted or type(stored) is not type(wanted):
        return f"{where or 'key'}: stored {stored!r}, wanted {wanted!r}"
    return None


def load_keyed(path: str | os.PathLike, key: Mapping[str, Any], what: str, fmt: str) -> dict[str, Any]:
    """Read a cache file written by this lab (``torch.load(weights_only=True)``) and check that
    it holds ``what`` for exactly ``key``.

    Raises:
        ConfigError: (one line naming the file) it cannot be read as a torch file, it holds
            arbitrary Python objects, it is not a ``fmt`` file, or its stored key differs from
            ``key`` (the first differing field is named). Delete the file to recompute it.
    """
    path = Path(path)
    wanted = plain_key(key)
    fix = "delete it to recompute it"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL [\w.]+", str(e))
        reason = f"it holds arbitrary Python objects ({found.group(0)})" if found else "not a torch file"
        raise ConfigError(f"refused {what} file {path}: {reason}; {fix}") from None
    except Exception as e:  # zip / EOF errors of a truncated or foreign file
        kind = "a zip archive but not a torch file" if zipfile.is_zipfile(path) else "not a torch file"
        raise ConfigError(f"refused {what} file {path}: {kind} ({type(e).__name__}); {fix}") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt or "key" not in payload:
        raise ConfigError(f"refused {what} file {path}: not a {fmt} file written by gan_lab; {fix}")
    diff = first_difference(payload["key"], wanted)
    if diff is not None:
        raise ConfigError(f"refused {what} file {path}: it was computed for another key ({diff}); {fix}")
    return payload


# --------------------------------------------------------------------------------------------------
# Sharding over DDP ranks
# --------------------------------------------------------------------------------------------------


def rank_share(n: int, rank: int, world: int) -> Tensor:
    """Indices of rank ``rank``'s share of ``n`` items: ``rank, rank + world, rank + 2·world, …``."""
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    return torch.arange(rank, n, world)


def reassemble(shares: list[Tensor], n: int) -> Tensor:
    """The ``n`` rows in their original order from the per-rank shares of :func:`rank_share`
    (``shares[r]`` holds rows ``r, r + W, …``; extra padding rows at a share's end are ignored)."""
    world = len(shares)
    out = shares[0].new_empty((n, *shares[0].shape[1:]))
    for r, share in enumerate(shares):
        count = len(range(r, n, world))
        out[r::world] = share[:count]
    return out


def _dist_world() -> tuple[int, int]:
    """(rank, world size) of an initialised default process group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _on_every_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on every DDP rank (all ranks then take the same branch), else ``flag``."""
    _, world = _dist_world()
    if world == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return bool(t.item())


def gather_shares(local: Tensor, n: int) -> Tensor:
    """All-gather each rank's share (of :func:`rank_share`) and return all ``n`` rows in order,
    on every rank. Shares differ in length by at most one: each is padded to ``ceil(n / W)``."""
    _rank, world = _dist_world()
    if world == 1:
        return local
    rows = -(-n // world)
    padded = local.new_zeros((rows, *local.shape[1:]))
    padded[: local.shape[0]] = local
    shares = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(shares, padded)
    return reassemble(shares, n)


# --------------------------------------------------------------------------------------------------
# Reference statistics
# --------------------------------------------------------------------------------------------------


@dataclass
class ReferenceStats:
    """Features of the real images and their Gaussian statistics.

    Attributes:
        features: ``(N, d)`` float32, in the images' order.
        mu: ``(d,)`` float64, the mean of ``features``.
        sigma: ``(d, d)`` float64, their unbiased covariance (divisor N − 1).
        key: the full key the file was computed for (the caller's fields and the feature net's).
        path: the cache file.
    """

    features: Tensor
    mu: Tensor
    sigma: Tensor
    key: dict[str, Any]
    path: Path


def feature_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """``(mu, sigma)`` in float64: the mean ``(d,)`` and the unbiased covariance ``(d, d)``
    ``Σ = (F − μ)ᵀ(F − μ) / (N − 1)`` of ``features`` ``(N, d)`` (``numpy.cov`` / torchmetrics FID).

    >>> mu, sigma = feature_moments(torch.tensor([[0.0, 0.0], [2.0, 4.0]]))
    >>> mu.tolist(), sigma.tolist()
    ([1.0, 2.0], [[2.0, 4.0], [4.0, 8.0]])
    """
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"feature_moments needs (N >= 2, d) features, got shape {tuple(features.shape)}")
    f = features.detach().to(torch.float64)
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def feature_key(feature_net) -> dict[str, Any]:
    """The fields a reference key takes from its feature net: name, weights hash and dimension."""
    return {
        "feature_net": str(feature_net.name),
        "feature_hash": str(feature_net.weights_hash),
        "feature_dim": int(feature_net.dim),
    }


def full_reference_key(feature_net, key: Mapping[str, Any]) -> dict[str, Any]:
    """``key`` (dataset, split, N, resize, …) with the feature net's fields (:func:`feature_key`)
    added; a field of ``key`` that names the net differently is refused (one line)."""
    out = plain_key(key)
    for name, value in feature_key(feature_net).items():
        if name in out and out[name] != value:
            raise ConfigError(
                f"reference key field {name} is {out[name]!r} but the feature net has {value!r}; "
                f"leave {name} out of the key (it is taken from the net)"
            )
        out[name] = value
    return out


def reference_path(cache_dir: str | os.PathLike, key: Mapping[str, Any]) -> Path:
    """``<cache_dir>/reference-<dataset>-<feature_net>-<key hash>.pt`` (the names only for people)."""
    words = [str(key.get(f, "")) for f in ("dataset", "split", "feature_net")]
    slug = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", w) for w in words if w)
    return Path(cache_dir) / f"reference-{slug + '-' if slug else ''}{key_hash(key)}.pt"


def load_reference(path: str | os.PathLike, key: Mapping[str, Any]) -> ReferenceStats:
    """The :class:`ReferenceStats` in ``path``, refused (one line naming the file and the first
    differing field) unless it was computed for exactly ``key`` (a full key:
    :func:`full_reference_key`)."""
    payload = load_keyed(path, key, "reference statistics", REFERENCE_FORMAT)
    try:
        features, mu, sigma = payload["features"], payload["mu"], payload["sigma"]
        d = features.shape[1]
        ok = features.dtype == torch.float32 and mu.shape == (d,) and sigma.shape == (d, d)
    except (KeyError, AttributeError, IndexError):
        ok = False
    if not ok:
        raise ConfigError(f"refused reference statistics file {path}: its tensors are malformed; delete it")
    return ReferenceStats(features, mu, sigma, payload["key"], Path(path))


def _net_device(net: torch.nn.Module) -> torch.device:
    for t in (*net.parameters(), *net.buffers()):
        return t.device
    return torch.device("cpu")


def _batches_of_share(images: Tensor | Iterable, rank: int, world: int, batch_size: int):
    """Yield this rank's images in batches of at most ``batch_size``, and finally the total count.

    ``images`` is a tensor ``(N, C, H, W)`` or an iterable of such batches (a ``(images, labels)``
    tuple gives its first element); item ``i`` of the whole sequence belongs to rank ``i % world``.
    """
    if isinstance(images, Tensor):
        idx = rank_share(images.shape[0], rank, world)
        for start in range(0, len(idx), batch_size):
            yield images[idx[start : start + batch_size]]
        yield images.shape[0]
        return
    seen, pending = 0, []
    for batch in images:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if not isinstance(batch, Tensor) or batch.dim() != 4:
            raise ConfigError(
                f"reference images must come as (B, C, H, W) tensors, got {type(batch).__name__}"
            )
        first = (rank - seen) % world  # the first index of this batch that is ours
        pending.append(batch[first::world])
        seen += batch.shape[0]
        while sum(p.shape[0] for p in pending) >= batch_size:
            joined = torch.cat(pending)
            yield joined[:batch_size]
            pending = [joined[batch_size:]]
    if pending and sum(p.shape[0] for p in pending):
        yield torch.cat(pending)
    yield seen


def compute_features(feature_net, images: Tensor | Iterable, batch_size: int = 256) -> Tensor:
    """``feature_net``'s features ``(N, d)`` float32 (on the CPU) of all ``images``, in order.

    Under DDP each rank computes its :func:`rank_share` and the shares are gathered
    (:func:`gather_shares`), so every rank returns the one-process result.
    """
    rank, world = _dist_world()
    device = _net_device(feature_net)
    parts, total = [], 0
    with torch.no_grad():
        for item in _batches_of_share(images, rank, world, batch_size):
            if isinstance(item, int):
                total = item
                break
            parts.append(feature_net(item.to(device)).to(torch.float32))
    dim = int(feature_net.dim)
    local = torch.cat(parts) if parts else torch.empty(0, dim, device=device)
    return gather_shares(local, total).cpu()


def reference_features(
    feature_net,
    images: Tensor | Iterable,
    key: Mapping[str, Any],
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> ReferenceStats:
    """Reference statistics of real ``images`` under ``feature_net``, from the cache or computed
    once and cached.

    Args:
        feature_net: a feature net (:class:`~gan_lab.metrics.features.FeatureNet` protocol:
            ``name``, ``dim``, ``weights_hash``, ``forward(x) -> (B, dim)``).
        images: real images in ``[-1, 1]``, a tensor ``(N, C, H, W)`` or an iterable of batches (the
            datamodule's first N, in a fixed order).
        key: what the images are: ``dataset``, ``split``, ``N``, and any resize or other choice
            that changes them; the net's name, hash and dimension are added (:func:`full_reference_key`).
        cache_dir: the folder of the cache files; None: ``default_cache_dir() / "reference"``.
        batch_size: images per forward pass.

    Returns:
        :class:`ReferenceStats`; the same on every DDP rank (only rank 0 writes the file).

    Raises:
        ConfigError: a key that is not plain data or contradicts the net, a tensor of images whose
            count differs from ``key["N"]`` (before any work; for an iterable, after counting), a
            cache file of that name computed for another key (stale or foreign: never used).
    """
    full = full_reference_key(feature_net, key)
    if "N" in full and isinstance(images, Tensor) and images.shape[0] != full["N"]:
        raise ConfigError(f"reference key says N={full['N']} but {images.shape[0]} images were given")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "reference"
    path = reference_path(cache_dir, full)
    if _on_every_rank(path.exists(), _net_device(feature_net)):
        return load_reference(path, full)
    features = compute_features(feature_net, images, batch_size)
    if "N" in full and features.shape[0] != full["N"]:
        raise ConfigError(f"reference key says N={full['N']} but the images held {features.shape[0]}")
    mu, sigma = feature_moments(features)
    payload = {"format": REFERENCE_FORMAT, "key": full, "features": features, "mu": mu, "sigma": sigma}
    rank, world = _dist_world()
    if rank == 0:
        save_atomic(payload, path)
    if world > 1:
        torch.distributed.barrier()
    return ReferenceStats(features, mu, sigma, full, path)
