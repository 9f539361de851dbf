"""``--executor ray``: the same runs as Ray tasks, with the same records, resume and failure isolation.

The driver writes each record as its task finishes (so results need no shared file
system on a cluster), skips runs that already have a valid record, and records a
crashed or timed-out task as ``failed``: Ray retries are off so a failure is seen,
not hidden.  Workers get the same thread count and hash seed as local workers, so a
run gives the same metrics under either executor.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from suite import numerics
from suite.jobs import Job
from suite.runner import failed_record, run_one
from suite.store import GIT_ENV, read_record, write_record
from suite.sweep import THREAD_ENV, SweepSummary, begin_sweep


def _execute(job: Job) -> dict[str, Any]:
    from suite import registry

    registry.load_all()
    return run_one(job)


def run_sweep_ray(jobs: list[Job], root: Path, force: bool = False, address: str | None = None,
                  num_cpus: int | None = None, reporter: Any = None) -> SweepSummary:
    """Run the missing jobs on a Ray cluster (a local one unless ``address`` is given)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs the [ray] extra: pip install -e '.[ray]'") from None
    todo, summary, reporter = begin_sweep(jobs, root, force, reporter)
    if not todo:
        reporter.end()
        return summary
    threads = todo[0].threads
    env_vars = {name: str(threads) for name in THREAD_ENV}
    env_vars["PYTHONHASHSEED"] = os.environ.get("PYTHONHASHSEED", "0")
    env_vars.update(numerics.pinned_env(todo[0].numerics))  # Ray workers start fresh: pin before they import torch
    for name in ("SUITE_PLUGINS", "PYTHONPATH", "SUITE_DATA", "WANDB_MODE", *GIT_ENV):
        if os.environ.get(name):
            env_vars[name] = os.environ[name]
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": env_vars}, configure_logging=False)
    # per task as well: a cluster started elsewhere (address given) did not get the init's runtime_env
    remote = ray.remote(num_cpus=threads, max_retries=0, runtime_env={"env_vars": env_vars})(_execute)
    try:
        pending_refs = {}
        for job in todo:
            pending_refs[remote.remote(job)] = (job, time.monotonic())
            reporter.started(job)
        while pending_refs:
            ready, _ = ray.wait(list(pending_refs), num_returns=1, timeout=1.0)
            now = time.monotonic()
            for ref in ready:
                job, started = pending_refs.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as error:  # worker crashed or task cancelled
                    record = failed_record(job, f"ray task failed: {type(error).__name__}: {error}"[-2000:],
                                           now - started)
                summary.done.append(read_record(write_record(root, record)))
                reporter.finished(job, summary.done[-1])
            for ref, (job, started) in list(pending_refs.items()):
                # Ray queues tasks, so the clock is generous: the job's timeout plus time spent waiting for a CPU.
                if now - started > job.timeout * (1 + len(todo)):
                    ray.cancel(ref, force=True)
                    pending_refs.pop(ref)
                    record = failed_record(job, f"timeout: exceeded {job.timeout:.0f} s (ray)", now - started)
                    summary.done.append(read_record(write_record(root, record)))
                    reporter.finished(job, summary.done[-1])
    finally:
        reporter.end()
        if started_here:
            ray.shutdown()
    return summary
