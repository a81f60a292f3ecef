"""Retrieval quality, measured on labelled queries where the right passage is known.

Two labelled sets come from the data itself:

* ``reply``: every line the character speaks right after someone else, queried by what that
  someone said; the right passage is the character's own reply (in its index with every other
  line and fact). What the prompt needs at inference is exactly this: given what is said to the
  character, find how it talks about that.
* ``qa``: Context-Instruct questions built by ``construct.py stage=qa`` record the script excerpt
  they came from (``provenance.excerpt``); the question is the query and any of the character's
  lines in that excerpt is a hit (the issue's definition).

Reported per k: recall@k (a hit among the top k) and MRR@10, with the random-ranking baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

from rolecraft.data.schema import RoleInstruct


@dataclass(frozen=True)
class Query:
    character: str
    text: str
    gold: frozenset[str]


def reply_queries(ds: RoleInstruct) -> list[Query]:
    out = []
    for ch, c in ds.characters.items():
        names = {ch, c.profile.get("名字", ch), c.profile.get("name", ch)}
        lines = ds.script_of(ch)
        for prev, u in zip(lines, lines[1:]):
            if u.dialogue == prev.dialogue and u.speaker in names and prev.speaker not in names:
                out.append(Query(ch, prev.text, frozenset({u.id})))
    return out


def qa_queries(ds: RoleInstruct) -> list[Query]:
    spoken = {}
    for ch, c in ds.characters.items():
        names = {ch, c.profile.get("名字", ch), c.profile.get("name", ch)}
        spoken[ch] = {u.id for u in ds.script_of(ch) if u.speaker in names}
    out = []
    for s in ds.samples:
        ids = (s.provenance or {}).get("excerpt") if s.kind == "specific" else None
        gold = frozenset(i for i in ids or [] if i in spoken.get(s.character, ()))
        if gold:
            out.append(Query(s.character, s.instruction, gold))
    return out


def evaluate(retriever, queries: list[Query], ks: list[int], desc: str = "queries") -> dict:
    """recall@k, MRR@10 and the random baseline's recall@k over ``queries``."""
    kmax = max([*ks, 10])
    hits = {k: 0 for k in ks}
    mrr = 0.0
    random_hits = {k: 0.0 for k in ks}
    from rolecraft.console import progress

    for q in progress(queries, desc=desc, unit="query"):
        ranked = [p.id for p in retriever.search(q.character, q.text, k=kmax)]
        for k in ks:
            hits[k] += any(i in q.gold for i in ranked[:k])
        rank = next((r for r, i in enumerate(ranked[:10], start=1) if i in q.gold), None)
        mrr += 1.0 / rank if rank else 0.0
        n = len(retriever.index(q.character)[0])
        for k in ks:  # P(some gold in a random top k) = 1 - C(n-g, k) / C(n, k)
            g, miss = len(q.gold), 1.0
            for j in range(min(k, n)):
                miss *= max(0.0, (n - g - j) / (n - j))
            random_hits[k] += 1.0 - miss
    n = len(queries) or 1
    return {"queries": len(queries), **{f"recall@{k}": hits[k] / n for k in ks}, "mrr@10": mrr / n,
            **{f"random_recall@{k}": random_hits[k] / n for k in ks}}


def eval_command(root: str, backends: str = "lexical", queries: str = "reply", k: str = "1,3,5,10",
                 model: str | None = None, base_url: str | None = None, api_key_env: str | None = None,
                 max_queries: int | None = None, cache_dir: str = "~/.cache/rolecraft",
                 json_out: str | None = None) -> int:
    """``rolecraft retrieval eval``: recall@k and MRR@10 per backend, one line each."""
    import time
    from pathlib import Path

    from omegaconf import OmegaConf

    from rolecraft.config import RetrievalConfig
    from rolecraft.data import resolve_data_root, schema
    from rolecraft.errors import DataError
    from rolecraft.retrieval.index import build_retriever

    ds = schema.load(resolve_data_root(root))
    qs = reply_queries(ds) if queries == "reply" else qa_queries(ds)
    if max_queries:
        qs = qs[:: max(1, len(qs) // max_queries)][:max_queries]
    if not qs:
        raise DataError(f"{root}: no labelled {queries!r} queries (qa needs samples made by "
                        f"`construct.py stage=qa`, which record their excerpt)")
    ks = sorted({int(x) for x in k.split(",")})
    results = {}
    for backend in backends.split(","):
        default_model = {"openai": "text-embedding-3-small"}.get(backend, RetrievalConfig.model)
        rcfg = OmegaConf.structured(RetrievalConfig(backend=backend, k=max(ks), budget=10**9,
                                                    model=model or default_model))
        if api_key_env is not None:
            rcfg.endpoint.api_key_env = api_key_env
        if base_url:
            rcfg.endpoint.base_url = base_url
        t0 = time.perf_counter()
        res = evaluate(build_retriever(rcfg, ds, cache_dir), qs, ks, desc=f"{backend} retrieval")
        res["seconds"] = round(time.perf_counter() - t0, 2)
        results[backend] = res
        print(f"{backend}: {res['queries']} {queries} queries; "
              + ", ".join(f"recall@{x} {res[f'recall@{x}']:.3f} (random {res[f'random_recall@{x}']:.3f})" for x in ks)
              + f"; MRR@10 {res['mrr@10']:.3f}; {res['seconds']}s")
    if json_out:
        from rolecraft.fileio import write_json

        write_json(Path(json_out), {"data": root, "queries": queries, "results": results})
    return 0
