"""``--track``: stream each run to Weights & Biases while it runs and log its record when it ends, grouped by
task and variant (the live part is :mod:`suite.livelog`).

Records on disk stay the source of truth; W&B is a mirror.  Without ``WANDB_API_KEY``
the run is logged in offline mode (a local ``wandb/`` folder, never a network call),
and a W&B failure never fails the run.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from suite.jobs import Job
from suite.livelog import start_wandb
from suite.record import RunRecord


def enable_tracking(jobs: list[Job]) -> list[Job]:
    """Mark jobs so the worker logs their record to W&B after the run."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise RuntimeError("--track needs the [wandb] extra: pip install -e '.[wandb]'") from None
    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "offline"
    return [dataclasses.replace(job, extra={**job.extra, "track": True}) for job in jobs]


def log_record(record: RunRecord, directory: str | None = None, run: Any = None) -> str | None:
    """Log one record (config, curves, final metrics) as a W&B run; returns the run directory or None.

    ``run``: the W&B run the live log streamed to while the run ran (:mod:`suite.livelog`); completed and finished
    here.  Without one (a baseline that logged nothing live) a new run is opened.
    """
    try:
        if run is None:
            run = start_wandb(dict(
                project=os.environ.get("WANDB_PROJECT", "lightning-repro-suite"),
                group=f"{record.task}/{record.variant}",
                job_type=record.profile, name=f"{record.variant}-{record.env}-s{record.seed}",
                config={**(record.resolved or record.config), "task": record.task, "variant": record.variant,
                        "env": record.env, "seed": record.seed, "baseline": record.baseline,
                        "config_hash": record.config_hash},
                dir=directory))
        for name, points in record.curves.items():
            for step, value in points:
                run.log({f"curve/{name}": value, f"curve/{name}_step": step})
        run.summary.update({**record.metrics, "status": record.status, "wall_time_s": record.wall_time_s})
        path = run.dir
        run.finish()
        return path
    except Exception as error:  # tracking must never cost a result
        print(f"warning: W&B logging failed for {record.task}/{record.variant}: {error}")
        return None
