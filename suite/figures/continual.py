"""Continual-learning figures drawn from the records' extras (``trajectory`` and ``R``).

* ``continual_task_accuracy``: Kirkpatrick et al. (2017) Fig. 2A style -- test accuracy on each task as training
  moves through the task sequence (x in tasks trained, fractional within a task), one panel per variant, mean
  over seeds.
* ``continual_r_matrix``: the accuracy matrix R (row 0 = random init, row i = after task i), one heatmap per
  variant, mean over seeds.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from suite.plots import bootstrap_band, save_figure
from suite.record import RunRecord
from suite.registry import register_figure


def _plt():  # noqa: ANN202 (matplotlib module)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _group(spec: Any, records: list[RunRecord], key: str) -> dict[str, dict[str, list[Any]]]:
    """env -> variant -> [extras[key] of every ok seed], variants in the spec's order."""
    order = {name: i for i, name in enumerate(getattr(spec, "variants", {}) or {})}
    grouped: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for record in sorted(records, key=lambda r: (order.get(r.variant, len(order)), r.variant, r.seed)):
        if record.status == "ok" and key in record.extras:
            grouped[record.env][record.variant].append(record.extras[key])
    return grouped


def _grid(n: int, width: float, height: float):  # noqa: ANN202 (figure, axes)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = _plt().subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


@register_figure("continual_task_accuracy")
def task_accuracy_figure(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Accuracy on every task over training, one panel per variant (Kirkpatrick et al. 2017, Fig. 2A)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for env, by_variant in _group(spec, records, "trajectory").items():
        fig, axes = _grid(len(by_variant), 3.6, 2.8)
        for ax, (variant, runs) in zip(axes, by_variant.items(), strict=False):
            x = np.asarray(runs[0]["x"], dtype=float)
            seeds = np.stack([np.asarray(run["acc"], dtype=float) for run in runs if len(run["x"]) == len(x)])
            acc = seeds.mean(axis=0)
            n_tasks = acc.shape[1]
            for j in range(n_tasks):
                seen = x >= j  # a task's curve starts when its training starts
                line, = ax.plot(x[seen], acc[seen, j], label=f"task {j + 1}", lw=1.4)
                low, high = bootstrap_band(seeds[:, seen, j])
                ax.fill_between(x[seen], low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            for boundary in range(1, n_tasks):
                ax.axvline(boundary, color="0.8", lw=0.6, zorder=0)
            ax.set(title=f"{variant} (n={len(runs)})", xlabel="tasks trained", ylabel="test accuracy",
                   ylim=(0, 1.02), xlim=(0, n_tasks))
        axes[0].legend(fontsize=7, loc="lower left")
        fig.suptitle(f"{getattr(spec, 'name', '')} {env}: accuracy on each task during training "
                     "(mean, 95% bootstrap CI over seeds)")
        paths.append(save_figure(fig, out_dir / f"continual_task_accuracy_{_safe(env)}.png"))
    return paths


@register_figure("continual_r_matrix")
def r_matrix_figure(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Heatmaps of R[i, j] (accuracy on task j after training task i), mean over seeds, one per variant."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for env, by_variant in _group(spec, records, "R").items():
        fig, axes = _grid(len(by_variant), 3.0, 3.0)
        for ax, (variant, runs) in zip(axes, by_variant.items(), strict=False):
            r = np.mean([np.asarray(run, dtype=float) for run in runs], axis=0)
            ax.imshow(r, vmin=0, vmax=1, cmap="viridis")
            n_tasks = r.shape[1]
            if n_tasks <= 10:
                for (i, j), value in np.ndenumerate(r):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if value < 0.5 else "black")
            ax.set_xticks(range(n_tasks), [str(j + 1) for j in range(n_tasks)])
            ax.set_yticks(range(n_tasks + 1), ["init"] + [str(i) for i in range(1, n_tasks + 1)])
            ax.set(title=f"{variant} (n={len(runs)})", xlabel="test task j", ylabel="after training task i")
        fig.suptitle(f"{getattr(spec, 'name', '')} {env}: R matrix")
        paths.append(save_figure(fig, out_dir / f"continual_r_matrix_{_safe(env)}.png"))
    return paths
