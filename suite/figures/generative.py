"""Figures of the GAN-evaluation task: sample grids, FID box plots over the hyperparameter search, IS vs FID."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from suite.plots import outside_legend, save_figure, variant_colors
from suite.record import RunRecord
from suite.registry import register_figure


def _ok(records: list[RunRecord]) -> list[RunRecord]:
    return [r for r in records if r.ok and "fid" in r.metrics]


def _by_env_variant(records: list[RunRecord]) -> dict[str, dict[str, list[RunRecord]]]:
    table: dict[str, dict[str, list[RunRecord]]] = {}
    for record in _ok(records):
        table.setdefault(record.env, {}).setdefault(record.variant, []).append(record)
    return table


def _variant_order(spec: Any, present: list[str]) -> list[str]:
    declared = list(getattr(spec, "variants", None) or [])
    return [v for v in declared if v in present] + sorted(v for v in present if v not in declared)


def _centers(env: str) -> np.ndarray | None:
    from suite.envs.generative import MIXTURES, mixture_centers

    return mixture_centers(env).numpy() if env in MIXTURES else None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@register_figure("gan_samples")
def gan_samples(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Per env, one panel per model: samples of its best-FID run (image grid, or a 2-D scatter over the modes)."""
    plt = _pyplot()
    paths = []
    for env, by_variant in _by_env_variant(records).items():
        variants = _variant_order(spec, list(by_variant))
        fig, axes = plt.subplots(1, len(variants), figsize=(2.2 * len(variants), 2.6), squeeze=False)
        for ax, variant in zip(axes[0], variants):
            best = min(by_variant[variant], key=lambda r: r.metrics["fid"])
            samples = np.asarray(best.extras.get("samples", []), dtype=np.float32)
            shape = best.extras.get("sample_shape", [])
            if samples.size and len(shape) == 3:
                side = int(np.sqrt(len(samples)))
                images = samples[: side * side].reshape(side, side, *shape).transpose(0, 3, 1, 4, 2)
                grid = images.reshape(side * shape[1], side * shape[2], shape[0]).clip(0, 1)
                ax.imshow(grid.squeeze(-1) if shape[0] == 1 else grid, cmap="gray", vmin=0, vmax=1)
            elif samples.size:
                ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4)
                centers = _centers(env)
                if centers is not None:
                    ax.scatter(centers[:, 0], centers[:, 1], s=12, marker="x", color="red", linewidths=0.8)
                ax.set_aspect("equal")
            ax.set_title(f"{variant}\nFID {best['metrics']['fid']:.3g}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{env}: samples of each model's best run", fontsize=9)
        paths.append(save_figure(fig, Path(out_dir) / f"gan_samples_{env}.png", dpi=120))
    return paths


@register_figure("fid_boxplot")
def fid_boxplot(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Per env, the FID distribution of each model over all hyperparameter settings x seeds (Lucic et al. Fig. 4)."""
    plt = _pyplot()
    paths = []
    for env, by_variant in _by_env_variant(records).items():
        variants = _variant_order(spec, list(by_variant))
        values = [[r.metrics["fid"] for r in by_variant[v]] for v in variants]
        fig, ax = plt.subplots(figsize=(1.1 * len(variants) + 2, 3.6))
        ax.boxplot(values, whis=(0, 100), medianprops={"color": "black"})  # not a variant colour
        ax.set_xticks(range(1, len(variants) + 1), variants, rotation=30)
        colors = variant_colors(list(spec.variants))
        for i, (variant, vals) in enumerate(zip(variants, values), start=1):
            ax.scatter(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, s=6, alpha=0.5,
                       color=colors.get(variant))
        ax.set_yscale("log")
        ax.set_ylabel("FID (lower is better, log scale)")
        ax.set_title(f"{env}: FID over the hyperparameter search ({sum(map(len, values))} runs)", fontsize=9)
        paths.append(save_figure(fig, Path(out_dir) / f"fid_boxplot_{env}.png", dpi=120))
    return paths


@register_figure("is_vs_fid")
def is_vs_fid(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Per env, Inception Score against FID for every run, coloured by model."""
    plt = _pyplot()
    paths = []
    for env, by_variant in _by_env_variant(records).items():
        fig, ax = plt.subplots(figsize=(6, 3.6))
        colors = variant_colors(list(spec.variants))
        for variant in _variant_order(spec, list(by_variant)):
            runs = [r for r in by_variant[variant] if "inception_score" in r.metrics]
            ax.scatter([r.metrics["fid"] for r in runs], [r.metrics["inception_score"] for r in runs],
                       s=10, alpha=0.7, label=variant, color=colors.get(variant))
        ax.set_xscale("log")
        ax.set_xlabel("FID (lower is better)")
        ax.set_ylabel("Inception Score (higher is better)")
        outside_legend(ax)
        ax.set_title(f"{env}: IS vs FID per run", fontsize=9)
        paths.append(save_figure(fig, Path(out_dir) / f"is_vs_fid_{env}.png", dpi=120))
    return paths
