"""The canonical RoleInstruct on-disk format (see README "Data format").

A dataset is a directory with four files::

    meta.json          {"format": "roleinstruct", "version": 1, "name": ..., "source": ...}
    characters.jsonl   {"name", "profile": {field: value, ...}}
    script.jsonl       {"id", "character", "dialogue", "turn", "speaker", "text", "emotion"}
    samples.jsonl      {"id", "kind", "character", "instruction", "references": [...], "split"}
                       dialogue samples add "messages": [{"role", "content", "name"?}, ...]

``script.jsonl`` rows belong to the script of ``character`` (the one being played);
``speaker`` is who says the line (the character or someone else).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

# the labels are part of the format: schema.EMOTIONS / schema.EMOTION_ZH stay importable from here
from rolecraft.data.emotions import EMOTION_ZH, EMOTIONS, normalise_emotion  # noqa: F401
from rolecraft.errors import DataError
from rolecraft.fileio import read_json, read_jsonl

FORMAT_NAME = "roleinstruct"
FORMAT_VERSION = 1

KINDS = ("general", "specific", "raw", "dialogue")
SPLITS = ("train", "val", "test")
# Which Rouge-L column each kind feeds (paper Table 2; "dlg" for multi-turn dialogue, beyond the paper).
KIND_TO_METRIC = {"raw": "raw", "general": "cus", "specific": "spe", "dialogue": "dlg"}
# turns of a dialogue sample's history; "system" only as the first turn
ROLES = ("system", "user", "assistant")

FILES = ("meta.json", "characters.jsonl", "script.jsonl", "samples.jsonl")


@dataclass
class Character:
    name: str
    profile: dict[str, str]
    # who/what produced the record: importer source or construction stage, model, parameters and
    # prompt-template hash (None for hand-written data; omitted from the file then)
    provenance: dict | None = None


@dataclass
class Utterance:
    id: str
    character: str
    dialogue: str
    turn: int
    speaker: str
    text: str
    emotion: str | None  # None = not annotated yet
    provenance: dict | None = None


@dataclass
class Sample:
    """One instruction and its reference answers. A ``dialogue`` sample also carries the turns
    before it: ``messages`` (an optional leading system turn, then user/assistant turns; a user
    turn may name its speaker in multi-party scenes), and ``instruction`` is the last user turn,
    so every tool that shows an instruction and its answer works on dialogue unchanged."""

    id: str
    kind: str
    character: str
    instruction: str
    references: list[str]
    split: str
    provenance: dict | None = None
    messages: list[dict] | None = None
    # who says the instruction, in a multi-party scene (None: the user)
    speaker: str | None = None


@dataclass
class RoleInstruct:
    root: Path | None
    meta: dict
    characters: dict[str, Character]
    script: list[Utterance] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def script_of(self, character: str) -> list[Utterance]:
        return [u for u in self.script if u.character == character]


def stable_id(*parts: str, length: int = 12) -> str:
    """A short content hash: the same inputs give the same id on every machine."""
    h = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    return h[:length]


def assign_split(key: str, val: float = 0.05, test: float = 0.05) -> str:
    """Deterministic split from a hash of ``key`` (stable when other rows are added or removed)."""
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test:
        return "test"
    if bucket < test + val:
        return "val"
    return "train"


def split_key(kind: str, character: str, instruction: str) -> str:
    """General/raw instructions are shared by all characters: split by instruction text so the
    same instruction never sits in train for one character and in test for another."""
    return instruction if kind in ("general", "raw") else f"{character}\x1f{instruction}"


def _require(obj: dict, key: str, typ: type | tuple, where: str) -> object:
    if key not in obj:
        raise DataError(f"{where}: missing required field '{key}'")
    val = obj[key]
    if not isinstance(val, typ):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise DataError(f"{where}: field '{key}' must be {names}, got {type(val).__name__} {val!r:.60}")
    return val


def _nonempty(val: str, key: str, where: str) -> str:
    if not val.strip():
        raise DataError(f"{where}: field '{key}' is empty; give it text or remove the row")
    return val


def _provenance(obj: dict, where: str) -> dict | None:
    prov = obj.get("provenance")
    if prov is not None and not isinstance(prov, dict):
        raise DataError(f"{where}: field 'provenance' must be an object or absent, got {type(prov).__name__}")
    return prov


def _row(record) -> dict:
    """A record as a JSON row; optional fields (provenance, messages, speaker) only where set."""
    row = asdict(record)
    for key in ("provenance", "messages", "speaker"):
        if key in row and row[key] is None:
            row.pop(key)
    return row


def parse_messages(obj: dict, where: str) -> list[dict]:
    """A dialogue sample's history: a list of {"role", "content", "name"?} turns."""
    msgs = _require(obj, "messages", list, where)
    out = []
    for i, m in enumerate(msgs):
        at = f"{where}: messages[{i}]"
        if not isinstance(m, dict):
            raise DataError(f"{at} must be an object with 'role' and 'content', got {type(m).__name__}")
        role = m.get("role")
        if role not in ROLES:
            raise DataError(f"{at}: role {role!r} is not one of {', '.join(ROLES)}")
        if role == "system" and i != 0:
            raise DataError(f"{at}: a system turn may only come first")
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            raise DataError(f"{at}: 'content' is empty or not a string; give the turn's text or drop the turn")
        turn = {"role": role, "content": content}
        name = m.get("name")
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise DataError(f"{at}: 'name' must be a non-empty string or absent")
            turn["name"] = name
        extra = set(m) - {"role", "content", "name"}
        if extra:
            raise DataError(f"{at}: unknown field(s) {', '.join(sorted(extra))}; a turn has role, content and name")
        out.append(turn)
    return out


def parse_character(obj: dict, where: str) -> Character:
    name = _nonempty(_require(obj, "name", str, where), "name", where)
    profile = _require(obj, "profile", dict, where)
    if not profile:
        raise DataError(f"{where}: character '{name}' has an empty profile")
    for k, v in profile.items():
        if not isinstance(v, str):
            raise DataError(f"{where}: profile field '{k}' of '{name}' must be a string, got {type(v).__name__}")
    return Character(name=name, profile=dict(profile), provenance=_provenance(obj, where))


def _turn(obj: dict, where: str) -> int:
    turn = _require(obj, "turn", int, where)
    if isinstance(turn, bool):  # bool is an int subclass; true/false is not a turn number
        raise DataError(f"{where}: field 'turn' must be int, got bool {turn!r}")
    return turn


def parse_utterance(obj: dict, where: str) -> Utterance:
    emotion = obj.get("emotion")
    if emotion is not None and emotion not in EMOTIONS:
        alias = normalise_emotion(emotion)
        hint = f"; {emotion!r} reads as {alias!r}, write that" if alias else ""
        raise DataError(f"{where}: unknown emotion label {emotion!r}; use one of {', '.join(EMOTIONS)} "
                        f"(or null if unannotated){hint}")
    return Utterance(
        id=_require(obj, "id", str, where),
        character=_require(obj, "character", str, where),
        dialogue=str(obj.get("dialogue", "")),
        turn=_turn(obj, where),
        speaker=_nonempty(_require(obj, "speaker", str, where), "speaker", where),
        text=_nonempty(_require(obj, "text", str, where), "text", where),
        emotion=emotion,
        provenance=_provenance(obj, where),
    )


def parse_sample(obj: dict, where: str) -> Sample:
    kind = _require(obj, "kind", str, where)
    if kind not in KINDS:
        raise DataError(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    refs = _require(obj, "references", list, where)
    if not refs:
        raise DataError(f"{where}: 'references' is empty; a sample needs at least one answer")
    for i, r in enumerate(refs):
        if not isinstance(r, str) or not r.strip():
            raise DataError(f"{where}: references[{i}] is empty or not a string; remove it or give the answer text")
    instruction = _nonempty(_require(obj, "instruction", str, where), "instruction", where)
    character = _require(obj, "character", str, where)
    split = obj.get("split") or assign_split(split_key(kind, character, instruction))
    if split not in SPLITS:
        raise DataError(f"{where}: unknown split {split!r}; use one of {', '.join(SPLITS)}")
    messages = None
    if kind == "dialogue":
        messages = parse_messages(obj, where)
    elif "messages" in obj:
        raise DataError(f"{where}: 'messages' belongs to dialogue samples; this one is kind {kind!r} "
                        "(set kind to dialogue or drop the field)")
    speaker = obj.get("speaker")
    if speaker is not None and (not isinstance(speaker, str) or not speaker.strip()):
        raise DataError(f"{where}: 'speaker' must be a non-empty string or absent")
    return Sample(
        id=_require(obj, "id", str, where), kind=kind, character=character,
        instruction=instruction, references=list(refs), split=split,
        provenance=_provenance(obj, where), messages=messages, speaker=speaker,
    )


def load(root: str | Path) -> RoleInstruct:
    """Read and validate a canonical RoleInstruct directory; the first defect raises DataError."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; point data.root at a RoleInstruct directory (or 'embedded:demo')")
    for name in FILES:
        if not (root / name).is_file():
            raise DataError(f"{root}: missing {name}; a RoleInstruct directory holds {', '.join(FILES)}")
    meta = read_json(root / "meta.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DataError(f"{root / 'meta.json'}: 'format' must be {FORMAT_NAME!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(f"{root / 'meta.json'}: unsupported version {meta.get('version')!r} (this RoleCraft reads {FORMAT_VERSION})")

    characters: dict[str, Character] = {}
    for lineno, obj in read_jsonl(root / "characters.jsonl"):
        where = f"{root / 'characters.jsonl'}:{lineno}"
        c = parse_character(obj, where)
        if c.name in characters:
            raise DataError(f"{where}: duplicate character {c.name!r}")
        characters[c.name] = c
    if not characters:
        raise DataError(f"{root / 'characters.jsonl'}: no characters")

    from rolecraft.console import progress  # shown only when reading takes over a second

    def rows(name: str, parse) -> list:
        """Parse every row of ``name``; each must name a known character and have a unique id."""
        out, ids = [], set()
        path = str(root / name)  # built once: a Path join per row was a quarter of the load time
        for lineno, obj in progress(read_jsonl(root / name), desc=f"read {name}", unit="row"):
            where = f"{path}:{lineno}"
            row = parse(obj, where)
            if row.character not in characters:
                raise DataError(f"{where}: unknown character {row.character!r}; known: {', '.join(characters)}")
            if not row.id.strip():
                raise DataError(f"{where}: empty id")
            if row.id in ids:
                raise DataError(f"{where}: duplicate id {row.id!r}")
            ids.add(row.id)
            out.append(row)
        return out

    script = rows("script.jsonl", parse_utterance)
    samples = rows("samples.jsonl", parse_sample)
    return RoleInstruct(root=root, meta=meta, characters=characters, script=script, samples=samples)


def to_rows(ds: RoleInstruct) -> dict[str, list[dict]]:
    """The rows of each JSONL file, for writers."""
    return {
        "characters.jsonl": [_row(c) for c in ds.characters.values()],
        "script.jsonl": [_row(u) for u in ds.script],
        "samples.jsonl": [_row(s) for s in ds.samples],
    }


def save(ds: RoleInstruct, out: str | Path, *, force: bool = False, inputs: Sequence[str | Path | None] = (),
         writer: str = "rolecraft", what: str = "--out") -> Path:
    """Write a dataset directory atomically (a failure leaves no half-written directory).

    ``out`` is guarded by :func:`rolecraft.fileio.check_output_dir`: an existing non-empty
    directory is replaced only with ``force`` and only if RoleCraft wrote it; never the
    dataset's own root or ``inputs`` (or a folder holding them).
    """
    from rolecraft.fileio import atomic_dir, write_json, write_jsonl

    out = Path(out)
    with atomic_dir(out, force=force, inputs=[ds.root, *inputs], writer=writer, what=what) as tmp:
        write_json(tmp / "meta.json", {"format": FORMAT_NAME, "version": FORMAT_VERSION, **{k: v for k, v in ds.meta.items() if k not in ("format", "version")}})
        for name, rows in to_rows(ds).items():
            write_jsonl(tmp / name, rows)
    return out
