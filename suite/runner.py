"""One run: seed everything, call the baseline's ``fit``, turn the outcome into a record.

:func:`run_one` runs in the calling process; the sweep calls it inside worker
processes so a crash, a hang or a NaN only costs that run.  Tests may call it
directly.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suite import numerics
from suite.api import Diverged, ProgressFn, RunContext
from suite.distributed import launch, world_size_of
from suite.spec import TaskSpec
from suite.store import RunKey, config_hash, provenance

TRACEBACK_TAIL = 2000


@dataclass(frozen=True)
class Job:
    """A fully resolved run, picklable so it can cross into a worker process."""

    key: RunKey
    baseline: str
    hparams: dict[str, Any]
    config_hash: str
    timeout: float
    threads: int = 1
    accelerator: str = "cpu"
    devices: int | str = 1
    precision: str = "32-true"
    numerics: str = numerics.DEFAULT_LEVEL  # CPU kernel pinning (suite.numerics); part of the run's identity
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        """What besides the config and seed changes a run's numbers: compared on resume and by ``suite check``."""
        return {"threads": self.threads, "accelerator": self.accelerator, "world_size": world_size_of(self.devices),
                "precision": self.precision, "numerics": self.numerics}


def plan_jobs(spec: TaskSpec, profile: str, seeds: int | None = None, threads: int = 1,
              accelerator: str = "cpu", devices: int | str = 1, precision: str = "32-true",
              variants: list[str] | None = None, envs: list[str] | None = None,
              numerics_level: str | None = None) -> list[Job]:
    """Every (variant, env, seed) of ``spec`` under ``profile``, optionally narrowed.

    Seed-major order: all cells get seed 0 before any gets seed 1, so a sweep stopped part-way
    leaves a balanced table (every cell with the same number of seeds) that a re-run completes.
    """
    chosen = spec.profiles[profile]
    if chosen.skip:
        return []
    level = numerics_level or numerics.requested_level()
    cells = []
    for variant in chosen.variants:
        if variants and variant not in variants:
            continue
        baseline, hparams = spec.resolve(variant, profile)
        for env in filter(spec.variants[variant].runs_on, chosen.envs):
            if not envs or env in envs:
                cells.append((variant, env, baseline, hparams, config_hash(baseline, env, hparams)))
    return [Job(RunKey(spec.name, variant, env, seed, profile), baseline, hparams, digest, chosen.timeout, threads,
                accelerator, devices, precision, level)
            for seed in range(seeds if seeds is not None else chosen.seeds)
            for variant, env, baseline, hparams, digest in cells]


def recorded_settings(record: dict[str, Any]) -> dict[str, Any]:
    """The :attr:`Job.settings` a record was made with, read from its provenance."""
    prov = record["provenance"]
    return {"threads": prov.get("threads", 1), "accelerator": prov.get("accelerator", "cpu"),
            "world_size": prov.get("world_size", 1), "precision": prov.get("precision", "32-true"),
            # Records from before pinning existed were made on the AVX2 host, where unpinned and avx2-pinned
            # floats are the same (checked over every committed smoke record and a sample of cpu records).
            "numerics": (prov.get("numerics") or {}).get("level", numerics.DEFAULT_LEVEL)}


def seed_everything(seed: int, threads: int) -> None:
    """Seed Python, NumPy and torch, force deterministic kernels and a fixed thread count."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        from lightning.fabric.utilities.seed import seed_everything as lightning_seed

        lightning_seed(seed, workers=True, verbose=False)
    except TypeError:  # older Lightning without `verbose`
        from lightning.fabric.utilities.seed import seed_everything as lightning_seed

        lightning_seed(seed, workers=True)


def quiet_lightning() -> None:
    """No per-run banners or per-step library warnings in sweep logs."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")  # Lightning internals, once per step
    warnings.filterwarnings("ignore", message=r".*TF32 acceleration on top of oneDNN")  # torch, on every import
    warnings.filterwarnings("ignore", message=r".*MinAtar/.*-v0 is out of date")  # v0 = the paper's full action set


def base_record(job: Job) -> dict[str, Any]:
    return {
        "task": job.key.task, "variant": job.key.variant, "env": job.key.env, "seed": job.key.seed,
        "profile": job.key.profile, "baseline": job.baseline, "config": job.hparams,
        "config_hash": job.config_hash, "status": "failed", "reason": None, "diverged_step": None,
        "metrics": {}, "curves": {}, "extras": {}, "steps": 0, "step_unit": "steps", "wall_time_s": 0.0,
        "throughput": None,
        "provenance": provenance(job.threads, job.accelerator, world_size_of(job.devices), job.precision,
                                 job.numerics),
        **({"overrides": job.extra["overrides"]} if job.extra.get("overrides") else {}),  # suite run -o
    }


def failed_record(job: Job, reason: str, wall_time: float = 0.0) -> dict[str, Any]:
    """The record of a run that never returned (timeout, killed worker)."""
    record = base_record(job)
    record.update(status="failed", reason=reason, wall_time_s=round(wall_time, 3))
    return record


def run_context(job: Job, run_dir: Path, progress: ProgressFn | None = None) -> RunContext:
    """The :class:`RunContext` a baseline's ``fit`` receives for ``job`` (also on every DDP rank)."""
    return RunContext(task=job.key.task, variant=job.key.variant, env=job.key.env, seed=job.key.seed,
                      profile=job.key.profile, baseline=job.baseline, hparams=dict(job.hparams), run_dir=run_dir,
                      progress=progress or (lambda step, total: None), accelerator=job.accelerator,
                      devices=job.devices, precision=job.precision)


def run_one(job: Job, progress: ProgressFn | None = None, run_dir: Path | None = None) -> dict[str, Any]:
    """Run ``job`` in this process and return its (unsealed) record; never raises for a baseline error."""
    from suite import registry

    record = base_record(job)
    entry = registry.get_baseline(job.baseline)
    scratch = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="suite-run-"))
    ctx = run_context(job, scratch, progress)
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
        record.update(metrics=output.metrics, curves={k: [list(p) for p in v] for k, v in output.curves.items()},
                      extras=output.extras, steps=int(output.steps), step_unit=output.step_unit)
        if bad:
            record.update(status="diverged", reason=f"metric {bad[0]} is {output.metrics[bad[0]]}")
        else:
            record["status"] = "ok"
    except Diverged as error:
        record.update(status="diverged", reason=error.reason, diverged_step=error.step)
    except Exception:
        record.update(status="failed", reason=traceback.format_exc()[-TRACEBACK_TAIL:])
    finally:
        if run_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    wall = time.perf_counter() - start
    record["wall_time_s"] = round(wall, 3)
    if record["steps"] and wall > 0:
        record["throughput"] = round(record["steps"] / wall, 3)
    if job.extra.get("track"):
        from suite.tracking import log_record

        log_record(record)
    return record


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
