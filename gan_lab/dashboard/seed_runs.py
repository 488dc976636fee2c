"""One W&B run per seed: :class:`SeedRunsLogger`, a Lightning logger over the runs of one fit.

A fit of an E-member seed ensemble trains E seeds in one process; W&B compares runs, so the
logger opens one W&B run per member (``wandb.init(reinit="create_new")``), member ``k`` being the
run of seed ``seed + k`` (docs/DESIGN.md, the seed ensemble). Every run has:

- config: the run's facts (:func:`gan_lab.dashboard.facts.run_facts`: ``study``, ``objective``,
  ``loss``, ``regularizers``, ``n_critic``, ``data``), its own ``seed`` and ``member``, the
  resolved config (``config``), the optimizers (``optimizer_g``, ``optimizer_d``) and the data set
  (``dataset``) taken from it, and the module's hyper-parameters;
- group (the study, or the data for a plain fit), tags (objective and regularizers), job type
  ``seed``;
- history keyed by ``g_steps``: ``define_metric("*", step_metric="g_steps")``; each row carries
  ``g_steps``;
- summary: W&B's last values, and at the end of a study the final metrics (:meth:`set_summary`,
  the values of ``results.csv``); a diverged run is marked (:meth:`mark_diverged`: summary
  ``status`` and ``diverged_at_g_steps``, tag ``diverged``, exit code 1: state ``failed``).

What reaches a member's run: :meth:`log_member_metrics` (values per member: the module's loss
terms, the evaluators' metrics and media). :meth:`log_metrics` (Lightning's path: the means over
members) is logged only when there is one run, where the mean is that seed's value.

Run ids are ``<base>m<k>`` (one random base per fit), so that a resumed fit finds each member's
run again in the run folder (:func:`gan_lab.runs.wandb_run_ids`). Inside a W&B sweep
(``WANDB_SWEEP_ID`` set) a fit is one W&B run: ensembles are refused there. Each logger also
writes ``wandb-runs.json`` into its folder (run ids, seeds, the keys and media logged) for
``gan-lab dashboard``.

**Complete files.** ``run.finish()`` does not wait for W&B to write the run's file: it sends the
exit record, waits for W&B's answer, then only *tells* W&B's service process that the run is
finished (``ServiceConnection.inform_finish`` publishes, it does not wait), and the service writes
the records it holds in memory (everything, for a run of less than 32 KiB) when it then closes the
run. A reader right after ``finish()`` could find a file of 7 bytes (its header). :meth:`finish`
therefore returns only once every run's transaction log (``run.settings.sync_file``) holds its exit
record (:func:`wait_until_written`): then the file is complete up to its last record.

**History that survives a kill.** W&B's service flushes a run's file only every
``x_transaction_log_flush_interval`` seconds (15), when a 32 KiB block fills, and when the run is
finished; none of its public calls flushes it, and a service whose process was killed exits
without writing what it held. So the lab keeps the history itself, durably, as ``metrics.csv`` does:
:class:`HistoryJournal` in ``<run folder>/wandb-journal/``. Every row logged is also journaled; at
every checkpoint (:meth:`SeedRunsLogger.after_save_checkpoint`, called by Lightning's
ModelCheckpoint and by :class:`gan_lab.callbacks.PreemptionCheckpoint`) the rows logged since the
last checkpoint are written whole (one file, fsync, rename; images as PNG files), and so are the
rows Lightning logs for the checkpoint's own batch right after it. A resumed fit
(``resume_at``: the checkpoint's ``(g_steps, d_steps)``) then makes the runs read as if the fit had
never stopped: the W&B files of every earlier session that did not end cleanly (killed, crashed,
or one that went past the checkpoint) are set aside (``run-<id>.wandb`` renamed to
``run-<id>.wandb.superseded``: ``wandb sync`` and the lab's readers skip it, nothing is deleted),
and the journaled rows those files should have held, up to the checkpoint, are logged again into
the resumed runs before anything new; files of sessions that ended cleanly within the checkpoint
are kept as they are. Every row of the history is then in exactly one file, once. (Online runs
stream to the server as they log; their sessions are neither set aside nor replayed.)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
import time
import weakref
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from gan_lab.dashboard.facts import config_facts
from gan_lab.dashboard.media import MediaSettings
from gan_lab.errors import ConfigError
from gan_lab.files import clean_orphans, write_whole

#: the job type of a per-seed run (the dashboard's runset selects it); a study's report run is REPORT_JOB
SEED_JOB, REPORT_JOB = "seed", "report"

#: the file each logger writes into its folder: what it logged (read by gan-lab dashboard)
RECORD_FILE = "wandb-runs.json"

#: the folder, beside ``wandb/``, of each run folder's durable history (:class:`HistoryJournal`)
JOURNAL_DIR = "wandb-journal"

#: the suffix a set-aside W&B transaction log gets (``run-<id>.wandb.superseded``)
SUPERSEDED = ".superseded"

#: the loggers whose runs are open, for :func:`finish_open_runs` (a fit stopped by a signal)
_OPEN: weakref.WeakSet = weakref.WeakSet()


def plain(value):
    """``value`` as JSON data (tuples as lists, anything else JSON cannot hold as its ``str``).

    >>> plain({"betas": (0.5, 0.9), "f": print})
    {'betas': [0.5, 0.9], 'f': '<built-in function print>'}
    """
    return json.loads(json.dumps(value, default=str))


def member_id(base: str, member: int) -> str:
    """The W&B run id of ``member`` (``<base>m<member>``).

    >>> member_id("ab12cd34", 3)
    'ab12cd34m3'
    """
    return f"{base}m{member}"


# -- W&B's transaction log: is a finished run's file complete? ----------------------------------------

#: ``run-<id>.wandb`` is LevelDB's log format: a 7-byte header (``:W&B``, magic, version), then
#: 32 KiB blocks of chunks, each ``<crc32 u32, length u16, type u8>`` and its bytes (type 1: a whole
#: record; 2 / 3 / 4: first / middle / last piece; the crc covers the type byte and the bytes); each
#: record a ``wandb.proto.wandb_internal_pb2.Record``.
_BLOCK, _CHUNK, _HEAD = 32 * 1024, 7, 7


def _tail_records(path: str | os.PathLike) -> list[bytes]:
    """The whole records that start in the last two blocks of a transaction log, in order. A chunk
    not (yet) written whole (cut short, or its crc wrong) ends the list."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, ((size - 1) // _BLOCK - 1) * _BLOCK)  # the last block and the one before
        f.seek(start)
        data = f.read()
    if start == 0 and data[:4] != b":W&B":
        return []
    records: list[bytes] = []
    pieces: bytes | None = None
    pos = _HEAD if start == 0 else 0
    while pos + _CHUNK <= len(data):
        left = _BLOCK - (start + pos) % _BLOCK
        if left < _CHUNK:  # a block's last bytes, too few for a chunk: zeros
            pos += left
            continue
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if crc == length == kind == 0:  # the zeroed rest of a block
            pos += left
            continue
        body = data[pos + _CHUNK : pos + _CHUNK + length]
        if len(body) < length or zlib.crc32(bytes([kind]) + body) != crc:
            break
        pos += _CHUNK + length
        if kind == 1:
            records.append(body)
            pieces = None
        elif kind == 2:
            pieces = body
        elif kind == 3 and pieces is not None:
            pieces += body
        elif kind == 4 and pieces is not None:
            records.append(pieces + body)
            pieces = None
    return records


def transaction_log_complete(path: str | os.PathLike) -> bool:
    """Whether W&B's transaction log of a finished run holds the run's exit record (the last record
    W&B writes; the file is written in order, so everything before it is there too)."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    try:
        records = _tail_records(path)
    except OSError:
        return False
    for payload in reversed(records):
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except DecodeError:
            continue
        if record.WhichOneof("record_type") == "exit":
            return True
    return False


def wait_until_written(paths: Sequence[str | os.PathLike], timeout: float = 120.0) -> list[str]:
    """Wait until W&B has written the transaction log of each finished run in ``paths`` to its end
    (:func:`transaction_log_complete`), at most ``timeout`` seconds; return those it has not.

    W&B's service writes a run's file when it closes the run, after ``run.finish()`` has returned
    (see the module doc), and says nothing when it is done: the file itself is watched."""
    pending = [str(p) for p in paths]
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        pending = [p for p in pending if not transaction_log_complete(p)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(delay)
        delay = min(2 * delay, 0.05)


def finish_written(runs: Sequence, exit_code: int | None = None) -> list[str]:
    """``run.finish(exit_code)`` for each W&B run, then wait until W&B has written each one's file
    to its end (:func:`wait_until_written`); return (and warn of) the files it has not written.
    Code that reads a run's file after finishing it, or lets another process read it, finishes
    the run with this."""
    for run in runs:
        run.finish(exit_code=exit_code)
    unwritten = wait_until_written([f for f in map(_transaction_log, runs) if f is not None])
    if unwritten:
        rank_zero_warn(f"W&B has not finished writing {', '.join(unwritten)}: these runs may be incomplete")
    return unwritten


def _transaction_log(run) -> str | None:
    """The transaction log a W&B run writes, or None (W&B disabled, or told not to keep one)."""
    settings = run.settings
    if settings.mode == "disabled" or getattr(settings, "x_skip_transaction_log", False):
        return None
    return settings.sync_file


# -- the journal: the history, durable at every checkpoint -------------------------------------------


def _position(row: Mapping) -> list:
    """Where a history row was logged: ``[g_steps, d_steps]`` (None where the row has no such key)."""
    return [row.get("g_steps"), row.get("d_steps")]


def _within(position, limit) -> bool:
    """Whether a row at ``position`` was logged at or before the checkpoint at ``limit`` (None: no
    limit), as :func:`gan_lab.runs.RunCSVLogger` keeps ``metrics.csv`` rows.

    >>> _within([3, 9.0], [3, 9]), _within([3, None], [3, 9]), _within([4, 12.0], [3, 9])
    (True, True, False)
    >>> _within([3, 10.0], [3, 9]), _within([4, 12.0], None)
    (False, True)
    """
    if limit is None:
        return True
    return all(value is None or bound is None or value <= bound for value, bound in zip(position, limit))


def _last(position, last):
    """The furthest of two positions, coordinate by coordinate (None: unknown)."""
    if last is None:
        return list(position)
    return [v if b is None else b if v is None else max(v, b) for v, b in zip(position, last)]


def _cutoffs(sessions: Sequence[Mapping], limit: list) -> dict[str, list]:
    """``sid -> `` the checkpoint each session's rows count up to: the earliest checkpoint any
    later session resumed from, or ``limit`` (the run went on from there)."""
    cutoff, running = {}, limit
    for s in reversed(sessions):
        cutoff[s["sid"]] = running
        running = _earliest(running, s.get("resume_at"))
    return cutoff


def _earliest(a, b):
    """The earlier of two checkpoint positions (None: no checkpoint)."""
    if a is None or b is None:
        return b if a is None else a
    return list(min(tuple(a), tuple(b)))


class HistoryJournal:
    """The history of a fit's per-seed runs, kept durably in ``<save_dir>/wandb-journal/`` (see the
    module doc): what W&B's own file does not keep through a kill.

    One *session* is one process's runs of the fit. The journal holds, per session, a record
    (``<sid>.session.json``: where its W&B files are, the checkpoint it resumed from, the sessions
    whose rows it logged again, whether it ended cleanly, the furthest row it logged) and its rows
    (``<sid>.<n>.rows.json``: ``{"k": member, "row": {key: value}, "media": {key: [png, caption]}}``,
    one file per durable write, made one ``<sid>.rows.json`` when the session ends; images in
    ``media/``). Every file is written whole.
    """

    def __init__(self, save_dir: str | os.PathLike) -> None:
        self.root = Path(save_dir)
        self.folder = self.root / JOURNAL_DIR
        self.media_dir = self.folder / "media"
        self.sid = f"{time.time_ns():020d}-{secrets.token_hex(3)}"  # sessions sort by their start
        self.record: dict = {
            "sid": self.sid,
            "resume_at": None,
            "replayed": [],
            "adopted": [],
            "runs": {},
            "offline": True,
            "clean": False,
            "last": None,
            "superseded": False,
        }
        self._pending: list[dict] = []
        self._images: list[tuple[str, object]] = []
        self._writes = 0
        self._images_n = 0

    # -- what is there --------------------------------------------------------------------------------

    def sessions(self) -> list[dict]:
        """The records of the sessions journaled so far, oldest first (this one excluded)."""
        found = []
        for path in sorted(self.folder.glob("*.session.json")):
            record = json.loads(path.read_text())
            if record.get("sid") != self.sid:
                found.append(record)
        return found

    def rows(self, sid: str) -> list[dict]:
        """The rows session ``sid`` journaled, in the order they were logged (from its one rows
        file once the session ended, else from its parts)."""
        whole = self.folder / f"{sid}.rows.json"
        parts = [whole] if whole.is_file() else sorted(self.folder.glob(f"{sid}.*.rows.json"))
        rows: list[dict] = []
        for path in parts:
            rows += json.loads(path.read_text())
        return rows

    def _transaction_logs(self) -> list[str]:
        """Every W&B transaction log in the run folder (relative paths; not through ``latest-run``,
        W&B's link to the newest session's folder)."""
        found = self.root.glob("wandb/*/*.wandb")
        return sorted(
            str(p.relative_to(self.root)) for p in found if not (p.parent.is_symlink() or p.is_symlink())
        )

    # -- a session's life -----------------------------------------------------------------------------

    def begin(
        self, resume_at: Sequence[float] | None, history_from: str | os.PathLike | None = None
    ) -> list[dict]:
        """Start this session; for a fit resumed from the checkpoint at ``resume_at``
        (``(g_steps, d_steps)``), set aside the W&B files of the sessions that did not end cleanly
        within it and return the rows to log again (each with ``"media"`` as absolute paths), in
        the order they were logged. None: a new fit (nothing is set aside or logged again).

        ``history_from``: the run folder a new branch was taken from (its own folder starts
        empty): the branch's runs start with that run's history up to ``resume_at``, copied into
        this journal first (the original is only read)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_orphans(self.folder)
        clean_orphans(self.media_dir)
        sessions = self.sessions()
        replay: list[dict] = []
        if resume_at is not None:
            limit = [float(v) for v in resume_at]
            self.record["resume_at"] = limit
            if not sessions:  # a run folder from before the journal: its files stay as they are
                self.record["adopted"] = self._transaction_logs()
                if history_from is not None and Path(history_from).resolve() != self.root.resolve():
                    sessions = [self._inherit(Path(history_from), limit)]
            replay = self._plan(sessions, limit)
        self.write_record()
        return replay

    def history(self, limit: list) -> list[dict]:
        """The run's history as if it had never stopped, up to the checkpoint at ``limit``: each
        session's own rows up to the checkpoint the run went on from after it."""
        sessions = self.sessions()
        cutoff = _cutoffs(sessions, limit)
        return [
            e for s in sessions for e in self.rows(s["sid"]) if _within(_position(e["row"]), cutoff[s["sid"]])
        ]

    def _inherit(self, folder: Path, limit: list) -> dict:
        """Copy the history of the run in ``folder`` up to ``limit`` (rows and images) into this
        journal, as a session of its own that no W&B file holds (it is logged again)."""
        source = HistoryJournal(folder)
        rows = source.history(limit)
        for entry in rows:
            for name, _ in entry["media"].values():
                if (source.media_dir / name).is_file():
                    write_whole(self.media_dir / name, (source.media_dir / name).read_bytes())
        sid = f"{0:020d}-inherited"  # before every session of this folder
        write_whole(self.folder / f"{sid}.rows.json", json.dumps(rows))
        record = {"sid": sid, "inherited_from": str(folder), "superseded": True, "offline": True}
        write_whole(self.folder / f"{sid}.session.json", json.dumps(record, indent=1))
        return record

    def _plan(self, sessions: list[dict], limit: list) -> list[dict]:
        cutoff = _cutoffs(sessions, limit)
        # Sessions that ended cleanly within their cutoff keep their files, and so do the sessions
        # they logged again; from the first one that did not, every file is set aside.
        held: set[str] = set()
        keep = {f for s in sessions for f in s.get("adopted", [])}
        broken: list[dict] = []
        for s in sessions:
            if s.get("superseded"):
                continue
            online = not s.get("offline", True)  # its rows went to the server as it logged them
            ended_within = s.get("clean") and _within(s.get("last") or [], cutoff[s["sid"]])
            if online or (ended_within and not broken):
                held |= {s["sid"], *s.get("replayed", [])}
                keep |= set(s.get("runs", {}).values())
            else:
                broken.append(s)
        for rel in self._transaction_logs():
            if rel not in keep:
                path = self.root / rel
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, path.with_name(path.name + SUPERSEDED))
        for s in broken:
            s["superseded"] = True
            write_whole(self.folder / f"{s['sid']}.session.json", json.dumps(s, indent=1))
        again = [s for s in sessions if s["sid"] not in held]
        self.record["replayed"] = [s["sid"] for s in again]
        rows = []
        for s in again:
            for entry in self.rows(s["sid"]):
                if _within(_position(entry["row"]), cutoff[s["sid"]]):
                    media = {
                        key: [str(self.media_dir / name), caption]
                        for key, (name, caption) in entry["media"].items()
                    }
                    rows.append({**entry, "media": media})
        return rows

    def opened(self, files: Mapping[int, str | None], offline: bool) -> None:
        """Record this session's W&B files (member -> transaction log) once the runs are open."""
        runs = {}
        root = os.path.realpath(self.root)
        for k, path in files.items():
            if path is not None:
                rel = os.path.relpath(os.path.realpath(path), root)
                runs[str(k)] = rel if not rel.startswith("..") else str(path)
        self.record.update(runs=runs, offline=bool(offline))
        self.write_record()

    def add(self, k: int, row: Mapping, media: Mapping[str, tuple] | None = None) -> None:
        """Journal a row logged into member ``k``'s run (scalars, and ``key -> (uint8 image,
        caption)``); it is durable at the next :meth:`flush`."""
        import numpy as np

        names = {}
        for key, (image, caption) in (media or {}).items():
            name = f"{self.sid}-{self._images_n:06d}.png"
            self._images_n += 1
            self._images.append((name, np.array(image, dtype=np.uint8, copy=True)))  # as it was logged
            names[key] = [name, caption]
        self._pending.append({"k": int(k), "row": dict(row), "media": names})
        self.record["last"] = _last(_position(row), self.record["last"])

    def flush(self) -> None:
        """Make every row journaled so far durable: images first, then the rows (one file written
        whole), then the session's furthest position."""
        if not self._pending:
            return
        for name, image in self._images:
            write_whole(self.media_dir / name, _png(image))
        write_whole(self.folder / f"{self.sid}.{self._writes:06d}.rows.json", json.dumps(self._pending))
        self._writes += 1
        self._pending, self._images = [], []
        self.write_record()

    def close(self, clean: bool) -> None:
        """End this session: its rows durable, in one file (its parts then removed: while both are
        there the one file is read), and whether its W&B files are complete (``clean``)."""
        self.flush()
        if self._writes > 1:
            parts = sorted(self.folder.glob(f"{self.sid}.*.rows.json"))
            write_whole(self.folder / f"{self.sid}.rows.json", json.dumps(self.rows(self.sid)))
            for path in parts:
                path.unlink()
        self.record["clean"] = bool(clean)
        self.write_record()

    def write_record(self) -> None:
        write_whole(self.folder / f"{self.sid}.session.json", json.dumps(self.record, indent=1))


def _png(image) -> bytes:
    """A uint8 ``(H, W, 3)`` image (numpy array or tensor) as PNG bytes."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class SeedRunsLogger(Logger):
    """Lightning logger over one W&B run per seed of a fit (see the module doc).

    Args:
        save_dir: the run folder; the runs are written into ``save_dir/wandb``, their durable
            history into ``save_dir/wandb-journal``.
        seeds: the seed of each member's run (member k: ``seed + k``).
        facts: the config every run shares (:func:`gan_lab.dashboard.facts.run_facts`).
        member_facts: each member's own facts, over ``facts`` (a mixed ensemble's ``objective``
            and ``loss``: :func:`gan_lab.dashboard.facts.member_facts`); None: none.
        group, name: W&B group; run names are ``<name>/seed<s>`` (``<name>/<objective>/seed<s>``
            with a member's own objective); a member's own objective is also one of its tags.
        tags: the runs' tags (objective, regularizers).
        project: the W&B project.
        ids: member -> run id of runs to continue (a resumed fit); the others get new ids.
        media: what media the evaluators log (:class:`~gan_lab.dashboard.media.MediaSettings`).
        resume_at: ``(g_steps, d_steps)`` of the checkpoint a resumed fit continues from: the
            history the runs lost past it is set aside and what they lost before it is logged
            again from the journal (see the module doc); None: a new fit.
        history_from: the run folder a new branch (``--branch true``, a new run folder and new
            runs) was taken from at ``resume_at``: the runs start with that run's history up to
            there, as the branch's ``metrics.csv`` does.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        seeds: Sequence[int],
        facts: Mapping | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        project: str = "gan_lab",
        ids: Mapping[int, str] | None = None,
        media: MediaSettings | None = None,
        member_facts: Sequence[Mapping] | None = None,
        resume_at: Sequence[float] | None = None,
        history_from: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        # absolute: W&B's service resolves a relative dir against its own working directory, the
        # process's when the service started, which need not be this one's now
        self._save_dir = os.path.abspath(save_dir)
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ConfigError("SeedRunsLogger needs at least one seed")
        self.member_facts = (
            [plain(dict(f)) for f in member_facts] if member_facts else [{} for _ in self.seeds]
        )
        if len(self.member_facts) != len(self.seeds):
            raise ConfigError(f"{len(self.member_facts)} members' facts for {len(self.seeds)} seeds")
        if len(self.seeds) > 1 and os.environ.get("WANDB_SWEEP_ID"):
            raise ConfigError(
                f"a W&B sweep run is one run, but this fit trains {len(self.seeds)} seeds as ensemble members; "
                "sweep with --model.generator.init_args.members=1 --model.discriminator.init_args.members=1 "
                "and model.seed as a swept parameter"
            )
        self.facts = plain(dict(facts or {}))
        self.group, self.run_name, self.tags = group, name, list(tags)
        self.project = project
        self.media = media if media is not None else MediaSettings()
        self.resume_at = None if resume_at is None else [float(v) for v in resume_at]
        self.history_from = history_from
        self._ids = dict(ids or {})
        self._runs: list | None = None
        self._journal: HistoryJournal | None = None
        self._write_through = False
        self._finished = False
        self._keys: set[str] = set()
        self._media_keys: set[str] = set()
        self.status = "running"

    # -- Lightning's Logger interface -------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.run_name or "seed_runs"

    @property
    def version(self) -> str:
        return ",".join(self.ids)

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def members(self) -> int:
        return len(self.seeds)

    @property
    def ids(self) -> list[str]:
        """Each member's run id (fixed before the runs open)."""
        if len(self._ids) < self.members:
            base = secrets.token_hex(4)
            for k in range(self.members):
                self._ids.setdefault(k, member_id(base, k))
        return [self._ids[k] for k in range(self.members)]

    @property
    @rank_zero_experiment
    def experiment(self) -> list:
        """The W&B runs, one per member (opened at first use, a resumed fit's lost history logged
        again first), on global rank 0; another DDP rank gets Lightning's dummy (Lightning touches
        every logger's ``experiment`` on every rank at set-up: no rank but 0 opens a run)."""
        if self._runs is None:
            if self._finished:
                raise RuntimeError("SeedRunsLogger: its W&B runs are finished; log before finish()")
            journal = HistoryJournal(self._save_dir)
            replay = journal.begin(self.resume_at, self.history_from)
            runs = [self._open(k) for k in range(self.members)]
            files = {k: _transaction_log(run) for k, run in enumerate(runs)}
            journal.opened(files, offline=all(run.settings.mode in ("offline", "dryrun") for run in runs))
            self._runs, self._journal = runs, journal
            _OPEN.add(self)
            self._replay(replay)
        return self._runs

    def member_name(self, k: int) -> str:
        """Member ``k``'s run name: ``<name>/seed<s>``, or ``<name>/<objective>/seed<s>`` when the
        member has an objective of its own."""
        own = self.member_facts[k].get("objective")
        return f"{self.run_name}/{own + '/' if own else ''}seed{self.seeds[k]}"

    def _open(self, k: int):
        import wandb

        seed, own = self.seeds[k], self.member_facts[k]
        Path(self._save_dir).mkdir(parents=True, exist_ok=True)
        sweep = bool(os.environ.get("WANDB_SWEEP_ID"))  # the agent chose the run's id
        run = wandb.init(
            dir=self._save_dir,
            project=(os.environ.get("WANDB_PROJECT") or self.project) if sweep else self.project,
            group=self.group,
            job_type=SEED_JOB,
            name=self.member_name(k) if self.run_name else None,
            tags=list(dict.fromkeys([*([own["objective"]] if "objective" in own else []), *self.tags])),
            config={**self.facts, **own, "seed": seed, "member": k},
            reinit="create_new",
            **({} if sweep else {"id": self.ids[k], "resume": "allow"}),
        )
        self._ids[k] = run.id
        run.define_metric("g_steps")
        run.define_metric("*", step_metric="g_steps")
        return run

    def _replay(self, entries: Sequence[dict]) -> None:
        """Log again, in order, the journaled rows a resumed fit's runs lost (see the module doc)."""
        import wandb

        for entry in entries:
            k = entry["k"]
            if not 0 <= k < self.members:
                continue
            row = dict(entry["row"])
            for key, (path, caption) in entry["media"].items():
                if os.path.isfile(path):
                    row[key] = wandb.Image(path, caption=caption)
                    self._media_keys.add(key)
            self._keys.update(key for key in row if key not in self._media_keys)
            self._runs[k].log(row)

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        """The resolved config (``{"config": ...}``, from :class:`gan_lab.runs.SaveConfigToLoggers`)
        with the optimizers and data set taken from it, or the module's hyper-parameters (the run's
        facts are kept: they are per seed)."""
        params = plain(
            vars(params) if hasattr(params, "__dict__") and not isinstance(params, dict) else params
        )
        if set(params) == {"config"}:
            update = {"config": params["config"], **config_facts(params["config"])}
        else:
            own = {key for facts in self.member_facts for key in facts}
            update = {k: v for k, v in params.items() if k not in (*self.facts, *own, "seed", "member")}
        for run in self.experiment:
            run.config.update(update, allow_val_change=True)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Lightning's path (the means over members): logged only when there is one run. Lightning
        logs a batch's training row after the batch's checkpoint: the first such row after a
        checkpoint is made durable at once (:meth:`after_save_checkpoint`)."""
        if self.members == 1:
            values = {k: float(v) for k, v in metrics.items() if k not in ("epoch", "step")}
            self._log(0, values, step)
        if self._write_through:
            self._journal.flush()
            self._write_through = "d_steps" not in metrics  # a training row: the batch is logged

    # -- per member ---------------------------------------------------------------------------------

    @rank_zero_only
    def log_member_metrics(
        self,
        values: Mapping[str, Sequence[float]],
        step: int,
        shared: Mapping[str, float] | None = None,
        media: Mapping[str, Sequence] | None = None,
    ) -> None:
        """Log ``values[key][k]`` into member k's run at G step ``step``, with ``shared`` values in
        every run and ``media[key][k]`` (uint8 ``(H, W, 3)`` arrays, or ``(array, caption)``) as
        ``wandb.Image``."""
        for key, per in values.items():
            if len(per) != self.members:
                raise ValueError(f"{key}: {len(per)} values for {self.members} member runs")
        for k in range(self.members):
            row = {key: float(per[k]) for key, per in values.items()}
            row.update({key: float(v) for key, v in (shared or {}).items()})
            images = {
                key: per[k] if isinstance(per[k], tuple) else (per[k], None)
                for key, per in (media or {}).items()
            }
            self._log(k, row, step, images)
        if self._write_through:
            self._journal.flush()

    def _log(self, k: int, row: dict, step: int | None, media: Mapping[str, tuple] | None = None) -> None:
        """Log ``row`` (and ``media``: ``key -> (image, caption)``) into member k's run, and journal it."""
        if step is not None:
            row["g_steps"] = int(step)
        runs = self.experiment
        logged = dict(row)
        if media:
            import wandb

            for key, (image, caption) in media.items():
                logged[key] = wandb.Image(image, caption=caption)
                self._media_keys.add(key)
        self._keys.update(key for key in row if key not in self._media_keys)
        runs[k].log(logged)
        self._journal.add(k, row, media)

    # -- durability ---------------------------------------------------------------------------------

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback) -> None:
        """A checkpoint was written: make the history logged so far durable (the journal), and the
        rows logged for the checkpoint's own batch too, as they come (Lightning logs them after
        its batch-end callbacks)."""
        if self._journal is None or self._runs is None:
            return
        self._journal.flush()
        self._write_through = True

    @rank_zero_only
    def save(self) -> None:
        """Make the history logged so far durable (Lightning, and each evaluation, call this)."""
        if self._journal is not None and self._runs is not None:
            self._journal.flush()

    @rank_zero_only
    def set_summary(self, values: Mapping[str, Sequence]) -> None:
        """Summary ``key -> value[k]`` of member k's run (a study's final metrics, its status)."""
        for k, run in enumerate(self.experiment):
            for key, per in values.items():
                run.summary[key] = per[k]

    @rank_zero_only
    def mark_diverged(self, status: str, g_steps: int) -> None:
        """Mark every run as diverged: summary ``status`` and ``diverged_at_g_steps``, tag
        ``diverged``; :meth:`finish` then ends them with exit code 1 (state ``failed``)."""
        self.status = "diverged"
        for run in self.experiment:
            run.summary["status"] = status
            run.summary["diverged_at_g_steps"] = int(g_steps)
            run.tags = (*run.tags, "diverged")

    def finalize(self, status: str) -> None:
        """Lightning's end of fit (``success`` / ``failed``): the history is made durable; the runs
        stay open for their owner, who sets the final summary, marks a diverged run and calls
        :meth:`finish` (:func:`gan_lab.runs.finish_wandb`; a run left open is finished by W&B at
        exit)."""
        self.save()

    @rank_zero_only
    def finish(self, exit_code: int | None = None) -> None:
        """Finish every run (exit code 1 when marked diverged), wait until W&B has written each
        run's file to its end (see the module doc), and write ``wandb-runs.json``."""
        if self._runs is None:
            return
        code = exit_code if exit_code is not None else (1 if self.status == "diverged" else 0)
        unwritten = finish_written(self._runs, exit_code=code)
        if self._journal is not None:
            self._journal.close(clean=not unwritten)
        self._write_record()
        self._runs, self._finished = None, True
        _OPEN.discard(self)

    def stop(self, status: int) -> None:
        """A fit stopped by a signal: every run marked preempting (resumable), then finished."""
        for run in self._runs or ():
            run.mark_preempting()
        self.finish(exit_code=status)

    def _write_record(self) -> None:
        record = {
            "project": self.project,
            "group": self.group,
            "job_type": SEED_JOB,
            "tags": self.tags,
            "facts": self.facts,
            "keys": sorted(self._keys),
            "media": sorted(self._media_keys),
            "runs": [
                {
                    "id": run_id,
                    "member": k,
                    "seed": self.seeds[k],
                    "name": self.member_name(k),
                    **self.member_facts[k],
                }
                for k, run_id in enumerate(self.ids)
            ],
            "status": self.status,
        }
        path = Path(self._save_dir) / RECORD_FILE
        if path.is_file():  # a resumed fit: the keys of both sessions
            before = json.loads(path.read_text())
            record["keys"] = sorted({*before.get("keys", []), *record["keys"]})
            record["media"] = sorted({*before.get("media", []), *record["media"]})
        write_whole(path, json.dumps(record, indent=2))


def finish_open_runs(status: int, preempted: bool = True) -> None:
    """Finish the per-seed runs still open in this process with exit ``status``: a fit stopped by a
    signal (``preempted``: marked resumable), or one that failed (diverged, disk full)."""
    for logger in list(_OPEN):
        if preempted:
            logger.stop(status)
        else:
            logger.finish(exit_code=status)
