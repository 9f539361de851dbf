"""The RL baselines' Fabric driver (baselines/rl_loop.py) against the Trainer loops it replaced (commit 6a565a5).

The modules of that commit (``baselines/{dqn,ppo,sac,a2c,pg_common,exploration,rollout}.py``) are loaded from git
into a throw-away package next to today's, in this process, and both train the same hyperparameters on one
thread.  Measured: the time from the start of the first chunk (old: ``training_step``) to the end of the last, so
the driver's per-chunk work and the Trainer's per-step work between them are in, the one-off set-up is out; it is
divided by the number of updates (DQN: gradient steps; PPO: minibatch steps; SAC: gradient steps; A2C: updates).
Each figure is the median of ``ROUNDS`` interleaved runs in alternating order (old, new, new, old, ...), so load
drifts and position effects hit both alike.  Target: the new driver is not slower (ratio old/new time per update
>= 0.97: single runs on a loaded 2-core host scatter by +-20%, their medians by ~2%).

Measured on the loaded 2-core AVX2 host (a 2-process sweep and other jobs running; per-update times ~3x idle),
old/new time per update: DQN CartPole 0.99 (the same raw update; Fabric's wrappers, which 32-bit DQN skips, would
cost ~15 us = ~2%), DQN MinAtar 1.00, PPO 1.03, SAC 1.05, A2C 1.01 (the Trainer's manual_backward and
LightningOptimizer cost more than Fabric's wrappers).

    OMP_NUM_THREADS=1 pytest benchmarks/bench_rl_driver.py --benchmark-disable -s
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning
import pytest
import torch
from timing import alternating_medians

ROOT = Path(__file__).resolve().parent.parent
OLD_COMMIT = "6a565a5"
OLD_FILES = ("dqn", "ppo", "sac", "a2c", "pg_common", "exploration", "rollout")
ROUNDS = 6
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {  # name: (baseline module, env, hyperparameters)
    "dqn_cartpole": ("dqn", "CartPole-v1", dict(optimizer="adam", lr=1e-3, hidden=[64, 64], batch_size=32,
                                                buffer_size=10_000, learning_starts=200, total_frames=2_200,
                                                eval_episodes=0, chunk=500)),
    "dqn_minatar": ("dqn", "MinAtar/Breakout-v0", dict(batch_size=32, buffer_size=10_000, learning_starts=100,
                                                       total_frames=1_100, eval_episodes=0, chunk=500)),
    "ppo": ("ppo", "InvertedPendulum-v5", dict(total_steps=4096, n_envs=4, n_steps=256, batch_size=64, n_epochs=4,
                                               hidden=[64, 64], n_evals=1, eval_episodes=1)),
    "sac": ("sac", "InvertedPendulum-v5", dict(total_steps=800, learning_starts=200, steps_per_call=200,
                                               hidden=[64, 64], batch_size=64, n_evals=1, eval_episodes=1)),
    "a2c": ("a2c", "CartPole-v1", dict(total_steps=6400, n_evals=1, eval_episodes=1)),
}


def _old_package() -> str:
    """Import the commit's RL modules as ``rl_old.<name>`` (their ``baselines.`` imports of these files rewired,
    registration a no-op); returns the package name."""
    if "rl_old" in sys.modules:
        return "rl_old"
    folder = Path(tempfile.mkdtemp(prefix="rl-old-")) / "rl_old"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in OLD_FILES:
        source = subprocess.run(["git", "show", f"{OLD_COMMIT}:baselines/{name}.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        for other in OLD_FILES:
            source = source.replace(f"from baselines.{other} import", f"from rl_old.{other} import")
        (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder.parent))
    import suite.registry

    register = suite.registry.register_baseline
    suite.registry.register_baseline = lambda *a, **k: (lambda fn: fn)
    try:
        for name in OLD_FILES:
            importlib.import_module(f"rl_old.{name}")
    finally:
        suite.registry.register_baseline = register
    return "rl_old"


class _Span:
    """First start to last end of the calls of one method (the training chunks), and how many calls."""

    def __init__(self) -> None:
        self.start, self.end, self.calls = float("inf"), 0.0, 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            self.start = min(self.start, time.perf_counter())
            try:
                return fn(*args, **kwargs)
            finally:
                self.end, self.calls = time.perf_counter(), self.calls + 1

        return timed


def _updates(name: str, module: Any) -> int:  # noqa: ANN401
    hp = CASES[name][2]
    if name.startswith("dqn"):
        return module.n.updates
    if name == "ppo":
        return (hp["total_steps"] // (hp["n_envs"] * hp["n_steps"])) * hp["n_epochs"] * (
            hp["n_envs"] * hp["n_steps"] // hp["batch_size"])
    if name == "sac":
        return (hp["total_steps"] - hp["learning_starts"]) // 8 * 8 + 8  # rounds of 8 gradient steps from the start
    return module.env_steps // (module.hparams.n_envs * module.hparams.n_steps)


def _old_context(*args: Any) -> Any:  # noqa: ANN401
    """A RunContext with the ``trainer_kwargs`` the old ``fit_rl`` asks for (whether or not today's still has it)."""
    from suite.api import RunContext

    class OldContext(RunContext):
        def trainer_kwargs(self, **overrides: Any) -> dict[str, Any]:  # noqa: ANN401
            return dict(accelerator="cpu", devices=1, precision="32-true", deterministic=True, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(self.run_dir), **overrides)

    return OldContext(*args)


def per_update_seconds(name: str, old: bool) -> float:
    """Seconds per update of one run of case ``name`` on the old (Trainer) or the new (Fabric) driver."""
    from suite.api import RunContext
    from suite.registry import get_baseline

    kind, env, hp = CASES[name]
    package = _old_package() if old else "baselines"
    source = importlib.import_module(f"{package}.{kind}")
    hparams = {**get_baseline(kind).defaults, **hp}
    lightning.seed_everything(0, verbose=False)
    span = _Span()
    args = ("bench", name, env, 0, "bench", kind, hparams, Path(tempfile.gettempdir()))
    ctx = _old_context(*args) if old else RunContext(*args)
    if kind == "dqn":
        module = source.DQN(env=env, seed=0, **hparams)
    else:
        module = getattr(source, {"ppo": "PPO", "sac": "SAC", "a2c": "A2C"}[kind])(env, 0, **hparams)
        module.tracker.due = lambda step: False  # training alone
    method = "training_step" if old else "train_chunk"
    setattr(module, method, span.wrap(getattr(module, method)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if old and kind == "dqn":
            lightning.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False, deterministic=True, max_epochs=1,
                              num_sanity_val_steps=0, log_every_n_steps=10**9).fit(module)
        elif old:
            source.fit_rl(module, ctx)
        else:
            from baselines.rl_loop import fit_chunks

            fit_chunks(module, ctx, dataloader_seed_draw=kind != "dqn")
    return (span.end - span.start) / _updates(name, module)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def _has_old_commit() -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"], cwd=ROOT,
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_old_commit(), reason=f"needs the git history with commit {OLD_COMMIT}")
@pytest.mark.parametrize("name", list(CASES))
def test_fabric_driver_is_not_slower_per_update(benchmark: Any, name: str) -> None:  # noqa: ANN401
    per_update = alternating_medians({"trainer": lambda: per_update_seconds(name, old=True),
                                      "fabric": lambda: per_update_seconds(name, old=False)}, ROUNDS)
    result = {"trainer_us": per_update["trainer"] * 1e6, "fabric_us": per_update["fabric"] * 1e6,
              "overhead_us": (per_update["fabric"] - per_update["trainer"]) * 1e6,
              "speed_ratio": per_update["trainer"] / per_update["fabric"]}
    benchmark.extra_info.update(result)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n{name} per update", {k: round(v, 3) for k, v in result.items()})
    assert result["speed_ratio"] >= 0.97
