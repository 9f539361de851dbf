"""Figures for the exploration task: noise-correlation heatmaps and return-vs-energy scatter per env."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from suite.plots import outside_legend, save_figure, spec_order, variant_colors
from suite.record import RunRecord
from suite.registry import register_figure


@register_figure("exploration_noise")
def exploration_noise(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Per env: the cross-joint correlation of each variant's exploration noise (mean over seeds) as heatmaps,
    and each run's final return against its energy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.ok]
    by_env: dict[str, list[RunRecord]] = defaultdict(list)
    for record in ok:
        by_env[record.env].append(record)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for env, recs in sorted(by_env.items()):
        matrices: dict[str, list[np.ndarray]] = defaultdict(list)
        for record in recs:
            matrix = record.extras.get("noise_correlation_matrix")
            if matrix:
                matrices[record.variant].append(np.asarray(matrix, float))
        variants = spec_order(spec, list(matrices))
        if variants:
            fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants), 3.0), squeeze=False)
            for ax, variant in zip(axes[0], variants, strict=True):
                image = ax.imshow(np.mean(matrices[variant], axis=0), vmin=-1, vmax=1, cmap="RdBu_r")
                ax.set_title(variant, fontsize=9)
                ax.set_xlabel("joint")
                ax.set_ylabel("joint")
            fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="noise correlation")
            path = out_dir / f"{spec.name}_{env.replace('/', '_')}_noise_correlation.png"
            fig.savefig(path, dpi=120)
            plt.close(fig)
            paths.append(path)
        fig, ax = plt.subplots(figsize=(5.6, 3.5))
        colors = variant_colors(list(spec.variants))
        for variant in spec_order(spec, list({r.variant for r in recs})):
            points = [(r.metrics.get("energy"), r.metrics.get("eval_return")) for r in recs
                      if r.variant == variant and "energy" in r.metrics]
            if points:
                x, y = zip(*points, strict=True)
                ax.scatter(x, y, label=variant, s=18, color=colors.get(variant))
        ax.set_xlabel("energy (mean squared action)")
        ax.set_ylabel("eval return")
        ax.set_title(env, fontsize=9)
        outside_legend(ax)
        paths.append(save_figure(fig, out_dir / f"{spec.name}_{env.replace('/', '_')}_return_vs_energy.png", dpi=120))
    return paths
