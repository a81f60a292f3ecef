"""The construction journal: every answer an endpoint gave, in SQLite, before anything uses it.

Keyed by (model, prompt hash, parameters): the same request is never paid twice, whatever run
asks it. Each answer is committed on arrival (WAL, synchronous=NORMAL: durable against a killed
process, which is the crash that matters here), so ``kill -9`` loses only requests in flight.
Invalid answers are journaled too: the re-ask that follows is part of a deterministic sequence, and
a rerun replays it instead of paying for it again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path


def prompt_hash(messages: list[dict], tag: str | None = None) -> str:
    blob = json.dumps([messages, tag], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Entry:
    content: str
    prompt_tokens: int
    completion_tokens: int


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (model TEXT NOT NULL, prompt_hash TEXT NOT NULL, "
            "params TEXT NOT NULL, stage TEXT, item TEXT, attempt INTEGER, content TEXT NOT NULL, "
            "prompt_tokens INTEGER, completion_tokens INTEGER, created REAL, "
            "PRIMARY KEY (model, prompt_hash, params))")
        self._db.commit()

    def get(self, model: str, phash: str, params: str) -> Entry | None:
        row = self._db.execute("SELECT content, prompt_tokens, completion_tokens FROM answers "
                               "WHERE model=? AND prompt_hash=? AND params=?", (model, phash, params)).fetchone()
        return None if row is None else Entry(row[0], row[1] or 0, row[2] or 0)

    def put(self, model: str, phash: str, params: str, entry: Entry, *, stage: str, item: str, attempt: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (model, phash, params, stage, item, attempt, entry.content,
                          entry.prompt_tokens, entry.completion_tokens, time.time()))
        self._db.commit()

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._db.close()
