"""How sure is "A beats B"? A paired bootstrap over test items of the metric difference.

Each item's score is averaged over a variant's runs (seeds); items both variants answered are
paired; resampling items (within each kind, so RAW/CUS/SPE keep their sizes) gives the
distribution of the difference of the metric as the run computes it (Avg = mean of the kinds'
means). Reported: the observed difference, its 95% percentile interval, and the share of
resamples where the difference is <= 0.
"""

from __future__ import annotations

import json

from rolecraft.report.collect import RunRecord

KIND_OF = {"rouge_l/raw": "raw", "rouge_l/cus": "general", "rouge_l/spe": "specific"}
FIELD_OF = {"rpcs": "rpcs"}


def item_scores(run: RunRecord, metric: str) -> dict[tuple[str, str], float] | None:
    """(kind, item id) -> score from the run's predictions file; None when it has none."""
    path = run.predictions
    if path is None:
        return None
    field = FIELD_OF.get(metric, "rouge_l")
    want = KIND_OF.get(metric)
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return None  # a damaged predictions file: no interval rather than a wrong one
        kind = str(row.get("kind", "")) if metric.startswith("rouge_l/") else "all"
        if want is not None and kind != want:
            continue
        v = row.get(field)
        if isinstance(v, (int, float)):
            out[(kind, str(row.get("id") or row.get("key")))] = float(v)
    return out


def _mean_scores(runs: list[RunRecord], metric: str) -> dict[tuple[str, str], float] | None:
    sums: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        s = item_scores(r, metric)
        if s is None:
            return None
        for k, v in s.items():
            sums.setdefault(k, []).append(v)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def paired_bootstrap(runs_a: list[RunRecord], runs_b: list[RunRecord], metric: str, resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> dict | None:
    import numpy as np

    if not runs_a or not runs_b or not (metric in KIND_OF or metric == "rouge_l/avg" or metric in FIELD_OF):
        return None
    sa, sb = _mean_scores(runs_a, metric), _mean_scores(runs_b, metric)
    if not sa or not sb:
        return None
    common = sorted(set(sa) & set(sb))
    if len(common) < 2:
        return None
    by_kind: dict[str, list[float]] = {}
    for k in common:
        by_kind.setdefault(k[0], []).append(sa[k] - sb[k])
    diffs = {k: np.asarray(v) for k, v in sorted(by_kind.items())}
    observed = float(np.mean([d.mean() for d in diffs.values()]))
    rng = np.random.default_rng(seed)
    boots = np.zeros(resamples)
    for d in diffs.values():
        idx = rng.integers(0, len(d), size=(resamples, len(d)))
        boots += d[idx].mean(axis=1)
    boots /= len(diffs)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"metric": metric, "diff": observed, "ci_low": float(lo), "ci_high": float(hi), "level": level,
            "p_diff_le_0": float(np.mean(boots <= 0)), "items": len(common), "runs_a": len(runs_a),
            "runs_b": len(runs_b), "resamples": resamples}
