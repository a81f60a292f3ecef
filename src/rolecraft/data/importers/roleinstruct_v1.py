"""Import RoleInstruct v1 as published by the authors (``dataset/role/<name>/``).

Layout per character folder ``<name>/`` (see /work/shared/data/SOURCES.md)::

    <name>_desc.txt                 profile, one line of ``key：value`` pairs
    <name>_scriopt.jsonl|.json      script lines {"role", "content"}, content = "(情绪)text"
    <name>_specific_QA.json         [{"instruction", "generated"}]          (SPE material)
    <name>_general_rp1..5.jsonl     {"role", "instruction", "generated"}    (CUS material)

The importer is tolerant of every quirk found in the published files and reports each one
as a :class:`Defect` (``file:line: message``). Decisions, in order of the files:

* **Files** are recognised by name pattern, not exact name: ``_scriopt`` (sic) or ``_script``;
  ``.json`` or ``.jsonl``; ``_specific_QA..json`` (double dot); ``<name>general_rp1.jsonl``
  (no underscore); ``rpN-M.json`` (one file for several answer rounds). Whether a file is a
  JSON array or JSON lines is decided by its content, not its extension. Variants are
  reported (kind ``file_name`` / ``file_format``) and read anyway.
* **Invalid JSON escapes** (``\\用`` and the like) are repaired by escaping the stray
  backslash, so it stays a literal backslash in the text (kind ``invalid_escape``). Raw
  control characters inside strings are accepted (kind ``control_character``). A JSON-lines
  row that still does not parse is skipped (kind ``malformed_json``).
* **Character name**: the canonical name is the *folder* name. A profile whose ``名字``
  differs (folder 何赛, profile 何塞) keeps its own name in that profile field and is
  reported (kind ``name_mismatch``); so is a script in which the folder name never speaks
  (folder 董文洁, script role 童文洁) and rp rows whose ``role`` differs.
* **Profile** ``<name>_desc.txt`` is split on ``；`` ``，`` ``;`` ``,`` and newlines into ordered
  ``key：value`` fields (full- or half-width colon, key of at most 12 characters without
  punctuation). A segment without a key continues the previous field (joined back with the
  separator it was split on), so ``性格特点：热情、坚定，同时也非常关心社区`` stays one field.
* **Script**: ``character`` = folder name, ``speaker`` = the ``role`` field as written
  (a role in parentheses, ``(其他)``, is read without them: kind ``speaker_format``). The
  source has no dialogue boundaries, so each script file is **one dialogue** (id
  ``"<name>#1"``), turns numbered from 1 over the kept lines. The leading emotion label is
  stripped into ``emotion`` via :data:`EMOTION_ALIASES`: ``(中立)``, ``（中立）``,
  ``(中立) `` are clean; ``((其他))`` (kind ``malformed_emotion_prefix``), a bare label
  without parentheses such as ``沮丧同意`` or ``grateful谢谢`` (kind ``bare_emotion_label``)
  and stray labels such as ``(激动)`` (kind ``stray_emotion_label``) are mapped and reported
  (a bare label is looked for only when a line has no parenthesised one; a line that truly
  begins with a label word, ``快乐就好``, would be misread, visibly, as each read is reported);
  two labels in a row ``(中立)(其他)`` keep the first (``double_emotion_label``);
  an unknown parenthesised label is stripped, gives ``emotion: null`` and is reported
  (``unknown_emotion_label``); a line without any label keeps its text with
  ``emotion: null`` (``unlabeled``). A line whose text is empty is dropped (``empty_text``).
* **Specific QA**: one ``specific`` sample per (character, instruction); repeated
  instructions are merged into one sample whose references are the distinct answers
  (kind ``duplicate_instruction``).
* **General rp files** are aligned by instruction text (stripped), never by line number:
  one ``general`` sample per (character, instruction) whose references are the distinct,
  non-empty answers, the first answer of each rp file in rp order first, then answers of
  repeated rows, at most :data:`MAX_REFERENCES`. An rp file lacking instructions that its
  siblings have is reported once (``missing_instructions``); repeated rows within a file
  (``duplicate_instruction``), empty or absent answers (``empty_answer``) are reported.
* **Files are recognised by content**, the name only a hint (:func:`_classify`): a file whose
  name matches no pattern is read as whatever its JSON shape says (kind ``file_name``), and a
  name that says another shape than the content is overruled (``file_role``).
* **Missing parts**: a character imports every part that is there; a missing or unreadable
  profile, script, specific QA or set of rp files is reported (``character_partial``; without
  a profile the character gets ``{名字: folder name}``). A folder with no readable script and
  no Q&A is skipped (``character_skipped``). ``rolecraft data import`` exits non-zero for
  either unless ``--allow-partial``.

Ids come from :func:`schema.stable_id` and splits from :func:`schema.assign_split`, so a
rerun on the same input writes byte-identical files.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolecraft.data.emotions import CANONICAL_ZH, EMOTION_ALIASES, normalise_emotion
from rolecraft.data.importers.base import (  # noqa: F401  (Defect, repair_escapes: importable from here too)
    Defect,
    ImportFailed,
    LenientReader,
    dedupe,
    repair_escapes,
    short,
)
from rolecraft.data.schema import (
    Character,
    RoleInstruct,
    Sample,
    Utterance,
    assign_split,
    split_key,
    stable_id,
)
from rolecraft.errors import DataError

FORMAT = "roleinstruct-v1"
MAX_REFERENCES = 5  # the paper: five in-character answers per general instruction

# --------------------------------------------------------------------------------------
# Emotion labels (the alias table is rolecraft.data.emotions.EMOTION_ALIASES)
# --------------------------------------------------------------------------------------

_PAREN_PREFIX = re.compile(r"^\s*([(（]+)\s*([^()（）]{1,12}?)\s*([)）]+)\s*")
_BARE_KEYS = sorted(EMOTION_ALIASES, key=len, reverse=True)


def parse_emotion_prefix(content: str) -> tuple[str, str | None, str | None, str]:
    """Split ``"(中立)text"`` into ``(text, emotion, defect_kind, raw_label)``.

    ``defect_kind`` is None for a clean canonical label; otherwise one of
    ``stray_emotion_label``, ``malformed_emotion_prefix``, ``double_emotion_label`` (a
    second label right after the first; the first wins), ``bare_emotion_label``,
    ``unknown_emotion_label``, ``unlabeled``. A second parenthesis that is not a label, such
    as a stage direction ``(兴奋) (在动物园)哇``, stays in the text.
    """
    m = _PAREN_PREFIX.match(content)
    if m:
        opening, label, closing = m.groups()
        text = content[m.end():].strip()
        emotion = normalise_emotion(label)
        if emotion is None:
            return text, None, "unknown_emotion_label", label
        second = _PAREN_PREFIX.match(text)
        if second and normalise_emotion(second.group(2)) is not None:  # "(中立)(其他)都可以看看"
            return text[second.end():].strip(), emotion, "double_emotion_label", m.group(0).strip() + second.group(0).strip()
        if len(opening) > 1 or len(closing) > 1:
            return text, emotion, "malformed_emotion_prefix", m.group(0).strip()
        if label not in CANONICAL_ZH:
            return text, emotion, "stray_emotion_label", label
        return text, emotion, None, label
    stripped = content.lstrip()
    for key in _BARE_KEYS:
        head = stripped[: len(key)]
        if head != key and not (key.isascii() and head.lower() == key):
            continue
        rest = stripped[len(key):]
        if key.isascii() and rest[:1].isascii() and (rest[:1].isalnum() or rest[:1] == " "):
            continue  # "happy birthday", "sadly": English text, not a label
        rest = rest.lstrip(" ：:")
        if rest.strip():
            return rest.strip(), EMOTION_ALIASES[key], "bare_emotion_label", head
    return content.strip(), None, "unlabeled", ""


class RoleInstructImportError(ImportFailed):
    """No character could be imported; ``defects`` says why for each character."""


# --------------------------------------------------------------------------------------
# Files of one character folder
# --------------------------------------------------------------------------------------

_DESC = re.compile(r"^(?P<prefix>.*?)(?P<us>_?)desc\.txt$", re.I)
_SCRIPT = re.compile(r"^(?P<prefix>.*?)(?P<us>_?)(?:scriopt|script)(?P<dots>\.+)(?P<ext>jsonl?)$", re.I)
_SPECIFIC = re.compile(r"^(?P<prefix>.*?)(?P<us>_?)specific_qa(?P<dots>\.+)(?P<ext>jsonl?)$", re.I)
_GENERAL = re.compile(r"^(?P<prefix>.*?)(?P<us>_?)general_rp(?P<a>\d+)(?:-(?P<b>\d+))?(?P<dots>\.+)(?P<ext>jsonl?)$", re.I)


@dataclass
class _Files:
    desc: Path | None = None
    script: Path | None = None
    specific: Path | None = None
    general: list[tuple[int, int, Path]] | None = None


ROLE_NAMES = {"desc": "profile", "script": "script", "specific": "specific QA", "general": "general answers"}
_RP_NUMBER = re.compile(r"rp(\d+)(?:-(\d+))?", re.I)
_UNNUMBERED = 1000  # general files whose name gives no rp number come after the numbered ones


def _content_role(path: Path, reader: LenientReader) -> str | None:
    """What the file holds, judged by its content: ``desc`` (``key：value`` text), ``script``
    (rows with role + content), ``general`` (rows with role + instruction + generated) or
    ``specific`` (instruction + generated, no role); None when unreadable or none of these."""
    text = reader.peek_text(path)
    if text is None:
        return None
    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        return "desc" if _PROFILE_KEY.match(text.strip().split("\n", 1)[0] or " ") else None
    recs = reader.peek(path)
    if not recs:
        return None
    keys: set[str] = set()
    for _, rec in recs[:50]:
        if isinstance(rec, dict):
            keys.update(rec)
    if "instruction" in keys and "generated" in keys:
        return "general" if "role" in keys else "specific"
    if "role" in keys and "content" in keys:
        return "script"
    return None


def _classify(folder: Path, reader: LenientReader) -> _Files:
    """Each file's part, by its content with the name as a hint.

    A name that matches a known pattern decides between the two Q&A shapes (specific and
    general rows differ only in a ``role`` field); content overrides a name that says a
    different shape (a script named as Q&A ...) and places a file whose name matches nothing.
    """
    name = folder.name
    files = _Files(general=[])
    unnumbered = 0
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        fname = p.name
        m = None
        for role, pattern in (("desc", _DESC), ("script", _SCRIPT), ("specific", _SPECIFIC), ("general", _GENERAL)):
            m = pattern.match(fname)
            if m:
                break
        content = _content_role(p, reader)
        qa = {"specific", "general"}
        if m and content is not None and content != role and not (role in qa and content in qa):
            reader.note(p, None, "file_role", f"named as the {ROLE_NAMES[role]} but holds the "
                                              f"{ROLE_NAMES[content]} (judged by its content); read as the {ROLE_NAMES[content]}")
            m, role = None, content
        elif not m:
            if content is None:
                reader.note(p, None, "unknown_file", "neither its name nor its content is a RoleInstruct v1 file "
                                                     "(profile, script, specific QA, general answers); ignored")
                continue
            role = content
            reader.note(p, None, "file_name", f"file name matches no RoleInstruct v1 pattern; read as the "
                                              f"{ROLE_NAMES[role]} (judged by its content)")
        if m:
            gd = m.groupdict()
            quirks = []
            if gd["prefix"] != name:
                quirks.append(f"name prefix {gd['prefix']!r} differs from the folder {name!r}")
            if not gd["us"] and gd["prefix"]:
                quirks.append(f"no underscore after {gd['prefix']!r}")
            if gd.get("dots") and len(gd["dots"]) > 1:
                quirks.append(f"{len(gd['dots'])} dots before the extension")
            if role == "general" and gd["b"]:
                quirks.append(f"one file for answer rounds rp{gd['a']}-rp{gd['b']}")
            if quirks:
                reader.note(p, None, "file_name", "file name variant (" + "; ".join(quirks) + "); read anyway")
        if role == "general":
            if m:
                a, b = int(m.group("a")), int(m.group("b") or m.group("a"))
            else:
                rp = _RP_NUMBER.search(fname)
                if rp:
                    a, b = int(rp.group(1)), int(rp.group(2) or rp.group(1))
                else:
                    unnumbered += 1
                    a = b = _UNNUMBERED + unnumbered
            files.general.append((a, b, p))
            continue
        current = getattr(files, role)
        if current is not None:
            reader.note(p, None, "duplicate_file", f"a second {role} file besides {current.name}; ignored")
            continue
        setattr(files, role, p)
    files.general.sort()
    return files


# --------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------

_PROFILE_SPLIT = re.compile(r"([；，;,\n])")
_PROFILE_KEY = re.compile(r"^\s*([^：:，；;,。、！？!?\s]{1,12})\s*[：:]\s*(.*)$", re.S)
NAME_KEYS = ("名字", "姓名", "name")


def parse_profile(text: str, path: Path, reader: LenientReader) -> dict[str, str]:
    """``key：value`` pairs in order; text without a key continues the previous field."""
    fields: dict[str, str] = {}
    last: str | None = None
    parts = _PROFILE_SPLIT.split(text)
    line, sep = 1, ""
    for i, part in enumerate(parts):
        if i % 2 == 1:
            sep = part
            if part == "\n":
                line += 1
            continue
        seg = part.strip()
        if not seg:
            continue
        m = _PROFILE_KEY.match(seg)
        if m:
            key, value = m.group(1), m.group(2).strip()
            if key in fields:
                reader.note(path, line, "profile_format", f"profile field {key!r} given twice; values joined with '；'")
                fields[key] = f"{fields[key]}；{value}" if fields[key] else value
            else:
                fields[key] = value
            last = key
        elif last is None:
            reader.note(path, line, "profile_format", f"profile text {short(seg)!r} before any 'key：value' field; kept as field '描述'")
            fields["描述"] = seg
            last = "描述"
        else:  # a continuation: put back exactly what was split off
            joiner = "；" if sep == "\n" else sep
            fields[last] = f"{fields[last]}{joiner}{part.rstrip()}" if fields[last] else seg
    for key in [k for k, v in fields.items() if not v]:
        reader.note(path, None, "profile_format", f"profile field {key!r} is empty; dropped")
        del fields[key]
    return fields


# --------------------------------------------------------------------------------------
# The importer
# --------------------------------------------------------------------------------------


def _answers(gen: Any, path: Path, line: int, reader: LenientReader) -> list[str] | None:
    """The answer strings in ``generated`` (a string or a possibly nested list of them)."""
    if isinstance(gen, str):
        return [gen]
    if isinstance(gen, list):
        out: list[str] = []
        for g in gen:
            sub = _answers(g, path, line, reader)
            if sub:
                out.extend(sub)
        return out
    if gen is None:
        return None
    reader.note(path, line, "bad_record", f"'generated' is {type(gen).__name__}, not text; ignored")
    return []


class _CharacterImport:
    def __init__(self, folder: Path, reader: LenientReader):
        self.folder = folder
        self.name = folder.name
        self.reader = reader
        self.note = reader.note

    # -- profile -------------------------------------------------------------------
    def profile(self, path: Path) -> dict[str, str] | None:
        text = self.reader.text(path)
        if text is None:
            return None
        profile = parse_profile(text.strip(), path, self.reader)
        if not profile:
            self.note(path, None, "unreadable_file", "profile holds no 'key：value' fields")
            return None
        own = next((profile[k] for k in NAME_KEYS if k in profile), None)
        if own is None:
            self.note(path, 1, "profile_format", "profile has no 名字 field")
        elif own != self.name:
            self.note(path, 1, "name_mismatch",
                      f"profile names the character {own!r} but the folder is {self.name!r}; "
                      f"the character is {self.name!r}, the profile keeps its own name")
        return profile

    # -- script --------------------------------------------------------------------
    def script(self, path: Path) -> list[Utterance] | None:
        rows = self.reader.objects(path)
        if rows is None:
            return None
        dialogue = f"{self.name}#1"
        out: list[Utterance] = []
        speakers: Counter = Counter()
        wrapped: list[int] = []
        for line, row in rows:
            role, content = row.get("role"), row.get("content")
            if not isinstance(role, str) or not role.strip():
                self.note(path, line, "missing_field", "script line without a 'role' (speaker); skipped")
                continue
            if not isinstance(content, str):
                self.note(path, line, "missing_field", "script line without 'content' text; skipped")
                continue
            text, emotion, issue, raw = parse_emotion_prefix(content)
            if issue == "stray_emotion_label":
                self.note(path, line, issue, f"stray emotion label {raw!r} mapped to {emotion!r}")
            elif issue == "malformed_emotion_prefix":
                self.note(path, line, issue, f"malformed emotion prefix {raw!r} read as {emotion!r}")
            elif issue == "double_emotion_label":
                self.note(path, line, issue, f"two emotion labels {raw!r}; kept the first, {emotion!r}")
            elif issue == "bare_emotion_label":
                self.note(path, line, issue, f"emotion label {raw!r} without parentheses read as {emotion!r}")
            elif issue == "unknown_emotion_label":
                self.note(path, line, issue, f"unknown emotion label {raw!r}; stripped, emotion left null")
            elif issue == "unlabeled":
                self.note(path, line, issue, "script line has no emotion label; emotion left null")
            if not text:
                self.note(path, line, "empty_text", "script line has no text after its emotion label; skipped")
                continue
            self.reader.counts["script_lines"] += 1
            speaker = role.strip()
            bracketed = re.fullmatch(r"[(（]\s*([^()（）]+?)\s*[)）]", speaker)
            if bracketed:  # "(其他)": the unnamed-speaker tag written with parentheses
                wrapped.append(line)
                speaker = bracketed.group(1)
            speakers[speaker] += 1
            turn = len(out) + 1
            out.append(Utterance(
                id=stable_id("script", self.name, dialogue, str(turn)),
                character=self.name, dialogue=dialogue, turn=turn,
                speaker=speaker, text=text, emotion=emotion,
            ))
        if wrapped:
            self.note(path, wrapped[0], "speaker_format",
                      f"{len(wrapped)} line(s) give the speaker in parentheses, e.g. '(其他)'; read without them")
        if out and self.name not in speakers:
            top, n = speakers.most_common(1)[0]
            self.note(path, None, "name_mismatch",
                      f"the character {self.name!r} never speaks in its script (most lines: {top!r}, {n}); "
                      f"speakers kept as written")
        return out

    # -- specific ------------------------------------------------------------------
    def specific(self, path: Path) -> list[Sample] | None:
        rows = self.reader.objects(path)
        if rows is None:
            return None
        refs: dict[str, list[str]] = {}
        first: dict[str, int] = {}
        for line, row in rows:
            instr = row.get("instruction")
            if not isinstance(instr, str) or not instr.strip():
                self.note(path, line, "missing_field", "QA item without an 'instruction'; skipped")
                continue
            key = instr.strip()
            answers = _answers(row.get("generated"), path, line, self.reader)
            if answers is None:
                self.note(path, line, "empty_answer", "QA item without a 'generated' answer")
                answers = []
            kept = [a.strip() for a in answers if a.strip()]
            if len(kept) < len(answers):
                self.note(path, line, "empty_answer", "empty answer dropped")
            self.reader.counts["specific_answers"] += len(kept)
            if key in first:
                self.note(path, line, "duplicate_instruction",
                          f"instruction repeated (first at line {first[key]}); answers merged into one sample")
                refs[key].extend(kept)
            else:
                first[key] = line
                refs[key] = kept
        samples = []
        for key, answers in refs.items():
            answers = dedupe(answers)
            if not answers:
                self.note(path, first[key], "no_references", f"instruction {short(key)!r} has no answer; no sample")
                continue
            samples.append(self._sample("specific", key, answers))
        return samples

    # -- general -------------------------------------------------------------------
    def general(self, files: list[tuple[int, int, Path]]) -> list[Sample] | None:
        primary: dict[str, list[str]] = {}
        extra: dict[str, list[str]] = {}
        origin: dict[str, tuple[Path, int]] = {}
        per_file: list[tuple[Path, set[str]]] = []
        for _a, _b, path in files:
            rows = self.reader.objects(path)
            if rows is None:
                continue
            seen: dict[str, int] = {}
            wrong_role: list[int] = []
            roles: Counter = Counter()
            for line, row in rows:
                role = row.get("role")
                if role is not None and role != self.name:
                    wrong_role.append(line)
                    roles[str(role)] += 1
                instr = row.get("instruction")
                if not isinstance(instr, str) or not instr.strip():
                    self.note(path, line, "missing_field", "rp row without an 'instruction'; skipped")
                    continue
                key = instr.strip()
                answers = _answers(row.get("generated"), path, line, self.reader)
                if answers is None:
                    self.note(path, line, "empty_answer", "rp row without a 'generated' answer")
                    answers = []
                kept = [a.strip() for a in answers if a.strip()]
                if answers and len(kept) < len(answers):
                    self.note(path, line, "empty_answer",
                              "empty answer" + ("s" if len(answers) - len(kept) > 1 else "") + " dropped")
                self.reader.counts["general_answers"] += len(kept)
                origin.setdefault(key, (path, line))
                if key in seen:
                    known = primary.get(key, []) + extra.get(key, [])
                    fate = ("no answer" if not kept else "same answer, dropped" if all(a in known for a in kept)
                            else "answer kept as a spare reference")
                    self.note(path, line, "duplicate_instruction",
                              f"instruction repeated (first at line {seen[key]} of this file); {fate}")
                    extra.setdefault(key, []).extend(kept)
                else:
                    seen[key] = line
                    primary.setdefault(key, []).extend(kept)
            if wrong_role:
                top = ", ".join(f"{r!r}" for r, _ in roles.most_common(3))
                self.note(path, wrong_role[0], "name_mismatch",
                          f"{len(wrong_role)} row(s) name role {top}, not {self.name!r}; imported as {self.name!r}")
            per_file.append((path, set(seen)))
        if not per_file:
            return None
        # Instructions that have an answer somewhere (a row with neither answer nor sibling is
        # reported as no_references below, not as missing from every other file).
        union = {k for k in origin if any(a for a in primary.get(k, []) + extra.get(k, []))}
        for path, keys in per_file:
            missing = union - keys
            if missing:
                example = next(k for k in origin if k in missing)  # first in file order
                self.note(path, None, "missing_instructions",
                          f"lacks {len(missing)} of the {len(union)} instructions found in this character's rp files "
                          f"(e.g. {short(example)!r}); aligned by instruction text")
        samples = []
        for key in origin:
            main = dedupe(primary.get(key, []))
            answers = dedupe(main + extra.get(key, []))
            path, line = origin[key]
            if not answers:
                self.note(path, line, "no_references", f"instruction {short(key)!r} has no non-empty answer in any rp file; no sample")
                continue
            if len(main) > MAX_REFERENCES:
                self.note(path, line, "extra_references",
                          f"instruction {short(key)!r} has {len(main)} distinct answers; kept the first {MAX_REFERENCES}")
            samples.append(self._sample("general", key, answers[:MAX_REFERENCES]))
        return samples

    def _sample(self, kind: str, instruction: str, refs: list[str]) -> Sample:
        return Sample(
            id=stable_id(kind, self.name, instruction), kind=kind, character=self.name,
            instruction=instruction, references=refs,
            split=assign_split(split_key(kind, self.name, instruction)),
        )

    # -- all -----------------------------------------------------------------------
    def run(self) -> tuple[Character, list[Utterance], list[Sample]] | None:
        """Every part that is there; a missing or unreadable part is reported (``character_partial``).
        Without a profile the character gets ``{名字: folder name}``; with no script and no
        Q&A at all it is skipped (``character_skipped``)."""
        files = _classify(self.folder, self.reader)
        profile = self.profile(files.desc) if files.desc is not None else None
        script = self.script(files.script) if files.script is not None else None
        specific = self.specific(files.specific) if files.specific is not None else None
        general = self.general(files.general) if files.general else None
        lacking = []
        for what, path, got in (("profile (<name>_desc.txt)", files.desc, profile),
                                ("script (<name>_scriopt.jsonl)", files.script, script),
                                ("specific QA (<name>_specific_QA.json)", files.specific, specific),
                                ("general answers (<name>_general_rp1.jsonl ...)", files.general or None, general)):
            if got is None:
                lacking.append(("missing " if path is None else "unreadable ") + what)
        if script is None and specific is None and general is None:
            self.note(self.folder, None, "character_skipped",
                      f"character {self.name!r} skipped: no script and no Q&A could be read ({'; '.join(lacking)})")
            return None
        if lacking:
            self.note(self.folder, None, "character_partial",
                      f"character {self.name!r} imported without its {'; '.join(lacking)}")
        if profile is None:
            profile = {"名字": self.name}
        return Character(name=self.name, profile=profile), script or [], (specific or []) + (general or [])


def import_roleinstruct_v1(src: str | Path) -> tuple[RoleInstruct, list[Defect]]:
    """Convert the authors' ``role/<name>/`` layout at ``src`` into a canonical RoleInstruct.

    ``src`` is the ``role`` folder (or a folder holding ``role/``). Raises
    :class:`RoleInstructImportError` (a DataError) when no character can be imported.
    """
    src = Path(src).expanduser()
    if not src.is_dir():
        raise DataError(f"{src}: not a directory; point SRC at the authors' dataset/role folder (one sub-folder per character)")
    if (src / "role").is_dir() and not any(_looks_like_character(p) for p in src.iterdir() if p.is_dir()):
        src = src / "role"  # the repository's dataset/ folder was given
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{src}: no character folders; expected {src}/<name>/<name>_desc.txt ...")
    defects: list[Defect] = []
    reader = LenientReader(defects)
    characters: dict[str, Character] = {}
    script: list[Utterance] = []
    samples: list[Sample] = []
    from rolecraft.console import progress

    for folder in progress(folders, desc="import", unit="character"):
        got = _CharacterImport(folder, reader).run()
        if got is None:
            continue
        character, utts, smps = got
        characters[character.name] = character
        script.extend(utts)
        samples.extend(smps)
    if not characters:
        raise RoleInstructImportError(f"{src}: no character could be imported ({len(defects)} defects)", defects)
    counts = Counter(d.kind for d in defects)
    meta = {
        "name": FORMAT,
        "source": "RoleInstruct v1, authors' layout (tml2002/RoleCraft dataset/role)",
        "importer": "rolecraft.data.importers.roleinstruct_v1",
        "dialogues": "one dialogue per script file (the source marks no dialogue boundaries)",
        # Non-empty answers / kept script lines as read, before duplicates were merged; the
        # paper's "general responses" (1,479 x 5 per character) counts these.
        "source_counts": dict(sorted(reader.counts.items())),
        "import_defects": dict(sorted(counts.items())),
    }
    return RoleInstruct(root=None, meta=meta, characters=characters, script=script, samples=samples), defects


def _looks_like_character(folder: Path) -> bool:
    return any(_DESC.match(p.name) for p in folder.iterdir() if p.is_file())
