"""RPCS: cosine similarity between the embeddings of an answer and of its reference(s).

Backends: an OpenAI-compatible embeddings endpoint (the paper used text-embedding-ada-002) or a
local sentence-transformers model (BGE for Chinese). Both cache vectors on disk by (model, text),
so rescoring new answers against the same references embeds only what is new.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import fmean
from typing import Callable

from rolecraft.api.store import ResponseCache, request_key
from rolecraft.api.client import check_vector
from rolecraft.errors import ConfigError
from rolecraft.evaluation.rouge import is_empty

BACKENDS = ("none", "openai", "local")
Embed = Callable[[list[str]], list[list[float]]]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb)


def make_embedder(cfg, cache_path: Path) -> Embed:
    r = cfg.rpcs
    if r.backend == "openai":
        from rolecraft.api.client import Endpoint

        ep = Endpoint(r.endpoint, "rpcs.endpoint", cache_path, progress=True)
        return lambda texts: ep.embed(r.model, texts, r.batch_size, desc="rpcs")
    if r.backend == "local":
        return LocalEmbedder(r.model, r.batch_size, r.device, cache_path if r.endpoint.cache else None)
    raise ConfigError(f"rpcs.backend={r.backend!r}: use one of {', '.join(BACKENDS)}")


class LocalEmbedder:
    """A sentence-transformers model (its own pooling and normalisation), with the disk cache."""

    def __init__(self, model: str, batch_size: int, device: str | None, cache_path: Path | None):
        self.name, self.batch_size, self.device = model, batch_size, device
        self.cache = ResponseCache(cache_path) if cache_path else None
        self._model = None

    def _load(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError("rpcs=local needs sentence-transformers: pip install 'rolecraft[embed]'") from None
            try:
                self._model = SentenceTransformer(self.name, device=self.device)
            except OSError as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"rpcs.model={self.name!r} could not be loaded ({first}); give a local "
                                  "sentence-transformers directory on offline machines") from None
        return self._model

    def __call__(self, texts: list[str]) -> list[list[float]]:
        key = lambda t: request_key("local", self.name, t)  # noqa: E731
        out: list = [self.cache.get("embeddings", key(t)) if self.cache else None for t in texts]
        missing = sorted({t for t, v in zip(texts, out) if v is None})
        if missing:
            vecs = self._load().encode(missing, batch_size=self.batch_size, convert_to_numpy=True,
                                       show_progress_bar=len(missing) > self.batch_size)
            found = {}
            for t, v in zip(missing, vecs):
                v = [float(x) for x in v]
                check_vector(v, f"rpcs: embedding of {t[:40]!r} from {self.name}")
                found[t] = v
                if self.cache:
                    self.cache.put("embeddings", key(t), v)
            out = [v if v is not None else found[t] for t, v in zip(texts, out)]
        return out


def score_rpcs(rows: list[dict], embed: Embed, references: str = "max") -> dict:
    """Adds each row's "rpcs"; returns flat metrics (mean overall and per column, empty count).

    An empty answer scores 0 and is counted (it has no meaning to embed). ``references=max`` takes
    the best-matching reference, ``first`` only the first.
    """
    from rolecraft.data.schema import KIND_TO_METRIC

    if references not in ("max", "first"):
        raise ConfigError(f"rpcs.references={references!r}: use max or first")
    texts: list[str] = []
    for row in rows:
        refs = row["references"][:1] if references == "first" else row["references"]
        if not is_empty(row["prediction"]):
            texts.append(row["prediction"])
            texts.extend(refs)
    unique = list(dict.fromkeys(texts))
    vecs = dict(zip(unique, embed(unique))) if unique else {}
    per: dict[str, list[float]] = {}
    empty = 0
    for row in rows:
        refs = row["references"][:1] if references == "first" else row["references"]
        if is_empty(row["prediction"]):
            s, empty = 0.0, empty + 1
        else:
            s = max(cosine(vecs[row["prediction"]], vecs[r]) for r in refs)
        row["rpcs"] = s
        per.setdefault(KIND_TO_METRIC[row["kind"]], []).append(s)
    m = {"rpcs": fmean(row["rpcs"] for row in rows), "rpcs/empty": empty}
    for col, vals in per.items():
        m[f"rpcs/{col}"] = fmean(vals)
    return m
