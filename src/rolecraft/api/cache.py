"""A SQLite response cache: answers paid for once survive crashes and reruns.

One row per (namespace, key) where key is a hash of everything that determines the answer
(endpoint URL, model, request body) and never the API key. Each put commits, so a run killed
midway keeps every answer it had received.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path


def request_key(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (ns TEXT NOT NULL, key TEXT NOT NULL, "
                         "value TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (ns, key))")
        self._db.commit()

    def get(self, ns: str, key: str):
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE ns=? AND key=?", (ns, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, ns: str, key: str, value) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                             (ns, key, json.dumps(value, ensure_ascii=False), time.time()))
            self._db.commit()

    def count(self, ns: str | None = None) -> int:
        with self._lock:
            if ns is None:
                return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM responses WHERE ns=?", (ns,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
