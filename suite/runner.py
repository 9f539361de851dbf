"""One run: seed everything, call the baseline's ``fit``, turn the outcome into a record.

:func:`run_one` runs in the calling process; the sweep calls it inside worker
processes so a crash, a hang or a NaN only costs that run.  Tests may call it
directly.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from suite import numerics, registry
from suite.api import Diverged, ProgressFn, world_size_of
from suite.checkpoint import Checkpointer
from suite.distributed import launch
from suite.jobs import Job, plan_jobs, recorded_settings, run_context
from suite.process import quiet_lightning, seed_everything
from suite.record import RunRecord
from suite.store import provenance
from suite.tracking import log_record

# Job and its helpers lived here before they got a module of their own; code that imports them from here still works.
__all__ = ["Job", "base_record", "failed_record", "plan_jobs", "quiet_lightning", "recorded_settings", "run_context",
           "release_checkpoint", "run_one", "seed_everything"]

TRACEBACK_TAIL = 2000


def base_record(job: Job, resolved: dict[str, Any] | None = None) -> RunRecord:
    """The record of ``job`` before it ran: status ``failed`` until the run says otherwise."""
    return RunRecord(
        task=job.key.task, variant=job.key.variant, env=job.key.env, seed=job.key.seed, profile=job.key.profile,
        baseline=job.baseline, config=job.hparams, config_hash=job.config_hash, resolved=resolved,
        provenance=provenance(job.threads, job.accelerator, world_size_of(job.devices), job.precision, job.numerics),
        overrides=job.extra.get("overrides") or None,  # suite run -o
    )


def failed_record(job: Job, reason: str, wall_time: float = 0.0) -> RunRecord:
    """The record of a run that never returned (timeout, killed worker)."""
    try:
        resolved = job.resolved_hparams()
    except Exception:  # noqa: BLE001 (the run's own record already said why; this one only says it never returned)
        resolved = None
    return base_record(job, resolved).replace(status="failed", reason=reason, wall_time_s=round(wall_time, 3))


def run_one(job: Job, progress: ProgressFn | None = None, run_dir: Path | None = None) -> RunRecord:
    """Run ``job`` in this process and return its (unsealed) record; never raises for a baseline error."""
    try:
        resolved = job.resolved_hparams()  # before the clock and the seeding: a pure function of the job
    except Exception:
        return base_record(job).replace(reason=traceback.format_exc()[-TRACEBACK_TAIL:])
    record = base_record(job, resolved)
    entry = registry.get_baseline(job.baseline)
    scratch = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="suite-run-"))
    ctx = run_context(job, scratch, progress, hparams=resolved)
    seed_everything(job.key.seed, job.threads)
    quiet_lightning()
    start = time.perf_counter()
    try:
        numerics.check_in_effect(job.numerics)  # never record unpinned floats as pinned ones
        world = ctx.world_size
        if world > 1:
            if not entry.distributed:
                raise ValueError(f"baseline {job.baseline!r} is single-device; run it with --devices 1 "
                                 f"(got --devices {job.devices})")
            output = launch(job, ctx, world)
        else:
            output = entry.fit(ctx)
        bad = [name for name, value in output.metrics.items() if not _finite(value)]
        record.metrics, record.extras = output.metrics, output.extras
        record.curves = {k: [list(p) for p in v] for k, v in output.curves.items()}
        record.steps, record.step_unit = int(output.steps), output.step_unit
        if bad:
            record.status, record.reason = "diverged", f"metric {bad[0]} is {output.metrics[bad[0]]}"
        else:
            record.status = "ok"
    except Diverged as error:
        record.status, record.reason, record.diverged_step = "diverged", error.reason, error.step
    except Exception:
        record.status, record.reason = "failed", traceback.format_exc()[-TRACEBACK_TAIL:]
    finally:
        if run_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    wall = time.perf_counter() - start
    try:  # every live log ends with the final metrics at the last step (outside the clock); never costs a record
        if record.ok:
            ctx.log(record.steps, **{k: float(v) for k, v in record.metrics.items() if _finite(v)})
        ctx.logger.close()
    except Exception as error:  # noqa: BLE001
        print(f"warning: live log of {job.key.label} failed: {error}", file=sys.stderr)
    if ctx.checkpoint.resumed_step is not None:  # the wall time and throughput of the whole run, all attempts
        record.provenance.resumed = {"from_step": ctx.checkpoint.resumed_step,
                                     "prior_wall_time_s": round(ctx.checkpoint.prior_wall_time_s, 3)}
        wall += ctx.checkpoint.prior_wall_time_s
    record.wall_time_s = round(wall, 3)
    if record.steps and wall > 0:
        record.throughput = round(record.steps / wall, 3)
    if job.extra.get("track"):
        log_record(record, run=ctx.logger.wandb_run)
    return record


def release_checkpoint(job: Job, record: RunRecord) -> None:
    """Once ``record`` is on disk: delete the run's checkpoint, unless ``--keep-checkpoints`` or the run failed
    (a crash or timeout: a re-run of the sweep resumes from it)."""
    live = job.extra.get("live") or {}
    if job.live_dir is not None and record.status != "failed" and not live.get("keep_checkpoints"):
        Checkpointer(job.live_dir).clear()


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
