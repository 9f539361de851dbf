"""The contract between the harness and a baseline.

A baseline is a function ``fit(ctx: RunContext) -> RunOutput`` registered with
:func:`suite.registry.register_baseline`.  It builds its LightningModule from
``ctx.hparams``, trains it on ``ctx.env`` within the budget the hparams give,
evaluates it and returns metrics, curves and throughput.  The harness does the
rest: seeding, determinism flags, thread count, process isolation, timeouts,
records and provenance.

The runner has already called ``lightning.seed_everything(ctx.seed)`` and
``torch.use_deterministic_algorithms(True)`` when ``fit`` starts; a baseline only
needs to seed what lives outside torch/numpy/random globals (gymnasium envs via
``reset(seed=...)`` and ``action_space.seed``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from suite.checkpoint import Checkpointer
from suite.livelog import LiveLog

ProgressFn = Callable[[int, int], None]


def world_size_of(devices: int | str) -> int:
    """Number of ranks a ``--devices`` value asks for: an int, or a comma list of device ids."""
    if isinstance(devices, int):
        return max(devices, 1)
    text = str(devices).strip()
    if text.isdigit():
        return max(int(text), 1)
    if "," in text or text.startswith("["):
        return len([d for d in text.strip("[]").split(",") if d.strip()])
    return 1  # "auto" and friends: one process, Lightning picks the device


class Diverged(Exception):
    """Raised by a baseline when a loss or metric becomes NaN/inf; the run is recorded as ``diverged``."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"diverged at step {step}: {reason}")
        self.step = step
        self.reason = reason


def check_finite(value: torch.Tensor | float, step: int, what: str = "loss") -> None:
    """Raise :class:`Diverged` naming ``what`` and ``step`` if ``value`` holds a NaN or inf.

    For tensors this forces one host sync; call it on the scalar loss, not on every parameter.
    """
    if isinstance(value, torch.Tensor):
        finite = bool(torch.isfinite(value).all())
        shown = value.detach().flatten()[0].item() if value.numel() else float("nan")
    else:
        finite = math.isfinite(value)
        shown = value
    if not finite:
        raise Diverged(step, f"{what} is {shown}")


@dataclass(frozen=True)
class RunContext:
    """Everything one run needs: which cell of the sweep it is and its fully resolved hyperparameters."""

    task: str
    variant: str
    env: str
    seed: int
    profile: str
    baseline: str
    hparams: dict[str, Any]
    run_dir: Path
    progress: ProgressFn = field(default=lambda step, total: None, repr=False, compare=False)
    accelerator: str = "cpu"
    devices: int | str = 1
    precision: str = "32-true"
    live_dir: Path | None = None  # persistent per-run folder (checkpoint, metrics.csv); None outside a sweep
    checkpoint: Checkpointer = field(default_factory=Checkpointer, repr=False, compare=False)
    logger: LiveLog = field(default_factory=LiveLog, repr=False, compare=False)

    def log(self, step: int, **metrics: float) -> None:
        """Log ``metrics`` at ``step`` (in the run's own unit: env steps, frames, meta-iterations, samples).

        Call it once per chunk or evaluation, never per step: it writes ``metrics.csv`` in the live folder through
        Lightning's CSVLogger and, with ``--track``, streams to W&B.  It changes no number of the run.
        """
        self.logger.log(step, metrics)

    @property
    def world_size(self) -> int:
        """Ranks this run is split over (``--devices N``, see :mod:`suite.distributed`)."""
        return world_size_of(self.devices)

    def fabric(self, **overrides: Any) -> Any:
        """A ``lightning.Fabric`` on the requested device(s) and precision: the one driver of the baselines that own
        their training loop (DQN, PPO, SAC, the meta-learners, continual learning).

        Several devices mean DDP under torchrun (:mod:`suite.distributed` starts the ranks; Fabric finds their
        environment and launches nothing).  The Fabric comes back launched, i.e. ready for ``fabric.setup``: under
        torchrun ``launch()`` only joins the process group, on one device it does nothing.  Logging goes through
        :meth:`log`, checkpoints through ``checkpoint``.
        """
        import lightning as L  # noqa: PLC0415 (keeps `import suite.api` light for the CLI)

        kwargs: dict[str, Any] = dict(accelerator=self.accelerator, devices=self.devices, precision=self.precision)
        if self.world_size > 1:
            kwargs["strategy"] = "ddp"
        kwargs.update(overrides)
        fabric = L.Fabric(**kwargs)
        fabric.launch()  # a no-op when called again
        return fabric

    def trainer_kwargs(self, find_unused_parameters: bool = False, **overrides: Any) -> dict[str, Any]:
        """``lightning.Trainer`` keyword arguments: quiet, deterministic, on the requested device(s).

        Several devices mean DDP under torchrun; ``find_unused_parameters`` is for modules whose
        backward passes leave some parameters out (a GAN's D step does not reach G).
        """
        kwargs: dict[str, Any] = dict(
            accelerator=self.accelerator,
            devices=self.devices,
            precision=self.precision,
            deterministic=True,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(self.run_dir),
        )
        if self.world_size > 1:
            kwargs["strategy"] = "ddp_find_unused_parameters_true" if find_unused_parameters else "ddp"
        kwargs.update(overrides)
        return kwargs


@dataclass
class RunOutput:
    """What a baseline returns.

    metrics: final scalar metrics (e.g. ``eval_return``, ``mse_step1``), JSON floats.
    curves:  named series of ``(x, y)`` points, e.g. ``{"eval_return": [(frames, return), ...]}``
             or ``{"adaptation": [(grad_step, mse), ...]}``; the report draws them with CI bands.
    steps:   units of work done (env steps, samples, meta-iterations) for the throughput figure.
    step_unit: what ``steps`` counts.
    extras:  any other JSON-serialisable result (an R matrix, a noise correlation matrix, ...).
    """

    metrics: dict[str, float]
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    steps: int = 0
    step_unit: str = "steps"
    extras: dict[str, Any] = field(default_factory=dict)


class Throttle:
    """Calls ``fn(step, total)`` at most every ``interval`` seconds (progress reporting from hot loops)."""

    def __init__(self, fn: ProgressFn, interval: float = 0.5) -> None:
        self.fn = fn
        self.interval = interval
        self._last = 0.0

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval or step >= total:
            self._last = now
            self.fn(step, total)
