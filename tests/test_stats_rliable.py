"""Performance profiles and probability of improvement: our statistics, the rliable package, the figures."""

from __future__ import annotations

import numpy as np
import pytest

from suite import stats
from suite.plots import spans_decades, variant_colors
from tests.records import make_record

RNG = np.random.default_rng(7)
X = RNG.normal(1.0, 1.0, (6, 3))
Y = RNG.normal(0.4, 1.0, (5, 3))
TAUS = np.linspace(-2, 3, 26)


def _rliable():
    try:  # rliable 1.2 needs arch<8, whose import breaks under pandas 3: an optional cross-check, skipped then
        from rliable import library, metrics
    except Exception as error:  # noqa: BLE001 (any import failure means "not available here")
        pytest.skip(f"rliable not importable: {type(error).__name__}: {error}")
    return library, metrics


def test_score_distribution_counts_runs_above_each_threshold():
    scores = np.array([[0.0, 1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(stats.score_distribution(scores, [-1, 0, 1.5, 3]), [1.0, 0.75, 0.5, 0.0])


def test_stratified_interval_resamples_within_envs_and_covers_the_point():
    profile = lambda s: stats.score_distribution(s, TAUS)  # noqa: E731
    low, high = stats.stratified_bootstrap_interval(profile, X)
    assert low.shape == TAUS.shape and np.all(low <= profile(X)) and np.all(profile(X) <= high)
    # one env constant per column: resampling within envs cannot move a profile of per-column constants
    constant = np.tile([[0.0, 5.0]], (4, 1))
    c_low, c_high = stats.stratified_bootstrap_interval(lambda s: stats.score_distribution(s, [1.0]), constant)
    assert c_low.tolist() == c_high.tolist() == [0.5]
    assert np.isnan(stats.stratified_bootstrap_interval(stats.iqm, X[:1])[0])  # one run: no interval
    again = stats.stratified_bootstrap_interval(profile, X)
    np.testing.assert_array_equal(again[0], low)  # seeded: the band itself reproduces


def test_point_estimates_equal_rliable():
    library, metrics = _rliable()
    np.testing.assert_array_equal(stats.score_distribution(X, TAUS), library.score_distributions(X, TAUS))
    assert stats.average_probability_of_improvement(X, Y) == pytest.approx(metrics.probability_of_improvement(X, Y),
                                                                           abs=1e-12)
    tied = X.copy()
    assert stats.average_probability_of_improvement(X, tied) == metrics.probability_of_improvement(X, tied) == 0.5


def test_bootstrap_intervals_agree_with_rliable():
    library, metrics = _rliable()
    _, ci = library.create_performance_profile({"x": X}, TAUS, reps=4000)
    low, high = stats.stratified_bootstrap_interval(lambda s: stats.score_distribution(s, TAUS), X, n_resamples=4000)
    # different random streams: percentiles of a statistic on a 1/18 grid agree to a step or so
    assert np.abs(low - ci["x"][0]).max() <= 2 / 18 + 1e-9 and np.abs(high - ci["x"][1]).max() <= 2 / 18 + 1e-9
    assert np.abs(low - ci["x"][0]).mean() < 0.03 and np.abs(high - ci["x"][1]).mean() < 0.03
    _, pci = library.get_interval_estimates({"xy": [X, Y]}, metrics.probability_of_improvement, reps=4000)
    ours = stats.stratified_bootstrap_interval(stats.average_probability_of_improvement, X, Y, n_resamples=4000)
    np.testing.assert_allclose(np.ravel(ours), np.ravel(pci["xy"]), atol=0.03)


def test_variant_colors_are_distinct_and_stable_by_spec_position():
    for n in (3, 10, 14, 25):
        names = [f"v{i}" for i in range(n)]
        colors = variant_colors(names)
        assert len({tuple(np.round(c, 6)) for c in colors.values()}) == n
        assert variant_colors(names)["v2"] == colors["v2"]


def test_log_axis_only_where_the_band_spans_orders_of_magnitude():
    assert spans_decades([5.0, 20.0], [300.0, 20000.0])
    assert not spans_decades([100.0, 200.0], [300.0, 540.0])
    assert not spans_decades([-1.0, 5.0], [300.0, 20000.0])  # non-positive values cannot go on a log axis


def test_report_draws_profile_and_improvement_figures(tmp_path):
    from suite.figures.aggregate import performance_profile, probability_of_improvement, score_matrices
    from suite.spec import Metric

    class Spec:
        name = "toy"
        variants = {"a": {}, "b": {}, "c": {}}
        metric = Metric("fid", higher_is_better=False)

    records = [make_record(variant=v, env=e, seed=s, metrics={"fid": (1 + i) * 10.0 ** (s % 3)})
               for i, v in enumerate("cab") for e in ("e1",) for s in range(4)]
    records.append(make_record(variant="a", env="e1", seed=9, status="failed"))
    matrices, envs, normalised = score_matrices(Spec, records)
    assert list(matrices) == ["a", "b", "c"] and envs == ["e1"] and not normalised  # spec order, ok runs only
    assert matrices["a"].shape == (4, 1)
    (profile,) = performance_profile(Spec, records, tmp_path)
    (improvement,) = probability_of_improvement(Spec, records, tmp_path)
    assert profile.stat().st_size > 10_000 and improvement.stat().st_size > 5_000
