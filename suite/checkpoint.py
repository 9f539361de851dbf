"""Mid-run checkpoints: a baseline's whole state, saved atomically to the run's live folder and loaded on a re-run.

A baseline calls ``ctx.checkpoint.load()`` once before it trains (``None``: start from scratch) and
``ctx.checkpoint.maybe_save(step, make_state)`` at the end of each chunk (a PPO iteration, a continual task);
``make_state`` is only called when a checkpoint is due, so an idle checkpointer costs one comparison per chunk.
A checkpoint is due every ``every`` steps of the run's own unit (env steps, samples, ...: the first chunk
boundary at or past each multiple) and every ``interval_s`` seconds of wall time, whichever comes first; both 0
= never.  Neither is a hyperparameter: they decide when state is written, never what the run computes, so they
are not in the config or its hash, and a resumed run's record is bit-identical to an uninterrupted one (tested
per baseline).

The file is ``<live folder>/checkpoint.pt``: a header line with the format and the sha256 of the payload, then
``torch.save`` of ``{"identity", "step", "wall_time_s", "state"}``; written to a temp file in the same folder,
fsynced, renamed into place and the folder fsynced, so a kill at any moment leaves the previous checkpoint or
the new one, never half of one.  A checkpoint that is unreadable, fails its hash, or belongs to another
configuration (its ``identity``: the config hash and the settings that change numbers) is reported in one
line naming its path and ignored: the run starts from scratch.

Loading unpickles (``weights_only=False``: the state holds numpy RNG states and arrays): only load checkpoints
this suite wrote into your own results folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKPOINT_FILE = "checkpoint.pt"
MAGIC = b"suite-checkpoint 1 sha256="
_HEADER_LEN = len(MAGIC) + 64 + 1  # hex digest and a newline


def rng_state() -> dict[str, Any]:
    """The global random streams a run draws from: Python's, NumPy's legacy global and torch's (CPU, CUDA)."""
    import numpy as np
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpointer:
    """Saves and loads one run's checkpoint in ``folder`` (``None``: checkpoints off, :meth:`load` gives None)."""

    def __init__(self, folder: Path | None = None, every: int = 0, interval_s: float = 0.0,
                 identity: dict[str, Any] | None = None, writable: bool = True,
                 on_resume: Callable[[int], None] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.every, self.interval_s = int(every), float(interval_s)
        self.identity = identity or {}
        self.writable = writable  # False on DDP ranks other than 0: they load, rank 0 writes
        self.on_resume = on_resume
        self.resumed_step: int | None = None
        self.prior_wall_time_s = 0.0  # wall time of the interrupted attempt(s) up to the loaded checkpoint
        self.saved = 0
        self._next_at = self.every
        self._started = self._last = time.monotonic()

    @property
    def path(self) -> Path | None:
        return self.folder / CHECKPOINT_FILE if self.folder is not None else None

    @property
    def enabled(self) -> bool:
        return self.folder is not None and self.writable and (self.every > 0 or self.interval_s > 0)

    def due(self, step: int) -> bool:
        if not self.enabled:
            return False
        if self.every > 0 and step >= self._next_at:
            return True
        return self.interval_s > 0 and time.monotonic() - self._last >= self.interval_s

    def maybe_save(self, step: int, make_state: Callable[[], dict[str, Any]]) -> bool:
        """Save ``make_state()`` as the state after ``step`` if a checkpoint is due; returns whether it saved."""
        if not self.due(step):
            return False
        self.save(step, make_state())
        return True

    def _advance(self, step: int) -> None:
        if self.every > 0:
            self._next_at = (step // self.every + 1) * self.every
        self._last = time.monotonic()

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``state`` as the checkpoint after ``step`` (atomic: temp file + fsync + rename + folder fsync)."""
        import torch

        assert self.folder is not None and self.path is not None, "checkpoints are off for this run"
        buffer = io.BytesIO()
        wall = self.prior_wall_time_s + time.monotonic() - self._started
        torch.save({"identity": self.identity, "step": int(step), "wall_time_s": wall, "state": state}, buffer)
        payload = buffer.getvalue()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-checkpoint-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.folder)
        self.saved += 1
        self._advance(step)
        return self.path

    def load(self) -> dict[str, Any] | None:
        """The state of the last checkpoint of this run, or None (no checkpoint, or a bad one: reported, ignored)."""
        path = self.path
        if path is None or not path.exists():
            return None
        try:
            content = self._read(path)
        except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is reported and ignored
            print(f"{path}: corrupt checkpoint ignored, starting from scratch ({type(error).__name__}: {error})",
                  file=sys.stderr, flush=True)
            return None
        if content.get("identity") != self.identity:
            print(f"{path}: checkpoint of another configuration ignored, starting from scratch", file=sys.stderr,
                  flush=True)
            return None
        step = int(content["step"])
        self.resumed_step, self.prior_wall_time_s = step, float(content.get("wall_time_s", 0.0))
        self._advance(step)
        if self.on_resume is not None:
            self.on_resume(step)
        return content["state"]

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        import torch

        data = path.read_bytes()
        header, payload = data[:_HEADER_LEN], data[_HEADER_LEN:]
        if not header.startswith(MAGIC) or not header.endswith(b"\n"):
            raise ValueError("not a suite checkpoint (bad header)")
        if hashlib.sha256(payload).hexdigest().encode() != header[len(MAGIC):-1]:
            raise ValueError("content hash mismatch (truncated or edited)")
        content = torch.load(io.BytesIO(payload), weights_only=False)  # tensors back on the device they were saved from
        if not isinstance(content, dict) or not {"identity", "step", "state"} <= content.keys():
            raise ValueError("missing fields")
        return content

    def clear(self) -> None:
        """Delete this run's checkpoint and any temp file a killed write left behind."""
        if self.folder is None or not self.folder.is_dir():
            return
        for path in [self.folder / CHECKPOINT_FILE, *self.folder.glob(".tmp-checkpoint-*")]:
            path.unlink(missing_ok=True)
