"""Claim checker ``every_seed``: a metric of one variant is below (or above) a fixed bound on every seed.

For statements that are about each run rather than about a mean, e.g. "Q-learning converges to Q* on every seed
(max abs error < 0.01)" or "after training the TD error at the reward is ~0 (|delta| < 0.05)".  The verdict is
``holds`` when every ok run satisfies the bound, ``fails`` when any ok run violates it, and ``inconclusive`` when a
checked env has no ok run.  Spec arguments: ``variant``, ``metric``, ``op`` ("<" or ">"), ``value``.
"""

from __future__ import annotations

import operator
from typing import Any

from suite.record import RunRecord
from suite.registry import register_claim_checker

_OPS = {"<": operator.lt, ">": operator.gt}


@register_claim_checker("every_seed")
def every_seed(claim_args: dict[str, Any], records: list[RunRecord], metric: str,
               higher_is_better: bool) -> dict[str, Any]:
    """``claim_args``: variant, metric, op, value (and envs, filled in by the harness)."""
    variant, name, op, bound = claim_args["variant"], claim_args["metric"], claim_args["op"], claim_args["value"]
    if op not in _OPS:
        raise ValueError(f"every_seed: op must be '<' or '>', got {op!r}")
    verdicts, details, worst_values = [], [], []
    for env in claim_args.get("envs") or sorted({r.env for r in records}):
        values = sorted((r.seed, float(r.metrics[name])) for r in records
                        if r.status == "ok" and r.variant == variant and r.env == env
                        and name in r.metrics)
        if not values:
            verdicts.append("inconclusive")
            details.append(f"{env}: no ok run of {variant} with {name}")
            continue
        bad = [(seed, v) for seed, v in values if not _OPS[op](v, bound)]
        worst = (max if op == "<" else min)(v for _, v in values)
        worst_values.append(worst)
        verdicts.append("fails" if bad else "holds")
        details.append(f"{env}: {variant}.{name} {op} {bound:g} on {len(values) - len(bad)}/{len(values)} seeds "
                       f"(worst {worst:.4g})" + (f"; violated by seeds {[s for s, _ in bad]}" if bad else ""))
    verdict = ("holds" if verdicts and all(v == "holds" for v in verdicts)
               else "fails" if "fails" in verdicts else "inconclusive")
    statistic = (max if op == "<" else min)(worst_values) if worst_values else float("nan")
    return dict(verdict=verdict, statistic=statistic, detail="; ".join(details))
