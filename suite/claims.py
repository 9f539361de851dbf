"""Check a spec's claims against the run records of one profile."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suite import registry
from suite.record import RunRecord
from suite.spec import Claim, TaskSpec
from suite.stats import claim_test


@dataclass
class ClaimOutcome:
    id: str
    text: str
    verdict: str                       # holds | fails | inconclusive | not run
    detail: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    op: str = "<"                      # a compare claim's direction, for its per-env table


def per_seed_values(records: list[RunRecord]) -> dict[tuple[str, str, str], np.ndarray]:
    """``(variant, env, metric) -> scores ordered by seed`` over the ``ok`` records."""
    by_cell: dict[tuple[str, str, str], list[tuple[int, float]]] = defaultdict(list)
    for record in records:
        if not record.ok:
            continue
        for metric, value in record.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                by_cell[(record.variant, record.env, metric)].append((record.seed, float(value)))
    return {cell: np.array([v for _, v in sorted(pairs)]) for cell, pairs in by_cell.items()}


def combine(verdicts: list[str]) -> str:
    """A claim over several comparisons holds only if all hold, fails if any fails."""
    if verdicts and all(v == "holds" for v in verdicts):
        return "holds"
    return "fails" if "fails" in verdicts else "inconclusive"


def evaluate_claim(spec: TaskSpec, profile: str, claim: Claim, records: list[RunRecord]) -> ClaimOutcome:
    envs = [e for e in (claim.envs or spec.profiles[profile].envs) if e in spec.profiles[profile].envs]
    if claim.kind != "compare":
        result = registry.CLAIM_CHECKERS[claim.kind](dict(claim.args, envs=envs), records, spec.metric.name,
                                                     spec.metric.higher_is_better)
        return ClaimOutcome(claim.id, claim.text, result["verdict"], result.get("detail", ""), [result])
    if not envs:
        return ClaimOutcome(claim.id, claim.text, "not run", "none of the claim's envs is in this profile")
    assert claim.lhs is not None and claim.rhs is not None
    missing = [v for v in (*claim.lhs.variants, *claim.rhs.variants) if v not in spec.profiles[profile].variants]
    if missing:
        return ClaimOutcome(claim.id, claim.text, "not run", f"variants not in the `{profile}` profile: "
                            + ", ".join(dict.fromkeys(missing)))
    values = per_seed_values(records)
    recorded = {metric for _, _, metric in values}
    absent = [m for m in dict.fromkeys((claim.lhs.metric, claim.rhs.metric)) if m not in recorded]
    if values and absent:  # a declared column the baselines never produce: say so instead of a bare "inconclusive"
        return ClaimOutcome(claim.id, claim.text, "inconclusive", f"⚠ no `ok` record has metric "
                            f"{', '.join(absent)}; recorded metrics: {', '.join(sorted(recorded))}")
    checks = []
    for env in envs:
        for lhs_variant in claim.lhs.variants:
            for rhs_variant in claim.rhs.variants:
                if lhs_variant == rhs_variant and claim.lhs.metric == claim.rhs.metric:
                    continue
                lhs = values.get((lhs_variant, env, claim.lhs.metric), np.array([]))
                rhs = values.get((rhs_variant, env, claim.rhs.metric), np.array([]))
                result = claim_test(lhs, rhs, claim.op, claim.test, claim.alpha, claim.margin)
                checks.append({
                    "env": env, "lhs": f"{lhs_variant}.{claim.lhs.metric}", "rhs": f"{rhs_variant}.{claim.rhs.metric}",
                    "lhs_mean": float(lhs.mean()) if lhs.size else None,
                    "rhs_mean": float(rhs.mean()) if rhs.size else None,
                    "verdict": result.verdict, "statistic": result.statistic, "p_value": result.p_value,
                    "summary": result.describe(),
                })
    verdict = combine([c["verdict"] for c in checks])
    scaled = "" if claim.margin is None else f"{claim.margin:g} x "
    detail = "; ".join(
        f"{c['env']}: {c['lhs']} {c['lhs_mean'] if c['lhs_mean'] is None else format(c['lhs_mean'], '.4g')} "
        f"{claim.op} {scaled}{c['rhs']} {c['rhs_mean'] if c['rhs_mean'] is None else format(c['rhs_mean'], '.4g')}"
        f" -> {c['verdict']} ({c['summary']})" for c in checks)
    return ClaimOutcome(claim.id, claim.text, verdict, detail, checks, claim.op)


def evaluate_claims(spec: TaskSpec, profile: str, records: list[RunRecord]) -> list[ClaimOutcome]:
    if not records:
        return [ClaimOutcome(c.id, c.text, "not run", f"no records in the `{profile}` profile") for c in spec.claims]
    return [evaluate_claim(spec, profile, claim, records) for claim in spec.claims]
