"""``--track``: log each finished run to Weights & Biases, grouped by task and variant.

Records on disk stay the source of truth; W&B is a mirror.  Without ``WANDB_API_KEY``
the run is logged in offline mode (a local ``wandb/`` folder, never a network call),
and a W&B failure never fails the run.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from suite.jobs import Job


def enable_tracking(jobs: list[Job]) -> list[Job]:
    """Mark jobs so the worker logs their record to W&B after the run."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise RuntimeError("--track needs the [wandb] extra: pip install -e '.[wandb]'") from None
    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "offline"
    return [dataclasses.replace(job, extra={**job.extra, "track": True}) for job in jobs]


def log_record(record: dict[str, Any], directory: str | None = None) -> str | None:
    """Log one record (config, curves, final metrics) as a W&B run; returns the run directory or None."""
    try:
        import wandb

        if not os.environ.get("WANDB_API_KEY"):
            os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "lightning-repro-suite"),
            group=f"{record['task']}/{record['variant']}",
            job_type=record["profile"], name=f"{record['variant']}-{record['env']}-s{record['seed']}",
            config={**record["config"], "env": record["env"], "seed": record["seed"], "baseline": record["baseline"]},
            dir=directory, reinit=True, settings=wandb.Settings(init_timeout=30, silent=True),
        )
        for name, points in record["curves"].items():
            for step, value in points:
                run.log({f"curve/{name}": value, f"curve/{name}_step": step})
        run.summary.update({**record["metrics"], "status": record["status"], "wall_time_s": record["wall_time_s"]})
        path = run.dir
        run.finish()
        return path
    except Exception as error:  # tracking must never cost a result
        print(f"warning: W&B logging failed for {record['task']}/{record['variant']}: {error}")
        return None
