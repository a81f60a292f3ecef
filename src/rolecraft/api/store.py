"""One SQLite store for every answer an endpoint gave: answers paid for once survive crashes and reruns.

Used by the evaluation answer cache (table ``responses``, keyed by namespace and a hash that includes
the endpoint URL) and by the construction journal (table ``answers``, keyed by model, prompt hash and
parameters, without URL: the same request to a mirror of the model is the same answer). The table
layouts are those the two earlier modules wrote, so files already on disk open unchanged.

WAL with ``synchronous=NORMAL``: every put is committed on arrival and survives a killed process
(the crash that matters here); only a power loss can drop the last commits. A ``kill -9`` therefore
loses only the requests in flight. The key never contains the API key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Table:
    """A table's layout: key columns (the primary key, TEXT NOT NULL) then value columns with SQL types."""

    name: str
    keys: tuple[str, ...]
    values: tuple[tuple[str, str], ...]

    def create_sql(self) -> str:
        cols = [f"{k} TEXT NOT NULL" for k in self.keys] + [f"{n} {t}" for n, t in self.values]
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(cols)}, PRIMARY KEY ({', '.join(self.keys)}))"


# the evaluation cache: value is JSON (a chat answer or an embedding), key = request_key(URL, model, request...)
CACHE = Table("responses", ("ns", "key"), (("value", "TEXT NOT NULL"), ("created", "REAL NOT NULL")))
# the construction journal: invalid answers are kept too (the re-ask that follows replays from them)
JOURNAL = Table("answers", ("model", "prompt_hash", "params"),
                (("stage", "TEXT"), ("item", "TEXT"), ("attempt", "INTEGER"), ("content", "TEXT NOT NULL"),
                 ("prompt_tokens", "INTEGER"), ("completion_tokens", "INTEGER"), ("created", "REAL")))


def request_key(*parts: object) -> str:
    """The evaluation cache's key: a hash of everything that determines the answer (URL included)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def prompt_hash(messages: list[dict], tag: str | None = None) -> str:
    """The journal's prompt key: the conversation and the task's tag (two tasks may share a prompt)."""
    blob = json.dumps([messages, tag], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def params_key(params: dict) -> str:
    """The journal's parameters key: the sampling parameters as canonical JSON."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


class Store:
    """One SQLite file holding one :class:`Table`; thread-safe, each put committed at once."""

    def __init__(self, path: str | Path, table: Table):
        self.path, self.table = Path(path).expanduser(), table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(table.create_sql())
        self._db.commit()
        self._where = " AND ".join(f"{k}=?" for k in table.keys)

    def get(self, *key: str) -> dict[str, Any] | None:
        """The row's value columns by name, or None."""
        names = [n for n, _ in self.table.values]
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(names)} FROM {self.table.name} WHERE {self._where}",
                                   key).fetchone()
        return None if row is None else dict(zip(names, row))

    def put(self, *key: str, **values: Any) -> None:
        """Insert or replace one row; ``created`` defaults to now. Committed before returning."""
        if len(key) != len(self.table.keys):
            raise ValueError(f"{self.table.name}: key needs {len(self.table.keys)} parts, got {len(key)}")
        row = {"created": time.time(), **values}
        names = list(self.table.keys) + [n for n, _ in self.table.values]
        args = list(key) + [row.get(n) for n, _ in self.table.values]
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO {self.table.name} ({', '.join(names)}) "
                             f"VALUES ({', '.join('?' * len(names))})", args)
            self._db.commit()

    def count(self, **where: str) -> int:
        sql = f"SELECT COUNT(*) FROM {self.table.name}"
        if where:
            sql += " WHERE " + " AND ".join(f"{k}=?" for k in where)
        with self._lock:
            return self._db.execute(sql, list(where.values())).fetchone()[0]

    def pragma(self, name: str):
        """A PRAGMA's current value (for checks: journal_mode, synchronous)."""
        with self._lock:
            return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---- the two users' key semantics ------------------------------------------------------------


class ResponseCache:
    """The evaluation answer cache: JSON values under (namespace, request_key(URL, model, ...))."""

    def __init__(self, path: str | Path):
        self.store = Store(path, CACHE)
        self.path = self.store.path

    def get(self, ns: str, key: str):
        row = self.store.get(ns, key)
        return None if row is None else json.loads(row["value"])

    def put(self, ns: str, key: str, value) -> None:
        self.store.put(ns, key, value=json.dumps(value, ensure_ascii=False))

    def count(self, ns: str | None = None) -> int:
        return self.store.count(**({} if ns is None else {"ns": ns}))

    def close(self) -> None:
        self.store.close()


@dataclass(frozen=True)
class Entry:
    content: str
    prompt_tokens: int
    completion_tokens: int


class Journal:
    """The construction journal: answers under (model, prompt hash, parameters), with stage/item/attempt."""

    def __init__(self, path: str | Path):
        self.store = Store(path, JOURNAL)
        self.path = self.store.path

    def get(self, model: str, phash: str, params: str) -> Entry | None:
        row = self.store.get(model, phash, params)
        return None if row is None else Entry(row["content"], row["prompt_tokens"] or 0, row["completion_tokens"] or 0)

    def put(self, model: str, phash: str, params: str, entry: Entry, *, stage: str, item: str, attempt: int) -> None:
        self.store.put(model, phash, params, stage=stage, item=item, attempt=attempt, content=entry.content,
                       prompt_tokens=entry.prompt_tokens, completion_tokens=entry.completion_tokens)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self.store.close()
