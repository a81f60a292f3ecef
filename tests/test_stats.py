"""rolecraft.stats: kappas against sklearn and published examples, Krippendorff's alpha against
hand derivations and the krippendorff package, the bootstrap intervals against known cases."""

from __future__ import annotations

import math
import random

import pytest

from rolecraft.data.emotions import EMOTIONS
from rolecraft.stats import (
    bootstrap_mean_ci,
    coincidence_matrix,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    krippendorff_alpha,
    paired_bootstrap,
)

# ---- kappa ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_cohen_kappa_matches_sklearn(seed: int):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(seed)
    labels = rng.sample(EMOTIONS, rng.randint(2, len(EMOTIONS)))
    n = rng.randint(5, 400)
    a = [rng.choice(labels) for _ in range(n)]
    # b agrees with a on a random share of items, so kappa spans low to high values
    share = rng.random()
    b = [x if rng.random() < share else rng.choice(labels) for x in a]
    assert cohen_kappa(a, b) == pytest.approx(metrics.cohen_kappa_score(a, b), abs=1e-12)


# Fleiss (1971) as tabulated on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters,
# 5 categories; P_bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_published_example():
    raters = 14
    # expand each subject's counts into 14 labels; rater r gets the r-th one
    per_subject = [[cat for cat, c in enumerate(row, start=1) for _ in range(c)] for row in FLEISS_TABLE]
    assert all(len(s) == raters for s in per_subject)
    ratings = [[per_subject[i][r] for i in range(len(FLEISS_TABLE))] for r in range(raters)]
    kappa = fleiss_kappa(ratings)
    assert kappa == pytest.approx(0.210, abs=5e-4)
    assert kappa == pytest.approx(fleiss_kappa_from_counts(FLEISS_TABLE))
    # Fleiss' kappa is invariant to which rater gave which of a subject's labels
    shuffled = [random.Random(i).sample(s, len(s)) for i, s in enumerate(per_subject)]
    ratings2 = [[shuffled[i][r] for i in range(len(FLEISS_TABLE))] for r in range(raters)]
    assert fleiss_kappa(ratings2) == pytest.approx(kappa)


def test_perfect_agreement_is_one():
    a = ["anger", "neutral", "happiness", "neutral", "sadness"]
    assert cohen_kappa(a, list(a)) == 1.0
    assert fleiss_kappa([a, list(a), list(a)]) == pytest.approx(1.0)


def test_degenerate_kappa_is_none_not_nan():
    one = ["neutral"] * 6
    assert cohen_kappa(one, list(one)) is None
    assert fleiss_kappa([one, one, one]) is None
    # one rater constant, the other not: expected agreement < 1, kappa defined (0)
    assert cohen_kappa(one, ["neutral"] * 5 + ["anger"]) == 0.0


def test_cohen_kappa_two_raters_fleiss_relation_and_errors():
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        cohen_kappa([], [])
    with pytest.raises(ValueError):
        fleiss_kappa([["a", "b"]])


# ---- Krippendorff's alpha -------------------------------------------------------------------------


def test_alpha_perfect_agreement_is_one():
    alpha, reason = krippendorff_alpha([[1, 1, 1], [3, 3], [5, 5, 5], [2, 2, None]])
    assert alpha == pytest.approx(1.0) and reason is None


def test_alpha_two_coders_two_values_by_hand():
    """Units (1,1), (1,2), (2,2). Coincidences: o11 = 2 (unit 1: 2 ordered pairs / (m-1 = 1)),
    o12 = o21 = 1 (unit 2), o22 = 2 (unit 3); n1 = n2 = 3, n = 6. Ordinal delta_12 = n1 + n2 - (n1 + n2)/2 = 3,
    delta^2 = 9. alpha = 1 - (n - 1) sum o_ck d2_ck / sum n_c n_k d2_ck = 1 - 5 * (2 * 9) / (2 * 3 * 3 * 9) = 4/9.
    With two values every metric gives the same alpha (nominal: 1 - 5 * 2 / 18 = 4/9)."""
    data = [[1, 1], [1, 2], [2, 2]]
    for level in ("ordinal", "nominal", "interval"):
        assert krippendorff_alpha(data, level)[0] == pytest.approx(4 / 9)


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 coders, 12 units, values 1-5,
# missing data. Rows = coders A-D, columns = units 1-12 (None = missing).
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
K2011_UNITS = [list(col) for col in zip(*K2011)]


def test_alpha_worked_example_with_missing_values():
    """Hand derivation. Per unit (values; contribution to o_ck = pairs / (m_u - 1)):
      u1 1,1,1 -> o11 += 3;  u2 2,2,3,2 -> o22 += 2, o23 = o32 += 1;  u3, u4 3x4 -> o33 += 4 + 4;
      u5, u9 2x4 -> o22 += 4 + 4;  u6 1,2,3,4 -> every off-diagonal o_ck among 1..4 += 1/3;  u7 4x4 -> o44 += 4;
      u8 1,1,2,1 -> o11 += 2, o12 = o21 += 1;  u10 5,5,5 -> o55 += 3;  u11 1,1 -> o11 += 2;  u12 (one value): none.
    So o11 = 7, o22 = 10, o33 = 8, o44 = 4, o55 = 3, o12 = o23 = 4/3, o13 = o14 = o24 = o34 = 1/3;
    n_c = (9, 13, 10, 5, 3), n = 40.
    Ordinal delta_ck = n_c + ... + n_k - (n_c + n_k)/2: d12 = 11, d13 = 22.5, d14 = 30, d15 = 34, d23 = 11.5, d24 = 19,
    d25 = 23, d34 = 7.5, d35 = 11.5, d45 = 4.
    sum_{c<k} o_ck d2 = (4*121 + 506.25 + 900 + 4*132.25 + 361 + 56.25) / 3 = 945.5
    sum_{c<k} n_c n_k d2 = 14157 + 45562.5 + 40500 + 31212 + 17192.5 + 23465 + 20631 + 2812.5 + 3967.5 + 240 = 199740
    alpha_ordinal = 1 - 39 * 945.5 / 199740 = 0.81539. The paper reports alpha_nominal = 0.743 and
    alpha_interval = 0.849 for the same data."""
    values, o = coincidence_matrix(K2011_UNITS)
    third = 1 / 3
    expected = [[7, 4 / 3, third, third, 0], [4 / 3, 10, 4 / 3, third, 0], [third, 4 / 3, 8, third, 0],
                [third, third, third, 4, 0], [0, 0, 0, 0, 3]]
    assert values == [1, 2, 3, 4, 5]
    assert [x for row in o.tolist() for x in row] == pytest.approx([x for row in expected for x in row])
    assert o.sum(axis=1).tolist() == pytest.approx([9, 13, 10, 5, 3])
    assert krippendorff_alpha(K2011_UNITS, "ordinal")[0] == pytest.approx(1 - 39 * 945.5 / 199740)
    assert krippendorff_alpha(K2011_UNITS, "nominal")[0] == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(K2011_UNITS, "interval")[0] == pytest.approx(0.849, abs=5e-4)


def test_alpha_ordinal_uses_ranks_only():
    """The ordinal metric depends on the order of the values, not their spacing: relabelling 1,2,3 as
    1,2,5 keeps alpha_ordinal and changes alpha_interval."""
    data = [[1, 2], [2, 3], [1, 1], [3, 3], [2, 2], [1, 3, 3]]
    relabel = [[{3: 5}.get(v, v) for v in u] for u in data]
    assert krippendorff_alpha(data)[0] == pytest.approx(krippendorff_alpha(relabel)[0])
    assert krippendorff_alpha(data, "interval")[0] != pytest.approx(krippendorff_alpha(relabel, "interval")[0])


def test_alpha_undefined_cases_give_none_and_a_reason():
    alpha, reason = krippendorff_alpha([[4, 4], [4, 4, 4], [4]])
    assert alpha is None and "every rating is 4" in reason
    alpha, reason = krippendorff_alpha([[1], [2, None], [5]])
    assert alpha is None and "2 or more" in reason
    assert krippendorff_alpha([])[0] is None


def test_alpha_matches_the_krippendorff_package():
    kd = pytest.importorskip("krippendorff", reason="optional cross-check: pip install krippendorff")
    np = pytest.importorskip("numpy")
    rng = random.Random(0)
    datasets = [K2011]
    for _ in range(5):  # 4 coders x 30 units, values 1-5, 20% missing, correlated with a true score
        truth = [rng.randint(1, 5) for _ in range(30)]
        datasets.append([[None if rng.random() < 0.2 else min(5, max(1, t + rng.choice([-1, 0, 0, 1])))
                          for t in truth] for _ in range(4)])
    for coders in datasets:
        matrix = np.array([[np.nan if v is None else v for v in row] for row in coders], dtype=float)
        units = [list(col) for col in zip(*coders)]
        for level in ("nominal", "ordinal", "interval", "ratio"):
            ref = kd.alpha(reliability_data=matrix, level_of_measurement=level)
            assert krippendorff_alpha(units, level)[0] == pytest.approx(ref, abs=1e-9), level


# ---- the bootstrap interval -----------------------------------------------------------------------


def test_bootstrap_interval_sanity():
    rng = random.Random(1)
    groups = [[rng.randint(1, 5) for _ in range(3)] for _ in range(40)]
    mean = sum(map(sum, groups)) / sum(map(len, groups))
    lo, hi = bootstrap_mean_ci(groups, seed=0)
    assert lo < mean < hi and 1 <= lo and hi <= 5
    assert bootstrap_mean_ci(groups, seed=0) == (lo, hi)  # deterministic
    # roughly the normal-theory width of a mean of 40 independent item means
    item_means = [sum(g) / len(g) for g in groups]
    m = sum(item_means) / 40
    se = math.sqrt(sum((x - m) ** 2 for x in item_means) / 39 / 40)
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.2)
    # more items -> narrower
    lo4, hi4 = bootstrap_mean_ci(groups * 4, seed=0)
    assert hi4 - lo4 < (hi - lo) * 0.7
    assert bootstrap_mean_ci([[3, 3], [3]], seed=0) == (3.0, 3.0)
    assert bootstrap_mean_ci([[1, 5, 3]]) is None  # one item: no interval
    # ratings of one item move together: resampling items gives a wider interval than counting
    # every rating as independent (the t-interval over annotator x item ratings would be too narrow)
    clustered = [[v] * 3 for v in (1, 2, 3, 4, 5) * 4]
    flat = [[v] for g in clustered for v in g]
    c_lo, c_hi = bootstrap_mean_ci(clustered, seed=0)
    f_lo, f_hi = bootstrap_mean_ci(flat, seed=0)
    assert c_hi - c_lo > 1.5 * (f_hi - f_lo)


def test_bootstrap_mean_ci_pinned_value():
    """The value the human evaluation gave before the statistics moved into rolecraft.stats."""
    assert bootstrap_mean_ci([[1, 2], [3], [4, 5, 5], [2]], resamples=1000, seed=0) == (1.6666666666666667, 4.4)


# ---- the paired bootstrap -------------------------------------------------------------------------


def test_paired_bootstrap_constant_difference_has_a_zero_width_interval():
    res = paired_bootstrap([[0.25] * 7, [0.25] * 3], resamples=500, seed=3)
    assert res["diff"] == pytest.approx(0.25)
    assert res["ci_low"] == pytest.approx(0.25) and res["ci_high"] == pytest.approx(0.25)
    assert res["p_diff_le_0"] == 0.0 and res["level"] == 0.95
    neg = paired_bootstrap([[-0.1] * 5], resamples=200)
    assert neg["p_diff_le_0"] == 1.0


def test_paired_bootstrap_weighs_strata_as_the_metric_does():
    """Avg is the mean of the kinds' means: a stratum of 1 item weighs as much as one of 4."""
    res = paired_bootstrap([[1.0, 1.0, 1.0, 1.0], [0.0]], resamples=300, seed=0)
    assert res["diff"] == pytest.approx(0.5)  # not 4/5
    # resampling stays within strata: every resample of this data is exactly 0.5
    assert res["ci_low"] == pytest.approx(0.5) and res["ci_high"] == pytest.approx(0.5)


def test_paired_bootstrap_pinned_value_and_determinism():
    """The numbers report/bootstrap.py gave before it used rolecraft.stats (bit for bit)."""
    strata = [[0.1, 0.3, -0.2, 0.4], [0.5, -0.1, 0.2]]
    res = paired_bootstrap(strata, resamples=1000, seed=0)
    assert res == {"diff": 0.17500000000000004, "ci_low": -3.556183125752376e-18, "ci_high": 0.33749999999999997,
                   "level": 0.95, "p_diff_le_0": 0.029}
    assert paired_bootstrap(strata, resamples=1000, seed=1) != res
    with pytest.raises(ValueError):
        paired_bootstrap([[0.1], []])
