"""Statistics over per-seed scores: small pure functions on numpy arrays (rliable style).

Conventions: a 1-D array holds one score per seed; a 2-D ``(runs, envs)`` array holds
scores pooled over environments (already normalised to a common scale).  All random
resampling takes an explicit ``random_state`` so the intervals themselves reproduce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

ArrayLike = np.ndarray | list[float]


def mean(values: ArrayLike) -> float:
    return float(np.mean(np.asarray(values, dtype=float)))


def std(values: ArrayLike) -> float:
    """Sample standard deviation (ddof=1); 0 for a single value."""
    values = np.asarray(values, dtype=float)
    return float(np.std(values, ddof=1)) if values.size > 1 else 0.0


def bootstrap(statistic: Callable[..., ArrayLike], *samples: ArrayLike, n_resamples: int = 2000,
              random_state: int | np.random.Generator = 0, vectorized: bool = False,
              draw_order: str = "sample") -> np.ndarray:
    """``statistic`` of ``n_resamples`` bootstrap resamples of ``samples``: the one resampler of the suite.

    Axis 0 of each sample holds runs (seeds).  A resample draws, with replacement, as many runs as the sample
    has, independently for each sample and for each column (each index of the other axes, e.g. each env of a
    ``(runs, envs)`` matrix): rliable's stratified bootstrap, and for a 1-D sample the plain one.  To keep a
    run's row together (a whole learning curve), resample ``np.arange(runs)`` and index inside ``statistic``.

    ``statistic(*resampled)`` sees one resample per call and returns a scalar or a vector; with ``vectorized``
    it is called once with every resample stacked on a new leading axis and returns one row per resample.
    ``draw_order`` says in which order indices leave the random stream: ``"sample"`` draws all resamples of the
    first sample, then of the next; ``"resample"`` draws every sample's indices for the first resample, then for
    the next.  The intervals do not depend on it statistically; it exists so each caller keeps the stream (and
    so the committed intervals, bit for bit) it had before this function replaced its own loop.
    Returns the estimates, shape ``(n_resamples, *statistic's shape)``.
    """
    arrays = [np.asarray(sample) for sample in samples]  # as given: integer samples index inside `statistic`
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    if draw_order == "sample":
        indices = [rng.integers(0, a.shape[0], size=(n_resamples, *a.shape)) for a in arrays]
    elif draw_order == "resample":
        drawn = [[rng.integers(0, a.shape[0], size=a.shape) for a in arrays] for _ in range(n_resamples)]
        indices = [np.stack([row[k] for row in drawn]) for k in range(len(arrays))]
    else:
        raise ValueError(f"unknown draw_order {draw_order!r}; expected 'sample' or 'resample'")
    # axis 1 of the stacked copies is the runs axis: pick each column's drawn runs (exact copies, no arithmetic)
    resampled = [a[idx] if a.ndim == 1 else np.take_along_axis(np.broadcast_to(a, idx.shape), idx, axis=1)
                 for a, idx in zip(arrays, indices)]
    if vectorized:
        return np.asarray(statistic(*resampled), dtype=float)
    return np.array([statistic(*(r[i] for r in resampled)) for i in range(n_resamples)], dtype=float)


def percentile_interval(estimates: ArrayLike, confidence: float = 0.95, ignore_nan: bool = False,
                        quantile: str = "numpy") -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of bootstrap ``estimates`` (see :func:`bootstrap`), linear interpolation.

    ``quantile="scipy"`` computes it as ``scipy.stats.bootstrap`` does (``scipy.stats.quantile``), whose float
    arithmetic differs from ``np.percentile`` in the last bits: the per-cell CIs of the tables were made by
    ``scipy.stats.bootstrap`` and stay bit-identical through it.  ``ignore_nan`` skips NaN estimates.
    """
    estimates = np.asarray(estimates, dtype=float)
    if quantile == "scipy":
        alpha = (1 - confidence) / 2
        levels = np.stack([np.asarray(alpha), 1 - np.asarray(alpha)])
        moved = np.moveaxis(estimates, 0, -1)
        ci = scipy_stats.quantile(moved, levels, axis=-1, nan_policy="omit" if ignore_nan else "propagate")
        return ci[..., 0], ci[..., 1]
    if quantile != "numpy":
        raise ValueError(f"unknown quantile {quantile!r}; expected 'numpy' or 'scipy'")
    tail = (1 - confidence) / 2 * 100
    percentile = np.nanpercentile if ignore_nan else np.percentile
    return percentile(estimates, tail, axis=0), percentile(estimates, 100 - tail, axis=0)


def bootstrap_ci(values: ArrayLike, confidence: float = 0.95, n_resamples: int = 2000,
                 random_state: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds.

    Percentile rather than BCa because BCa is undefined for constant samples (a common
    case: several seeds reaching the same maximum return).  Fewer than two values give
    ``(nan, nan)``: an interval from one seed would be a lie.  Same numbers as
    ``scipy.stats.bootstrap(method="percentile")``, which made the committed tables.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    means = bootstrap(lambda x: np.mean(x, axis=-1), values, n_resamples=n_resamples, random_state=random_state,
                      vectorized=True)
    low, high = percentile_interval(means, confidence, quantile="scipy")
    return float(low), float(high)


def iqm(scores: ArrayLike) -> float:
    """Interquartile mean over all runs and envs: the mean of the middle 50% (rliable)."""
    return float(scipy_stats.trim_mean(np.asarray(scores, dtype=float), proportiontocut=0.25, axis=None))


def optimality_gap(scores: ArrayLike, gamma: float = 1.0) -> float:
    """How far below the target ``gamma`` the scores fall on average; scores above it count as gamma (rliable)."""
    return float(gamma - np.mean(np.minimum(np.asarray(scores, dtype=float), gamma)))


def min_max_normalize(scores: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Scale each env's column to [0, 1] between ``low`` and ``high`` (e.g. random and best score)."""
    span = np.where(high - low == 0, 1.0, high - low)
    return (np.asarray(scores, dtype=float) - low) / span


def stratified_bootstrap_ci(scores: np.ndarray | list[np.ndarray], statistic=iqm, confidence: float = 0.95,
                            n_resamples: int = 2000, random_state: int = 0) -> tuple[float, float]:
    """Interval of an aggregate over all runs of all envs, resampling runs within each env (rliable).

    ``scores`` is a ``(runs, envs)`` matrix, or one array per env when envs have different run counts
    (a diverged run leaves its env one short); ``statistic`` sees each resample's scores pooled.
    """
    columns = [np.asarray(c, dtype=float) for c in scores] if isinstance(scores, list) \
        else list(np.asarray(scores, dtype=float).T)
    if min((c.size for c in columns), default=0) < 2:
        return float("nan"), float("nan")
    estimates = bootstrap(lambda *resampled: statistic(np.concatenate(resampled)), *columns,
                          n_resamples=n_resamples, random_state=random_state)
    low, high = percentile_interval(estimates, confidence)
    return float(low), float(high)


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """P(X > Y) + P(X = Y) / 2 for one env: the Mann-Whitney U statistic over n*m (rliable)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    greater = (x[:, None] > y[None, :]).sum()
    ties = (x[:, None] == y[None, :]).sum()
    return float((greater + 0.5 * ties) / (x.size * y.size))


def average_probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over envs of the per-env probability of improvement; ``x``, ``y`` are ``(runs, envs)``."""
    return float(np.mean([probability_of_improvement(x[:, j], y[:, j]) for j in range(x.shape[1])]))


def score_distribution(scores: ArrayLike, taus: ArrayLike) -> np.ndarray:
    """Fraction of all runs x envs scoring above each threshold: rliable's run-score performance profile."""
    flat = np.asarray(scores, dtype=float).reshape(-1)
    return (flat[None, :] > np.asarray(taus, dtype=float)[:, None]).mean(axis=1)


def stratified_bootstrap_interval(statistic: Callable[..., ArrayLike], *samples: np.ndarray,
                                  confidence: float = 0.95, n_resamples: int = 2000,
                                  random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of a (scalar or vector) statistic of one or more ``(runs, envs)`` matrices.

    Each matrix resamples its runs within each env, independently of the others (rliable's stratified
    bootstrap; for two algorithms its ``StratifiedIndependentBootstrap``).  A matrix with one run has no
    spread to resample: the interval is then nan.
    """
    samples = tuple(np.asarray(sample, dtype=float) for sample in samples)
    point = np.asarray(statistic(*samples), dtype=float)
    if any(sample.shape[0] < 2 for sample in samples):
        return np.full(point.shape, np.nan), np.full(point.shape, np.nan)
    estimates = bootstrap(statistic, *samples, n_resamples=n_resamples, random_state=random_state)
    return percentile_interval(estimates, confidence)


@dataclass(frozen=True)
class TestResult:
    verdict: str          # holds | fails | inconclusive
    statistic: float
    p_value: float        # one-sided, in the claimed direction
    p_opposite: float     # one-sided, in the opposite direction
    test: str
    n: tuple[int, int]
    margin: float | None = None  # non-inferiority: the rhs was scaled by this factor before the test

    def describe(self) -> str:
        name = "U" if self.test == "mannwhitney" else "t"
        against = f" vs {self.margin:g} x rhs" if self.margin is not None else ""
        return f"{name}={self.statistic:.3g}, p={self.p_value:.3g}{against} (n={self.n[0]},{self.n[1]})"


def one_sided_test(lhs: ArrayLike, rhs: ArrayLike, op: str, test: str = "welch") -> tuple[float, float]:
    """Statistic and one-sided p-value for ``lhs op rhs`` (op '<' or '>') by Welch's t or Mann-Whitney U."""
    lhs, rhs = np.asarray(lhs, dtype=float), np.asarray(rhs, dtype=float)
    alternative = "less" if op == "<" else "greater"
    if test == "welch":
        if np.var(lhs) == 0 and np.var(rhs) == 0:  # t undefined; decide by the means alone only if they differ
            if lhs.mean() == rhs.mean():
                return 0.0, 1.0
            holds = lhs.mean() < rhs.mean() if op == "<" else lhs.mean() > rhs.mean()
            return (float("-inf") if lhs.mean() < rhs.mean() else float("inf")), (0.0 if holds else 1.0)
        result = scipy_stats.ttest_ind(lhs, rhs, equal_var=False, alternative=alternative)
    elif test == "mannwhitney":
        result = scipy_stats.mannwhitneyu(lhs, rhs, alternative=alternative)
    else:
        raise ValueError(f"unknown test {test!r}; expected welch or mannwhitney")
    return float(result.statistic), float(result.pvalue)


def claim_test(lhs: ArrayLike, rhs: ArrayLike, op: str, test: str = "welch", alpha: float = 0.05,
               margin: float | None = None) -> TestResult:
    """``holds`` if the one-sided test of ``lhs op rhs`` has p < alpha, ``fails`` if the opposite one does.

    ``test="noninferiority"`` tests ``lhs op margin * rhs`` by one-sided Welch t on ``lhs`` against the scaled
    ``rhs`` (a ratio non-inferiority margin; e.g. op ">" with margin 0.8: lhs keeps at least 80% of rhs).  It
    ``holds`` when non-inferiority is shown, ``fails`` when ``lhs`` is shown to be on the wrong side of the
    margin, ``inconclusive`` otherwise (as every claim, the verdict is about evidence, not about the means).
    """
    lhs, rhs = np.asarray(lhs, dtype=float), np.asarray(rhs, dtype=float)
    if test == "noninferiority":
        if margin is None or not margin > 0:
            raise ValueError(f"a non-inferiority test needs a positive margin, got {margin!r}")
        rhs, base = rhs * margin, "welch"
    else:
        margin, base = None, test
    if lhs.size < 2 or rhs.size < 2:
        return TestResult("inconclusive", float("nan"), float("nan"), float("nan"), test, (lhs.size, rhs.size),
                          margin)
    statistic, p_value = one_sided_test(lhs, rhs, op, base)
    _, p_opposite = one_sided_test(lhs, rhs, ">" if op == "<" else "<", base)
    verdict = "holds" if p_value < alpha else "fails" if p_opposite < alpha else "inconclusive"
    return TestResult(verdict, statistic, p_value, p_opposite, test, (lhs.size, rhs.size), margin)


def welch_seeds_needed(effect: float, sd_lhs: float, sd_rhs: float, alpha: float = 0.05, power: float = 0.8,
                       max_n: int = 10_000) -> int | None:
    """Seeds per arm for a one-sided Welch test of a mean difference ``effect`` (> 0, in the claimed direction)
    to reach ``power`` at level ``alpha``, from per-seed standard deviations (equal arms; the noncentral t with
    Welch-Satterthwaite degrees of freedom).  ``None`` if the effect is not in the claimed direction or more than
    ``max_n`` seeds would be needed.  For a non-inferiority claim pass ``effect = mean_lhs - margin * mean_rhs``
    and ``sd_rhs = margin * sd(rhs)``."""
    if not effect > 0:
        return None
    var_l, var_r = sd_lhs ** 2, sd_rhs ** 2
    for n in range(2, max_n + 1):
        se = np.sqrt((var_l + var_r) / n)
        if se == 0:
            return n
        df = (var_l + var_r) ** 2 / ((var_l ** 2 + var_r ** 2) / (n - 1)) if var_l + var_r > 0 else 2 * n - 2
        critical = scipy_stats.t.ppf(1 - alpha, df)
        if scipy_stats.nct.sf(critical, df, effect / se) >= power:
            return n
    return None
