"""Read what an offline W&B run recorded (``wandb/offline-run-*/run-*.wandb``), for tests.

wandb >= 0.2x writes offline runs from its Go core and no longer ships a Python reader. The file
is a LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of
chunks, each ``crc32 (4) | length (2, little-endian) | type (1: full, 2: first, 3: middle, 4:
last)`` followed by the data; a record is one ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

_BLOCK = 32768
_HEADER = 7


def records(path: str | Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    out, pos, pending = [], _HEADER, b""
    while pos + _HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _HEADER:  # block trailer padding
            pos += left_in_block
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 0 and length == 0:
            pos += _BLOCK - pos % _BLOCK if pos % _BLOCK else 0
            continue
        if kind in (1, 2):
            pending = chunk
        else:
            pending += chunk
        if kind in (1, 4):
            r = pb.Record()
            r.ParseFromString(pending)
            out.append(r)
            pending = b""
    return out


def summary_of(path: str | Path) -> dict:
    """The run's config, summary, metric definitions, tags, group, job type and artifacts."""
    info: dict = {"config": {}, "summary": {}, "metrics": {}, "artifacts": [], "history_keys": set()}
    for r in records(path):
        k = r.WhichOneof("record_type")
        if k == "run":
            info.update(group=r.run.run_group, job_type=r.run.job_type, tags=list(r.run.tags))
            for item in r.run.config.update:
                info["config"][item.key] = json.loads(item.value_json)
        elif k == "config":
            for item in r.config.update:
                info["config"][item.key] = json.loads(item.value_json)
        elif k == "summary":
            for item in r.summary.update:
                key = item.key or "/".join(item.nested_key)
                info["summary"][key] = json.loads(item.value_json)
        elif k == "history":
            info["history_keys"].update(item.key or "/".join(item.nested_key) for item in r.history.item)
        elif k == "metric":
            info["metrics"][r.metric.name] = r.metric.summary
        elif k == "artifact":
            info["artifacts"].append((r.artifact.name, r.artifact.type))
    return info
