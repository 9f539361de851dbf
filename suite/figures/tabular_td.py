"""Figures of the ``tabular_td`` task: the TD error within a trial (Schultz, Dayan & Montague 1997, Fig. 1 style),
the chain's Q-tables beside the notes' and the random walk's RMS error per step size (Sutton & Barto Fig. 6.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from suite.plots import _matplotlib, save_figure
from suite.record import RunRecord
from suite.registry import register_figure


def _ok(records: list[RunRecord], baseline: str) -> list[RunRecord]:
    return sorted((r for r in records if r.ok and r.baseline == baseline),
                  key=lambda r: r.seed)


def dopamine_figure(records: list[RunRecord], out_dir: Path) -> Path | None:
    """TD error against time in the trial: first trial, last trial, and an omission probe after training."""
    runs = _ok(records, "td_dopamine")
    if not runs:
        return None
    extras = runs[0].extras
    deltas = extras["trial_deltas"]
    first, last = min(deltas, key=int), max(deltas, key=int)
    rows = [(f"trial {first} (before learning)", deltas[first]), (f"trial {last} (after learning)", deltas[last]),
            ("after learning, reward omitted", extras["omission_delta"])]
    plt = _matplotlib()
    fig, axes = plt.subplots(len(rows), 1, figsize=(5.0, 5.6), sharex=True, sharey=True)
    for ax, (title, delta) in zip(axes, rows, strict=True):
        t = np.arange(len(delta))
        ax.bar(t, delta, width=0.8, color=["k" if d >= 0 else "tab:red" for d in delta])
        ax.axhline(0, color="grey", lw=0.6)
        for x, label in ((extras["cue_time"], "CS"), (extras["reward_time"], "R")):
            ax.axvline(x, color="tab:blue", ls=":", lw=0.8)
            ax.text(x, 1.05, label, ha="center", va="bottom", fontsize=8, color="tab:blue")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("TD error δ")
        ax.set_ylim(-1.25, 1.3)
    axes[-1].set_xlabel("time step in the trial")
    fig.suptitle(f"TD error as dopamine (TD(0), tapped delay line; {len(runs)} identical seeds)", fontsize=9)
    return save_figure(fig, out_dir / "tabular_td_dopamine.png", dpi=120)


def q_table_figure(spec: Any, records: list[RunRecord], out_dir: Path) -> Path | None:
    """The notes' Q-table beside value iteration's and the mean learned Q-learning / SARSA tables."""
    tables: list[tuple[str, np.ndarray]] = []
    notes = spec.params.get("notes_q_table")
    if notes:
        tables.append(("course notes (003)", np.asarray(notes, float)))
    for baseline in ("value_iteration", "qlearning", "sarsa"):
        runs = _ok(records, baseline)
        if runs:
            mean = np.mean([r.extras["q_table"] for r in runs], axis=0)
            tables.append((f"{baseline} (mean of {len(runs)})", mean))
    if not tables:
        return None
    plt = _matplotlib()
    fig, axes = plt.subplots(1, len(tables), figsize=(2.1 * len(tables), 4.6), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables, strict=True):
        ax.imshow(table, cmap="RdYlGn", vmin=-10, vmax=10, aspect="auto")
        for (s, a), value in np.ndenumerate(table):
            ax.text(a, s, f"{value:.2f}".rstrip("0").rstrip("."), ha="center", va="center", fontsize=7)
        ax.set_xticks([0, 1], ["R", "JR"])
        ax.set_yticks(range(table.shape[0]))
        ax.set_ylabel("state")
        ax.set_title(title, fontsize=8)
    return save_figure(fig, out_dir / "tabular_td_q_tables.png", dpi=120)


def random_walk_figure(records: list[RunRecord], out_dir: Path) -> Path | None:
    """RMS error vs episodes for every step size of TD(0) (solid) and MC (dashed), mean over seeds."""
    runs = _ok(records, "td_prediction")
    if not runs:
        return None
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for variant in sorted({r.variant for r in runs}):
        mine = [r for r in runs if r.variant == variant]
        curves = np.mean([r.extras["rms_by_step_size"] for r in mine], axis=0)
        style = "-" if mine[0]["config"].get("method", "td") == "td" else "--"
        for alpha, curve in zip(mine[0]["extras"]["step_sizes"], curves, strict=True):
            ax.plot(np.arange(len(curve)), curve, style, lw=1.2, label=f"{variant} α={alpha:g}")
    ax.set_xlabel("walks / episodes")
    ax.set_ylabel("RMS error, averaged over states")
    ax.set_title(f"Random walk (S&B Ex. 6.2), mean over {len({r['seed'] for r in runs})} seeds", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return save_figure(fig, out_dir / "tabular_td_random_walk.png", dpi=120)


@register_figure("tabular_td")
def tabular_td(spec: Any, records: list[RunRecord], out_dir: Path) -> list[Path]:
    """The three figures above, for whichever parts of the task have records."""
    out_dir = Path(out_dir)
    paths = [dopamine_figure(records, out_dir), q_table_figure(spec, records, out_dir),
             random_walk_figure(records, out_dir)]
    return [p for p in paths if p is not None]
