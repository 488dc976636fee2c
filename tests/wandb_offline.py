"""Read back the records of an offline W&B run (``run-<id>.wandb``), for tests.

The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB
blocks of chunks, each with a 7-byte header ``<crc32 u32, length u16, type u8>`` (type 1 = a whole
record, 2/3/4 = first/middle/last piece); each record is a ``wandb_internal_pb2.Record``.
"""

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def _payloads(data: bytes):
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log")
    pos, pieces = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pieces = chunk
        elif kind == 3:
            pieces += chunk
        elif kind == 4:
            yield pieces + chunk


def _config_items(config, into: dict) -> None:
    for item in config.update:
        key = item.key or "/".join(item.nested_key)
        into[key] = json.loads(item.value_json)


def read_run(path: Path) -> dict:
    """``{"run": Record.run, "history": [dict, ...], "config": {key: value}}`` of one offline run
    file (``config``: the run's config and every later update, W&B's ``{"value": ...}`` form)."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = {"run": None, "history": [], "config": {}}
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
    return out
