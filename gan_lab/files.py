"""Files written whole, and one writer per folder.

- :func:`write_whole`: a file appears complete or not at all. The bytes go into a temporary file
  *in the same folder* (``.<name>.<random>.tmp``), are flushed and ``fsync``-ed, then ``os.replace``
  moves it onto the name, and the folder is ``fsync``-ed so that the rename survives a power cut.
  A temporary file elsewhere (``$TMPDIR``) would be *copied* across filesystems, and a kill during
  the copy tears the target: the reason Lightning's own checkpoint writer is replaced
  (:class:`gan_lab.callbacks.checkpoint.WholeCheckpointIO`).
- :func:`clean_orphans`: the temporary files a killed writer left behind (only names of the form
  :func:`write_whole` makes), removed when the folder is next claimed.
- :class:`FolderLock`: an exclusive ``flock`` on ``<folder>/.gan-lab.lock`` for as long as the
  process writes the folder; the file names the holder (pid, host, command), and a second writer is
  refused in one line naming it. The kernel drops the lock when the holder exits, however it
  exits (kill -9 included), so a stale lock file never blocks a resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from gan_lab.errors import ConfigError

#: the names of write_whole's temporary files: ``.<target name>.<random>.tmp``
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")

LOCK_FILE = ".gan-lab.lock"

#: the locks this process holds (released by :meth:`FolderLock.scope` when its block ends)
_HELD: list[FolderLock] = []


def fsync_folder(folder: str | os.PathLike) -> None:
    """``fsync`` a folder, so that a rename into it is durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_whole(path: str | os.PathLike, write: Callable[[IO[bytes]], object] | bytes | str) -> Path:
    """Write ``path`` whole: ``write(f)`` (or the bytes / text given) into a temporary file in the
    same folder, fsync, rename onto ``path``, fsync the folder. A kill at any moment leaves either
    the old file or the new one, never a torn one (and at most an orphan temporary file,
    :func:`clean_orphans`).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_whole(folder / "a.txt", "hello").read_text()
    'hello'
    >>> sorted(p.name for p in folder.iterdir())  # no temporary file is left
    ['a.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:  # (by name: a writer sees which file it writes)
            if isinstance(write, str):
                f.write(write.encode())
            elif isinstance(write, bytes | bytearray):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)
    return path


def clean_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of :func:`write_whole` that a killed writer left in ``folder``
    (not recursive; nothing else is touched); return what was removed.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / ".last.ckpt.k3j_x9.tmp").write_bytes(b"torn"), (folder / "last.ckpt").write_bytes(b"ok")
    >>> [p.name for p in clean_orphans(folder)], sorted(p.name for p in folder.iterdir())
    (['.last.ckpt.k3j_x9.tmp'], ['last.ckpt'])
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if p.is_file() and _TEMP.match(p.name):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


class FolderLock:
    """An exclusive lock on a folder for one writing process (see the module doc).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> lock = FolderLock.acquire(folder, "a run")
    >>> FolderLock.holder(folder)["pid"] == os.getpid()
    True
    >>> lock.release()
    """

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder, self._fd = folder, fd

    @classmethod
    def acquire(cls, folder: str | os.PathLike, what: str = "this folder") -> FolderLock:
        """Lock ``folder`` (created if missing) or raise :class:`ConfigError` naming the holder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"{what} {folder} is being written by another process ({describe_holder(cls.holder(folder))}); "
                "wait for it to end, or stop it, then run this again"
            ) from None
        facts = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(facts).encode(), 0)
        lock = cls(folder, fd)
        _HELD.append(lock)
        return lock

    @staticmethod
    @contextlib.contextmanager
    def scope():
        """Release, when the block ends however it ends, every lock acquired inside it (a fit
        called in-process, e.g. by a test, then a resume in the same process)."""
        mark = len(_HELD)
        try:
            yield
        finally:
            for lock in _HELD[mark:]:
                lock.release()

    @staticmethod
    def holder(folder: str | os.PathLike) -> dict:
        """What the lock file of ``folder`` says of its holder ({} when it says nothing readable)."""
        try:
            return json.loads((Path(folder) / LOCK_FILE).read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        """Unlock (the file stays: removing it would race a process about to lock it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self in _HELD:
            _HELD.remove(self)

    def __del__(self) -> None:  # pragma: no cover - the process's end releases it anyway
        with contextlib.suppress(Exception):
            self.release()


def describe_holder(facts: dict) -> str:
    """``pid 123 on host h since T: gan-lab fit ...`` (or what of it the lock file holds).

    >>> describe_holder({"pid": 7, "host": "h", "since": "2026-01-01 00:00:00", "command": "gan-lab fit"})
    'pid 7 on h since 2026-01-01 00:00:00: gan-lab fit'
    >>> describe_holder({})
    'holder unknown'
    """
    if not facts:
        return "holder unknown"
    head = f"pid {facts.get('pid', '?')} on {facts.get('host', '?')} since {facts.get('since', '?')}"
    return head + (f": {facts['command']}" if facts.get("command") else "")
