"""Claim checkers of the GAN study (Lucic et al. 2018): spreads over a hyperparameter search vs gaps between
models' best runs, judged by bootstrap over the runs on disk.  Registered for ``kind:`` claims in task specs."""

from __future__ import annotations

from typing import Any

import numpy as np

from suite import stats
from suite.record import RunRecord
from suite.registry import register_claim_checker


def _values_by_variant(records: list[RunRecord], metric: str) -> dict[str, dict[str, np.ndarray]]:
    """env -> variant -> metric values of the ok runs (every hyperparameter setting and seed)."""
    table: dict[str, dict[str, list[float]]] = {}
    for record in records:
        value = record.metrics.get(metric)
        if record.status == "ok" and value is not None and np.isfinite(value):
            table.setdefault(record.env, {}).setdefault(record.variant, []).append(float(value))
    return {env: {v: np.asarray(x) for v, x in by.items()} for env, by in table.items()}


def _iqr(values: np.ndarray) -> float:
    low, high = np.percentile(values, [25, 75])
    return float(high - low)


def _bootstrap_verdict(groups: dict[str, np.ndarray], statistic: Any, alpha: float, reps: int = 2000,
                       min_size: int = 3) -> tuple[str, float, float]:
    """Verdict of ``statistic(groups) > 0`` by resampling each group's runs: holds if it is > 0 in at least
    1 - alpha of the resamples, fails if in at most alpha, inconclusive otherwise (or with < min_size runs)."""
    observed = float(statistic(groups))
    if any(len(v) < min_size for v in groups.values()):
        return "inconclusive", observed, float("nan")
    names = list(groups)
    # resample-major draws: the order of the rng.choice loop this replaced, so committed verdicts stay the same
    estimates = stats.bootstrap(lambda *resampled: statistic(dict(zip(names, resampled))), *groups.values(),
                                n_resamples=reps, random_state=0, draw_order="resample")
    share = int(np.sum(estimates > 0)) / reps
    return ("holds" if share >= 1 - alpha else "fails" if share <= alpha else "inconclusive"), observed, share


def _per_env(records: list[RunRecord], metric: str, names: list[str], statistic: Any, alpha: float,
             what: str, envs: list[str] | None = None) -> dict[str, Any]:
    verdicts, details, stats = [], [], []
    table = _values_by_variant(records, metric)
    for env in envs if envs is not None else sorted(table):
        by_variant = table.get(env, {})
        missing = [n for n in names if n not in by_variant]
        if missing:
            verdicts.append("inconclusive")
            details.append(f"{env}: no ok runs of {', '.join(missing)}")
            continue
        verdict, observed, share = _bootstrap_verdict({n: by_variant[n] for n in names}, statistic, alpha)
        verdicts.append(verdict)
        stats.append(observed)
        details.append(f"{env}: {what} = {observed:.4g} (>0 in {share:.0%} of bootstrap resamples) -> {verdict}")
    overall = ("holds" if verdicts and all(v == "holds" for v in verdicts)
               else "fails" if "fails" in verdicts else "inconclusive")
    return dict(verdict=overall, statistic=float(np.min(stats)) if stats else float("nan"), detail="; ".join(details))


def _best(values: np.ndarray, higher_is_better: bool) -> float:
    return float(values.max() if higher_is_better else values.min())


@register_claim_checker("spread_exceeds_best_gap")
def spread_exceeds_best_gap(claim_args: dict, records: list[RunRecord], metric: str, higher_is_better: bool) -> dict:
    """Lucic et al.: the spread over hyperparameters within a model (median over ``variants`` of the IQR of the
    metric over all settings x seeds) exceeds the spread between the models' best values (max - min of bests).
    statistic = median IQR - range of bests."""
    names = list(claim_args["variants"])

    def statistic(groups: dict[str, np.ndarray]) -> float:
        bests = [_best(v, higher_is_better) for v in groups.values()]
        return float(np.median([_iqr(v) for v in groups.values()]) - (max(bests) - min(bests)))

    return _per_env(records, metric, names, statistic, claim_args.get("alpha", 0.05), "median IQR - range of bests",
                    claim_args.get("envs"))


@register_claim_checker("best_worse_than")
def best_worse_than(claim_args: dict, records: list[RunRecord], metric: str, higher_is_better: bool) -> dict:
    """The best run of ``lhs`` (over settings x seeds) is worse than the best run among ``rhs`` variants.
    statistic = how much worse (in the metric's units, positive = worse)."""
    lhs, rhs = claim_args["lhs"], list(claim_args["rhs"])
    sign = -1.0 if higher_is_better else 1.0

    def statistic(groups: dict[str, np.ndarray]) -> float:
        best_rhs = min(sign * _best(groups[n], higher_is_better) for n in rhs)
        return sign * _best(groups[lhs], higher_is_better) - best_rhs

    return _per_env(records, metric, [lhs, *rhs], statistic, claim_args.get("alpha", 0.05), "best gap",
                    claim_args.get("envs"))


@register_claim_checker("spread_narrower_than")
def spread_narrower_than(claim_args: dict, records: list[RunRecord], metric: str, higher_is_better: bool) -> dict:
    """The IQR of ``lhs``'s metric over settings x seeds is narrower than the median IQR of the ``rhs`` variants.
    statistic = median rhs IQR - lhs IQR."""
    lhs, rhs = claim_args["lhs"], list(claim_args["rhs"])

    def statistic(groups: dict[str, np.ndarray]) -> float:
        return float(np.median([_iqr(groups[n]) for n in rhs]) - _iqr(groups[lhs]))

    return _per_env(records, metric, [lhs, *rhs], statistic, claim_args.get("alpha", 0.05), "IQR gap",
                    claim_args.get("envs"))
