"""Variants x envs x seeds over a pool of worker processes, with resume, timeouts and crash isolation.

Workers are long-lived processes forked from a forkserver that has imported torch,
Lightning and every baseline once, each running one job at a time with a fixed
thread count.  The
worker writes its own record atomically, so a run that finished is never lost even
if the sweep is killed.  A worker that exceeds the job's timeout or dies is killed
and replaced, and the run is recorded as ``failed`` with the reason; the sweep
goes on.  Workers watch the sweep process itself, not their parent: a worker's parent
is the forkserver, which outlives a SIGKILLed sweep long enough to finish a run, so
``PR_SET_PDEATHSIG`` alone does not fire.  Each worker holds the read end of a
"lifeline" pipe whose only write end lives in the sweep process; the kernel closes it
when the sweep dies, however it dies, and the worker kills itself at that EOF, and
checks it once more just before renaming a record into place, so a killed sweep
leaves no orphan writing records behind it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from suite import registry
from suite.checkpoint import Checkpointer
from suite.jobs import Job, recorded_settings, with_live
from suite.process import set_parent_death_signal
from suite.progress import SweepReporter
from suite.record import RunRecord, jsonable
from suite.runner import failed_record, release_checkpoint, run_one
from suite.store import (
    CorruptRecord,
    pin_git_state,
    read_record,
    record_path,
    runs_folder,
    sweep_stale_temps,
    write_record,
)

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RESUMABLE = ("ok", "diverged")  # deterministic outcomes; `failed` (crash, timeout) is retried
STARTUP_TIMEOUT = 600  # importing torch + Lightning + every baseline, on a loaded machine


@dataclass
class SweepSummary:
    done: list[RunRecord] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.done if r.status == "failed"]


def pending(jobs: list[Job], root: Path, force: bool = False) -> tuple[list[Job], list[Job], list[str]]:
    """Split jobs into (to run, already done, corrupt-record messages)."""
    todo, done, corrupt = [], [], []
    for job in jobs:
        path = record_path(root, job.key)
        if force or not path.exists():
            todo.append(job)
            continue
        try:
            record = read_record(path)
        except CorruptRecord as error:
            corrupt.append(str(error))
            todo.append(job)
            continue
        if same_run(record, job) and record.status in RESUMABLE:
            done.append(job)
        else:
            todo.append(job)
    return todo, done, corrupt


def same_run(record: RunRecord, job: Job) -> bool:
    """Whether ``record`` is a run of ``job``: the same declared config, settings and (where the record has them,
    schema 2 on) the same resolved hyperparameters, so an edited resolution hook re-runs what it changed."""
    if record.config_hash != job.config_hash or recorded_settings(record) != job.settings:
        return False
    if record.resolved is None:
        return True
    try:
        return registry.current_config(record.baseline, record.resolved) == jsonable(job.resolved_hparams())
    except Exception:  # noqa: BLE001 (the hook fails now: re-run, and the run's record says why)
        return False


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_lifeline(lifeline: Connection) -> None:
    """Block on the lifeline until the sweep process is gone, then kill this worker on the spot."""
    try:
        lifeline.recv()  # nothing is ever sent: this returns only by EOF when the sweep's end closes
    except (EOFError, OSError):
        pass
    _die()


def _check_lifeline(lifeline: Connection) -> None:
    # poll() is true only at EOF here (the sweep never writes): the sweep died while this run finished.
    if lifeline.poll():
        _die()


def _worker_main(conn: Connection, root: str, lifeline: Connection) -> None:
    set_parent_death_signal()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True, name="lifeline").start()
    registry.load_all()  # import torch, Lightning and every baseline before the first run's clock starts
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(("started",))

        def progress(step: int, total: int) -> None:
            conn.send(("progress", int(step), int(total)))

        record = run_one(job, progress)
        path = write_record(Path(root), record, before_rename=lambda: _check_lifeline(lifeline))
        release_checkpoint(job, record)
        conn.send(("done", str(path)))


def _context() -> mp.context.BaseContext:
    """A forkserver that has imported everything once: replacing a dead worker costs a fork, not 10 s of imports."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["suite._preload"])
    return context


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: Job | None = None
    sent: float = 0.0
    started: float | None = None
    step: int = 0
    total: int = 0


class WorkerPool:
    """A fixed number of spawned workers fed jobs one at a time."""

    def __init__(self, workers: int, root: Path, threads: int) -> None:
        if workers < 1:
            raise ValueError(f"a worker pool needs at least 1 worker, got {workers}")
        self.root = Path(root)
        for name in THREAD_ENV:
            os.environ[name] = str(threads)
        os.environ.setdefault("PYTHONHASHSEED", "0")
        self.context = _context()
        # Only this process ever holds the write end, so its death is the workers' EOF.
        self.lifeline_read, self.lifeline_write = self.context.Pipe(duplex=False)
        self.workers = [self._spawn() for _ in range(workers)]

    def _spawn(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, str(self.root), self.lifeline_read),
                                       daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def _replace(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        fresh = self._spawn()
        worker.process, worker.conn, worker.job = fresh.process, fresh.conn, None

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None) if worker.job is None else worker.process.kill()
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
        self.lifeline_read.close()
        self.lifeline_write.close()

    def run(self, jobs: list[Job], on_event: Callable[[str, _Worker, RunRecord | None], None]) -> list[RunRecord]:
        """Run every job; ``on_event(kind, worker, record)`` sees 'start', 'progress' (each tick) and 'done'."""
        queue = list(reversed(jobs))
        finished: list[RunRecord] = []
        while queue or any(w.job for w in self.workers):
            for worker in self.workers:
                if worker.job is None and queue:
                    worker.job, worker.sent, worker.started = queue.pop(), time.monotonic(), None
                    worker.step = worker.total = 0
                    worker.conn.send(worker.job)
                    on_event("start", worker, None)
            busy = [w for w in self.workers if w.job]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.5)
            for worker in busy:
                record = self._poll(worker, ready)
                if record is not None:
                    finished.append(record)
                    on_event("done", worker, record)
                    worker.job = None
                else:
                    on_event("progress", worker, None)
        return finished

    def _poll(self, worker: _Worker, ready: list[Any]) -> RunRecord | None:
        job = worker.job
        assert job is not None
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message[0] == "started":
                    worker.started = time.monotonic()
                elif message[0] == "progress":
                    worker.step, worker.total = message[1], message[2]
                elif message[0] == "done":
                    return read_record(Path(message[1]))
        except (EOFError, OSError):
            pass  # the worker died; handled below
        now = time.monotonic()
        elapsed = now - worker.started if worker.started is not None else 0.0
        if not worker.process.is_alive():
            code = worker.process.exitcode
            cause = f"signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else f"exit code {code}"
            return self._fail(worker, f"worker process died ({cause}) during the run", elapsed)
        if elapsed > job.timeout:
            return self._fail(worker, f"timeout: exceeded {job.timeout:.0f} s", elapsed)
        if worker.started is None and now - worker.sent > STARTUP_TIMEOUT:
            return self._fail(worker, f"worker did not start the run within {STARTUP_TIMEOUT} s", 0.0)
        return None

    def _fail(self, worker: _Worker, reason: str, elapsed: float) -> RunRecord:
        job = worker.job
        assert job is not None
        self._replace(worker)
        worker.job = job  # keep it visible to the caller until the event is handled
        path = write_record(self.root, failed_record(job, reason, elapsed))
        return read_record(path)


def begin_sweep(jobs: list[Job], root: Path, force: bool, reporter: Any) -> tuple[list[Job], SweepSummary, Any]:
    """What every executor does first: pin the code version, find what is left to run, announce it.

    The runs to do get their live folder under ``root`` (checkpoint and live log; the options
    :func:`suite.jobs.with_live` set, or its defaults).  A run with a checkpoint there resumes from it;
    ``force`` deletes the checkpoints first, so forced runs start from scratch.
    """
    pin_git_state()
    for profile, task in dict.fromkeys((job.key.profile, job.key.task) for job in jobs):
        sweep_stale_temps(runs_folder(root, profile, task))
    todo, skipped, corrupt = pending(jobs, root, force)
    todo = with_live(todo, root)
    if force:
        for job in todo:
            Checkpointer(job.live_dir).clear()
    reporter = reporter or SweepReporter()
    for message in corrupt:
        reporter.note(f"corrupt record, re-running: {message}")
    reporter.begin(total=len(jobs), already_done=len(skipped), to_run=len(todo))
    return todo, SweepSummary(skipped=skipped, corrupt=corrupt), reporter


def run_sweep(jobs: list[Job], root: Path, workers: int, force: bool = False,
              reporter: Any = None, in_process: bool = False) -> SweepSummary:
    """Run whatever of ``jobs`` has no valid record yet (all with ``force``); see :class:`SweepSummary`."""
    todo, summary, reporter = begin_sweep(jobs, root, force, reporter)
    try:
        if in_process or not todo:
            for job in todo:
                reporter.started(job)
                record = read_record(write_record(root, run_one(job, lambda s, t, j=job: reporter.progress(j, s, t))))
                release_checkpoint(job, record)
                summary.done.append(record)
                reporter.finished(job, record)
        else:
            pool = WorkerPool(min(workers, len(todo)), root, threads=todo[0].threads)
            try:
                def on_event(kind: str, worker: _Worker, record: RunRecord | None) -> None:
                    if kind == "start":
                        reporter.started(worker.job)
                    elif kind == "progress":
                        reporter.progress(worker.job, worker.step, worker.total)
                    elif kind == "done":
                        summary.done.append(record)
                        reporter.finished(worker.job, record)

                pool.run(todo, on_event)
            finally:
                pool.close()
    finally:
        reporter.end()
    return summary
