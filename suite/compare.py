"""``suite compare A B``: did a change make a cell better or worse, with a p-value."""

from __future__ import annotations

from pathlib import Path

from suite import stats
from suite.claims import per_seed_values
from suite.spec import TaskSpec
from suite.store import scan


def _fmt(values) -> str:
    return f"{stats.mean(values):.4g} (n={len(values)})" if len(values) else "—"


def compare_roots(specs: list[TaskSpec], profile: str, a_root: Path, b_root: Path, alpha: float = 0.05,
                  against_paper: bool = False) -> tuple[str, bool]:
    """Markdown table per task of the primary metric, A (baseline) vs B (candidate), and whether any cell got worse.

    ``P(B better)`` is the probability of improvement (rliable); the verdict uses one-sided
    Mann-Whitney U tests at ``alpha`` in each direction, so "worse" means significantly worse.
    """
    lines, any_worse = [], False
    for spec in specs:
        metric, higher = spec.metric.name, spec.metric.higher_is_better
        a_values = per_seed_values(scan(a_root, profile, spec.name)[0])
        b_values = per_seed_values(scan(b_root, profile, spec.name)[0])
        better_op = ">" if higher else "<"
        worse_op = "<" if higher else ">"
        lines += [f"## {spec.name} — {metric} ({'higher' if higher else 'lower'} is better), profile {profile}", "",
                  "| variant | env | A | B | P(B better) | p(B worse) | p(B better) | verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for variant in spec.profiles[profile].variants:
            for env in filter(spec.variants[variant].runs_on, spec.profiles[profile].envs):
                a = a_values.get((variant, env, metric), [])
                b = b_values.get((variant, env, metric), [])
                if len(a) < 2 or len(b) < 2:
                    lines.append(f"| {variant} | {env} | {_fmt(a)} | {_fmt(b)} | — | — | — | too few seeds |")
                    continue
                improvement = stats.probability_of_improvement(b, a) if higher else \
                    stats.probability_of_improvement(a, b)
                _, p_worse = stats.one_sided_test(b, a, worse_op, "mannwhitney")
                _, p_better = stats.one_sided_test(b, a, better_op, "mannwhitney")
                verdict = "worse" if p_worse < alpha else "better" if p_better < alpha else "no significant change"
                any_worse |= verdict == "worse"
                lines.append(f"| {variant} | {env} | {_fmt(a)} | {_fmt(b)} | {improvement:.2f} | {p_worse:.3g} | "
                             f"{p_better:.3g} | {verdict} |")
        lines.append("")
        if against_paper:
            lines += _against_paper(spec, b_values)
    return "\n".join(lines), any_worse


def _against_paper(spec: TaskSpec, values) -> list[str]:
    lines = []
    for ref in spec.references:
        metric = ref.metric or spec.metric.name
        rows = []
        for env, row in ref.values.items():
            for variant, paper in row.items():
                ours = values.get((variant, env, metric), [])
                if not len(ours):
                    continue
                relative = (stats.mean(ours) - paper) / abs(paper) if paper else float("nan")
                within = "—" if ref.tolerance is None else ("within" if abs(relative) <= ref.tolerance else "outside")
                rows.append(f"| {variant} | {env} | {_fmt(ours)} | {paper:.4g} | {relative:+.1%} | {within} |")
        if rows:
            tolerance = f", tolerance ±{ref.tolerance:.0%}" if ref.tolerance is not None else ""
            lines += [f"Against *{ref.name}* ({metric}{tolerance}):", "",
                      "| variant | env | B | paper | relative | tolerance |", "|---|---|---|---|---|---|", *rows, ""]
    return lines
