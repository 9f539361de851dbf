"""Tables (Markdown + CSV), figures and BENCHMARKS.md, built only from run records on disk."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suite import registry, stats
from suite.claims import ClaimOutcome, evaluate_claims, per_seed_values
from suite.figures.aggregate import AGGREGATE_FIGURES
from suite.jobs import split_stale
from suite.plots import curve_figure
from suite.record import RunRecord
from suite.spec import TaskSpec
from suite.store import scan

BENCHMARK_PROFILES = ("cpu", "smoke")  # BENCHMARKS.md shows the first profile that has records


@dataclass
class Cell:
    variant: str
    env: str
    metric: str
    values: np.ndarray
    ci: tuple[float, float]
    summary: str = "mean_ci"  # the spec's `summary`: mean_ci | median_iqr

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return stats.mean(self.values) if self.n else float("nan")

    @property
    def center(self) -> float:
        """What the table shows and compares with the paper: the mean, or the median under ``median_iqr``."""
        if self.summary == "median_iqr":
            return float(np.median(self.values)) if self.n else float("nan")
        return self.mean

    def text(self) -> str:
        if not self.n:
            return "—"
        if self.summary == "median_iqr":
            low, high = np.percentile(self.values, [25, 75])
            return f"{fmt(self.center)} [{fmt(float(low))}, {fmt(float(high))}] (n={self.n})"
        if math.isnan(self.ci[0]):
            return f"{fmt(self.mean)} (n={self.n})"
        mean, low, high = _same_decimals(self.mean, *self.ci)
        return f"{mean} [{low}, {high}] (n={self.n})"


@dataclass
class TaskReport:
    spec: TaskSpec
    profile: str
    records: list[RunRecord]
    errors: list[str]
    cells: dict[tuple[str, str, str], Cell]
    claims: list[ClaimOutcome]
    figures: list[Path]
    status_counts: dict[tuple[str, str], Counter]
    stale: list[str] = field(default_factory=list)  # records made under another config of this spec, left out


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if magnitude and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}" if magnitude < 100 else f"{value:.1f}"


def _same_decimals(*values: float) -> list[str]:
    """A mean and its interval with one number of decimals (``9.667 [9.333, 10.000]``, not ``[9.333, 10]``):
    ``_num``'s precision for the largest magnitude among them."""
    top = max(abs(v) for v in values)
    if not top or top >= 1e5 or top < 1e-3:
        return [fmt(v) for v in values]
    decimals = 1 if top >= 100 else 3 - math.floor(math.log10(top))
    return [f"{v:.{decimals}f}" for v in values]


def build_report(spec: TaskSpec, profile: str, root: Path, figures: bool = True) -> TaskReport:
    """Aggregate the records of one task/profile into cells, claims and figures (files under the task folder)."""
    records, errors = scan(root, profile, spec.name)
    chosen = spec.profiles[profile]
    records = [r for r in records if r.variant in chosen.variants and r.env in chosen.envs]
    records, stale = split_stale(spec, profile, records)
    values = per_seed_values(records)
    cells = {}
    for variant in chosen.variants:
        for env in chosen.envs:
            for metric in dict.fromkeys((*spec.columns, spec.metric.name)):
                data = values.get((variant, env, metric), np.array([]))
                cells[(variant, env, metric)] = Cell(variant, env, metric, data, stats.bootstrap_ci(data), spec.summary)
    counts: dict[tuple[str, str], Counter] = {}
    for record in records:
        counts.setdefault(record.cell, Counter())[record.status] += 1
    out_dir = Path(root) / profile / spec.name
    drawn: list[Path] = []
    if figures and records:
        for curve in spec.curves:
            path = curve_figure(spec.name, curve, records, out_dir / "figures",
                                x_label=spec.curve_x_labels.get(curve), spec=spec,
                                y_label=spec.curve_y_labels.get(curve))
            if path:
                drawn.append(path)
        # every task with several variants gets the rliable figures; a spec lists only its own figures
        for name in (*AGGREGATE_FIGURES, *(f for f in spec.figures if f not in AGGREGATE_FIGURES)):
            drawn.extend(registry.FIGURES[name](spec, records, out_dir / "figures") or [])
    return TaskReport(spec, profile, records, errors, cells, evaluate_claims(spec, profile, records), drawn, counts,
                      stale)


def _status_note(report: TaskReport, variant: str, env: str) -> str:
    counts = report.status_counts.get((variant, env), Counter())
    bad = [f"{counts[s]} {s}" for s in ("diverged", "failed") if counts[s]]
    return f" ({', '.join(bad)})" if bad else ""


# hyperparameters a run's cost scales with (DQN, PPO/SAC, MAML, GAN, continual budgets; the toy's steps)
BUDGET_KEYS = ("total_frames", "total_steps", "meta_iterations", "train_steps", "epochs_per_task", "epochs", "steps")


def budget(hparams: dict[str, Any]) -> dict[str, Any]:
    """The budget hyperparameters among ``hparams`` (positive numbers under ``BUDGET_KEYS``)."""
    return {k: hparams[k] for k in BUDGET_KEYS if isinstance(hparams.get(k), (int, float)) and hparams[k] > 0}


def budget_mismatch(spec: TaskSpec, profile: str) -> str:
    """Why an ``ours − paper`` delta compares unlike budgets (this profile's vs the ``paper`` profile's), or ""."""
    if profile == "paper" or "paper" not in spec.profiles:
        return ""
    ours, theirs = {}, {}
    for variant in spec.profiles[profile].variants:
        ours.update(budget(spec.resolve(variant, profile)[1]))
        if variant in spec.profiles["paper"].variants:
            theirs.update(budget(spec.resolve(variant, "paper")[1]))
    differ = sorted(k for k in ours if k in theirs and ours[k] != theirs[k])
    if not differ:
        return ""
    shown = ", ".join(f"{k} {ours[k]:,} here vs {theirs[k]:,}" for k in differ)
    return (f"† budget differs from the paper's: {shown} in the `paper` profile; the Δ compares unlike budgets "
            "(see the reference's note for the paper's own).")


def results_table(report: TaskReport) -> str:
    """Markdown: one block per env; rows = variants; our mean [95% CI] (n) per column, reference beside it."""
    spec, chosen = report.spec, report.spec.profiles[report.profile]
    mismatch = budget_mismatch(spec, report.profile)
    lines = []
    for env in chosen.envs:
        refs = [(ref, ref.values[env]) for ref in spec.references if env in ref.values]
        header = ["variant", *spec.columns]
        for ref, _ in refs:
            header += [f"{ref.name} ({ref.metric or spec.metric.name})", "Δ ours − paper" + (" †" if mismatch else "")]
        lines += [f"**{env}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in filter(lambda v: spec.variants[v].runs_on(env), chosen.variants):
            row = [variant + _status_note(report, variant, env)]
            row += [report.cells[(variant, env, m)].text() for m in spec.columns]
            for ref, values in refs:
                ours = report.cells.get((variant, env, ref.metric or spec.metric.name))
                paper = values.get(variant)
                delta = ours.center - paper if ours and ours.n and paper is not None else None
                row += [fmt(paper), fmt(delta)]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        if refs and mismatch:
            lines += [mismatch, ""]
    return "\n".join(lines)


def pooled_table(report: TaskReport) -> str:
    """IQM and optimality gap of the primary metric pooled over envs, on the spec's fixed per-env scale.

    Each env's scores become ``(score - random) / (reference - random)`` with the anchors the spec's
    ``normalization`` declares, so a variant's score does not depend on the other variants in the table.
    Without anchors for every env it falls back to min-max over this table's runs and says so.  A variant
    is pooled from its ``ok`` runs; its diverged/failed runs are counted on its row, never silently dropped.
    """
    spec, chosen = report.spec, report.spec.profiles[report.profile]
    if len(chosen.envs) < 2:
        return ""
    metric, fixed = spec.metric.name, spec.normalization
    pooled: dict[str, list[np.ndarray]] = {}
    excluded = []
    for variant in chosen.variants:
        columns = [report.cells[(variant, env, metric)].values for env in chosen.envs]
        empty = [env for env, column in zip(chosen.envs, columns) if not column.size]
        if empty:
            excluded.append(f"{variant} (no `ok` run in {', '.join(empty)})")
        else:
            pooled[variant] = columns
    if not pooled:
        return ""
    if fixed.covers(chosen.envs):
        scaled = {v: [fixed.normalise(env, c) for env, c in zip(chosen.envs, cols)] for v, cols in pooled.items()}
        anchors = ", ".join(f"{env} {fixed.scores[env].random:g} → {fixed.scores[env].reference:g}"
                            for env in chosen.envs)
        sources = "; ".join(dict.fromkeys(fixed.scores[env].source for env in chosen.envs))
        scale = f"normalised per env by the spec's fixed scores, 0 = random, 1 = reference: {anchors} ({sources})"
    else:
        scaled = _min_max_fallback(pooled, chosen.envs, spec.metric.higher_is_better)
        missing = ", ".join(env for env in chosen.envs if env not in fixed.scores)
        scale = (f"⚠ min-max normalised per env over the runs of this table, 1 = best run: the spec declares no "
                 f"fixed reference scores for {missing}{f' ({fixed.note})' if fixed.note else ''}, so a variant's "
                 "score here depends on which other variants are in the table")
    lines = [f"Pooled over {len(chosen.envs)} envs ({metric}; {scale}; higher is better):", "",
             "| variant | IQM [95% CI] | optimality gap [95% CI] | runs pooled |", "|---|---|---|---|"]
    for variant, columns in scaled.items():
        everything = np.concatenate(columns)
        iqm_ci = stats.stratified_bootstrap_ci(columns, stats.iqm)
        gap_ci = stats.stratified_bootstrap_ci(columns, stats.optimality_gap)
        lines.append(f"| {variant}{_pooled_note(report, variant)} | {fmt(stats.iqm(everything))} "
                     f"[{fmt(iqm_ci[0])}, {fmt(iqm_ci[1])}] | {fmt(stats.optimality_gap(everything))} "
                     f"[{fmt(gap_ci[0])}, {fmt(gap_ci[1])}] | {everything.size} |")
    lines += ["", "Diverged and failed runs have no score and are left out of their variant's pool (counted on "
              "its row)." + (f" Not pooled: {'; '.join(excluded)}." if excluded else "")]
    return "\n".join(lines) + "\n"


def _pooled_note(report: TaskReport, variant: str) -> str:
    counts = Counter()
    for env in report.spec.profiles[report.profile].envs:
        counts.update(report.status_counts.get((variant, env), Counter()))
    bad = [f"{counts[s]} {s}" for s in ("diverged", "failed") if counts[s]]
    return f" (⚠ {', '.join(bad)} not pooled)" if bad else ""


def _min_max_fallback(pooled: dict[str, list[np.ndarray]], envs: tuple[str, ...],
                      higher_is_better: bool) -> dict[str, list[np.ndarray]]:
    sign = 1.0 if higher_is_better else -1.0
    low = [min(float((sign * cols[j]).min()) for cols in pooled.values()) for j in range(len(envs))]
    high = [max(float((sign * cols[j]).max()) for cols in pooled.values()) for j in range(len(envs))]
    return {v: [stats.min_max_normalize(sign * c, np.array(lo), np.array(hi)) for c, lo, hi in zip(cols, low, high)]
            for v, cols in pooled.items()}


def reference_tables(spec: TaskSpec, shown_envs: tuple[str, ...]) -> str:
    """The paper's own tables for settings this profile does not run (e.g. Atari rows beside a MinAtar run)."""
    blocks = []
    for ref in spec.references:
        envs = [e for e in ref.values if e not in shown_envs]
        if not envs:
            continue
        variants = list(dict.fromkeys(v for e in envs for v in ref.values[e]))
        lines = [f"*{ref.name}* — {ref.metric or spec.metric.name}" + (f"; {ref.note}" if ref.note else "")
                 + (f" ([source]({ref.source}))" if ref.source.startswith("http") else f" ({ref.source})" if ref.source
                    else ""), "", "| setting | " + " | ".join(variants) + " |", "|" + "---|" * (len(variants) + 1)]
        lines += [f"| {env} | " + " | ".join(fmt(ref.values[env].get(v)) for v in variants) + " |" for env in envs]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
