"""Figures drawn from records: curves per env with a bootstrap CI band over seeds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from suite import stats
from suite.record import RunRecord
from suite.store import slug


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def variant_colors(variants: Sequence[str]) -> dict[str, Any]:
    """One colour per variant, fixed by its position in the spec, so a variant looks the same in every figure
    of a task; up to 10 from tab10, up to 20 from tab20, beyond that evenly spaced hues (never repeated)."""
    plt = _matplotlib()
    n = len(variants)
    if n <= 10:
        palette = list(plt.get_cmap("tab10").colors)
    elif n <= 20:
        # tab20 pairs a dark and a light shade; dark ones first keeps neighbours in the spec distinguishable
        colors = plt.get_cmap("tab20").colors
        palette = list(colors[0::2]) + list(colors[1::2])
    else:
        palette = [plt.get_cmap("hsv")(i / n) for i in range(n)]
    return {variant: palette[i] for i, variant in enumerate(variants)}


def spec_order(spec: Any, present: Sequence[str]) -> list[str]:
    """``present`` variants in the spec's order (unknown ones last, sorted)."""
    declared = list(getattr(spec, "variants", None) or [])
    return [v for v in declared if v in present] + sorted(v for v in set(present) if v not in declared)


def spans_decades(low: Any, high: Any, decades: float = 2.0) -> bool:
    """True where positive data (a mean curve's CI band, a score range) covers ``decades`` orders of magnitude:
    a linear axis would flatten all but the largest values."""
    low, high = np.nanmin(np.asarray(low, dtype=float)), np.nanmax(np.asarray(high, dtype=float))
    return bool(low > 0 and high / low >= 10 ** decades)


def outside_legend(ax: Any, **kwargs: Any) -> None:
    """A legend to the right of the axes, where it cannot cover a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7, frameon=False, **kwargs)


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay out, write and close a figure (every figure plugin ends this way); returns ``path``."""
    plt = _matplotlib()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def align_curves(curves: list[list[list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Put seeds' curves on the first curve's x grid (linear interpolation where the grids differ)."""
    xs = np.array([p[0] for p in curves[0]], dtype=float)
    rows = []
    for curve in curves:
        x = np.array([p[0] for p in curve], dtype=float)
        y = np.array([p[1] if p[1] is not None else np.nan for p in curve], dtype=float)
        rows.append(y if x.shape == xs.shape and np.array_equal(x, xs) else np.interp(xs, x, y))
    return xs, np.vstack(rows)


def bootstrap_band(values: np.ndarray, confidence: float = 0.95, n_resamples: int = 1000,
                   random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile-bootstrap interval of the mean over seeds for a ``(seeds, points)`` array."""
    seeds = values.shape[0]
    if seeds < 2:
        return values[0], values[0]
    # resample seed indices, not values: a seed's curve stays whole (points of one run are not independent)
    means = stats.bootstrap(lambda rows: values[rows].mean(axis=1), np.arange(seeds), n_resamples=n_resamples,
                            random_state=random_state, vectorized=True)
    return stats.percentile_interval(means, confidence, ignore_nan=True)


def step_unit_label(records: list[RunRecord], curve: str) -> str:
    """The step unit of the runs that drew ``curve`` ("env_steps" -> "env steps"), or "step" if they disagree."""
    units = {r.step_unit for r in records if r.ok and r.curves.get(curve)}
    return units.pop().replace("_", " ") if len(units) == 1 else "step"


def compact_tick(value: float, _position: object = None) -> str:
    """An axis tick as ``1.5M``, ``150k``, ``500`` or ``0.25``: six-digit step counts overlap at panel width."""
    magnitude = abs(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def compact_number_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(compact_tick)


def curve_figure(task: str, curve: str, records: list[RunRecord], out_dir: Path,
                 log_y: bool | None = None, x_label: str | None = None, spec: Any = None,
                 y_label: str | None = None) -> Path | None:
    """One panel per env, one line per variant (mean over seeds) with its 95% CI band; the x axis is labelled
    ``x_label``, by default with the records' step unit.  Variants keep the spec's order and colours; the y
    axis turns logarithmic where a panel's bands span two orders of magnitude (``log_y=None``)."""
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in sorted(records, key=lambda r: r.seed):
        if record.ok and record.curves.get(curve):
            grouped[record.env][record.variant].append(record.curves[curve])
    if not grouped:
        return None
    x_label = x_label or step_unit_label(records, curve)
    plt = _matplotlib()
    order = spec_order(spec, list({r.variant for r in records}))
    colors = variant_colors(list(getattr(spec, "variants", None) or order))
    envs = sorted(grouped)
    cols = min(len(envs), 3)
    rows = (len(envs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 3.6 * rows), squeeze=False)
    for ax, env in zip(axes.flat, envs):
        lows, highs = [], []
        for variant in (v for v in order if v in grouped[env]):
            curves = grouped[env][variant]
            xs, ys = align_curves(curves)
            low, high = bootstrap_band(ys)
            color = colors.get(variant)
            ax.plot(xs, np.nanmean(ys, axis=0), color=color, label=f"{variant} (n={len(curves)})")
            ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
            lows.append(low)
            highs.append(high)
        ax.set_title(env)
        ax.set_xlabel(x_label)
        ax.xaxis.set_major_formatter(compact_number_formatter())  # 150k, not 150000 running into its neighbour
        quantity = y_label or curve.replace("_", " ")
        ax.set_ylabel(quantity)
        if log_y or (log_y is None and spans_decades(np.concatenate(lows), np.concatenate(highs))):
            ax.set_yscale("log")
            ax.set_ylabel(f"{quantity} (log scale)")
        ax.grid(alpha=0.3)
        outside_legend(ax)
    for ax in list(axes.flat)[len(envs):]:
        ax.set_visible(False)
    fig.suptitle(f"{task}: {curve} (mean, 95% bootstrap CI over seeds)")
    return save_figure(fig, out_dir / f"{slug(curve)}.png")
