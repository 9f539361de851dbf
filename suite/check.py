"""``suite check``: re-run a profile and compare with the committed records; ``--update`` rewrites them."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite import numerics, registry
from suite.jobs import Job, recorded_settings
from suite.record import RunRecord
from suite.spec import TaskSpec
from suite.store import CorruptRecord, read_record, record_path, write_record


@dataclass(frozen=True)
class Mismatch:
    task: str
    variant: str
    env: str
    seed: int
    metric: str
    committed: Any
    now: Any

    @property
    def delta(self) -> str:
        if isinstance(self.committed, (int, float)) and isinstance(self.now, (int, float)):
            return f"{self.now - self.committed:+.6g}"
        return ""


def compare_record(spec: TaskSpec, committed: RunRecord, fresh: RunRecord) -> list[Mismatch]:
    """Differences between a committed record and a fresh one of the same run.

    Metrics named in the spec's ``check.exact`` (default: every metric of the record) must be equal
    on the same device class; on another device class, the spec's tolerance for the fresh device
    applies (relative), and without one the values must still be equal.  The resolved hyperparameters are compared
    where both records have them (schema 2 on): an edited resolution hook shows as the cause of changed metrics.
    """
    where = (spec.name, fresh.variant, fresh.env, fresh.seed)
    rows = []
    if committed.config_hash != fresh.config_hash:
        rows.append(Mismatch(*where, "config_hash", committed.config_hash, fresh.config_hash))
    if committed.resolved is not None and fresh.resolved is not None:
        # a record made before a hyperparameter was renamed holds its former name: compare under today's
        before, after = (registry.current_config(r.baseline, r.resolved or {}) for r in (committed, fresh))
        for name in sorted(set(before) | set(after)):
            old, new = before.get(name), after.get(name)
            if old != new:
                rows.append(Mismatch(*where, f"resolved.{name}", old, new))
    if committed.status != fresh.status:
        rows.append(Mismatch(*where, "status", committed.status, fresh.status))
    old_settings, new_settings = recorded_settings(committed), recorded_settings(fresh)
    for name in sorted(old_settings):
        if name != "numerics" and old_settings[name] != new_settings[name]:  # numerics: one note per check
            rows.append(Mismatch(*where, f"settings.{name}", old_settings[name], new_settings[name]))
    same_device = committed.provenance.device_class == fresh.provenance.device_class
    tolerance = 0.0 if same_device else spec.check.tolerance.get(fresh.provenance.accelerator, 0.0)
    names = spec.check.exact or tuple(sorted(set(committed.metrics) | set(fresh.metrics)))
    for name in names:
        old, new = committed.metrics.get(name), fresh.metrics.get(name)
        if old == new:
            continue
        numeric = isinstance(old, (int, float)) and isinstance(new, (int, float))
        if numeric and tolerance and abs(new - old) <= tolerance * max(abs(old), 1e-12):
            continue
        rows.append(Mismatch(*where, name, old, new))
    return rows


def numerics_note(committed: RunRecord, fresh: RunRecord) -> str | None:
    """Why a committed and a fresh record cannot be expected to agree bit for bit, or None when they can."""
    old = numerics.identity(committed.provenance.numerics)
    new = numerics.identity(fresh.provenance.numerics)
    if old is None:
        return (f"committed records predate numerics pinning (made unpinned on {committed.provenance.cpu}); "
                f"this run: {new}")
    if old != new:
        return (f"committed records were made under numerics [{old}], this run under [{new}]: floats are only "
                f"promised bit-identical under the same numerics (set {numerics.ENV_VAR} to the committed level, "
                "or regenerate with --update)")
    return None


def check(specs: list[TaskSpec], jobs_by_spec: dict[str, list[Job]], committed_root: Path, workers: int,
          update: bool = False, reporter: Any = None) -> tuple[list[Mismatch], list[str], list[str]]:
    """Re-run every job into a scratch store and compare.

    Returns (mismatches, problems, notes): problems fail the check (committed files missing or corrupt, failed
    runs, and why records made under other numerics disagree); notes do not (numerics differed, floats did not).
    """
    from suite.sweep import run_sweep

    scratch = Path(tempfile.mkdtemp(prefix="suite-check-"))
    mismatches: list[Mismatch] = []
    problems: list[str] = []
    notes: set[str] = set()
    problems_numerics: set[str] = set()
    try:
        all_jobs = [job for spec in specs for job in jobs_by_spec[spec.name]]
        run_sweep(all_jobs, scratch, workers, force=True, reporter=reporter, in_process=workers == 0)
        for spec in specs:
            for job in jobs_by_spec[spec.name]:
                fresh = read_record(record_path(scratch, job.key))
                committed_path = record_path(committed_root, job.key)
                if update:
                    old = _try_read(committed_path)
                    changed = [] if old is None else compare_record(spec, old, fresh)
                    if old is None or changed:
                        fields = ", ".join(sorted({m.metric for m in changed}))
                        problems.append(f"updated {committed_path} " + (f"(changed: {fields})" if changed else "(new)"))
                    write_record(committed_root, fresh)
                    continue
                if not committed_path.exists():
                    problems.append(f"{committed_path}: no committed record (run `suite check --update`)")
                    continue
                try:
                    committed = read_record(committed_path)
                except CorruptRecord as error:
                    problems.append(str(error))
                    continue
                rows = compare_record(spec, committed, fresh)
                mismatches.extend(rows)
                note = numerics_note(committed, fresh)
                if note and rows:
                    problems_numerics.add(note)  # explains why this record disagrees
                elif note and not note.startswith("committed records predate"):
                    notes.add(f"note: every metric matched although the numerics differ ({note.split(': floats')[0]})")
                if fresh.status == "failed":
                    problems.append(f"{job.key.label}: fresh run failed: {(fresh.reason or '').strip()[-300:]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return mismatches, sorted(problems_numerics) + problems, sorted(notes)


def _try_read(path: Path) -> RunRecord | None:
    try:
        return read_record(path)
    except (CorruptRecord, FileNotFoundError):
        return None


def mismatch_table(rows: list[Mismatch]) -> str:
    header = "| task | variant | env | seed | metric | committed | now | delta |\n|---|---|---|---|---|---|---|---|"
    body = [f"| {m.task} | {m.variant} | {m.env} | {m.seed} | {m.metric} | {m.committed} | {m.now} | {m.delta} |"
            for m in rows]
    return "\n".join([header, *body])
