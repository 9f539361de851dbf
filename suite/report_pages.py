"""The pages made from a task's report: ``table.md`` / ``table.csv`` per task, and BENCHMARKS.md over all tasks."""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suite import stats
from suite.claims import ClaimOutcome
from suite.record import RunRecord
from suite.report import (
    BENCHMARK_PROFILES,
    TaskReport,
    build_report,
    fmt,
    pooled_table,
    reference_tables,
    results_table,
)
from suite.spec import TaskSpec
from suite.store import scan

CLAIM_MARKS = {"holds": "✅ holds", "fails": "❌ fails", "inconclusive": "❔ inconclusive", "not run": "➖ not run"}


def _checks_table(checks: list[dict[str, Any]], op: str) -> str:
    """One row per comparison (env x variant pair) of a compare claim: the means, the verdict and the test."""
    lines = [f"  | env | left | mean | {op} | right | mean | verdict | test |", "  |---|---|---|---|---|---|---|---|"]
    for check in checks:
        lines.append(f"  | {check['env']} | {check['lhs']} | {fmt(check['lhs_mean'])} | {op} | {check['rhs']} | "
                     f"{fmt(check['rhs_mean'])} | {CLAIM_MARKS[check['verdict']]} | {check['summary']} |")
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
