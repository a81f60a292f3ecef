"""RPCS: cosine similarity between the embeddings of an answer and of its reference(s).

Backends: an OpenAI-compatible embeddings endpoint (the paper used text-embedding-ada-002) or a
local sentence-transformers model (BGE for Chinese; the same
:class:`rolecraft.retrieval.embedders.LocalEmbedder` retrieval uses). Both cache vectors on disk by (model, text),
so rescoring new answers against the same references embeds only what is new.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import fmean
from typing import Callable

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
        from rolecraft.retrieval.embedders import LocalEmbedder

        return LocalEmbedder(r.model, r.device, query_instruction="", batch_size=r.batch_size,
                             cache_path=cache_path if r.endpoint.cache else None, what="rpcs")
    raise ConfigError(f"rpcs.backend={r.backend!r}: use one of {', '.join(BACKENDS)}")


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
