"""``--executor ray``: the same runs as Ray tasks, with the same records, resume and failure isolation.

The driver writes each record as its task finishes (so results need no shared file
system on a cluster), skips runs that already have a valid record, and records a
crashed or timed-out task as ``failed``: Ray retries are off so a failure is seen,
not hidden.  Workers get the same thread count and hash seed as local workers, so a
run gives the same metrics under either executor.

A task asks Ray for its run's threads as CPUs and, for ``--accelerator gpu``, one GPU per rank, so Ray places
it on a node with a free GPU (and sets its ``CUDA_VISIBLE_DEVICES``).  The timeout is per run, as in the local
pool: its clock starts when the task tells a small actor that the run has started (after the worker's imports),
not when the driver submits it, so time spent queued behind other runs for a CPU or GPU never counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from suite import numerics, registry
from suite.api import world_size_of
from suite.jobs import Job
from suite.record import RunRecord
from suite.runner import failed_record, release_checkpoint, run_one
from suite.store import GIT_ENV, RunKey, read_record, write_record
from suite.sweep import THREAD_ENV, SweepSummary, begin_sweep

GPU_ACCELERATORS = ("gpu", "cuda")  # Lightning's names for NVIDIA GPUs; "auto" asks Ray for none (it cannot know)


def task_resources(job: Job) -> dict[str, float]:
    """What one run asks Ray for: its torch threads as CPUs, and one GPU per DDP rank when it runs on GPUs."""
    gpus = world_size_of(job.devices) if job.accelerator.lower() in GPU_ACCELERATORS else 0
    return {"num_cpus": job.threads, "num_gpus": gpus}


class StartBoard:
    """Keys of the runs that have started (a Ray actor of no CPU): the driver's per-run clocks read it."""

    def __init__(self) -> None:
        self.started: list[RunKey] = []

    def start(self, key: RunKey) -> None:
        self.started.append(key)

    def since(self, seen: int) -> list[RunKey]:
        """Keys that started after the first ``seen`` ones (the driver asks for news only)."""
        return self.started[seen:]


def _execute(job: Job, board: Any) -> RunRecord:
    registry.load_all()  # a fresh Ray worker imports torch and every baseline first: not part of the run's time
    board.start.remote(job.key)
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
    remote = ray.remote(max_retries=0, runtime_env={"env_vars": env_vars})(_execute)
    board = ray.remote(num_cpus=0)(StartBoard).remote()
    needed = max(task_resources(job)["num_gpus"] for job in todo)
    available = ray.cluster_resources().get("GPU", 0)
    if needed > available:  # not an error: an autoscaling cluster may add GPU nodes; but say why nothing starts
        reporter.note(f"runs ask Ray for {needed:g} GPU(s) each and the cluster has {available:g} now: "
                      "they wait until a node with GPUs joins")
    try:
        pending_refs: dict[Any, tuple[Job, float]] = {}
        run_started: dict[RunKey, float] = {}
        seen = 0
        for job in todo:
            pending_refs[remote.options(**task_resources(job)).remote(job, board)] = (job, time.monotonic())
            reporter.started(job)
        while pending_refs:
            ready, _ = ray.wait(list(pending_refs), num_returns=1, timeout=1.0)
            news = ray.get(board.since.remote(seen))
            seen += len(news)
            now = time.monotonic()
            for key in news:
                run_started.setdefault(key, now)
            for ref in ready:
                job, submitted = pending_refs.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as error:  # worker crashed or task cancelled
                    record = failed_record(job, f"ray task failed: {type(error).__name__}: {error}"[-2000:],
                                           now - run_started.get(job.key, submitted))
                summary.done.append(read_record(write_record(root, record)))
                release_checkpoint(job, record)  # live folders sit under root: Ray needs it on a shared filesystem
                reporter.finished(job, summary.done[-1])
            for ref, (job, _) in list(pending_refs.items()):
                started = run_started.get(job.key)
                if started is not None and now - started > job.timeout:
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
