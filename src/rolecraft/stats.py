"""Agreement statistics and bootstrap intervals, in one place.

Cohen's and Fleiss' kappa (emotion annotations, ``rolecraft data agreement``), Krippendorff's
alpha and a cluster bootstrap of a mean (human ratings, ``rolecraft human import``) and the
paired, stratified bootstrap of a difference (ablations in ``rolecraft report``).

The lowest layer: only the standard library and numpy (imported inside the functions that need
it, so the kappas cost nothing to import). Undefined statistics are ``None``, never NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


# ---- kappa ---------------------------------------------------------------------------------


def _check_pair(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"label lists differ in length ({len(a)} vs {len(b)})")
    if not a:
        raise ValueError("no items to compare")


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over the same items (unweighted, as sklearn's
    ``cohen_kappa_score``). ``None`` when undefined (expected agreement 1: both raters use one
    and the same label for every item)."""
    _check_pair(a, b)
    n = len(a)
    agree = sum(x == y for x, y in zip(a, b))
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca)  # p_e * n^2, exact in integers
    if expected == n * n:
        return None
    return (agree * n - expected) / (n * n - expected)


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa of several raters: ``ratings[r][i]`` is rater r's label for item i.

    Every rater labels every item (at least 2 raters). ``None`` when undefined (all ratings
    are one label).
    """
    if len(ratings) < 2:
        raise ValueError("Fleiss' kappa needs at least 2 raters")
    n = len(ratings[0])
    if any(len(r) != n for r in ratings):
        raise ValueError("raters labelled different numbers of items")
    if n == 0:
        raise ValueError("no items to compare")
    return fleiss_kappa_from_counts([Counter(r[i] for r in ratings) for i in range(n)])


def fleiss_kappa_from_counts(table: Sequence[dict | Sequence[int]]) -> float | None:
    """Fleiss' kappa from a subjects x categories count table (each row: a list of counts or a
    ``{category: count}`` mapping; every row sums to the same number of raters m >= 2)."""
    rows = [list(r.values()) if isinstance(r, dict) else list(r) for r in table]
    if not rows:
        raise ValueError("no items to compare")
    m = sum(rows[0])
    if m < 2 or any(sum(r) != m for r in rows):
        raise ValueError("every subject needs the same number (>= 2) of ratings")
    n = len(rows)
    # P_i = (sum_j n_ij^2 - m) / (m (m - 1)); P_bar = mean P_i
    p_bar = sum(sum(c * c for c in r) - m for r in rows) / (n * m * (m - 1))
    totals: Counter = Counter()
    for r in table:
        items = r.items() if isinstance(r, dict) else enumerate(r)
        for k, c in items:
            totals[k] += c
    p_e = sum((c / (n * m)) ** 2 for c in totals.values())
    if sum(c * c for c in totals.values()) == (n * m) ** 2:  # exact test of p_e == 1
        return None
    return (p_bar - p_e) / (1 - p_e)


# ---- Krippendorff's alpha ------------------------------------------------------------------


def coincidence_matrix(units: Iterable[Sequence[float | None]]) -> tuple[list[float], np.ndarray]:
    """Krippendorff's coincidence matrix over the values that occur.

    ``units``: per unit (e.g. one answer) the values given by the coders (None/NaN = missing).
    o_ck = sum over units u with m_u >= 2 values of (number of ordered pairs (c, k) of values from
    different coders in u) / (m_u - 1). Units with fewer than 2 values are not pairable.
    """
    import numpy as np

    clean = [[float(v) for v in u if v is not None and not (isinstance(v, float) and math.isnan(v))] for u in units]
    clean = [u for u in clean if len(u) >= 2]
    values = sorted({v for u in clean for v in u})
    pos = {v: i for i, v in enumerate(values)}
    counts = np.zeros((len(clean), len(values)))
    for r, u in enumerate(clean):
        for v in u:
            counts[r, pos[v]] += 1
    if not clean:
        return values, np.zeros((0, 0))
    m = counts.sum(axis=1)
    weighted = counts / (m - 1)[:, None]
    o = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    return values, o


def _delta2(values: Sequence[float], n_c: np.ndarray, level: str) -> np.ndarray:
    import numpy as np

    v = np.asarray(values, dtype=float)
    if level == "nominal":
        return 1.0 - np.eye(len(v))
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    if level == "ordinal":
        # delta_ck = sum_{g=c..k} n_g - (n_c + n_k) / 2, for c <= k (ranks by value order)
        cum = np.concatenate([[0.0], np.cumsum(n_c)])
        lo = np.minimum.outer(np.arange(len(v)), np.arange(len(v)))
        hi = np.maximum.outer(np.arange(len(v)), np.arange(len(v)))
        d = cum[hi + 1] - cum[lo] - (n_c[:, None] + n_c[None, :]) / 2
        return d ** 2
    if level == "ratio":
        s = v[:, None] + v[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(s == 0, 0.0, ((v[:, None] - v[None, :]) / s) ** 2)
        return r
    raise ValueError(f"unknown level of measurement {level!r}; use nominal, ordinal, interval or ratio")


def krippendorff_alpha(units: Iterable[Sequence[float | None]], level: str = "ordinal") -> tuple[float | None, str | None]:
    """Krippendorff's alpha = 1 - D_o / D_e from the coincidence matrix; (None, reason) where undefined.

    D_o = sum_ck o_ck delta2_ck / n and D_e = sum_ck n_c n_k delta2_ck / (n (n - 1)), with n_c the
    row sums of the coincidence matrix and n the number of pairable values. Missing values are
    allowed (units are rated by any number of coders). Undefined when fewer than 2 pairable values
    exist, or when the expected disagreement is 0 (every pairable value is the same).
    """
    import numpy as np

    values, o = coincidence_matrix(units)
    n_c = o.sum(axis=1) if o.size else np.zeros(0)
    n = float(n_c.sum())
    if n < 2:
        return None, "no unit was rated by 2 or more annotators"
    d2 = _delta2(values, n_c, level)
    d_o = float((o * d2).sum())
    d_e = float((np.outer(n_c, n_c) * d2).sum()) / (n - 1)
    if len(values) < 2 or d_e <= 0:
        return None, f"every rating is {values[0]:g}, so no disagreement is expected (alpha is 0/0)"
    return 1.0 - d_o / d_e, None


# ---- bootstrap -----------------------------------------------------------------------------


def bootstrap_mean_ci(groups: Sequence[Sequence[float]], level: float = 0.95, resamples: int = 10000,
                      seed: int = 0) -> tuple[float, float] | None:
    """Percentile interval of the mean of all values, resampling whole groups (items) with replacement.

    Why a cluster bootstrap over items and not a t-interval over annotator x item ratings: the
    questions are the random sample (drawn from a benchmark) while the annotators are a small fixed
    panel, and the ratings of one answer by different annotators are correlated (same text). A
    t-interval that counts every rating as independent overstates n and is too narrow; resampling
    items keeps an item's ratings together. The percentile interval needs no normality and stays
    within the scale. Deterministic: numpy's PCG64 seeded with ``seed``. Returns None when fewer
    than 2 groups have values (no interval). The interval is conditional on the rater panel, and
    with few items (< ~20) percentile intervals tend to be somewhat too narrow.
    """
    import numpy as np

    groups = [g for g in groups if len(g)]
    if len(groups) < 2:
        return None
    sums = np.array([float(sum(g)) for g in groups])
    counts = np.array([float(len(g)) for g in groups])
    rng = np.random.default_rng(seed)
    k = len(groups)
    stats = np.empty(resamples)
    chunk = max(1, 2_000_000 // k)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, k, size=(b, k))
        stats[start:start + b] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [tail, 1.0 - tail])
    return float(lo), float(hi)


def paired_bootstrap(strata: Sequence[Sequence[float]], resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Bootstrap of the mean over strata of per-item paired differences (A - B).

    ``strata``: the differences of each stratum (e.g. a benchmark kind), in a fixed order. Items
    are resampled within each stratum, so every stratum keeps its size and weighs as in the
    metric (the mean of the strata's means). Returns the observed difference, its percentile
    interval and the share of resamples where the difference is <= 0. Deterministic for ``seed``.
    """
    import numpy as np

    diffs = [np.asarray(d, dtype=float) for d in strata]
    if not diffs or any(len(d) == 0 for d in diffs):
        raise ValueError("every stratum needs at least one paired difference")
    observed = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    boots = np.zeros(resamples)
    for d in diffs:
        idx = rng.integers(0, len(d), size=(resamples, len(d)))
        boots += d[idx].mean(axis=1)
    boots /= len(diffs)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"diff": observed, "ci_low": float(lo), "ci_high": float(hi), "level": level,
            "p_diff_le_0": float(np.mean(boots <= 0))}
