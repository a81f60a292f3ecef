"""Prompt templates: one package-data file per stage, hashed so every record names its prompt.

A stage's record (:data:`rolecraft.construct.stages.STAGES`) names its template file. A template file has a ``### system`` and a ``### user`` section; ``${name}`` placeholders are
filled with :class:`string.Template` (JSON braces in the text need no escaping).
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    user: str
    sha256: str  # of the file's text: a changed prompt is a different request (and a different record)

    def system_text(self, **values: object) -> str:
        return string.Template(self.system).substitute({k: str(v) for k, v in values.items()})

    def user_text(self, **values: object) -> str:
        return string.Template(self.user).substitute({k: str(v) for k, v in values.items()})


def parse_template(name: str, text: str) -> PromptTemplate:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    if set(sections) != {"system", "user"}:
        raise ValueError(f"template {name}: needs exactly a '### system' and a '### user' section, got {sorted(sections)}")
    body = {k: "\n".join(v).strip("\n") for k, v in sections.items()}
    return PromptTemplate(name, body["system"], body["user"], hashlib.sha256(text.encode("utf-8")).hexdigest())


@lru_cache(maxsize=None)
def load_template(name: str) -> PromptTemplate:
    path = resources.files("rolecraft.construct").joinpath("templates", f"{name}.txt")
    if not path.is_file():
        raise ValueError(f"unknown template {name!r}: no construct/templates/{name}.txt")
    text = path.read_text(encoding="utf-8")
    return parse_template(name, text)
