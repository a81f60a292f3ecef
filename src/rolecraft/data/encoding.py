"""Encoding a split (prompt rendering + chat template + loss mask) once, cached with ``datasets``.

Rendering the prompts and tokenizing every sample is the slowest part of a run's start on a
large dataset, and it gives the same rows for the same inputs. :func:`encode_split` runs it as a
batched ``datasets.map`` whose result is an Arrow file under the run's cache dir
(``<cache_dir>/encoded/<key>.arrow``); the key hashes everything the rows depend on:

* the data's content (characters, script and the split's samples: profiles and exemplars
  are part of the prompt),
* the tokenizer (its serialized vocabulary/merges, special tokens and class),
* the chat template in use, the encoder settings (max lengths, end ids),
* the prompt spec and the hash of its rendered template (``prompts.template_sha256``),
* the code that renders and masks (``prompts.py``, ``tokenize.py``, this module),
* anything else the caller names (e.g. a loss policy).

A second run with the same inputs loads the file and encodes nothing; a change to any of them
is a new key. Truncation flags are columns of the cached rows, so ``data/truncated_*`` are the
same on a hit. ``datasets`` writes the file to a temporary name and renames it (atomic); a
:class:`filelock.FileLock` per key makes concurrent ranks or runs build it once while the
others wait and load it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger("rolecraft")

# bump when the layout of the cached rows or the meaning of the key changes
CACHE_VERSION = 3  # 3: last_only column
CACHE_SUBDIR = "encoded"


@dataclass
class EncodedSplit:
    """The encoded rows of one split and how they were obtained (``hit``: loaded from the cache)."""

    rows: list  # list[tokenize.Encoded]
    hit: bool
    seconds: float
    path: Path | None


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def dataset_fingerprint(ds, samples: Sequence) -> str:
    """A hash of what a prompt can show of ``ds`` (characters, script) and of ``samples``.

    Characters and script are hashed by their files' bytes when ``ds`` was read from a directory
    (tens of milliseconds for RoleInstruct v1's 105k script lines; hashing the rows took seconds),
    else by their rows. Samples are hashed by the fields a prompt or an answer uses."""
    h = hashlib.sha256()
    root = Path(ds.root) if ds.root is not None else None
    files = [root / n for n in ("characters.jsonl", "script.jsonl")] if root is not None else []
    if files and all(f.is_file() for f in files):
        for f in files:
            h.update(f.read_bytes())
            h.update(b"\x00")
    else:
        for c in ds.characters.values():
            h.update(json.dumps([c.name, c.profile], ensure_ascii=False).encode("utf-8"))
        for u in ds.script:
            h.update(repr((u.id, u.character, u.dialogue, u.turn, u.speaker, u.text, u.emotion)).encode("utf-8"))
    h.update(b"\x01")
    for s in samples:
        h.update(repr((s.id, s.kind, s.character, s.instruction, s.references, s.messages, s.speaker)).encode("utf-8"))
    return h.hexdigest()


def tokenizer_fingerprint(tok) -> str:
    """A hash of the tokenizer's behaviour-defining state: the serialized fast tokenizer (vocabulary,
    merges, normalizer, added tokens) where there is one, else the vocabulary; plus special tokens."""
    backend = getattr(tok, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()), ensure_ascii=False)
    extra = {"class": type(tok).__name__, "special": getattr(tok, "special_tokens_map", {}),
             "padding_side": getattr(tok, "padding_side", None)}
    return hashlib.sha256(body.encode("utf-8") + _sha(extra).encode()).hexdigest()


def encoder_key(encoder, spec) -> dict:
    """The parts of the key that come from a :class:`~rolecraft.data.tokenize.ChatEncoder` and a
    :class:`~rolecraft.data.prompts.PromptSpec`."""
    from rolecraft.data.prompts import template_sha256

    tok = encoder.tok
    return {
        "tokenizer": tokenizer_fingerprint(tok),
        "chat_template": encoder.template if encoder.template is not None else getattr(tok, "chat_template", None),
        "max_source_length": encoder.max_source_length,
        "max_target_length": encoder.max_target_length,
        "end_ids": sorted(encoder.end_ids),
        "eos_id": encoder.eos_id,
        "prompt_spec": asdict(spec),
        "template_sha256": template_sha256(spec),
        "code": code_fingerprint(),
    }


def code_fingerprint() -> str:
    """A hash of the modules that decide the rows (rendering, masking, this cache): an upgrade
    that changes how samples are encoded must not reuse rows encoded the old way."""
    from rolecraft.data import prompts, tokenize

    h = hashlib.sha256()
    for mod in (prompts, tokenize):
        h.update(Path(mod.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def cache_key(data_fingerprint: str, key: dict) -> str:
    return _sha({"version": CACHE_VERSION, "data": data_fingerprint, **key})[:32]


def encode_split(samples: Sequence, encode: Callable, truncated, *, data_fingerprint: str, key: dict,
                 cache_dir: str | Path | None, name: str = "split", batch_size: int = 256) -> EncodedSplit:
    """Encode ``samples`` with ``encode(sample) -> Encoded``, through the cache when ``cache_dir`` is set.

    ``truncated`` is the encoder's :class:`~rolecraft.data.tokenize.TruncationCounts`: ``encode``
    adds to it on a miss; on a hit the stored per-row flags are added to it, so the run's metrics
    read the same either way. ``key`` must name every input of ``encode`` besides the data
    (see :func:`encoder_key`); ``data_fingerprint`` the data (see :func:`dataset_fingerprint`).
    """
    from rolecraft.data.tokenize import Encoded

    t0 = time.perf_counter()
    if not samples:
        return EncodedSplit([], False, 0.0, None)
    if cache_dir is None:  # no cache configured: encode in place
        rows = [encode(s) for s in samples]
        return EncodedSplit(rows, False, time.perf_counter() - t0, None)

    import datasets
    import pyarrow as pa
    from filelock import FileLock

    datasets.disable_progress_bars()  # our own log line says what happened
    digest = cache_key(data_fingerprint, key)
    folder = Path(cache_dir).expanduser() / CACHE_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{digest}.arrow"

    def batch(ids: dict, indices: list[int]):
        encoded, tp, tr, lo = [], [], [], []
        for i in indices:
            p0, r0, l0 = truncated.prompts, truncated.responses, truncated.last_only
            encoded.append(encode(samples[i]))
            tp.append(truncated.prompts > p0)
            tr.append(truncated.responses > r0)
            lo.append(truncated.last_only > l0)
        # an Arrow table built from flat arrays: datasets' own conversion of nested Python lists
        # (type inference per batch) took longer than the encoding itself
        return pa.table({"input_ids": _list_array([e.input_ids for e in encoded]),
                         "labels": _list_array([e.labels for e in encoded]),
                         "trunc_prompt": pa.array(tp, pa.bool_()), "trunc_response": pa.array(tr, pa.bool_()),
                         "last_only": pa.array(lo, pa.bool_())})

    with FileLock(str(path) + ".lock"):
        hit = path.is_file()
        ids = datasets.Dataset.from_dict({"id": [s.id for s in samples]})
        table = ids.map(batch, batched=True, batch_size=batch_size, with_indices=True, remove_columns=["id"],
                        cache_file_name=str(path), load_from_cache_file=True, new_fingerprint=digest,
                        desc=f"encode {name}")
    if len(table) != len(samples):  # a foreign or damaged file under our name: never train on it
        from rolecraft.errors import DataError

        raise DataError(f"{path}: holds {len(table)} encoded rows for {len(samples)} samples; delete it and rerun")
    cols = table.with_format("arrow")[:]
    input_ids, labels = _arrays(cols.column("input_ids")), _arrays(cols.column("labels"))
    if hit:
        flags = zip(cols.column("trunc_prompt").to_pylist(), cols.column("trunc_response").to_pylist(),
                    cols.column("last_only").to_pylist())
        for s, (tp, tr, lo) in zip(samples, flags):
            truncated.prompts += bool(tp)
            truncated.responses += bool(tr)
            truncated.last_only += bool(lo)  # dialogue samples trained on their last answer only
            if tp or tr:
                truncated.note(s.id)
    rows = [Encoded(input_ids=a, labels=b) for a, b in zip(input_ids, labels)]
    seconds = time.perf_counter() - t0
    log.info("encoded %s: %d samples in %.2fs (%s %s)", name, len(rows), seconds,
             "cache hit:" if hit else "built cache", path)
    return EncodedSplit(rows, hit, seconds, path)


def _list_array(rows: list):
    """Rows of token ids / labels as an Arrow list<int32> array (half the file of int64; ids and
    -100 fit), through one flat NumPy array."""
    import itertools

    import numpy as np
    import pyarrow as pa

    lengths = np.fromiter((len(r) for r in rows), dtype=np.int32, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def _arrays(column) -> list:
    """An Arrow list<int32> column as one NumPy array per row: read-only views of the Arrow
    buffers, which ``datasets`` memory-maps from the cache file, so nothing is copied.

    On RoleInstruct v1 (25k samples, 37M ids and labels) Python lists cost 5-8 s of a hit, and an
    int64 copy 2 s: the first touch of 300 MB of fresh memory. Batching turns each step's rows
    into int64 tensors (``data/batching.py``); ``len``, slicing, ``list.extend`` and
    ``torch.tensor`` take the views as they take lists."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    rows = []
    for arr in chunks:  # one chunk per written batch: combining them would copy
        values = arr.values.to_numpy(zero_copy_only=True)  # the whole child array; offsets index into it
        offsets = arr.offsets.to_numpy(zero_copy_only=False).tolist()
        rows.extend(values[a:b] for a, b in zip(offsets, offsets[1:]))
    return rows


def encode_splits(ds, splits: dict, encode: Callable, encoder, spec, cache_dir: str | Path | None,
                  extra_key: dict | None = None) -> list[list]:
    """The rows of each split in ``splits`` ({name: samples}), in that order: training's entry point.

    ``encode(sample) -> Encoded`` uses ``encoder`` (a ChatEncoder, its counts updated) and a prompt
    builder made from ``spec``; ``extra_key`` names any other input of ``encode`` (e.g. a loss policy)."""
    key = {**encoder_key(encoder, spec), **(extra_key or {})} if cache_dir is not None else {}
    out = []
    for name, samples in splits.items():
        fp = dataset_fingerprint(ds, samples) if cache_dir is not None else ""
        out.append(encode_split(samples, encode, encoder.truncated, data_fingerprint=fp, key=key,
                                cache_dir=cache_dir, name=name).rows)
    return out
