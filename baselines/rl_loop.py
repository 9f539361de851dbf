"""The one driver of the RL baselines that own their loop (DQN, PPO, SAC, A2C, REINFORCE, PPO-pg): Lightning Fabric.

Each module trains in *chunks* (DQN: ``chunk`` frames; PPO and PPO-pg: one rollout and its epochs; SAC:
``steps_per_call`` env steps; A2C: ``updates_per_step`` updates; REINFORCE: one batch of episodes) through its
``train_chunk()``, which returns the metrics to log for that chunk.  Between two chunks, and only there, the driver
reports progress, logs, and saves a checkpoint of the module's whole state when one is due (``ctx.checkpoint``); a
run with a checkpoint of its configuration resumes from it at the next chunk, to the same floats as a run that
never stopped (tests/test_resume.py).

``fabric.setup`` places the module and its optimizers on the run's device and precision.  Inside a chunk a module
uses the LightningModule API, which Fabric serves: ``self.optimizers()`` are Fabric's optimizer wrappers and
``self.manual_backward(loss)`` is ``fabric.backward`` (loss scaling for 16-mixed, the strategy's hooks); the whole
chunk runs under ``fabric.autocast()`` (a no-op in 32-bit).  Rollout storage follows the module's device; replay
memories stay in host memory and move one sampled batch at a time (see each module).

A module ``M`` provides ``configure_optimizers``, ``train_chunk() -> dict``, ``done`` and ``step``/``total_steps``
(progress in the run's own unit), ``resume_state()``/``load_resume_state(state)``, ``run_output()`` and ``close()``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from suite.api import RunContext, RunOutput, Throttle


class ChunkedModule(Protocol):
    """What :func:`fit_chunks` drives (a LightningModule with these members)."""

    step: int
    total_steps: int

    @property
    def done(self) -> bool: ...

    def configure_optimizers(self) -> Any: ...  # noqa: ANN401 - one optimizer or a list, as in Lightning

    def train_chunk(self) -> dict[str, float]: ...

    def resume_state(self) -> dict[str, Any]: ...

    def load_resume_state(self, state: dict[str, Any]) -> None: ...

    def run_output(self) -> RunOutput: ...

    def close(self) -> None: ...


def plain_updates(ctx: RunContext) -> bool:
    """Whether Fabric's ``backward`` and optimizer wrapper would add nothing to ``loss.backward()`` and the raw
    optimizer's ``step()``: full 32-bit precision (no loss scaling, no autocast) on one device (no gradient sync).

    Decided from the run's own settings, not from Lightning's plugins.  Only DQN uses it: its CartPole / MinAtar
    updates are small enough that the wrappers' ~10-20 us cost ~2% per update (benchmarks/bench_rl_driver.py);
    every other baseline's updates go through the wrappers whatever the settings.
    """
    return ctx.world_size == 1 and str(ctx.precision) in ("32", "32-true")


def setup_fabric(module: Any, ctx: RunContext) -> Any:  # noqa: ANN401 - a lightning.Fabric
    """The run's Fabric with ``module`` and its optimizers set up on it (``module.optimizers()`` then returns them):
    Fabric's documented use of a LightningModule, ``fabric.setup(model, *model.configure_optimizers())``."""
    fabric = ctx.fabric()
    optimizers = module.configure_optimizers()
    fabric.setup(module, *(optimizers if isinstance(optimizers, (list, tuple)) else [optimizers]))
    return fabric


def fit_chunks(module: ChunkedModule, ctx: RunContext, *, dataloader_seed_draw: bool = True) -> RunOutput:
    """Train ``module`` chunk by chunk on the run's Fabric (resuming from the run's checkpoint if it has one) and
    return its output.

    ``dataloader_seed_draw``: the modules that used to be fed by ``Trainer.fit`` with a ``DataLoader`` (PPO, SAC,
    the policy-gradient family; not DQN, fed from a list) saw that loader draw one int64 from torch's global RNG
    (its base seed) before their first step; they sample from that RNG, so the draw stays, or every committed
    record of theirs would change.
    """
    fabric = setup_fabric(module, ctx)
    progress = Throttle(ctx.progress)
    state = ctx.checkpoint.load()
    if state is not None:
        module.load_resume_state(state)  # restores the RNG streams too, so the draw below would be overwritten
    elif dataloader_seed_draw:
        torch.empty((), dtype=torch.int64).random_()  # the former DataLoader's base-seed draw: keeps committed records
    try:
        while not module.done:
            with fabric.autocast():
                metrics = module.train_chunk()
            if metrics:
                ctx.log(module.step, **metrics)
            progress(module.step, module.total_steps)
            if not module.done:
                ctx.checkpoint.maybe_save(module.step, module.resume_state)
        return module.run_output()
    finally:
        module.close()


class EnvStepBudget:
    """``step`` and ``done`` of a module whose budget is ``total_steps`` env steps, counted in ``env_steps``."""

    env_steps: int
    total_steps: int

    @property
    def step(self) -> int:
        return self.env_steps

    @property
    def done(self) -> bool:
        return self.env_steps >= self.total_steps
