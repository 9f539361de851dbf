"""PPO with the three exploration noises: learning, determinism, record contents."""

from __future__ import annotations

from pathlib import Path

import lightning
import pytest
import torch

from suite.api import RunContext, RunOutput
from suite.registry import get_baseline

SMALL = dict(n_envs=4, n_steps=256, batch_size=64, n_epochs=10, lr=1e-3, hidden=[64, 64],
             eval_episodes=5, log_std_init=0.0)


def run_ppo(tmp_path: Path, env: str, seed: int = 0, **overrides: object) -> RunOutput:
    entry = get_baseline("ppo")
    lightning.seed_everything(seed, verbose=False)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    hparams = {**entry.defaults, **SMALL, **overrides}
    ctx = RunContext("lattice_exploration", str(hparams["noise"]), env, seed, "test", "ppo", hparams, tmp_path)
    return entry.fit(ctx)


def test_ppo_learns_inverted_pendulum(tmp_path: Path) -> None:
    """Gaussian PPO balances the pole (max return 1000) within 8k steps; an untrained policy drops it in ~20."""
    out = run_ppo(tmp_path, "InvertedPendulum-v5", noise="gaussian", total_steps=8192, n_evals=2)
    first, last = out.curves["eval_return"][0][1], out.metrics["eval_return"]
    assert last >= 500, out.curves["eval_return"]
    assert out.steps == 8192 and out.curves["eval_return"][-1][0] == 8192
    assert first <= last


def test_ppo_lattice_run_is_deterministic_and_reports_noise_metrics(tmp_path: Path) -> None:
    kw = dict(noise="lattice", total_steps=1024, n_envs=2, n_steps=128, n_epochs=2, n_evals=1, eval_episodes=2)
    a = run_ppo(tmp_path, "HalfCheetah-v5", **kw)
    b = run_ppo(tmp_path, "HalfCheetah-v5", **kw)
    assert a.metrics == b.metrics and a.curves == b.curves
    assert set(a.metrics) == {"eval_return", "energy", "noise_correlation"}
    assert 0.0 < a.metrics["noise_correlation"] < 1.0  # 6 joints, correlated through W
    matrix = a.extras["noise_correlation_matrix"]
    assert len(matrix) == 6 and all(abs(matrix[i][i] - 1.0) < 1e-9 for i in range(6))
    assert a.metrics["energy"] > 0.0
    c = run_ppo(tmp_path, "HalfCheetah-v5", seed=1, **kw)
    assert c.metrics != a.metrics


def test_init_action_std_equalises_the_three_noises() -> None:
    """Equal initial exploration whatever the parametrisation: the per-joint noise std over the first states."""
    from baselines.ppo import PPO

    for noise in ("gaussian", "gsde", "lattice"):
        module = PPO("InvertedPendulum-v5", seed=0, noise=noise, n_envs=4, hidden=[64, 64], init_action_std=0.4)
        with torch.no_grad():
            cov = module.head.distribution(module.actor(module.obs)).covariance()
        assert cov.diagonal(dim1=-2, dim2=-1).sqrt().mean().item() == pytest.approx(0.4, rel=1e-5)
