"""What can be retrieved for a character: its script lines and its profile facts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from rolecraft.data.prompts import profile_lines
from rolecraft.data.schema import RoleInstruct


@dataclass(frozen=True)
class Passage:
    id: str
    kind: str  # "line" (a script utterance) | "fact" (a profile field)
    text: str
    speaker: str | None = None
    emotion: str | None = None


def passages_of(ds: RoleInstruct, character: str, sources: tuple[str, ...] = ("script", "profile")) -> list[Passage]:
    out: list[Passage] = []
    if "script" in sources:
        c = ds.characters[character]
        names = {character, c.profile.get("名字", character), c.profile.get("name", character)}
        out += [Passage(u.id, "line", u.text, u.speaker, u.emotion) for u in ds.script_of(character)
                if u.speaker in names]
    if "profile" in sources:
        profile = ds.characters[character].profile
        out += [Passage(f"{character}/profile/{k}", "fact", line) for k, line in zip(profile, profile_lines(profile))]
    return out


def content_hash(passages: list[Passage]) -> str:
    blob = json.dumps([asdict(p) for p in passages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
