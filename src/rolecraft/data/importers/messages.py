"""Import chat data in the formats people share: OpenAI messages, ShareGPT and Alpaca.

One row is one conversation::

    openai    {"messages": [{"role": "system|user|assistant", "content": ..., "name"?: ...}, ...]}
    sharegpt  {"conversations": [{"from": "system|human|gpt", "value": ...}, ...], "system"?: ...}
    alpaca    {"instruction": ..., "input"?: ..., "output": ..., "system"?: ..., "history"?: [[q, a], ...]}

The format is recognised per file from its first row (or forced with ``fmt``). Decisions:

* **Samples.** A conversation ends on the answer being learnt: the final assistant turn is the
  reference, the user turn before it the instruction (its ``name``, if any, the speaker), and
  everything before that the history (``messages``, a leading system turn kept) of a
  ``dialogue`` sample. A conversation with no history (one question, one answer) becomes a
  sample of ``single_kind`` (default ``specific``: in-character data). Trailing user turns after
  the last answer are dropped and reported (``trailing_turns_dropped``): the conversation is kept.
* **Skipped rows** (reported with ``file:line``, and counted: the command fails unless
  ``--allow-partial``): malformed JSON, a row of no known format, an unknown role, an empty turn,
  a system turn after the first turn, no answer, no user turn right before the answer, no
  character name.
* **Character.** ``character`` (one name for every row), else the row's ``character_field``
  (default ``character``), else the ``name`` of the final assistant turn.
* **Profile.** ``profile`` (a JSON file: one profile ``{field: text}`` for every character, or
  ``{name: {field: text}}``), else a row's ``profile`` object, else the first system turn seen
  for the character (``{"名字": name, "设定": system text}``), else ``{"名字": name}`` (reported
  as ``profile_missing``).
* **Ids and splits.** A row's ``id`` / ``split`` are kept when present (what the exporter
  writes, so import→export→import is exact); otherwise the id is a hash of the character and the
  turns and the split :func:`~rolecraft.data.schema.assign_split` of that id: one conversation
  never straddles splits. A repeated conversation is kept once (``duplicate_conversation``).
* **Where rows come from.** Local ``.json``/``.jsonl`` files (or a folder of them) are read
  line by line here (defects at ``file:line``; a JSON array's element at the line it starts on).
  Other local files (parquet, csv, arrow) and Hub dataset ids go through
  ``datasets.load_dataset`` (the ``data`` extra), defects at ``NAME[split] row N``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from rolecraft.data.importers.base import Defect, ImportFailed, LenientReader, short
from rolecraft.data.schema import KINDS, SPLITS, Character, RoleInstruct, Sample, assign_split, stable_id
from rolecraft.errors import DataError

FORMATS = ("openai", "sharegpt", "alpaca")
SINGLE_KINDS = ("specific", "general", "raw")
# defect kinds that lose a row (the command refuses to call that a success without --allow-partial)
SKIP_KINDS = frozenset({"malformed_json", "bad_record", "unreadable_file", "unknown_format", "bad_turn",
                        "no_answer", "no_character", "bad_field"})
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "bot": "assistant", "model": "assistant", "chatgpt": "assistant"}
LOCAL_SUFFIXES = (".json", ".jsonl")
DATASETS_SUFFIXES = (".parquet", ".csv", ".arrow")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class _Skip(Exception):
    """This row cannot be imported: (defect kind, message)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def detect_format(row: dict) -> str | None:
    if isinstance(row.get("messages"), list):
        return "openai"
    if isinstance(row.get("conversations"), list):
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    return None


def _text(v, what: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Skip("bad_turn", f"{what} is empty or not text")
    return v


def turns_of(row: dict, fmt: str) -> list[dict]:
    """The row's turns as [{"role", "content", "name"?}] (system first if any); _Skip when unusable."""
    turns: list[dict] = []
    if fmt == "openai":
        for i, m in enumerate(row["messages"]):
            if not isinstance(m, dict):
                raise _Skip("bad_turn", f"messages[{i}] is not an object")
            role = m.get("role")
            if role not in ("system", "user", "assistant"):
                raise _Skip("bad_turn", f"messages[{i}]: role {role!r} is not system, user or assistant")
            turn = {"role": role, "content": _text(m.get("content"), f"messages[{i}].content")}
            if isinstance(m.get("name"), str) and m["name"].strip():
                turn["name"] = m["name"]
            turns.append(turn)
    elif fmt == "sharegpt":
        if isinstance(row.get("system"), str) and row["system"].strip():
            turns.append({"role": "system", "content": row["system"]})
        for i, m in enumerate(row["conversations"]):
            if not isinstance(m, dict):
                raise _Skip("bad_turn", f"conversations[{i}] is not an object")
            who = m.get("from")
            role = SHAREGPT_ROLES.get(str(who).lower()) if isinstance(who, str) else None
            if role is None:
                raise _Skip("bad_turn", f"conversations[{i}]: 'from' {who!r} is not one of {', '.join(SHAREGPT_ROLES)}")
            turn = {"role": role, "content": _text(m.get("value"), f"conversations[{i}].value")}
            if isinstance(m.get("name"), str) and m["name"].strip():
                turn["name"] = m["name"]
            turns.append(turn)
    else:  # alpaca
        if isinstance(row.get("system"), str) and row["system"].strip():
            turns.append({"role": "system", "content": row["system"]})
        history = row.get("history") or []
        if not isinstance(history, list):
            raise _Skip("bad_field", "'history' must be a list of [question, answer] pairs")
        for i, pair in enumerate(history):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise _Skip("bad_field", f"history[{i}] is not a [question, answer] pair")
            turns.append({"role": "user", "content": _text(pair[0], f"history[{i}][0]")})
            turns.append({"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")})
        question = _text(row.get("instruction"), "'instruction'")
        extra = row.get("input")
        if isinstance(extra, str) and extra.strip():
            question = f"{question}\n{extra}"
        turns.append({"role": "user", "content": question})
        turns.append({"role": "assistant", "content": _text(row.get("output"), "'output'")})
    for i, t in enumerate(turns):
        if t["role"] == "system" and i != 0:
            raise _Skip("bad_turn", f"a system turn at position {i}; only the first turn may be a system turn")
    return turns


class _Builder:
    """Collects characters and samples from rows; one instance per import."""

    def __init__(self, defects: list[Defect], character: str | None, character_field: str,
                 profiles: dict | None, single_kind: str):
        self.defects = defects
        self.character = character
        self.character_field = character_field
        self.profiles = profiles
        self.single_kind = single_kind
        self.characters: dict[str, Character] = {}
        self.samples: list[Sample] = []
        self.ids: dict[str, str] = {}
        self.missing_profile: dict[str, str] = {}

    def add(self, where: tuple[str, int | None], row, forced: str | None) -> None:
        file, line = where
        try:
            self._add(file, line, row, forced)
        except _Skip as e:
            self.defects.append(Defect(file, line, e.kind, f"{e}; row skipped"))

    def _add(self, file: str, line: int | None, row, forced: str | None) -> None:
        if not isinstance(row, dict):
            raise _Skip("bad_record", f"expected a JSON object, got {type(row).__name__}")
        fmt = forced or detect_format(row)
        if fmt is None:
            raise _Skip("unknown_format", "not a conversation: no 'messages' (openai), 'conversations' (sharegpt) "
                                          "or 'instruction'+'output' (alpaca); pass --format if the file mixes rows")
        if fmt == "openai" and not isinstance(row.get("messages"), list) or \
                fmt == "sharegpt" and not isinstance(row.get("conversations"), list):
            raise _Skip("unknown_format", f"not a {fmt} row (--format {fmt})")
        turns = turns_of(row, fmt)
        dropped = 0
        while turns and turns[-1]["role"] != "assistant":
            if turns[-1]["role"] == "system":
                break
            turns.pop()
            dropped += 1
        if not turns or turns[-1]["role"] != "assistant":
            raise _Skip("no_answer", "no assistant turn to learn from")
        if len(turns) < 2 or turns[-2]["role"] != "user":
            raise _Skip("no_answer", "the final assistant turn does not follow a user turn")
        name = self._character(row, turns)
        if dropped:
            self.defects.append(Defect(file, line, "trailing_turns_dropped",
                                       f"{dropped} user turn(s) after the last assistant turn dropped"))
        answer, question, history = turns[-1], turns[-2], turns[:-2]
        self._profile(file, line, name, row, turns)
        dialogue = any(t["role"] != "system" for t in history)
        kind = "dialogue" if dialogue else self.single_kind
        if isinstance(row.get("kind"), str) and not dialogue:
            if row["kind"] not in KINDS or row["kind"] == "dialogue":
                raise _Skip("bad_field", f"'kind' {row['kind']!r} is not one of {', '.join(SINGLE_KINDS)}")
            kind = row["kind"]
        sid = row.get("id") if isinstance(row.get("id"), str) and row["id"].strip() else \
            stable_id(name, json.dumps(turns, ensure_ascii=False, sort_keys=True), length=16)
        split = row.get("split")
        if split is not None and split not in SPLITS:
            raise _Skip("bad_field", f"'split' {split!r} is not one of {', '.join(SPLITS)}")
        at = f"{file}:{line}" if line is not None else file
        if sid in self.ids:
            self.defects.append(Defect(file, line, "duplicate_conversation",
                                       f"conversation {sid!r} already imported from {self.ids[sid]}; kept once"))
            return
        self.ids[sid] = at
        self.samples.append(Sample(
            id=sid, kind=kind, character=name, instruction=question["content"],
            references=[answer["content"]], split=split or assign_split(f"conversation\x1f{sid}"),
            provenance={"source": f"messages/{fmt}", "file": file, "line": line},
            messages=history if kind == "dialogue" else None,
            speaker=question.get("name") if kind == "dialogue" else None,
        ))

    def _character(self, row: dict, turns: list[dict]) -> str:
        if self.character:
            return self.character
        v = row.get(self.character_field)
        if isinstance(v, str) and v.strip():
            return v.strip()
        v = turns[-1].get("name")
        if isinstance(v, str) and v.strip():
            return v.strip()
        raise _Skip("no_character", f"no character name (no '{self.character_field}' field, no 'name' on the "
                                    "answer); pass --character NAME or --character-field KEY")

    def _profile(self, file: str, line: int | None, name: str, row: dict, turns: list[dict]) -> None:
        c = self.characters.get(name)
        if c is not None and name not in self.missing_profile:
            return
        profile = None
        if self.profiles is not None:
            profile = self.profiles.get(name) if all(isinstance(v, dict) for v in self.profiles.values()) \
                else self.profiles
        if profile is None and isinstance(row.get("profile"), dict) and row["profile"]:
            if not all(isinstance(v, str) for v in row["profile"].values()):
                raise _Skip("bad_field", "'profile' must map fields to text")
            profile = dict(row["profile"])
        if profile is None and turns[0]["role"] == "system":
            profile = {"名字": name, "设定": turns[0]["content"]}
        if profile is None:
            if c is None:
                self.characters[name] = Character(name, {"名字": name}, {"source": "messages"})
                self.missing_profile[name] = f"{file}:{line}" if line is not None else file
            return
        self.characters[name] = Character(name, dict(profile), {"source": "messages"})
        self.missing_profile.pop(name, None)


def _load_profiles(path: str | Path) -> dict:
    from rolecraft.fileio import read_json

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: profile file not found; give a JSON object {{field: text}} or {{name: {{field: text}}}}")
    obj = read_json(path)
    ok = isinstance(obj, dict) and obj and (all(isinstance(v, str) for v in obj.values()) or all(
        isinstance(v, dict) and v and all(isinstance(x, str) for x in v.values()) for v in obj.values()))
    if not ok:
        raise DataError(f"{path}: a profile file is a JSON object {{field: text}} (one profile for every character) "
                        "or {name: {field: text}}, with non-empty text fields")
    return obj


def _hub_rows(src: str, timeout: float):
    """Rows of a Hub dataset id through ``datasets``, failing in one line within ``timeout`` seconds."""
    import threading

    from rolecraft.extras import require

    require("data", f"rolecraft data import messages {src}")
    result: dict = {}

    def load():
        try:
            import logging

            import datasets

            logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # its retry notes; we say it once

            datasets.disable_progress_bars()
            result["ds"] = datasets.load_dataset(src)
        except Exception as e:  # noqa: BLE001  (any failure of the Hub or the files is reported in one line)
            result["error"] = e

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise DataError(f"{src}: no answer from the Hugging Face Hub within {timeout:.0f}s; check the network "
                        "(or HF_ENDPOINT), or download the files and import the local path")
    if "error" in result:
        e = result["error"]
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true") or os.environ.get("HF_DATASETS_OFFLINE") in ("1", "true")
        why = "offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set) and not in the local cache" if offline else \
            f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        raise DataError(f"{src}: not a local file or folder, and not loadable as a Hub dataset ({why}); "
                        "check the path, or the dataset id and the network")
    ds = result["ds"]
    for split in ds:
        for i, row in enumerate(ds[split]):
            yield (f"{src}[{split}] row", i), row


def _local_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in LOCAL_SUFFIXES + DATASETS_SUFFIXES)
    if not files:
        raise DataError(f"{src}: no .json, .jsonl, .parquet, .csv or .arrow files in this folder")
    return files


def _datasets_rows(path: Path):
    from rolecraft.extras import require

    require("data", f"rolecraft data import messages {path}")
    import datasets

    datasets.disable_progress_bars()
    kind = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}[path.suffix.lower()]
    ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    for i, row in enumerate(ds):
        yield (f"{path} row", i), row


def import_messages(src: str | Path, fmt: str | None = None, character: str | None = None,
                    character_field: str = "character", profile: str | Path | None = None,
                    single_kind: str = "specific", hub_timeout: float = 60.0) -> tuple[RoleInstruct, list[Defect]]:
    """Read OpenAI-messages / ShareGPT / Alpaca rows from ``src`` (a file, a folder or a Hub id) into a
    RoleInstruct (no script). Raises :class:`ImportFailed` when no row could be imported."""
    if fmt is not None and fmt not in FORMATS:
        raise DataError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if single_kind not in SINGLE_KINDS:
        raise DataError(f"--single-kind {single_kind!r}: use one of {', '.join(SINGLE_KINDS)}")
    profiles = _load_profiles(profile) if profile else None
    defects: list[Defect] = []
    b = _Builder(defects, character, character_field, profiles, single_kind)
    path = Path(str(src)).expanduser()
    if path.exists():
        reader = LenientReader(defects)
        for f in _local_files(path):
            if f.suffix.lower() in DATASETS_SUFFIXES:
                for (name, i), row in _datasets_rows(f):
                    b.add((name, i), row, fmt)
                continue
            for line, row in reader.records(f) or []:
                b.add((str(f), line), row, fmt)
    elif HUB_ID.match(str(src)) and not str(src).startswith((".", "/", "~")) and \
            path.suffix.lower() not in LOCAL_SUFFIXES + DATASETS_SUFFIXES:  # data/chats.jsonl is a missing file
        for (name, i), row in _hub_rows(str(src), hub_timeout):
            b.add((name, i), row, fmt)
    else:
        raise DataError(f"{src}: no such file or folder; give a .json/.jsonl file, a folder of them, "
                        "or a Hugging Face dataset id (owner/name)")
    for name, at in b.missing_profile.items():
        defects.append(Defect(at.rsplit(":", 1)[0], None, "profile_missing",
                              f"character {name!r} has no profile (no system turn, no 'profile' field, no --profile): "
                              f"profile {{'名字': {name!r}}} written; pass --profile FILE for a real one"))
    defects.sort(key=lambda d: (d.file, d.line if d.line is not None else -1))  # reading order
    if not b.samples:
        raise ImportFailed(f"{src}: no conversation could be imported ({len(defects)} defects, listed above)", defects)
    ds = RoleInstruct(root=None, meta={"name": Path(str(src)).stem or str(src), "source": "messages",
                                       "source_path": str(src)},
                      characters=b.characters, script=[], samples=b.samples)
    return ds, defects


# ---- export ----------------------------------------------------------------------------------


def sample_turns(s: Sample) -> list[dict]:
    """A sample as one conversation: its history, the instruction, the (first) reference."""
    user = {"role": "user", "content": s.instruction}
    if s.speaker:
        user["name"] = s.speaker
    return [*(s.messages or []), user, {"role": "assistant", "content": s.references[0]}]


def export_row(s: Sample, profile: dict, fmt: str) -> dict | None:
    """One sample in ``fmt``; None where ``fmt`` cannot hold it (alpaca: named or unpaired turns)."""
    turns = sample_turns(s)
    meta = {"id": s.id, "split": s.split, "character": s.character, "profile": profile}
    if s.kind != "dialogue":
        meta["kind"] = s.kind
    if fmt == "openai":
        return {"messages": turns, **meta}
    system = turns[0]["content"] if turns[0]["role"] == "system" else None
    body = turns[1:] if system is not None else turns
    if fmt == "sharegpt":
        conv = []
        for t in body:
            row = {"from": "human" if t["role"] == "user" else "gpt", "value": t["content"]}
            if "name" in t:
                row["name"] = t["name"]
            conv.append(row)
        return {"conversations": conv, **({"system": system} if system else {}), **meta}
    # alpaca: strictly alternating, unnamed pairs
    if any("name" in t for t in body) or any(t["role"] != ("user" if i % 2 == 0 else "assistant")
                                             for i, t in enumerate(body)):
        return None
    pairs = [[body[i]["content"], body[i + 1]["content"]] for i in range(0, len(body) - 2, 2)]
    row = {"instruction": s.instruction, "input": "", "output": s.references[0], **meta}
    if system:
        row["system"] = system
    if pairs:
        row["history"] = pairs
    return row


def export_command(src: str, fmt: str, out: str, force: bool = False) -> int:
    """``rolecraft data export messages DIR --format F --out FILE``: every sample, one row each (JSON lines)."""
    import sys

    from rolecraft.data import resolve_data_root, schema
    from rolecraft.fileio import write_jsonl

    if fmt not in FORMATS:
        raise DataError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    ds = schema.load(resolve_data_root(src))
    dest = Path(out).expanduser()
    if dest.exists() and not force:
        raise DataError(f"{dest}: exists; choose another --out or pass --force to replace it")
    if ds.root is not None and dest.resolve().parent == Path(ds.root).resolve():
        raise DataError(f"{dest}: inside the dataset being exported (a fifth file there is not the format); "
                        "write it elsewhere")
    rows, skipped = [], []
    for s in ds.samples:
        row = export_row(s, ds.characters[s.character].profile, fmt)
        if row is None:
            skipped.append(s.id)
        else:
            rows.append(row)
    write_jsonl(dest, rows)
    print(f"exported {len(rows)} samples from {src} -> {dest} ({fmt})")
    if skipped:
        print(f"warning: {len(skipped)} dialogue sample(s) not exportable as {fmt} (named speakers or turns that "
              f"do not alternate), e.g. {short(', '.join(skipped[:3]), 80)}; use --format openai or sharegpt",
              file=sys.stderr)
    return 0
