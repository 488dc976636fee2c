"""``python tests/killing_writer.py fit ...``: ``gan-lab fit`` whose checkpoint writes are cut by a
SIGKILL half-way through, at the ``KILL_AT_WRITE``-th write of a file named ``last.ckpt`` (the
window a real kill -9 must hit by chance, made certain).

Whatever route the bytes take to the checkpoint is cut: ``torch.save`` into a file (the lab's
writer, which writes a temporary file beside the target) and ``shutil.copyfile`` (how a move
across filesystems lands, e.g. fsspec's temporary file in ``$TMPDIR`` moved onto the target:
Lightning's own writer)."""

import io
import os
import shutil
import signal
import sys

import torch

WRITES = {"n": 0}
KILL_AT = int(os.environ.get("KILL_AT_WRITE", "2"))


def _cut(data: bytes, out) -> None:
    """Count a write of last.ckpt; at the chosen one write half of it, then die."""
    WRITES["n"] += 1
    if WRITES["n"] >= KILL_AT:
        out.write(data[: len(data) // 2])
        out.flush()
        os.fsync(out.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    out.write(data)


_save = torch.save


def save(obj, f, *args, **kwargs):
    name = getattr(f, "name", f if isinstance(f, (str, os.PathLike)) else "")
    if "last.ckpt" not in os.path.basename(str(name)):
        return _save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    _save(obj, buffer, *args, **kwargs)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            _cut(buffer.getvalue(), out)
    else:
        _cut(buffer.getvalue(), f)


_copyfile = shutil.copyfile


def copyfile(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) != "last.ckpt":
        return _copyfile(src, dst, *args, **kwargs)
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as out:
        _cut(data, out)
    return dst


if __name__ == "__main__":  # (never on import: pytest's doctest collection imports this file)
    torch.save = save
    shutil.copyfile = copyfile
    from gan_lab.cli import main

    sys.exit(main())
