"""What a run is before it runs: :class:`Job` (a fully resolved, picklable run) and the sweep's plan of them.

Its own module, below the runner, the sweep, the executors and the DDP launcher, which all pass jobs around:
none of them needs another to know what a job is, so the harness's import graph stays a tree (a test checks it).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from suite import numerics, registry
from suite.api import ProgressFn, RunContext, world_size_of
from suite.checkpoint import Checkpointer
from suite.livelog import LiveLog
from suite.record import RunRecord
from suite.spec import TaskSpec
from suite.store import RunKey, config_hash, live_path

CHECKPOINT_INTERVAL_S = 600.0  # default: a checkpoint at most every 10 minutes of a run's wall time


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
    def live_dir(self) -> Path | None:
        """The run's live folder under the sweep's results root (``None``: no root was given, nothing persists)."""
        live = self.extra.get("live") or {}
        return live_path(Path(live["root"]), self.key) if live.get("root") else None

    def resolved_hparams(self) -> dict[str, Any]:
        """What the module receives: ``hparams`` through the baseline's resolution hook for this env and seed.

        ``hparams`` (and ``config_hash``) stay the declared configuration: the hash names the sweep cell, which must
        not depend on the seed (a GAN's search setting is chosen by seed).
        """
        return registry.get_baseline(self.baseline).resolved(self.hparams, self.key.env, self.key.seed)

    @property
    def settings(self) -> dict[str, Any]:
        """What besides the config and seed changes a run's numbers: compared on resume and by ``suite check``."""
        return {"threads": self.threads, "accelerator": self.accelerator, "world_size": world_size_of(self.devices),
                "precision": self.precision, "numerics": self.numerics}


def cell_hash(baseline: str, env: str, hparams: dict[str, Any]) -> str:
    """The config hash of a sweep cell, over the hyperparameters' former names where the baseline renamed some.

    A rename changes nothing that ran, so the cell keeps its identity and its committed records stay current.
    """
    return config_hash(baseline, env, registry.get_baseline(baseline).former_names(hparams))


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
                cells.append((variant, env, baseline, hparams, cell_hash(baseline, env, hparams)))
    return [Job(RunKey(spec.name, variant, env, seed, profile), baseline, hparams, digest, chosen.timeout, threads,
                accelerator, devices, precision, level)
            for seed in range(seeds if seeds is not None else chosen.seeds)
            for variant, env, baseline, hparams, digest in cells]


def recorded_settings(record: RunRecord) -> dict[str, Any]:
    """The :attr:`Job.settings` a record was made with, read from its provenance."""
    prov = record.provenance
    return {"threads": prov.threads, "accelerator": prov.accelerator,
            "world_size": prov.world_size or 1, "precision": prov.precision or "32-true",
            # Records from before pinning existed were made on the AVX2 host, where unpinned and avx2-pinned
            # floats are the same (checked over every committed smoke record and a sample of cpu records).
            "numerics": prov.numerics_level or numerics.DEFAULT_LEVEL}


def with_live(jobs: list[Job], root: Path, checkpoint_every: int = 0,
              checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S, keep_checkpoints: bool = False,
              live_log: bool = True) -> list[Job]:
    """Give jobs their live folder under ``root`` and the checkpoint options (run options: not in the config hash)."""
    live = {"root": str(root), "checkpoint_every": int(checkpoint_every),
            "checkpoint_interval_s": float(checkpoint_interval_s), "keep_checkpoints": bool(keep_checkpoints),
            "log": bool(live_log)}
    return [replace(job, extra={**job.extra, "live": {**live, **(job.extra.get("live") or {})}}) for job in jobs]


def checkpointer(job: Job, logger: LiveLog | None = None, rank: int = 0) -> Checkpointer:
    """The job's :class:`Checkpointer` (off without a live folder); only rank 0 of a DDP run writes."""
    live, folder = job.extra.get("live") or {}, job.live_dir
    if folder is None:
        return Checkpointer()
    identity = {"key": job.key.label, "config_hash": job.config_hash, "settings": job.settings}
    return Checkpointer(folder, live.get("checkpoint_every", 0), live.get("checkpoint_interval_s", 0.0), identity,
                        writable=rank == 0, on_resume=logger.resume_at if logger is not None else None)


def live_logger(job: Job, rank: int = 0) -> LiveLog:
    """CSV live log in the job's live folder (when ``log`` is on), plus W&B streaming for ``--track``; rank 0 only."""
    live = job.extra.get("live") or {}
    if rank != 0:
        return LiveLog()
    folder = job.live_dir if live.get("log", True) else None
    wandb_init = None
    if job.extra.get("track"):
        wandb_init = dict(project=os.environ.get("WANDB_PROJECT", "lightning-repro-suite"),
                          group=f"{job.key.task}/{job.key.variant}", job_type=job.key.profile,
                          name=f"{job.key.variant}-{job.key.env}-s{job.key.seed}",
                          config={**job.resolved_hparams(), "task": job.key.task, "variant": job.key.variant,
                                  "env": job.key.env, "seed": job.key.seed, "baseline": job.baseline,
                                  "config_hash": job.config_hash},
                          dir=str(folder) if folder is not None else None)
    return LiveLog(folder, wandb_init)


def run_context(job: Job, run_dir: Path, progress: ProgressFn | None = None, rank: int = 0,
                hparams: dict[str, Any] | None = None) -> RunContext:
    """The :class:`RunContext` a baseline's ``fit`` receives for ``job`` (also on every DDP rank).

    Its ``hparams`` are the job's resolved ones (:meth:`Job.resolved_hparams`, or ``hparams`` when the caller has
    them already): exactly what the record stores as ``resolved``.
    """
    logger = live_logger(job, rank)
    hparams = job.resolved_hparams() if hparams is None else dict(hparams)
    return RunContext(task=job.key.task, variant=job.key.variant, env=job.key.env, seed=job.key.seed,
                      profile=job.key.profile, baseline=job.baseline, hparams=hparams, run_dir=run_dir,
                      progress=progress or (lambda step, total: None), accelerator=job.accelerator,
                      devices=job.devices, precision=job.precision, live_dir=job.live_dir,
                      checkpoint=checkpointer(job, logger, rank), logger=logger)


def split_stale(spec: TaskSpec, profile: str, records: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """Split records into those made with what the spec resolves to now and stale ones (one message per cell).

    A spec edit changes a cell's config hash; its old records stay on disk until a sweep replaces them, and mixing
    them into a table would average two protocols. Runs made with ``suite run -o`` are kept (their header says so).
    """
    expected: dict[tuple[str, str], str] = {}
    current: list[RunRecord] = []
    stale: Counter = Counter()
    for record in records:
        cell = record.cell
        if cell not in expected:
            baseline, hparams = spec.resolve(*cell[:1], profile)
            expected[cell] = cell_hash(baseline, cell[1], hparams)
        if record.overrides or record.config_hash == expected[cell]:
            current.append(record)
        else:
            stale[cell] += 1
    return current, [f"{variant}/{env}: {n} record(s) made under another config of this spec"
                     for (variant, env), n in sorted(stale.items())]

