"""Statistics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suite import stats


def test_mean_std_by_hand():
    values = [1.0, 2.0, 3.0, 6.0]
    assert stats.mean(values) == 3.0
    # sample variance: ((-2)^2 + (-1)^2 + 0 + 3^2) / 3 = 14/3
    assert stats.std(values) == pytest.approx(math.sqrt(14 / 3))
    assert stats.std([5.0]) == 0.0


def test_iqm_drops_the_outer_quartiles():
    # 8 values: trim 2 from each end -> mean of 3, 4, 5, 6 = 4.5, whatever the outliers are
    assert stats.iqm([100.0, 3, 4, -50, 5, 6, 1000, -7]) == pytest.approx(4.5)
    # pooled over a (runs, envs) matrix: all 8 entries together
    assert stats.iqm(np.array([[100.0, 3], [4, -50], [5, 6], [1000, -7]])) == pytest.approx(4.5)


def test_optimality_gap_by_hand():
    # min(score, 1): 0.5, 1, 0.25, 1 -> mean 0.6875 -> gap 0.3125
    assert stats.optimality_gap([0.5, 1.2, 0.25, 1.0]) == pytest.approx(0.3125)


def test_probability_of_improvement_by_hand():
    # x=3 beats 1 and 2 and ties 3; x=5 beats all three: 5 wins + 1 tie out of 6 pairs
    x, y = [3.0, 5.0], [1.0, 2.0, 3.0]
    assert stats.probability_of_improvement(x, y) == pytest.approx(5.5 / 6)


def test_bootstrap_ci_contains_mean_and_is_reproducible():
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = stats.bootstrap_ci(values)
    assert low < stats.mean(values) < high
    assert (low, high) == stats.bootstrap_ci(values)  # fixed random_state
    assert stats.bootstrap_ci([1.0]) != stats.bootstrap_ci([1.0])  # (nan, nan): no interval from one seed
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_stratified_bootstrap_of_iqm_brackets_the_estimate():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(10, 3))
    low, high = stats.stratified_bootstrap_ci(scores, stats.iqm, random_state=1)
    assert low < stats.iqm(scores) < high


def test_bootstrap_is_the_plain_resampler_for_one_sample():
    """Each resample draws len(sample) runs with replacement from one random stream, in resample order."""
    values = np.array([1.0, 2.0, 4.0, 8.0])
    estimates = stats.bootstrap(np.sum, values, n_resamples=5, random_state=3)
    expected = values[np.random.default_rng(3).integers(0, 4, size=(5, 4))].sum(axis=1)
    assert np.array_equal(estimates, expected)
    vectorized = stats.bootstrap(lambda x: x.sum(axis=-1), values, n_resamples=5, random_state=3, vectorized=True)
    assert np.array_equal(vectorized, expected)


def test_bootstrap_resamples_each_column_of_a_matrix_on_its_own():
    """rliable's stratified bootstrap: runs are drawn per env, never mixing envs."""
    matrix = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])  # 3 runs x 2 envs
    resamples = stats.bootstrap(lambda m: m.ravel(), matrix, n_resamples=200, random_state=0)
    first_env, second_env = resamples[:, 0::2], resamples[:, 1::2]
    assert set(first_env.ravel()) == {0.0, 1.0, 2.0} and set(second_env.ravel()) == {10.0, 11.0, 12.0}
    # the two envs' draws are independent: a resample does not always pick the same run in both
    assert np.any(first_env + 10.0 != second_env)


def test_bootstrap_resample_major_order_is_the_rng_choice_loop():
    groups = [np.array([1.0, 2.0, 3.0]), np.array([5.0, 7.0]), np.array([0.5, 0.25, 4.0, 9.0])]
    ours = stats.bootstrap(lambda *g: np.concatenate(g), *groups, n_resamples=50, random_state=7,
                           draw_order="resample")
    rng = np.random.default_rng(7)
    loop = np.array([np.concatenate([rng.choice(g, len(g)) for g in groups]) for _ in range(50)])
    assert np.array_equal(ours, loop)
    with pytest.raises(ValueError, match="draw_order"):
        stats.bootstrap(np.mean, groups[0], draw_order="sideways")


def test_bootstrap_ci_is_scipys_percentile_bootstrap_bit_for_bit():
    """The table CIs were made by scipy.stats.bootstrap; the suite's own resampler gives the same floats."""
    from scipy.stats import bootstrap as scipy_bootstrap

    for seed in range(20):
        values = np.random.default_rng(seed).normal(size=2 + seed % 7) * 100
        result = scipy_bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                                 random_state=np.random.default_rng(0))
        assert stats.bootstrap_ci(values) == (result.confidence_interval.low, result.confidence_interval.high)


def test_percentile_interval_over_axis_zero():
    estimates = np.column_stack([np.arange(101.0), np.full(101, np.nan)])
    low, high = stats.percentile_interval(estimates, 0.9)
    assert low[0] == pytest.approx(5.0) and high[0] == pytest.approx(95.0) and np.isnan(low[1])
    low, high = stats.percentile_interval(np.append(np.arange(101.0), np.nan), 0.9, ignore_nan=True)
    assert (low, high) == (pytest.approx(5.0), pytest.approx(95.0))


def test_welch_one_sided_matches_hand_computation():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0, 7.0])
    # Welch t = (2 - 5.5) / sqrt(1/3 + (5/3)/4) = -3.5 / sqrt(0.75)
    t, p = stats.one_sided_test(a, b, "<", "welch")
    assert t == pytest.approx(-3.5 / math.sqrt(0.75))
    assert 0 < p < 0.01
    assert stats.claim_test(a, b, "<").verdict == "holds"
    assert stats.claim_test(a, b, ">").verdict == "fails"
    assert stats.claim_test(a, a + 0.01, "<").verdict == "inconclusive"


def test_mann_whitney_one_sided():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]
    u, p = stats.one_sided_test(a, b, "<", "mannwhitney")
    assert u == 0.0  # no a exceeds any b
    assert p == pytest.approx(1 / 252)  # exact: 1 / C(10, 5)
    assert stats.claim_test(a, b, "<", "mannwhitney").verdict == "holds"


def test_too_few_seeds_is_inconclusive():
    assert stats.claim_test([1.0], [2.0, 3.0], "<").verdict == "inconclusive"


def test_noninferiority_scales_the_rhs_by_the_margin():
    # lhs mean 9, rhs mean 10: not better (Welch > is inconclusive), but clearly above 0.8 x rhs = 8.
    lhs, rhs = np.array([8.9, 9.0, 9.1, 9.0]), np.array([9.9, 10.0, 10.1, 10.0])
    result = stats.claim_test(lhs, rhs, ">", "noninferiority", margin=0.8)
    t, _ = stats.one_sided_test(lhs, 0.8 * rhs, ">", "welch")
    assert result.verdict == "holds" and result.statistic == pytest.approx(t) and result.margin == 0.8
    assert "vs 0.8 x rhs" in result.describe()
    assert stats.claim_test(lhs, rhs, ">", "welch").verdict == "fails"
    # Clearly below the margin (mean 5 < 8): shown inferior.
    assert stats.claim_test(lhs - 4, rhs, ">", "noninferiority", margin=0.8).verdict == "fails"
    # Near the margin with noisy seeds: neither shown.
    noisy = np.array([4.0, 12.0, 7.0, 9.5])
    assert stats.claim_test(noisy, rhs, ">", "noninferiority", margin=0.8).verdict == "inconclusive"
    # Lower-is-better form: lhs < 1.25 x rhs.
    assert stats.claim_test(rhs * 1.1, rhs, "<", "noninferiority", margin=1.25).verdict == "holds"
    with pytest.raises(ValueError, match="positive margin"):
        stats.claim_test(lhs, rhs, ">", "noninferiority")


def test_welch_seeds_needed_by_hand():
    # effect 1 sd per arm of 1: the normal approximation n = 2 (z_.95 + z_.8)^2 = 12.4; the t correction adds ~1.
    n = stats.welch_seeds_needed(1.0, 1.0, 1.0)
    assert n in (13, 14)
    assert stats.welch_seeds_needed(2.0, 1.0, 1.0) < n < stats.welch_seeds_needed(0.5, 1.0, 1.0)
    assert stats.welch_seeds_needed(-1.0, 1.0, 1.0) is None
    assert stats.welch_seeds_needed(1e-3, 1.0, 1.0, max_n=50) is None
