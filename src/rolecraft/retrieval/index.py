"""Per-character indexes and the retriever the prompt builder asks.

Dense indexes are persisted under ``<cache_dir>/retrieval/<embedder id>/<content hash>/`` (vectors,
passages, meta): the same passages with the same embedder load from disk, a changed script or
profile (new hash) or another embedder (new id) builds a new one. A stored index whose dimension
differs from what the embedder now returns is refused with the directory to delete. BM25 indexes
build in milliseconds and are kept in memory only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict
from pathlib import Path

from rolecraft.data.schema import RoleInstruct
from rolecraft.errors import ConfigError, RolecraftError
from rolecraft.retrieval.lexical import BM25
from rolecraft.retrieval.passages import Passage, content_hash, passages_of

BACKENDS = ("none", "lexical", "bge", "openai")


class RetrievalError(RolecraftError):
    """An index that cannot serve: unknown character, nothing to retrieve, mismatched dimensions."""


def shown_length(p: Passage) -> int:
    """Characters the passage takes in the prompt, its emotion label "（愤怒）" counted (at most)."""
    return len(p.text) + (4 if p.kind == "line" and p.emotion else 0)


class DenseIndex:
    def __init__(self, passages: list[Passage], embedder, root: Path | None):
        import numpy as np

        self.passages, self.embedder = passages, embedder
        self.built = False
        d = None
        if root is not None:
            # readable and collision-free: a sanitised id plus a hash of the exact id
            safe = re.sub(r"[^\w.-]+", "_", embedder.id)[-60:]
            d = root / f"{safe}-{hashlib.sha1(embedder.id.encode('utf-8')).hexdigest()[:8]}" / content_hash(passages)
            meta_path = d / "meta.json"
            if meta_path.is_file():
                from rolecraft.fileio import read_json

                meta = read_json(meta_path)
                if meta.get("dim") != embedder.dim:
                    raise RetrievalError(f"{d}: stored index has dimension {meta.get('dim')} but {embedder.id} now "
                                         f"returns {embedder.dim}; delete {d} to rebuild it")
                self.vectors = np.load(d / "vectors.npy")
                self.dir = d
                return
        self.vectors = embedder.embed([p.text for p in passages])
        self.built = True
        self.dir = d
        if d is not None:
            from rolecraft.fileio import atomic_dir, write_json

            with atomic_dir(d, force=True, writer="rolecraft retrieval index", what="index cache") as tmp:
                np.save(tmp / "vectors.npy", self.vectors)
                write_json(tmp / "passages.json", [asdict(p) for p in passages])
                write_json(tmp / "meta.json", {"embedder": embedder.id, "dim": embedder.dim, "count": len(passages),
                                               "content_hash": content_hash(passages)})

    def scores(self, query: str) -> list[float]:
        q = self.embedder.embed([query], query=True)[0]
        if q.shape[0] != self.vectors.shape[1]:
            raise RetrievalError(f"query vector has dimension {q.shape[0]}, the index {self.vectors.shape[1]}")
        return (self.vectors @ q).tolist()


class Retriever:
    """``search(character, query)`` -> the best passages, at most ``k``, within ``budget`` characters."""

    def __init__(self, ds: RoleInstruct, backend: str, k: int, budget: int, embedder=None,
                 cache_dir: str | Path | None = None, sources: tuple[str, ...] = ("script", "profile")):
        if backend not in BACKENDS or backend == "none":
            raise ConfigError(f"retrieval.backend={backend!r}: use one of {', '.join(BACKENDS)}")
        if k < 1 or budget < 1:
            raise ConfigError(f"retrieval.k={k}, retrieval.budget={budget}: both must be at least 1")
        self.ds, self.backend, self.k, self.budget, self.embedder = ds, backend, k, budget, embedder
        self.sources = tuple(sources)
        self.root = Path(cache_dir).expanduser() / "retrieval" if cache_dir else None
        self._indexes: dict[str, tuple[list[Passage], object]] = {}

    def index(self, character: str):
        if character not in self.ds.characters:
            raise RetrievalError(f"unknown character {character!r}; known: {', '.join(self.ds.characters)}")
        if character not in self._indexes:
            passages = passages_of(self.ds, character, self.sources)
            if not passages:
                raise RetrievalError(f"{character}: nothing to retrieve (no script lines spoken by {character} "
                                     f"and sources={list(self.sources)}); add script or use retrieval.sources=[profile]")
            shortest = min(shown_length(p) for p in passages)
            if self.budget < shortest:
                raise ConfigError(f"retrieval.budget={self.budget} is smaller than one exemplar ({character}'s shortest "
                                  f"passage has {shortest} characters); raise retrieval.budget")
            idx = BM25([p.text for p in passages]) if self.backend == "lexical" else DenseIndex(passages, self.embedder, self.root)
            self._indexes[character] = (passages, idx)
        return self._indexes[character]

    def search(self, character: str, query: str, k: int | None = None) -> list[Passage]:
        passages, idx = self.index(character)
        scores = idx.scores(query)
        order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
        out, used = [], 0
        for i in order:
            if len(out) >= (k or self.k):
                break
            p = passages[i]
            size = shown_length(p)
            if used + size > self.budget:
                continue
            out.append(p)
            used += size
        return out


def build_retriever(rcfg, ds: RoleInstruct, cache_dir: str | None) -> Retriever | None:
    """From the ``retrieval`` config group; None for ``retrieval=none``."""
    if rcfg.backend == "none":
        return None
    embedder = None
    if rcfg.backend == "bge":
        from rolecraft.retrieval.embedders import LocalEmbedder

        embedder = LocalEmbedder(rcfg.model, rcfg.device, rcfg.query_instruction)
    elif rcfg.backend == "openai":
        from rolecraft.retrieval.embedders import OpenAIEmbedder

        cache = Path(cache_dir).expanduser() / "api_cache.sqlite" if cache_dir else None
        embedder = OpenAIEmbedder(rcfg.endpoint, rcfg.model, cache_path=cache)
    return Retriever(ds, rcfg.backend, rcfg.k, rcfg.budget, embedder, cache_dir, tuple(rcfg.sources))


def prompt_builder(ds: RoleInstruct, spec, cache_dir):
    """The prompt builder a prompt spec describes, with the retriever it names built over ``ds``."""
    from omegaconf import OmegaConf

    from rolecraft.data.prompts import PromptBuilder

    retriever = None
    if spec.retrieval.get("backend", "none") != "none":
        retriever = build_retriever(OmegaConf.create(spec.retrieval), ds, cache_dir)
    return PromptBuilder.from_spec(ds, spec, retriever)
