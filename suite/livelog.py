"""Live logs: metrics a run logs while it runs, through Lightning's logger API, into the run's live folder.

A baseline calls ``ctx.log(step, **metrics)`` once per chunk or evaluation, with ``step`` in the run's own unit
(env steps, frames, meta-iterations, samples); :class:`LiveLog` hands it to a
``lightning.fabric.loggers.CSVLogger`` writing ``<live folder>/metrics.csv`` (flushed at every call: calls are
per chunk, not per step) and, with ``--track``, to a W&B run opened for this run (offline without an API key,
grouped by task/variant, the variant in its config), which :func:`suite.tracking.log_record` then completes with
the record's curves and final metrics.

Logging never changes a number: nothing here draws from a random stream (W&B's start-up is wrapped in a
save/restore of every global RNG), and a failing W&B never fails the run.  A run resumed from a checkpoint at
step ``s`` keeps the rows of the CSV up to ``s`` and drops those the interrupted attempt logged after it; a
run started from scratch starts a fresh file.
"""

from __future__ import annotations

import csv
import os
import sys
import warnings
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.csv"


class LiveLog:
    """Per-run metric log; ``folder`` None and no W&B: every call is a no-op."""

    def __init__(self, folder: Path | None = None, wandb_init: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.wandb_init = wandb_init  # keyword arguments of wandb.init, or None without --track
        self.wandb_run: Any = None
        self._csv: Any = None
        self._keep_until: int | None = None  # resumed at this step: keep earlier rows of the old file

    @property
    def path(self) -> Path | None:
        return self.folder / METRICS_FILE if self.folder is not None else None

    def resume_at(self, step: int) -> None:
        """The run resumed from a checkpoint of ``step`` (called by :class:`suite.checkpoint.Checkpointer`)."""
        self._keep_until = int(step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        values = {k: float(v) for k, v in metrics.items() if v is not None}
        if self.folder is not None:
            if self._csv is None:
                self._csv = self._open_csv()
            self._csv.log_metrics(values, step=int(step))
        if self.wandb_init is not None:
            self._log_wandb(int(step), values)

    def _open_csv(self) -> Any:
        from lightning.fabric.loggers import CSVLogger

        old = self._old_rows()
        self.folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # "log dir not empty": it holds the checkpoint; the old CSV is handled here
            warnings.simplefilter("ignore")
            logger = CSVLogger(root_dir=str(self.folder), name="", version="", flush_logs_every_n_steps=1)
            if self.path.exists():
                self.path.unlink()
            logger.experiment  # noqa: B018 - creates the writer (and its warning) here, inside the filter
        for step, row in old:
            logger.log_metrics(row, step=step)
        return logger

    def _old_rows(self) -> list[tuple[int, dict[str, float]]]:
        """The previous attempt's rows up to the resumed step (none for a run started from scratch)."""
        if self._keep_until is None or self.path is None or not self.path.exists():
            return []
        rows = []
        try:
            with open(self.path, newline="") as handle:
                for row in csv.DictReader(handle):
                    step = int(float(row.pop("step")))
                    if step <= self._keep_until:
                        rows.append((step, {k: float(v) for k, v in row.items() if v not in ("", None)}))
        except (OSError, ValueError, KeyError, csv.Error) as error:
            print(f"{self.path}: unreadable live log, starting a fresh one ({error})", file=sys.stderr)
            return []
        return rows

    def _log_wandb(self, step: int, values: dict[str, float]) -> None:
        try:
            if self.wandb_run is None:
                self.wandb_run = start_wandb(self.wandb_init)
            self.wandb_run.log(values, step=step)
        except Exception as error:  # noqa: BLE001 - tracking must never cost a result
            print(f"warning: W&B live logging failed, continuing without it: {error}", file=sys.stderr)
            self.wandb_init = None

    def close(self) -> None:
        if self._csv is not None:
            self._csv.finalize("success")
            self._csv = None


def start_wandb(init: dict[str, Any]) -> Any:
    """``wandb.init(**init)`` in offline mode without an API key, leaving every global random stream as it was."""
    import wandb

    from suite.checkpoint import rng_state, set_rng_state

    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    saved = rng_state()
    try:
        return wandb.init(**init, reinit=True, settings=wandb.Settings(init_timeout=30, silent=True))
    finally:
        set_rng_state(saved)
