"""The policy-gradient family: closed-form log-probs, returns, the REINFORCE estimators and their measured variance,
A2C / PPO-clip / PPO-KL end to end on tiny budgets, determinism."""

from __future__ import annotations

from pathlib import Path

import lightning
import numpy as np
import pytest
import torch

from baselines.pg_common import StochasticPolicy, discounted_returns
from baselines.reinforce import Reinforce
from suite import registry
from suite.api import RunContext, RunOutput


def fit(baseline: str, env: str, seed: int = 0, **overrides: object) -> RunOutput:
    lightning.seed_everything(seed, verbose=False)
    entry = registry.get_baseline(baseline)
    hparams = {**entry.defaults, "eval_episodes": 2, "n_evals": 1, **overrides}
    return entry.fit(RunContext("policy_gradient", baseline, env, seed, "test", baseline, hparams, Path("/tmp")))


@pytest.mark.parametrize("discrete", [True, False])
def test_closed_form_log_prob_and_entropy_match_torch_distributions(discrete: bool):
    torch.manual_seed(0)
    policy = StochasticPolicy(4, 3 if discrete else 0, 2, [16], "tanh", log_std_init=-0.3)
    obs = torch.randn(7, 4)
    actions = policy.sample(obs)
    logp, entropy = policy.log_prob_entropy(obs, actions)
    if discrete:
        dist = torch.distributions.Categorical(logits=policy(obs))
        want_logp, want_entropy = dist.log_prob(actions), dist.entropy()
    else:
        dist = torch.distributions.Normal(policy(obs), policy.log_std.exp())
        want_logp, want_entropy = dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)
    torch.testing.assert_close(logp, want_logp)
    torch.testing.assert_close(entropy, want_entropy)
    assert policy.mode(obs).shape == actions.shape


def test_discounted_returns_to_go():
    rewards = torch.tensor([[1.0, 2.0], [1.0, 0.0], [1.0, 0.0]])  # env 1's episode ended after one step
    returns = discounted_returns(rewards, gamma=0.5)
    torch.testing.assert_close(returns[:, 0], torch.tensor([1.75, 1.5, 1.0]))
    torch.testing.assert_close(returns[:, 1], torch.tensor([2.0, 0.0, 0.0]))


def test_reinforce_loss_is_the_score_function_estimator():
    """The loss is -1/N sum log pi(a|s) (G - b); a constant-zero critic makes both estimators equal."""
    lightning.seed_everything(0, verbose=False)
    module = Reinforce("CartPole-v1", 0, n_episodes=3, total_steps=1000)
    length = module.collect_episodes()
    mask = module.buf_mask[:length]
    assert module.env_steps == int(mask.sum()) and mask[0].all()
    assert all(r == n for r, n in zip(module.envs.finished_returns, mask.sum(0).tolist(), strict=True))
    for p in module.critic[-1].parameters():
        torch.nn.init.zeros_(p)  # V = 0: the baseline estimator must equal the plain one
    torch.testing.assert_close(module.policy_loss(length, True), module.policy_loss(length, False))


def test_reinforce_measures_both_estimators_at_every_checkpoint():
    out = fit("reinforce", "CartPole-v1", use_baseline=True, total_steps=1500, n_episodes=4, grad_batches=3)
    with_b, without = out.curves["grad_var_with_baseline"], out.curves["grad_var_without_baseline"]
    assert len(with_b) == len(without) == 3  # 25%, 50% and 100% of the budget
    assert [x for x, _ in with_b] == sorted(x for x, _ in with_b)
    assert all(v > 0 for _, v in with_b + without)
    ratio = max(a / b for (_, a), (_, b) in zip(with_b, without, strict=True))
    assert out.metrics["grad_var_ratio_max"] == pytest.approx(ratio)
    assert out.steps >= 1500 and out.metrics["threshold_reached"] in (0.0, 1.0)


@pytest.mark.parametrize("baseline,overrides", [
    ("a2c", {}),
    ("ppo_pg", {"objective": "clip", "n_steps": 64, "n_epochs": 2}),
    ("ppo_pg", {"objective": "kl", "n_steps": 64, "n_epochs": 2}),
])
@pytest.mark.parametrize("env", ["CartPole-v1", "InvertedPendulum-v5"])
def test_actor_critics_run_and_are_deterministic(baseline: str, overrides: dict, env: str):
    first = fit(baseline, env, total_steps=1024, **overrides)
    assert first.steps >= 1024 and np.isfinite(first.metrics["final_return"])
    assert first.curves["eval_return"] and first.metrics["steps_to_threshold"] == 1024  # not solved in 1k steps
    again = fit(baseline, env, total_steps=1024, **overrides)
    assert again.metrics == first.metrics
    if overrides.get("objective") == "kl":
        betas = [b for _, b in first.curves["kl_beta"]]
        assert len(betas) == 2 and all(np.log2(b).is_integer() for b in betas)  # halved / doubled from 1
