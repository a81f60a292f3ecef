"""What every importer shares: the :class:`Defect` record, the error for "nothing imported",
and a lenient reader for hand-made JSON / JSON-lines files.

Importers keep going where they safely can and report each quirk they repaired or skipped as a
``Defect`` (``file:line: message``); the ``rolecraft data import`` command prints them and can
write them to a report. Importers import from here, never from each other.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rolecraft.errors import DataError


@dataclass(frozen=True)
class Defect:
    """One quirk found (and repaired or skipped) in the source data."""

    file: str
    line: int | None  # 1-based; None for a defect of the whole file or folder
    kind: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "kind": self.kind, "message": self.message}


# always printed in full: each is a lost character or a lost part, and the error that follows
# points at them
ALWAYS_SHOWN = ("character_skipped", "character_partial")


def summarise_defects(defects: list[Defect], report: str | Path | None = None, show_all: bool = False,
                      max_listed: int = 10, max_kinds: int = 20) -> list[str]:
    """The terminal's view of the defects: all of them when there are at most ``max_listed`` (or
    ``show_all``), else one line per kind (count, then its first defect) with every lost
    character (:data:`ALWAYS_SHOWN`) listed, and where the full list is (``report``) or how to
    get it. Bounded: at most ``max_kinds`` kind lines whatever the data."""
    if show_all or len(defects) <= max_listed:
        return [str(d) for d in defects]
    counts = Counter(d.kind for d in defects)
    first: dict[str, Defect] = {}
    for d in defects:
        first.setdefault(d.kind, d)
    kinds = sorted(counts, key=lambda k: (-counts[k], k))
    where = (f"every one in {report}" if report else
             "every one: rerun with --report FILE (.json or text), or with -v to print them here")
    lines = [f"{len(defects)} defects in {len(kinds)} kinds, the first of each shown ({where}):"]
    width = max(len(k) for k in kinds)
    for k in kinds[:max_kinds]:
        lines.append(f"  {counts[k]:>6} {k:<{width}}  e.g. {first[k]}")
    if len(kinds) > max_kinds:
        rest = kinds[max_kinds:]
        names = ", ".join(rest[:5]) + (", …" if len(rest) > 5 else "")
        lines.append(f"  {sum(counts[k] for k in rest):>6} in {len(rest)} more kinds: {names}")
    lost = [d for d in defects if d.kind in ALWAYS_SHOWN]
    if lost:
        lines.append("characters lost or incomplete:")
        lines.extend(f"  {d}" for d in lost)
    return lines


class ImportFailed(DataError):
    """Nothing could be imported; ``defects`` says why (the CLI prints them before the error)."""

    def __init__(self, message: str, defects: list[Defect]):
        super().__init__(message)
        self.defects = defects


def short(s: str, n: int = 40) -> str:
    """Text for a one-line message: newlines shown as \\n, cut to ``n`` characters."""
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 1] + "…"


def dedupe(items: list[str]) -> list[str]:
    """The items in first-seen order, each once."""
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


# ---- lenient JSON / JSON-lines reading ------------------------------------------------------

_STRICT = json.JSONDecoder()
_LAX = json.JSONDecoder(strict=False)  # accepts raw control characters inside strings
_ESCAPE = re.compile(r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})|\\')


def repair_escapes(text: str) -> tuple[str, list[int]]:
    """Escape every backslash that does not start a valid JSON escape.

    Returns the repaired text and the offsets (in ``text``) of the repaired backslashes.
    Valid escapes are consumed as pairs first, so ``\\\\q`` (an escaped backslash then q)
    is left alone.
    """
    offsets: list[int] = []

    def sub(m: re.Match) -> str:
        if len(m.group(0)) > 1:
            return m.group(0)
        offsets.append(m.start())
        return "\\\\"

    return _ESCAPE.sub(sub, text), offsets


def _iter_array(text: str, strict: bool) -> list[tuple[int, Any]]:
    """Parse a JSON array, returning ``(line of the element's start, element)`` pairs."""
    dec = json.JSONDecoder(strict=strict)
    ws = re.compile(r"\s*")
    i = ws.match(text, 0).end()
    if text[i:i + 1] != "[":
        raise json.JSONDecodeError("Expecting '['", text, i)
    i = ws.match(text, i + 1).end()
    out: list[tuple[int, Any]] = []
    line, last = 1, 0
    if text[i:i + 1] == "]":
        i += 1
    else:
        while True:
            obj, end = dec.raw_decode(text, i)
            line += text.count("\n", last, i)
            last = i
            out.append((line, obj))
            i = ws.match(text, end).end()
            c = text[i:i + 1]
            if c == ",":
                i = ws.match(text, i + 1).end()
                if text[i:i + 1] == "]":  # tolerate a trailing comma
                    i += 1
                    break
                continue
            if c == "]":
                i += 1
                break
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
    if text[i:].strip():
        raise json.JSONDecodeError("Extra data", text, i)
    return out


class LenientReader:
    """Reads hand-made JSON / JSON-lines files, repairing what is safe, noting each repair as a defect.

    Whether a file is a JSON array or JSON lines is decided by its content, not its extension;
    invalid escapes and raw control characters are repaired; a JSON-lines row that still does not
    parse is skipped. ``counts`` is for the importer's own tallies (e.g. meta.source_counts).
    """

    def __init__(self, defects: list[Defect]):
        self.defects = defects
        self.counts: Counter = Counter()  # what was read, before merging (for meta.source_counts)
        self._peeked: dict[Path, tuple[list[tuple[int, Any]] | None, list[Defect]]] = {}

    def note(self, file: Path, line: int | None, kind: str, message: str) -> None:
        self.defects.append(Defect(str(file), line, kind, message))

    def text(self, path: Path) -> str | None:
        try:
            data = path.read_bytes()
        except OSError as e:
            self.note(path, None, "unreadable_file", f"cannot read file ({e.strerror or e})")
            return None
        from rolecraft.fileio import decode

        try:
            return decode(data, path)
        except DataError as e:  # "FILE:LINE: not UTF-8 (byte 0x.. at column N) ..."
            where, _, why = str(e).partition(": ")
            line = int(where.rsplit(":", 1)[1]) if where.rsplit(":", 1)[-1].isdigit() else None
            self.note(path, line, "unreadable_file", f"{why.split(';')[0]}; file skipped")
            return None

    def _parse(self, path: Path, text: str, line_offset: int, parse) -> tuple[Any, bool]:
        """Parse with ``parse(text, strict)``; on failure repair escapes/control chars.

        Returns ``(result, ok)``; repairs are noted as defects at their lines.
        """
        try:
            return parse(text, True), True
        except json.JSONDecodeError as first:
            fixed, offsets = repair_escapes(text)
            try:
                result = parse(fixed, False)
            except json.JSONDecodeError:
                return first, False
            if offsets:
                nl = [i for i, ch in enumerate(text) if ch == "\n"] if "\n" in text else []
                by_line: dict[int, list[str]] = {}
                for off in offsets:
                    ln = bisect.bisect_left(nl, off) + 1 + line_offset
                    by_line.setdefault(ln, []).append(short(text[off:off + 2], 4))
                for ln, escs in sorted(by_line.items()):
                    self.note(path, ln, "invalid_escape",
                              f"invalid JSON escape {', '.join(escs)} repaired (backslash kept as a literal character)")
            else:
                self.note(path, first.lineno + line_offset, "control_character",
                          f"raw control character inside a JSON string (column {first.colno}); accepted")
            return result, True

    def peek_text(self, path: Path) -> str | None:
        """:meth:`text` without reporting (the read that uses the file reports its problems)."""
        saved, self.defects = self.defects, []
        try:
            return self.text(path)
        finally:
            self.defects = saved

    def peek(self, path: Path) -> list[tuple[int, Any]] | None:
        """:meth:`records` without reporting: for recognising a file by its content. Its defects
        are reported when :meth:`records` later reads the file (parsed once), and never for a
        file that is then ignored."""
        if path not in self._peeked:
            saved, self.defects = self.defects, []
            try:
                result = self._records(path)
            finally:
                self.defects, pending = saved, self.defects
            self._peeked[path] = (result, pending)
        return self._peeked[path][0]

    def records(self, path: Path) -> list[tuple[int, Any]] | None:
        """``(line, record)`` for every record of a JSON array or JSON-lines file; None if unreadable."""
        if path in self._peeked:
            result, pending = self._peeked.pop(path)
            self.defects.extend(pending)
            return result
        return self._records(path)

    def _records(self, path: Path) -> list[tuple[int, Any]] | None:
        text = self.text(path)
        if text is None:
            return None
        is_array = text.lstrip().startswith("[")
        ext = path.suffix.lower()
        if is_array and ext == ".jsonl":
            self.note(path, None, "file_format", "a .jsonl file holding one JSON array; read as a JSON array")
        if not is_array and ext == ".json" and text.strip():
            self.note(path, None, "file_format", "a .json file holding JSON lines; read as JSON lines")
        if is_array:
            result, ok = self._parse(path, text, 0, lambda t, strict: _iter_array(t, strict))
            if not ok:
                e = result
                self.note(path, e.lineno, "unreadable_file",
                          f"malformed JSON ({e.msg} at column {e.colno}) that cannot be repaired; file skipped")
                return None
            return result
        out: list[tuple[int, Any]] = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            result, ok = self._parse(path, line, lineno - 1, lambda t, strict: (_STRICT if strict else _LAX).decode(t))
            if not ok:
                e = result
                self.note(path, lineno, "malformed_json",
                          f"malformed JSON ({e.msg} at column {e.colno}) that cannot be repaired; line skipped")
                continue
            out.append((lineno, result))
        return out

    def objects(self, path: Path) -> list[tuple[int, dict]] | None:
        recs = self.records(path)
        if recs is None:
            return None
        out = []
        for line, rec in recs:
            if isinstance(rec, dict):
                out.append((line, rec))
            else:
                self.note(path, line, "bad_record", f"expected a JSON object, got {type(rec).__name__}; skipped")
        return out
