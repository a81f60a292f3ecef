"""How sure is "A beats B"? A paired bootstrap over test items of the metric difference.

Each item's score is averaged over a variant's runs (seeds); items both variants answered are
paired; resampling items (within each kind, so RAW/CUS/SPE keep their sizes) gives the
distribution of the difference of the metric as the run computes it (Avg = mean of the kinds'
means). Reported: the observed difference, its 95% percentile interval, and the share of
resamples where the difference is <= 0. Per-item scores come from the run directory through
:func:`rolecraft.rundir.read_samples` (either layout); the bootstrap is :mod:`rolecraft.stats`.
"""

from __future__ import annotations

from rolecraft.report.collect import RunRecord

KIND_OF = {"rouge_l/raw": "raw", "rouge_l/cus": "general", "rouge_l/spe": "specific"}
FIELD_OF = {"rpcs": "rpcs"}


def item_scores(run: RunRecord, metric: str) -> dict[tuple[str, str], float] | None:
    """(kind, item key) -> score from the run's samples; None when it has none or they are unreadable."""
    from rolecraft.errors import RolecraftError
    from rolecraft.rundir import read_samples

    if run.path is None:
        return None
    try:
        rows = read_samples(run.path)
    except (RolecraftError, OSError, ValueError):  # ValueError: not UTF-8
        return None  # no or a damaged samples file: no interval rather than a wrong one
    field = FIELD_OF.get(metric, "rouge_l")
    want = KIND_OF.get(metric)
    out = {}
    for row in rows:
        kind = str(row.get("kind", "")) if metric.startswith("rouge_l/") else "all"
        if want is not None and kind != want:
            continue
        v = row.get(field)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[(kind, str(row.get("key")))] = float(v)
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
    """The difference A - B of ``metric`` with its interval; None when it cannot be computed
    (no local runs, no per-item scores, fewer than 2 paired items)."""
    from rolecraft import stats

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
    res = stats.paired_bootstrap([d for _, d in sorted(by_kind.items())], resamples=resamples, seed=seed, level=level)
    return {"metric": metric, "diff": res["diff"], "ci_low": res["ci_low"], "ci_high": res["ci_high"], "level": level,
            "p_diff_le_0": res["p_diff_le_0"], "items": len(common), "runs_a": len(runs_a),
            "runs_b": len(runs_b), "resamples": resamples}
