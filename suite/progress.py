"""Sweep progress: a rich live display on a terminal, one plain line per finished run elsewhere (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import Any

from suite.jobs import Job
from suite.record import RunRecord


def _fmt_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class SweepReporter:
    """Runs done/total, ETA from the mean wall time of finished runs, each running run's step."""

    def __init__(self, live: bool | None = None, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._progress: Any = None
        self._tasks: dict[Any, Any] = {}

    def note(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def begin(self, total: int, already_done: int, to_run: int) -> None:
        self.total, self.to_run, self.count, self.start = total, to_run, 0, time.monotonic()
        self.note(f"{total} runs: {already_done} already recorded, {to_run} to run")
        if self.live and to_run:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), transient=False)
            self._progress.start()
            self._overall = self._progress.add_task("sweep", total=to_run)

    def started(self, job: Job) -> None:
        if self._progress:
            self._tasks[job.key] = self._progress.add_task(f"  {job.key.label}", total=None)

    def progress(self, job: Job, step: int, total: int) -> None:
        if self._progress and job.key in self._tasks and total:
            self._progress.update(self._tasks[job.key], completed=step, total=total)

    def finished(self, job: Job, record: RunRecord) -> None:
        self.count += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.count * (self.to_run - self.count)
        line = f"[{self.count}/{self.to_run}] {job.key.label} {record.status} {record.wall_time_s:.1f}s"
        if record.ok:
            shown = list(record.metrics.items())[:3]
            line += " " + " ".join(f"{k}={v:.4g}" for k, v in shown if isinstance(v, (int, float)))
        else:
            line += " — " + record.last_reason_line[:200]
        line += f" (eta {_fmt_seconds(eta)})"
        if self._progress:
            self._progress.remove_task(self._tasks.pop(job.key))
            self._progress.advance(self._overall)
            self._progress.console.print(line)
        else:
            self.note(line)

    def end(self) -> None:
        if self._progress:
            self._progress.stop()
            self._progress = None
