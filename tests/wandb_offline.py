"""Read back the records of an offline W&B run (``run-<id>.wandb``), for tests.

The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB
blocks of chunks, each with a 7-byte header ``<crc32 u32, length u16, type u8>`` (type 1 = a whole
record, 2/3/4 = first/middle/last piece; the crc covers the type byte and the piece); each record
is a ``wandb_internal_pb2.Record``. A chunk not written whole (cut short, or its crc wrong: a file
W&B is still writing, or one a kill cut) ends what is read: records are never made of torn bytes.

A W&B run resumed in another process (a resumed fit) is one more *session*: another
``offline-run-*`` folder holding another file of the same run id. :func:`sessions` groups the
files by run id, in the order they were written, and :func:`run_history` reads a run's history
across them. A file the lab set aside (``run-<id>.wandb.superseded``) is no file of the run.
"""

import json
import struct
import zlib
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def _payloads(data: bytes):
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log")
    pos, pieces = HEADER, None
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != crc:
            return  # not written (whole) yet: the end of what can be read
        pos += HEADER + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pieces = chunk
        elif kind == 3 and pieces is not None:
            pieces += chunk
        elif kind == 4 and pieces is not None:
            yield pieces + chunk
            pieces = None


def _config_items(config, into: dict) -> None:
    for item in config.update:
        key = item.key or "/".join(item.nested_key)
        into[key] = json.loads(item.value_json)


def read_run(path: Path) -> dict:
    """``{"run": Record.run, "history": [dict, ...], "config": {key: value}, "complete": bool,
    "exit_code": int | None}`` of one offline run file (``config``: the run's config and every
    later update, W&B's ``{"value": ...}`` form; ``complete``: the file holds the run's exit
    record, the last one W&B writes)."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = {"run": None, "history": [], "config": {}, "complete": False, "exit_code": None}
    for payload in _payloads(Path(path).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            _config_items(record.run.config, out["config"])
        elif kind == "config":
            _config_items(record.config, out["config"])
        elif kind == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            out["history"].append(row)
        elif kind == "exit":
            out["complete"], out["exit_code"] = True, record.exit.exit_code
    return out


def sessions(folder: Path) -> dict[str, list[Path]]:
    """``run id -> [file, ...]``: the offline run files under ``folder``
    (``**/wandb/offline-run-*/run-*.wandb``) by run id, each run's sessions in the order they
    were written (by the session folder's start stamp, then the run record's start time)."""
    found: dict[str, list[tuple]] = {}
    for path in Path(folder).rglob("offline-run-*/run-*.wandb"):
        record = read_run(path)
        run_id = record["run"].run_id if record["run"] is not None else path.stem.removeprefix("run-")
        stamp = path.parent.name.split("-")[2]
        start = record["run"].start_time.ToNanoseconds() if record["run"] is not None else 0
        found.setdefault(run_id, []).append((stamp, start, str(path)))
    return {run_id: [Path(p) for *_, p in sorted(files)] for run_id, files in found.items()}


def run_history(files) -> list[dict]:
    """A run's history across its sessions' files (from :func:`sessions`), read with wandb's own
    reader (:func:`inspect_run`), in the order it was logged."""
    return [row for path in files for row in inspect_run(path)["history"]]


# -- wandb's own reader ----------------------------------------------------------------------------
# `wandb leet inspect --json FILE` (wandb's CLI, its Go core) prints the records of a .wandb
# transaction log, one JSON object a line; `--summary --json` the run's state, summary, config and
# tags. wandb 0.31 has no Python reader of offline runs (its `sdk.internal.datastore` is gone and
# `wandb.Api` reads only the server), so this is the public way to read them.


def _inspect(path: Path, *flags: str):
    import shutil
    import subprocess
    import sys

    exe = shutil.which("wandb", path=str(Path(sys.executable).parent)) or "wandb"
    proc = subprocess.run(
        [exe, "leet", "inspect", "--json", *flags, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return proc.stdout


def _unflatten(item: dict) -> dict:
    """A history row as W&B keeps it (``{"img._type": ...}``) -> ``{"img": {"_type": ...}}`` for
    media values; scalar keys (``mode/modes``) stay as they are."""
    row: dict = {}
    for key, value in item.items():
        head, dot, rest = key.partition(".")
        if dot and (f"{head}._type" in item):
            row.setdefault(head, {})[rest] = value
        else:
            row[key] = value
    return row


def inspect_run(path: Path) -> dict:
    """An offline run read with wandb's reader (``wandb leet inspect``): ``run_id``, ``group``,
    ``job_type``, ``name``, ``tags``, ``config`` (the latest value of every key), ``metrics``
    (``define_metric`` records), ``history`` (rows), ``summary``, ``state``, ``exit_code`` and
    ``files`` (the media files saved, relative to the run folder)."""
    out = {"config": {}, "metrics": [], "history": [], "files": [], "run_id": None}
    for line in _inspect(Path(path)).splitlines():
        record = json.loads(line)
        kind = record.get("type")
        if kind == "run":
            run = record["run"]
            out.update(
                run_id=run["run_id"],
                group=run.get("run_group"),
                job_type=run.get("job_type"),
                name=run.get("display_name"),
                tags=list(run.get("tags", [])),
            )
            out["config"].update(run.get("config", {}).get("update", {}))
        elif kind == "config":
            out["config"].update(record["config"].get("update", {}))
        elif kind == "metric":
            out["metrics"].append(record["metric"])
        elif kind == "history":
            out["history"].append(_unflatten(record["history"]["item"]))
        elif kind == "files":
            out["files"] += [f["path"] for f in record["files"].get("files", [])]
    summary = json.loads(_inspect(Path(path), "--summary"))
    out.update(
        summary=summary["summary"],
        state=summary["state"],
        exit_code=summary.get("exit_code"),
        tags=summary["tags"],
    )
    out["config"].pop("_wandb", None)
    return out


def offline_runs(folder: Path) -> list[dict]:
    """Every offline run under ``folder`` (``**/wandb/offline-run-*/run-*.wandb``), read by :func:`inspect_run`."""
    return [inspect_run(p) for p in sorted(Path(folder).rglob("offline-run-*/run-*.wandb"))]


def matches(tree, run: dict) -> bool:
    """Whether ``run`` (from :func:`inspect_run`) passes a ``wandb_workspaces`` filter tree
    (``expr.expr_to_filters``): AND / OR nodes, ``=`` / ``!=`` / ``IN`` / ``NIN`` leaves on the
    run's group and job type, its tags, and its config keys."""
    if tree.op in ("AND", "OR"):
        results = [matches(f, run) for f in tree.filters or []]
        return all(results) if tree.op == "AND" else any(results)
    section, name = tree.key.section, tree.key.name
    if section == "run":
        value = {"group": run.get("group"), "jobType": run.get("job_type"), "tags": run.get("tags")}[name]
    elif section == "config":
        value = run["config"].get(name.removesuffix(".value"))
    elif section == "summary":
        value = run["summary"].get(name)
    else:
        raise ValueError(f"filter section {section!r} is not read by this test helper")
    if tree.op == "=":
        return value == tree.value
    if tree.op == "!=":
        return value != tree.value
    if tree.op in ("IN", "NIN"):
        inside = any(v in tree.value for v in value) if isinstance(value, list) else value in tree.value
        return inside if tree.op == "IN" else not inside
    raise ValueError(f"filter op {tree.op!r} is not read by this test helper")
