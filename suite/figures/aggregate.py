"""rliable-style figures every task gets: performance profiles and probabilities of improvement.

Both use the primary metric over the profile's ``ok`` runs with stratified-bootstrap 95% bands from
:mod:`suite.stats` (cross-checked against the ``rliable`` package in tests/test_stats_rliable.py).  One env: the
raw metric.  Several envs: each env min-max normalised over all runs of the task (1 = best run), so that
envs with different scales pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from suite import stats
from suite.plots import _matplotlib, outside_legend, save_figure, spans_decades, spec_order, variant_colors
from suite.record import RunRecord
from suite.registry import register_figure


def score_matrices(spec: Any, records: list[RunRecord]) -> tuple[dict[str, np.ndarray], list[str], bool]:
    """``{variant: (seeds, envs)}`` of the primary metric, oriented so higher is better, plus the envs and
    whether the scores were normalised.  A variant enters with the seeds it has in every env."""
    metric = spec.metric.name
    by_seed: dict[tuple[str, str], dict[int, float]] = {}
    for record in records:
        value = record.metrics.get(metric) if record.ok else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            by_seed.setdefault((record.variant, record.env), {})[record.seed] = float(value)
    envs = sorted({env for _, env in by_seed})
    matrices = {}
    for variant in spec_order(spec, list({r.variant for r in records})):
        columns = [by_seed.get((variant, env), {}) for env in envs]
        seeds = sorted(set.intersection(*(set(c) for c in columns))) if columns else []
        if seeds:
            matrices[variant] = np.array([[column[s] for column in columns] for s in seeds])
    sign = 1.0 if spec.metric.higher_is_better else -1.0
    normalise = len(envs) > 1 and bool(matrices)
    if normalise:
        everything = np.concatenate([sign * m for m in matrices.values()])
        low, high = everything.min(axis=0), everything.max(axis=0)
        matrices = {v: stats.min_max_normalize(sign * m, low, high) for v, m in matrices.items()}
    return matrices, envs, normalise


def _thresholds(everything: np.ndarray, log: bool) -> np.ndarray:
    low, high = float(everything.min()), float(everything.max())
    if log:
        return np.geomspace(low, high, 121)
    pad = 0.02 * (high - low or 1.0)
    return np.linspace(low - pad, high + pad, 121)


@register_figure("performance_profile")
def performance_profile(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Fraction of runs scoring better than each threshold τ, per variant, with its 95% stratified-bootstrap band."""
    matrices, envs, normalised = score_matrices(spec, records)
    if len(matrices) < 2:
        return []
    metric = spec.metric.name
    below = not normalised and not spec.metric.higher_is_better  # raw lower-is-better: count runs under τ
    everything = np.concatenate([m.reshape(-1) for m in matrices.values()])
    log = not normalised and spans_decades(everything.min(), everything.max())
    taus = _thresholds(everything, log)

    def profile(scores: np.ndarray) -> np.ndarray:
        return stats.score_distribution(-scores, -taus) if below else stats.score_distribution(scores, taus)

    colors = variant_colors(list(spec.variants))
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    for variant, scores in matrices.items():
        low, high = stats.stratified_bootstrap_interval(profile, scores)
        ax.plot(taus, profile(scores), color=colors[variant], label=f"{variant} (n={scores.shape[0]})")
        ax.fill_between(taus, low, high, color=colors[variant], alpha=0.2, linewidth=0)
    quantity = (f"{metric}, min-max normalised per env (1 = best run)" if normalised else metric)
    ax.set_xlabel(f"threshold τ on {quantity}" + (" (log scale)" if log else ""))
    ax.set_ylabel(f"fraction of runs with score {'<' if below else '>'} τ")
    if log:
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    outside_legend(ax)
    where = f"{len(envs)} envs" if len(envs) > 1 else envs[0]
    ax.set_title(f"{spec.name}: performance profile over {where}\n(95% stratified-bootstrap bands)", fontsize=9)
    return [save_figure(fig, Path(out_dir) / "performance_profile.png")]


@register_figure("probability_of_improvement")
def probability_of_improvement(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """P(first variant of the spec beats each other variant), averaged over envs, with 95% bootstrap intervals."""
    matrices, envs, _ = score_matrices(spec, records)
    if len(matrices) < 2:
        return []
    if not spec.metric.higher_is_better and len(envs) == 1:
        matrices = {v: -m for v, m in matrices.items()}  # normalised scores are already oriented
    colors = variant_colors(list(spec.variants))
    first, *others = matrices
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(6.4, 0.6 * len(others) + 1.6))
    labels = []
    for row, other in enumerate(others):
        x, y = matrices[first], matrices[other]
        point = stats.average_probability_of_improvement(x, y)
        low, high = stats.stratified_bootstrap_interval(stats.average_probability_of_improvement, x, y)
        # a minimum width keeps a degenerate interval (all resamples at 1.0) visible; the label has the numbers
        ax.barh(row, max(high - low, 0.006), left=min(low, 1 - 0.006), height=0.55, color=colors[other], alpha=0.75)
        ax.plot([point], [row], marker="o", color="black", markersize=4)
        labels.append(f"{first} vs {other}\n{point:.2f} [{low:.2f}, {high:.2f}]")
    ax.set_yticks(range(len(others)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.5, color="0.5", ls="--", lw=0.8)
    ax.set_xlim(0, 1)
    better = "higher" if spec.metric.higher_is_better else "lower"
    ax.set_xlabel(f"P({first} better than the other)\non {spec.metric.name} ({better} is better)")
    ax.set_title(f"{spec.name}: probability of improvement over {len(envs)} env(s)\n"
                 "(dot: estimate; bar: 95% stratified-bootstrap CI)", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return [save_figure(fig, Path(out_dir) / "probability_of_improvement.png")]


AGGREGATE_FIGURES = ("performance_profile", "probability_of_improvement")
