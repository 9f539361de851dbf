"""Tables (Markdown + CSV), figures and BENCHMARKS.md, built only from run records on disk."""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from suite import registry, stats
from suite.claims import ClaimOutcome, evaluate_claims, per_seed_values
from suite.plots import curve_figure
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
        return f"{_num(self.mean)} [{_num(self.ci[0])}, {_num(self.ci[1])}] (n={self.n})"


@dataclass
class TaskReport:
    spec: TaskSpec
    profile: str
    records: list[dict[str, Any]]
    errors: list[str]
    cells: dict[tuple[str, str, str], Cell]
    claims: list[ClaimOutcome]
    figures: list[Path]
    status_counts: dict[tuple[str, str], Counter]


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if magnitude and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}" if magnitude < 100 else f"{value:.1f}"


def build_report(spec: TaskSpec, profile: str, root: Path, figures: bool = True) -> TaskReport:
    """Aggregate the records of one task/profile into cells, claims and figures (files under the task folder)."""
    records, errors = scan(root, profile, spec.name)
    chosen = spec.profiles[profile]
    records = [r for r in records if r["variant"] in chosen.variants and r["env"] in chosen.envs]
    values = per_seed_values(records)
    cells = {}
    for variant in chosen.variants:
        for env in chosen.envs:
            for metric in dict.fromkeys((*spec.columns, spec.metric.name)):
                data = values.get((variant, env, metric), np.array([]))
                cells[(variant, env, metric)] = Cell(variant, env, metric, data, stats.bootstrap_ci(data), spec.summary)
    counts: dict[tuple[str, str], Counter] = {}
    for record in records:
        counts.setdefault((record["variant"], record["env"]), Counter())[record["status"]] += 1
    out_dir = Path(root) / profile / spec.name
    drawn: list[Path] = []
    if figures and records:
        for curve in spec.curves:
            path = curve_figure(spec.name, curve, records, out_dir / "figures",
                                x_label=spec.curve_x_labels.get(curve))
            if path:
                drawn.append(path)
        for name in spec.figures:
            drawn.extend(registry.FIGURES[name](spec, records, out_dir / "figures") or [])
    return TaskReport(spec, profile, records, errors, cells, evaluate_claims(spec, profile, records), drawn, counts)


def _status_note(report: TaskReport, variant: str, env: str) -> str:
    counts = report.status_counts.get((variant, env), Counter())
    bad = [f"{counts[s]} {s}" for s in ("diverged", "failed") if counts[s]]
    return f" ({', '.join(bad)})" if bad else ""


def results_table(report: TaskReport) -> str:
    """Markdown: one block per env; rows = variants; our mean [95% CI] (n) per column, reference beside it."""
    spec, chosen = report.spec, report.spec.profiles[report.profile]
    lines = []
    for env in chosen.envs:
        refs = [(ref, ref.values[env]) for ref in spec.references if env in ref.values]
        header = ["variant", *spec.columns]
        for ref, _ in refs:
            header += [f"{ref.name} ({ref.metric or spec.metric.name})", "Δ ours − paper"]
        lines += [f"**{env}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in chosen.variants:
            row = [variant + _status_note(report, variant, env)]
            row += [report.cells[(variant, env, m)].text() for m in spec.columns]
            for ref, values in refs:
                ours = report.cells.get((variant, env, ref.metric or spec.metric.name))
                paper = values.get(variant)
                delta = ours.center - paper if ours and ours.n and paper is not None else None
                row += [_num(paper), _num(delta)]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def pooled_table(report: TaskReport) -> str:
    """IQM and optimality gap over envs of the primary metric, min-max normalised per env across all runs."""
    spec, chosen = report.spec, report.spec.profiles[report.profile]
    if len(chosen.envs) < 2:
        return ""
    metric, sign = spec.metric.name, 1.0 if spec.metric.higher_is_better else -1.0
    per_variant = {}
    for variant in chosen.variants:
        columns = [report.cells[(variant, env, metric)].values for env in chosen.envs]
        if not all(c.size for c in columns) or len({c.size for c in columns}) != 1:
            continue
        per_variant[variant] = sign * np.stack(columns, axis=1)
    if not per_variant:
        return ""
    everything = np.concatenate(list(per_variant.values()))
    low, high = everything.min(axis=0), everything.max(axis=0)
    lines = [f"Pooled over {len(chosen.envs)} envs ({metric}{'' if sign > 0 else ', negated'}, min-max normalised "
             "per env over all runs of this table; 1 = best run, higher is better):", "",
             "| variant | IQM [95% CI] | optimality gap [95% CI] |", "|---|---|---|"]
    for variant, scores in per_variant.items():
        normalised = stats.min_max_normalize(scores, low, high)
        iqm_ci = stats.stratified_bootstrap_ci(normalised, stats.iqm)
        gap_ci = stats.stratified_bootstrap_ci(normalised, stats.optimality_gap)
        lines.append(f"| {variant} | {_num(stats.iqm(normalised))} [{_num(iqm_ci[0])}, {_num(iqm_ci[1])}] | "
                     f"{_num(stats.optimality_gap(normalised))} [{_num(gap_ci[0])}, {_num(gap_ci[1])}] |")
    return "\n".join(lines) + "\n"


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


def claims_block(claims: list[ClaimOutcome]) -> str:
    marks = {"holds": "✅ holds", "fails": "❌ fails", "inconclusive": "❔ inconclusive", "not run": "➖ not run"}
    return "\n".join(f"- **{marks[c.verdict]}** — {c.text} `[{c.id}]`  \n  {c.detail}" for c in claims) + "\n"


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


def task_section(report: TaskReport, relative_to: Path, heading: str = "##") -> str:
    spec, chosen = report.spec, report.spec.profiles[report.profile]
    commits = sorted({(r["provenance"]["git_commit"][:10] + ("+dirty" if r["provenance"]["git_dirty"] else ""))
                      for r in report.records})
    seeds = sorted({r["seed"] for r in report.records})
    wall = sum(r["wall_time_s"] for r in report.records)
    parts = [f"{heading} {spec.title}", "", f"*Paper:* {spec.paper}  ", f"*Spec:* `{spec.path.as_posix()}` · "
             f"*profile:* `{report.profile}` · *runs:* {len(report.records)} · *seeds:* {len(seeds)} · "
             f"*total run time:* {wall / 60:.1f} min · *commit:* {', '.join(commits) or '—'}", ""]
    if spec.protocol:
        parts += [spec.protocol.strip(), ""]
    if not report.records:
        skipped = [f"`{p.name}`: {p.skip}" for p in spec.profiles.values() if p.skip]
        parts += [f"No records yet: run `suite run {spec.path.as_posix()} --profile {report.profile}`."
                  + (" Not runnable here — " + "; ".join(skipped) if skipped else ""), ""]
        refs = reference_tables(spec, ())
        if refs:
            parts += ["Paper tables:", "", refs]
        return "\n".join(parts)
    for error in report.errors:
        parts.append(f"> ⚠ corrupt record ignored: {error}")
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


def write_benchmarks(specs: list[TaskSpec], root: Path, out: Path) -> Path:
    """Regenerate BENCHMARKS.md: per task, the first profile of BENCHMARK_PROFILES that has records."""
    sections, index = [], []
    for spec in specs:
        profile = next((p for p in BENCHMARK_PROFILES if scan(root, p, spec.name)[0]), BENCHMARK_PROFILES[0])
        report = build_report(spec, profile, root)
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
