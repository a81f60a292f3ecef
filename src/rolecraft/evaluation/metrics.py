"""The metrics of an evaluation, as one table, and Rouge-L per kind (RAW general ability, CUS
speaking style, SPE knowledge), the metric every run has.

A metric reads the rows of samples.jsonl (question, references, prediction), may add a per-row
score field, and returns flat metrics. A new metric is a function here or in its own module, one
``Metric`` entry in ``METRICS``, its config dataclass in config.py and its conf/ group file.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Callable

from rolecraft.data.schema import KIND_TO_METRIC
from rolecraft.evaluation.rouge import RougeOptions, is_empty, rouge_l_many


def score_predictions(rows: list[dict], opts: RougeOptions, prefix: str = "test", cache_dir=None) -> dict:
    """Flat metrics from rows with kind, prediction, references. Adds each row's "rouge_l".
    ``prefix`` ("test", ...) namespaces the keys; "" gives evaluate.py's bare ``rouge_l/cus``.
    ``cache_dir`` keeps the benchmark's tokenised references on disk (re-scoring tokenises only
    the predictions).

    Avg is the mean of the paper's kinds present (RAW, CUS, SPE); dialogue turns get their own
    column (DLG) and stay out of Avg, so Avg compares with the paper's whatever the mix.
    """
    per_kind: dict[str, list[float]] = {}
    empty: dict[str, int] = {}
    scores = rouge_l_many([r["prediction"] for r in rows], [r["references"] for r in rows], opts,
                          cache_dir=cache_dir)
    for row, s in zip(rows, scores):
        row["rouge_l"] = s
        col = KIND_TO_METRIC[row["kind"]]
        per_kind.setdefault(col, []).append(s)
        empty[col] = empty.get(col, 0) + int(is_empty(row["prediction"]))
    p = f"{prefix}/" if prefix else ""
    m: dict = {}
    for col in ("raw", "cus", "spe", "dlg"):
        if col in per_kind:
            m[f"{p}rouge_l/{col}"] = fmean(per_kind[col])
            m[f"{p}n/{col}"] = len(per_kind[col])
            m[f"{p}empty/{col}"] = empty[col]
    paper = [c for c in ("raw", "cus", "spe") if c in per_kind] or list(per_kind)
    if paper:
        m[f"{p}rouge_l/avg"] = fmean(m[f"{p}rouge_l/{c}"] for c in paper)
    for key in ("tokenizer", "stat", "references", "postprocess"):
        m[f"{p}rouge_l/options/{key}"] = getattr(opts, key)
    return m


# ---- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    name: str
    # whether this evaluate.py config asks for it
    active: Callable[[object], bool]
    # (cfg, rows) -> flat metrics; may add a per-row field named like the metric
    score: Callable[[object, list], dict]


def _rouge_l(cfg, rows: list[dict]) -> dict:
    """Over the rows that have references (CharacterEval's scenes have none: no Rouge-L keys then)."""
    r = cfg.rouge
    scored = [row for row in rows if row["references"]]
    if not scored:
        return {}
    return score_predictions(scored, RougeOptions(r.tokenizer, r.stat, r.references, r.postprocess), prefix="",
                             cache_dir=cfg.paths.cache_dir)


def _rpcs(cfg, rows: list[dict]) -> dict:
    from rolecraft.evaluation.rpcs import make_embedder, score_rpcs
    from rolecraft.inference.sources import api_cache_path

    m = score_rpcs(rows, make_embedder(cfg, api_cache_path(cfg.paths.cache_dir)), cfg.rpcs.references)
    m["rpcs/model"] = cfg.rpcs.model
    return m


METRICS = (
    Metric("rouge_l", lambda cfg: True, _rouge_l),
    Metric("rpcs", lambda cfg: cfg.rpcs.backend != "none", _rpcs),
)


def score_all(cfg, rows: list[dict]) -> dict:
    """Every active metric of the table over ``rows``, in table order."""
    out: dict = {}
    for metric in METRICS:
        if metric.active(cfg):
            out.update(metric.score(cfg, rows))
    return out
