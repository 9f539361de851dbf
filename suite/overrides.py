"""``suite run -o key=value``: hyperparameter overrides on top of a profile, and ``--dry-run`` plans.

An override is the last layer over a variant's resolved hyperparameters (after the spec's ``params``, the
variant and the profile), checked like a spec value: the key must be a hyperparameter of some variant's
baseline and the value must have the default's type.  It changes the runs' config hash (so a resumed sweep
re-runs the cells it touches) and is stored in each record as ``overrides``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from suite import registry
from suite.jobs import Job, cell_hash
from suite.record import RunRecord
from suite.report import budget
from suite.spec import TaskSpec
from suite.spec_reader import Reader, SpecError
from suite.store import scan


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["lr=1e-4", "double=true"]`` -> ``{"lr": 0.0001, "double": True}`` (values read as YAML scalars)."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"-o {item!r}: expected key=value, e.g. -o lr=1e-4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" as a string; a researcher means the number
                value = float(value)
            except ValueError:
                pass
        overrides[key.strip()] = value
    return overrides


def apply_overrides(spec: TaskSpec, jobs: list[Job], overrides: dict[str, Any]) -> list[Job]:
    """``jobs`` with ``overrides`` applied where their baseline has the hyperparameter; new config hashes."""
    if not overrides or not jobs:
        return jobs
    reader = Reader(Path(f"-o ({spec.name})"))
    for key, value in overrides.items():
        owners = sorted({job.baseline for job in jobs if key in registry.get_baseline(job.baseline).defaults})
        if not owners:
            valid = sorted({k for job in jobs for k in registry.get_baseline(job.baseline).defaults})
            renamed = (registry.former_name_error(b, key) for b in sorted({j.baseline for j in jobs}))
            raise reader.fail(key, next(filter(None, renamed), None) or
                              f"not a hyperparameter of {', '.join(sorted({j.baseline for j in jobs}))}; "
                              f"valid: {', '.join(valid)}")
        for baseline in owners:
            reader.like_default(value, registry.get_baseline(baseline).defaults[key], key)
    changed = []
    for job in jobs:
        own = {k: v for k, v in overrides.items() if k in registry.get_baseline(job.baseline).defaults}
        hparams = {**job.hparams, **own}
        digest = cell_hash(job.baseline, job.key.env, hparams)
        changed.append(dataclasses.replace(job, hparams=hparams, config_hash=digest,
                                           extra={**job.extra, "overrides": own}))
    return changed


def describe_overrides(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def _seconds(value: float) -> str:
    return f"{value / 3600:.1f} h" if value >= 3600 else f"{value / 60:.1f} min" if value >= 60 else f"{value:.0f} s"


def _estimate(job: Job, records: list[RunRecord]) -> float | None:
    """Mean wall time of the cell's records (else the task's), each scaled by the job's budget over its own."""
    cell = [r for r in records if r.cell == (job.key.variant, job.key.env)] or records
    times = []
    for record in cell:
        scale = 1.0
        for key, value in budget(job.hparams).items():
            ran = registry.current_config(record.baseline, record.config).get(key)
            if isinstance(ran, (int, float)) and ran > 0:
                scale *= value / ran
        times.append(float(record.wall_time_s) * scale)
    return sum(times) / len(times) if times else None


def dry_run_plan(spec: TaskSpec, profile: str, jobs: list[Job], todo: list[Job], root: Path, workers: int) -> str:
    """What ``suite run`` would do: cells, seeds, budget, runs to go and a time estimate from existing records.

    A run's time is the mean wall time of its cell's records on disk (else of the task's records) under this
    profile, or the first other profile with records, scaled by the ratio of budgets (``report.BUDGET_KEYS``)
    where an override or another profile changed them.
    """
    chosen = spec.profiles[profile]
    if chosen.skip:
        return f"{spec.name} [{profile}]: skipped ({chosen.skip})"
    records, _ = scan(root, profile, spec.name)
    source = profile
    if not records:  # e.g. the first `paper` run: time it by another profile's records, scaled by budget
        for other in (p for p in reversed(spec.profiles) if p != profile):  # the biggest budget first
            records, _ = scan(root, other, spec.name)
            if records:
                source = other
                break
    estimates = [_estimate(job, records) for job in todo]
    known = sum(e for e in estimates if e is not None)
    unknown = sum(e is None for e in estimates)
    variants = sorted({j.key.variant for j in jobs}, key=list(spec.variants).index)
    envs = list(dict.fromkeys(j.key.env for j in jobs))
    seeds = len({j.key.seed for j in jobs})
    budgets = {k: v for job in jobs for k, v in budget(job.hparams).items()}
    lines = [f"{spec.name} [{profile}]: {len(variants)} variants x {len(envs)} envs x {seeds} seeds = "
             f"{len(jobs)} runs; {len(todo)} to run, {len(jobs) - len(todo)} already recorded",
             f"  variants: {', '.join(variants)}", f"  envs: {', '.join(envs)}"]
    if budgets:
        lines.append("  budget per run: " + ", ".join(f"{k}={v}" for k, v in budgets.items()))
    overrides = next((j.extra.get("overrides") for j in jobs if j.extra.get("overrides")), None)
    if overrides:
        lines.append(f"  overrides: {describe_overrides(overrides)}")
    if todo:
        if known:
            estimate = (f"~{_seconds(known)} of run time, ~{_seconds(known / max(workers, 1))} wall-clock with "
                        f"{max(workers, 1)} workers (wall time of the records under {root}/{source}"
                        + (", scaled by budget)" if source != profile else ")"))
            if unknown:
                estimate += f"; {unknown} run(s) have no record to time them by"
        else:
            estimate = f"unknown: no records of {spec.name} under {root} to time the runs by"
        lines.append(f"  estimate: {estimate}")
    return "\n".join(lines)
