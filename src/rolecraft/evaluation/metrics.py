"""Score predictions per kind: RAW (general ability), CUS (speaking style), SPE (knowledge)."""

from __future__ import annotations

from statistics import fmean

from rolecraft.data.schema import KIND_TO_METRIC
from rolecraft.evaluation.rouge import RougeOptions, is_empty, rouge_l_many


def score_predictions(rows: list[dict], opts: RougeOptions, prefix: str = "test", cache_dir=None) -> dict:
    """Flat metrics from rows with kind, prediction, references. Adds each row's "rouge_l".
    ``prefix`` ("test", ...) namespaces the keys; "" gives evaluate.py's bare ``rouge_l/cus``.
    ``cache_dir`` keeps the benchmark's tokenised references on disk (re-scoring tokenises only
    the predictions).

    Avg is the mean of the kinds present (the paper's Avg = mean of RAW, CUS, SPE).
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
    for col in ("raw", "cus", "spe"):
        if col in per_kind:
            m[f"{p}rouge_l/{col}"] = fmean(per_kind[col])
            m[f"{p}n/{col}"] = len(per_kind[col])
            m[f"{p}empty/{col}"] = empty[col]
    if per_kind:
        m[f"{p}rouge_l/avg"] = fmean(m[f"{p}rouge_l/{c}"] for c in per_kind)
    for key in ("tokenizer", "stat", "references", "postprocess"):
        m[f"{p}rouge_l/options/{key}"] = getattr(opts, key)
    return m
