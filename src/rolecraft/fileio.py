"""Small file helpers: safe atomic outputs and UTF-8 readers whose errors say file:line.

Writers: :func:`atomic_path` / :func:`atomic_dir` build under a temp name and move into place
only when complete. :func:`atomic_dir` is also the one guard for output directories
(:func:`check_output_dir`): it never replaces a directory the user filled, the input, ``.``,
``/``, the home directory or the RoleCraft checkout, so no ``--out`` can destroy files.
Readers: :func:`read_text`, :func:`iter_lines`, :func:`read_jsonl`, :func:`read_json` read
bytes and decode them, so a non-UTF-8 byte or a truncated file is one ``DataError`` naming
``FILE:LINE`` instead of a raw ``UnicodeDecodeError``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from rolecraft.errors import DataError, RolecraftError

#: The file every directory written through :func:`atomic_dir` holds: proof the tool wrote it,
#: so ``--force`` may replace it. Its text says which command wrote it.
OUTPUT_MARKER = ".rolecraft-output"


class OutputError(RolecraftError):
    """An output path that cannot be written without destroying files the tool did not write."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; written files follow the umask
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---- safe output directories ------------------------------------------------------------


def _repo_root() -> Path | None:
    """The RoleCraft checkout this code runs from (None for an installed package)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "rolecraft").is_dir() else None


def _within(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or inside it (both resolved)."""
    return a == b or b in a.parents


def check_output_dir(path: str | os.PathLike, *, force: bool = False, inputs: Sequence[str | os.PathLike | None] = (),
                     what: str = "--out") -> Path:
    """Refuse (``OutputError``, one line) an output directory whose replacement would lose files.

    Allowed: a path that does not exist, an empty directory, and with ``force`` a directory that
    holds :data:`OUTPUT_MARKER` (the tool wrote it). Never, even with ``force``: ``.`` or any
    folder holding it, ``/``, the home directory, the RoleCraft checkout, an input or a folder
    holding an input. Returns the path as given (expanded).
    """
    path = Path(path).expanduser()
    if path.is_symlink():
        raise OutputError(f"{what} {path}: is a symbolic link; give the real directory it points to")
    full = path.resolve()
    for inp in inputs:
        if inp is None or str(inp) == "":
            continue
        src = Path(inp).expanduser().resolve()
        if _within(src, full):
            how = "is" if src == full else "holds"
            raise OutputError(f"{what} {path}: {how} the input {inp}; write the output to a new directory")
    protected = [(Path.cwd().resolve(), "the current directory"), (Path.home().resolve(), "your home directory")]
    repo = _repo_root()
    if repo is not None:
        protected.append((repo, "the RoleCraft checkout"))
        protected += [(repo / d, "the RoleCraft checkout") for d in ("src", "conf", "tests", "experiments", "sweeps",
                                                                     "benchmarks", ".git")]
    for p, name in protected:
        if _within(p, full) or (name == "the RoleCraft checkout" and p != repo and _within(full, p)):
            how = "is" if p == full else "holds" if _within(p, full) else "is inside"
            raise OutputError(f"{what} {path}: {how} {name}; give a new directory such as {path.name or 'out'}/NAME")
    if not path.exists():
        return path
    if not path.is_dir():
        raise OutputError(f"{what} {path}: exists and is not a directory; choose a new directory")
    if not any(path.iterdir()):
        return path
    # a command-line flag (--out) is forced with --force, a config key (construct.out) with its sibling
    force_hint = "--force" if what.startswith("-") else f"{what.rsplit('.', 1)[0]}.force=true"
    if not force:
        raise OutputError(f"{what} {path}: exists and is not empty; choose a new directory, or pass {force_hint} "
                          f"to replace an output RoleCraft wrote earlier")
    if not (path / OUTPUT_MARKER).is_file():
        raise OutputError(f"{what} {path}: not written by RoleCraft (no {OUTPUT_MARKER} file), so even "
                          f"{force_hint} will not replace it; choose a new directory or remove it yourself")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, force: bool = False, inputs: Sequence[str | os.PathLike | None] = (),
               writer: str = "rolecraft", what: str = "--out") -> Iterator[Path]:
    """Build a directory under a temp name and move it into place only when complete.

    The target is checked with :func:`check_output_dir` before and again just before the move
    (nothing the tool did not write is ever replaced); the result holds :data:`OUTPUT_MARKER`
    naming ``writer``. On failure the temp directory is removed and the target is untouched.
    """
    path = Path(path).expanduser()
    check_output_dir(path, force=force, inputs=inputs, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        (tmp / OUTPUT_MARKER).write_text(f"written by {writer}; `--force` may replace this directory\n",
                                         encoding="utf-8")
        check_output_dir(path, force=force, inputs=inputs, what=what)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)  # onto the empty temp dir: a fresh name, never someone's file
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---- reading: UTF-8 with file:line errors --------------------------------------------------


def _decode_error(path: Path, lineno: int, raw: bytes, e: UnicodeDecodeError, last: bool) -> DataError:
    if last and not raw.endswith(b"\n") and e.reason == "unexpected end of data":
        return DataError(f"{path}:{lineno}: the last line is cut off in the middle of a character "
                         f"(the file may be truncated)")
    column = len(raw[: e.start].decode("utf-8", "replace")) + 1
    return DataError(f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {column}); the file may be "
                     f"truncated or in another encoding — re-save it as UTF-8")


def decode(data: bytes, path: str | os.PathLike) -> str:
    """``data`` as text (a UTF-8 BOM dropped); a bad byte raises ``DataError`` with ``path:line``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        end = data.find(b"\n", e.start)
        raw = data[start:] if end < 0 else data[start:end + 1]
        e2 = UnicodeDecodeError(e.encoding, raw, e.start - start, e.end - start, e.reason)
        lineno = data.count(b"\n", 0, e.start) + 1
        raise _decode_error(Path(path), lineno, raw, e2, last=end < 0) from None


def read_text(path: str | os.PathLike) -> str:
    """The whole file as UTF-8 text (BOM dropped); see :func:`decode` for errors."""
    return decode(Path(path).read_bytes(), path)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str, bool]]:
    """``(line number, text, complete)`` per line, decoded one line at a time (a BOM dropped);
    ``complete`` is False for a last line without its newline (maybe a truncated file)."""
    path = Path(path)
    with open(path, "rb") as f:
        prev: bytes | None = None
        lineno = 0
        for raw in f:
            if prev is not None:
                yield _decode_line(path, lineno, prev, last=False)
            lineno += 1
            prev = raw
        if prev is not None:
            yield _decode_line(path, lineno, prev, last=True)


def _decode_line(path: Path, lineno: int, raw: bytes, last: bool) -> tuple[int, str, bool]:
    if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _decode_error(path, lineno, raw, e, last) from None
    return lineno, text, raw.endswith(b"\n")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises with file:line."""
    path = Path(path)
    for lineno, line, complete in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if not complete:
                raise DataError(f"{path}:{lineno}: the last line is cut off (the file may be truncated); "
                                f"restore the file or remove that line") from None
            raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno}); fix or remove this line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()) and text.strip():
            raise DataError(f"{path}:{e.lineno}: the JSON ends early (the file may be truncated)") from None
        raise DataError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file (UTF-8); a syntax error raises ``DataError`` with file:line."""
    import yaml

    path = Path(path)
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DataError(f"{where}: malformed YAML ({getattr(e, 'problem', None) or e})") from None


# ---- CSV ------------------------------------------------------------------------------------


class _Lines:
    """The physical lines of a text, fed to ``csv.reader`` one at a time; ``pos`` = lines consumed."""

    def __init__(self, lines: list[str], pos: int = 0):
        self.lines, self.pos = lines, pos

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


class CsvBadRecord:
    """A CSV record that could not be parsed (a stray quote ...): its first line and why."""

    def __init__(self, line: int, reason: str):
        self.line, self.reason = line, reason


def csv_table(text: str, **fmt) -> tuple[list[str], Iterator[tuple[int, list[str]] | CsvBadRecord]]:
    """``(header, records)`` of a CSV text. Records are ``(first line, fields)`` (blank records
    skipped; a quoted field may span lines) or a :class:`CsvBadRecord`: a record the parser
    could not read, or a multi-line record that swallowed the next line (a stray quote: that
    next line parses alone as a full row). After a bad record reading resumes at the line after
    its start, so one stray quote loses one line, never the rest of the file."""
    import csv

    lines = text.splitlines(keepends=True)
    src = _Lines(lines)
    reader = csv.reader(src, **fmt)
    try:
        header = next(reader)
    except StopIteration:
        return [], iter(())
    ncols = len(header)

    def alone(i: int) -> bool:  # line i (0-based) is a complete row by itself
        try:
            rows = list(csv.reader([lines[i]], strict=True, **fmt))
        except csv.Error:
            return False
        return len(rows) == 1 and len(rows[0]) == ncols

    def records():
        nonlocal reader
        while True:
            start = src.pos
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield CsvBadRecord(start + 1, f"malformed CSV ({e})")
                src.pos = start + 1
                reader = csv.reader(src, **fmt)
                continue
            end = src.pos
            if end - start > 1 and (len(fields) != ncols or alone(start + 1)):
                yield CsvBadRecord(start + 1, f"a quoted field runs over {end - start} lines (a stray '\"'?)")
                src.pos = start + 1
                reader = csv.reader(src, **fmt)
                continue
            if fields and any(f.strip() for f in fields):
                yield start + 1, fields

    return header, records()


def csv_records(reader) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` of each record after the header, blank records skipped. A quoted
    field may span lines, so the line is where the record starts. A malformed record raises
    ``csv.Error`` with its line in ``.line``."""
    import csv

    end = reader.line_num
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            e.line = start
            raise
        end = reader.line_num
        if fields and any(f.strip() for f in fields):
            yield start, fields
