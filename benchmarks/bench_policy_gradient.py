"""Env steps/s of our A2C and REINFORCE against stable-baselines3's A2C on CartPole-v1, in one process.

Same hyperparameters on both sides (SB3's A2C defaults: 8 envs x 5 steps, RMSprop lr 7e-4 alpha 0.99 eps 1e-5,
gamma 0.99, GAE lambda 1, vf_coef 0.5, max_grad_norm 0.5, 64x64 tanh actor and critic) plus the entropy bonus 0.01;
one thread; each figure is the median of ``ROUNDS`` interleaved timings of training alone (no evaluation).
REINFORCE (8 whole episodes per update, no variance checkpoints) is timed beside them for the record.
Goal: our A2C >= 1.5x SB3's.

    OMP_NUM_THREADS=1 pytest benchmarks/bench_policy_gradient.py --benchmark-disable -s
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning
import pytest
import torch
from timing import interleaved_medians, our_names

ENV = "CartPole-v1"
ROUNDS = 3
STEPS = 8000
A2C_HP = dict(n_steps=5, learning_rate=7e-4, gamma=0.99, gae_lambda=1.0, ent_coef=0.01, vf_coef=0.5,
              max_grad_norm=0.5)


def _sb3_a2c(steps: int) -> float:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    model = A2C("MlpPolicy", make_vec_env(ENV, n_envs=8, seed=0), seed=0, device="cpu", **A2C_HP)
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def _ours(algo: str, steps: int) -> float:
    from baselines.a2c import A2C
    from baselines.reinforce import Reinforce
    from baselines.rl_loop import fit_chunks
    from suite.api import RunContext

    lightning.seed_everything(0, verbose=False)
    if algo == "a2c":
        module = A2C(ENV, 0, **our_names(A2C_HP), n_envs=8, total_steps=steps, n_evals=1, eval_episodes=1)
    else:
        module = Reinforce(ENV, 0, n_episodes=8, total_steps=steps, grad_checkpoints=[], n_evals=1, eval_episodes=1)
    module.tracker.due = lambda step: False  # time training only, as SB3's learn() without callbacks
    ctx = RunContext("bench", algo, ENV, 0, "bench", algo, {}, Path("/tmp"))
    start = time.perf_counter()
    fit_chunks(module, ctx)
    return module.env_steps / (time.perf_counter() - start)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_a2c_speed(benchmark: object) -> None:
    speeds = interleaved_medians({"sb3_a2c": lambda: _sb3_a2c(STEPS), "a2c": lambda: _ours("a2c", STEPS),
                       "reinforce": lambda: _ours("reinforce", STEPS)}, ROUNDS)
    speeds["a2c_over_sb3"] = speeds["a2c"] / speeds["sb3_a2c"]
    speeds["reinforce_over_sb3_a2c"] = speeds["reinforce"] / speeds["sb3_a2c"]
    benchmark.extra_info.update(speeds)
    benchmark.pedantic(_ours, args=("a2c", 2000), rounds=1, iterations=1)
    print("A2C / REINFORCE steps/s", speeds)
    assert speeds["a2c"] >= 1.5 * speeds["sb3_a2c"]
