"""Tables (Markdown + CSV), figures and BENCHMARKS.md, built only from run records on disk."""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
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
            return f"{_num(self.center)} [{_num(float(low))}, {_num(float(high))}] (n={self.n})"
        if math.isnan(self.ci[0]):
            return f"{_num(self.mean)} (n={self.n})"
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


def _num(value: float | None) -> str:
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
        return [_num(v) for v in values]
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
                row += [_num(paper), _num(delta)]
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
        lines.append(f"| {variant}{_pooled_note(report, variant)} | {_num(stats.iqm(everything))} "
                     f"[{_num(iqm_ci[0])}, {_num(iqm_ci[1])}] | {_num(stats.optimality_gap(everything))} "
                     f"[{_num(gap_ci[0])}, {_num(gap_ci[1])}] | {everything.size} |")
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
        lines += [f"| {env} | " + " | ".join(_num(ref.values[env].get(v)) for v in variants) + " |" for env in envs]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


CLAIM_MARKS = {"holds": "✅ holds", "fails": "❌ fails", "inconclusive": "❔ inconclusive", "not run": "➖ not run"}


def _checks_table(checks: list[dict[str, Any]], op: str) -> str:
    """One row per comparison (env x variant pair) of a compare claim: the means, the verdict and the test."""
    lines = [f"  | env | left | mean | {op} | right | mean | verdict | test |", "  |---|---|---|---|---|---|---|---|"]
    for check in checks:
        lines.append(f"  | {check['env']} | {check['lhs']} | {_num(check['lhs_mean'])} | {op} | {check['rhs']} | "
                     f"{_num(check['rhs_mean'])} | {CLAIM_MARKS[check['verdict']]} | {check['summary']} |")
    return "\n".join(lines)


def claims_block(claims: list[ClaimOutcome]) -> str:
    """Each claim with its verdict; a compare claim's per-env comparisons as a small table, others' detail line."""
    items = []
    for claim in claims:
        head = f"- **{CLAIM_MARKS[claim.verdict]}** — {claim.text} `[{claim.id}]`"
        if claim.checks and all("lhs_mean" in c for c in claim.checks):
            items.append(f"{head}\n\n{_checks_table(claim.checks, claim.op)}\n")
        else:
            items.append(f"{head}  \n  {claim.detail}")
    return "\n".join(items) + "\n"


def write_task_outputs(report: TaskReport, root: Path) -> tuple[Path, Path]:
    """``table.md`` and ``table.csv`` in ``results/<profile>/<task>/``."""
    out_dir = Path(root) / report.profile / report.spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "table.md"
    markdown.write_text(task_section(report, out_dir, heading="#"))
    table = out_dir / "table.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "profile", "env", "variant", "metric", "n", "mean", "std", "ci_low", "ci_high"])
        for (variant, env, metric), cell in report.cells.items():
            writer.writerow([report.spec.name, report.profile, env, variant, metric, cell.n, _csv(cell.mean),
                             _csv(stats.std(cell.values) if cell.n else float("nan")), _csv(cell.ci[0]),
                             _csv(cell.ci[1])])
    return markdown, table


def _csv(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def overrides_note(records: list[RunRecord]) -> str:
    """`` · overrides: lr=0.0001`` where runs were made with ``suite run -o`` (one entry per distinct set)."""
    sets = sorted({" ".join(f"{k}={v}" for k, v in sorted(r.overrides.items())) for r in records if r.overrides})
    plain = sum(not r.overrides for r in records)
    if not sets:
        return ""
    return " · *overrides:* " + "; ".join(f"`{s}`" for s in sets) + (f" ({plain} runs without)" if plain else "")


def task_section(report: TaskReport, relative_to: Path, heading: str = "##") -> str:
    spec, chosen = report.spec, report.spec.profiles[report.profile]
    commits = sorted({(r.provenance.git_commit[:10] + ("+dirty" if r.provenance.git_dirty else ""))
                      for r in report.records})
    seeds = sorted({r.seed for r in report.records})
    wall = sum(r.wall_time_s for r in report.records)
    # smoke records are re-made by every `make reproduce`: their commit and timings would make the committed
    # tables churn, so a smoke header points to the records' provenance instead
    made = (f"*total run time:* {wall / 60:.1f} min · *commit:* {', '.join(commits) or '—'}"
            if report.profile != "smoke" else "*commit, timings, hardware:* in each run record's provenance")
    parts = [f"{heading} {spec.title}", "", f"*Paper:* {spec.paper}  ", f"*Spec:* `{spec.path.as_posix()}` · "
             f"*profile:* `{report.profile}` · *runs:* {len(report.records)} · *seeds:* {len(seeds)} · {made}"
             + overrides_note(report.records), ""]
    if spec.protocol:
        parts += [spec.protocol.strip(), ""]
    if not report.records:
        skipped = [f"`{p.name}`: {p.skip}" for p in spec.profiles.values() if p.skip]
        parts += [f"> ⚠ stale, left out (re-run the sweep to replace them): {note}" for note in report.stale]
        parts += [f"No records yet: run `suite run {spec.path.as_posix()} --profile {report.profile}`."
                  + (" Not runnable here — " + "; ".join(skipped) if skipped else ""), ""]
        refs = reference_tables(spec, ())
        if refs:
            parts += ["Paper tables:", "", refs]
        return "\n".join(parts)
    for error in report.errors:
        parts.append(f"> ⚠ corrupt record ignored: {error}")
    for note in report.stale:
        parts.append(f"> ⚠ stale, left out (re-run the sweep to replace them): {note}")
    shown = ("median [interquartile range] (n runs)" if spec.summary == "median_iqr"
             else "mean [95% bootstrap CI] (n seeds)")
    parts += [f"Ours: {shown}; primary metric `{spec.metric.name}` "
              f"({'higher' if spec.metric.higher_is_better else 'lower'} is better).", "", results_table(report)]
    pooled = pooled_table(report)
    if pooled:
        parts += [pooled]
    refs = reference_tables(spec, chosen.envs)
    if refs:
        parts += ["Paper tables (settings not run in this profile):", "", refs]
    if report.figures:
        parts += [" ".join(f"![{p.stem}]({_relative(p, relative_to)})" for p in report.figures), ""]
    if report.claims:
        parts += ["Claims:", "", claims_block(report.claims)]
    return "\n".join(parts)


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        import os

        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def write_benchmarks(specs: list[TaskSpec], root: Path, out: Path,
                     on_corrupt: Callable[[list[str], list[str]], None] | None = None) -> Path:
    """Regenerate BENCHMARKS.md: per task, the first profile of BENCHMARK_PROFILES that has records.

    ``on_corrupt`` sees each task's corrupt-record and stale-record messages (the CLI prints them).
    """
    sections, index = [], []
    for spec in specs:
        profile = next((p for p in BENCHMARK_PROFILES if scan(root, p, spec.name)[0]), BENCHMARK_PROFILES[0])
        report = build_report(spec, profile, root)
        if on_corrupt is not None:
            on_corrupt(report.errors, report.stale)
        write_task_outputs(report, root)
        verdicts = Counter(c.verdict for c in report.claims)
        shown = f"`{profile}`" if report.records else "— (not runnable here)"
        index.append(f"| [{spec.title}](#{_anchor(spec.title)}) | {shown} | {len(report.records)} | "
                     f"{verdicts['holds']} / {verdicts['fails']} / {verdicts['inconclusive']} |")
        sections.append(task_section(report, out.parent))
    text = "\n".join([
        "# Benchmarks", "",
        "Generated by `suite report` from the run records under `results/`; do not edit by hand. Each table shows "
        "our mean over seeds with a 95% percentile-bootstrap interval, the paper's number beside it where the "
        "setting matches, and every claim of the spec checked by a one-sided test. A task shows its `cpu` profile "
        "when that has records, else `smoke` (tiny budgets: those numbers prove the code path, not the paper).", "",
        "| task | profile | runs | claims holds / fails / inconclusive |", "|---|---|---|---|", *index, "",
        *sections])
    out.write_text(text)
    return out


def _anchor(title: str) -> str:
    return "".join(ch for ch in title.lower().replace(" ", "-") if ch.isalnum() or ch in "-_")
