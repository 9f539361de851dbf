"""Shared parts of the policy-gradient family (REINFORCE, A2C, PPO-clip / PPO-KL of the ``policy_gradient`` task).

* :class:`StochasticPolicy`: an MLP giving a categorical (discrete actions) or a diagonal Gaussian with a
  state-independent log std (continuous actions); log-probabilities and entropies in closed form, without
  ``torch.distributions`` objects (they cost more than the small networks' forward passes).
* :class:`PolicyGradientModule`: the Lightning shell every algorithm of the family subclasses (each writes
  ``train_chunk``; :func:`fit` trains it on the Fabric driver of baselines.rl_loop): vectorised envs
  (:class:`baselines.rollout.VecEnv`), the evaluation schedule (:class:`baselines.rollout.EvalTracker`), the
  env-step budget, the first env step at which the mean of the last 10 training returns reaches ``threshold_fraction``
  of the time limit (the best return of CartPole / InvertedPendulum: +1 per step alive) and the run's metrics.
* :func:`collect_segment` + :func:`gae`: fixed-length rollouts of ``n_steps`` x ``n_envs`` into preallocated buffers
  with time-limit bootstrapping (A2C and PPO); :func:`discounted_returns` for REINFORCE's whole episodes.

Rollout buffers are non-persistent module buffers: they follow the module to its device; observations and actions
cross to and from the CPU envs once per step.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import lightning as L
import numpy as np
import torch

from baselines.rl_loop import fit_chunks
from baselines.rollout import ACTIVATIONS, EvalTracker, Normalizer, VecEnv, complete_hparams, mlp
from suite.api import RunContext, RunOutput, check_finite
from suite.checkpoint import rng_state, set_rng_state

LOG_2PI = math.log(2 * math.pi)
COMMON_DEFAULTS = dict(
    total_steps=100_000,  # env steps of training, summed over the parallel envs
    gamma=0.99,  # discount factor
    hidden=[64, 64],  # hidden widths of policy and value networks
    activation="tanh",  # hidden activation (see baselines.rollout.ACTIVATIONS)
    log_std_init=0.0,  # initial log-std of the Gaussian policy (continuous actions)
    threshold_fraction=0.95,  # steps_to_threshold: when the last 10 returns average this fraction of the time limit
    eval_episodes=10,  # episodes per evaluation
    n_evals=10,  # evaluations over the run (learning-curve points)
)


class StochasticPolicy(torch.nn.Module):
    """pi(a|s): softmax over ``n_actions`` logits, or N(mean(s), exp(log_std)^2) over ``action_dim`` dimensions."""

    def __init__(self, obs_dim: int, n_actions: int, action_dim: int, hidden: list[int], activation: str,
                 log_std_init: float) -> None:
        super().__init__()
        self.discrete = n_actions > 0
        self.body = mlp([obs_dim, *hidden], ACTIVATIONS[activation])
        self.out = torch.nn.Linear(hidden[-1], n_actions if self.discrete else action_dim)
        self.log_std = None if self.discrete else torch.nn.Parameter(torch.full((action_dim,), log_std_init))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (discrete) or the Gaussian mean (continuous)."""
        return self.out(self.body(obs))

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        head = self(obs)
        if self.discrete:
            return torch.multinomial(torch.softmax(head, -1), 1).squeeze(-1)
        return head + self.log_std.exp() * torch.randn_like(head)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        head = self(obs)
        return head.argmax(-1) if self.discrete else head

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a|s) and the entropy of pi(.|s), one per row of ``obs``."""
        head = self(obs)
        if self.discrete:
            logp_all = torch.log_softmax(head, -1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)
        log_std = self.log_std.expand_as(head)
        z = (actions - head) * torch.exp(-log_std)
        logp = (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)
        return logp, (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)


def value_net(obs_dim: int, hidden: list[int], activation: str) -> torch.nn.Sequential:
    return torch.nn.Sequential(mlp([obs_dim, *hidden], ACTIVATIONS[activation]), torch.nn.Linear(hidden[-1], 1))


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """Returns-to-go G_t = r_t + gamma G_{t+1} along dim 0 of ``(T, n)`` rewards (zero-padded after each episode)."""
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


class PolicyGradientModule(L.LightningModule):
    """Envs, policy, evaluation and metrics shared by the family; subclasses write ``train_chunk``."""

    def __init__(self, env_id: str, seed: int, defaults: dict, hp: dict, n_envs: int | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(dict(complete_hparams(type(self).__name__, defaults, hp), env_id=env_id, seed=seed))
        hp = self.hparams
        self.env_id, self.seed = env_id, seed
        self.envs = VecEnv(env_id, hp.n_envs if n_envs is None else n_envs, seed)
        envs = self.envs
        self.policy = StochasticPolicy(envs.obs_dim, envs.n_actions, envs.action_dim, list(hp.hidden),
                                       hp.activation, hp.log_std_init)
        self.norm = Normalizer(envs.obs_dim, False, False, hp.gamma)  # no normalisation: raw observations
        self.tracker = EvalTracker(env_id, hp.eval_episodes, seed, hp.total_steps, hp.n_evals)
        self.register_buffer("low", torch.from_numpy(envs.low), persistent=False)
        self.register_buffer("high", torch.from_numpy(envs.high), persistent=False)
        self.total_steps = hp.total_steps
        self.env_steps = 0
        self.steps_to_threshold: float | None = None
        # CartPole and the MuJoCo balance tasks pay +1 per step alive: the best return is the time limit
        self.return_threshold = hp.threshold_fraction * (envs.envs[0].spec.max_episode_steps or 1000)
        self.extras: dict = {}

    @property
    def step(self) -> int:
        return self.env_steps

    @property
    def done(self) -> bool:
        return self.env_steps >= self.total_steps  # REINFORCE's iterations have no fixed size: stop at the budget

    def resume_state(self) -> dict[str, Any]:
        """The whole state between two chunks: weights, optimizers, envs, RNG streams, counters and curves
        (subclasses add their own)."""
        opts = self.optimizers()
        return {"module": self.state_dict(),
                "optimizers": [opt.state_dict() for opt in (opts if isinstance(opts, list) else [opts])],
                "envs": self.envs.state_dict(), "tracker": self.tracker.state_dict(), "rng": rng_state(),
                "env_steps": self.env_steps, "steps_to_threshold": self.steps_to_threshold,
                "extras": copy.deepcopy(self.extras)}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`resume_state` (after ``fabric.setup``: the optimizers exist and the module is placed)."""
        self.load_state_dict(state["module"])
        opts = self.optimizers()
        for opt, saved in zip(opts if isinstance(opts, list) else [opts], state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.envs.load_state_dict(state["envs"])
        self.tracker.load_state_dict(state["tracker"])
        set_rng_state(state["rng"])
        self.env_steps, self.steps_to_threshold = int(state["env_steps"]), state["steps_to_threshold"]
        self.extras = copy.deepcopy(state["extras"])

    def env_actions(self, actions: torch.Tensor) -> np.ndarray:
        """Sampled actions -> what the envs take (continuous ones clipped to the box, as SB3 does), on the CPU."""
        if self.envs.n_actions:
            return actions.cpu().numpy()
        return torch.maximum(torch.minimum(actions, self.high), self.low).cpu().numpy()

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor) -> np.ndarray:
        """Deterministic policy for evaluation: CPU observations in, env actions out."""
        return self.env_actions(self.policy.mode(obs.to(self.low.device)))

    def end_iteration(self, loss: torch.Tensor) -> None:
        """Divergence check, threshold bookkeeping and evaluation, after every update."""
        check_finite(loss, self.env_steps)
        recent = self.envs.finished_returns[-10:]
        if self.steps_to_threshold is None and len(recent) == 10 and np.mean(recent) >= self.return_threshold:
            self.steps_to_threshold = float(self.env_steps)
        if self.tracker.due(self.env_steps):
            self.tracker.run(self.env_steps, self.greedy, self.norm, self.envs.finished_returns)

    def run_output(self) -> RunOutput:
        curves = self.tracker.curves
        evals = [y for _, y in curves["eval_return"]]
        train = self.envs.finished_returns
        metrics = {
            "final_return": evals[-1] if evals else float("nan"),
            "best_return": max(evals) if evals else float("nan"),
            "mean_eval_return": float(np.mean(evals)) if evals else float("nan"),  # area under the eval curve
            "final_train_return": float(np.mean(train[-20:])) if train else float("nan"),
            # not reached within the budget: the budget itself (censored), flagged by threshold_reached = 0
            "steps_to_threshold": self.steps_to_threshold if self.steps_to_threshold is not None
            else float(self.hparams.total_steps),
            "threshold_reached": float(self.steps_to_threshold is not None),
        }
        metrics.update(self.extras.pop("metrics", {}))
        curves = {k: v for k, v in curves.items() if k != "energy"}
        curves.update(self.extras.pop("curves", {}))
        return RunOutput(metrics, curves, steps=self.env_steps, step_unit="env_steps", extras=self.extras)

    def close(self) -> None:
        self.envs.close()
        self.tracker.envs.close()


def fit(module: PolicyGradientModule, ctx: RunContext) -> RunOutput:
    """Train a module of the family on the run's Fabric (baselines.rl_loop), evaluations in the live log."""
    module.tracker.log = ctx.log
    return fit_chunks(module, ctx)


class Segment(torch.nn.Module):
    """Preallocated buffers of one ``n_steps`` x ``n_envs`` rollout (A2C, PPO): a submodule of the algorithm's
    module, so that they follow it to its device (non-persistent: not in its state dict)."""

    def __init__(self, n_steps: int, n_envs: int, obs_dim: int, action_shape: tuple[int, ...]) -> None:
        super().__init__()
        for name, value in dict(
            obs=torch.zeros(n_steps, n_envs, obs_dim), actions=torch.zeros(n_steps, n_envs, *action_shape),
            rewards=torch.zeros(n_steps, n_envs),
            starts=torch.zeros(n_steps, n_envs),  # 1 where the step's obs begins an episode
            truncated=torch.zeros(n_steps, n_envs, dtype=torch.bool),
            final_obs=torch.zeros(n_steps, n_envs, obs_dim),  # last obs of time-limit truncations (bootstrapped)
            next_obs=torch.zeros(n_envs, obs_dim), next_start=torch.ones(n_envs),
        ).items():
            self.register_buffer(name, value, persistent=False)


@torch.no_grad()
def collect_segment(module: PolicyGradientModule, seg: Segment) -> None:
    """Step ``module.envs`` for ``n_steps`` with the sampled policy, filling ``seg``; continues where the last
    segment stopped (``seg.next_obs`` / ``seg.next_start``)."""
    envs, policy = module.envs, module.policy
    # locals: nn.Module attribute reads cost a microsecond each in the step loop
    buf_obs, buf_act, buf_start, buf_rew = seg.obs, seg.actions, seg.starts, seg.rewards
    buf_trunc, buf_final = seg.truncated, seg.final_obs
    obs, start, device = seg.next_obs, seg.next_start, buf_obs.device
    for t in range(buf_obs.shape[0]):
        action = policy.sample(obs)
        envs.step(module.env_actions(action))
        buf_obs[t], buf_act[t], buf_start[t] = obs, action, start
        buf_rew[t] = torch.from_numpy(envs.rewards)
        trunc = envs.truncated & ~envs.terminated
        buf_trunc[t] = torch.from_numpy(trunc)
        if trunc.any():
            buf_final[t, trunc] = torch.from_numpy(envs.final_obs[trunc]).float().to(device)
        obs = torch.from_numpy(envs.obs).float().to(device)
        start = torch.from_numpy((envs.terminated | envs.truncated).astype(np.float32)).to(device)
    seg.next_obs, seg.next_start = obs, start
    module.env_steps += buf_obs.shape[0] * buf_obs.shape[1]


def gae(seg: Segment, critic: torch.nn.Module, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and value targets ``(T, n)``; lambda = 1 gives A2C's n-step returns.  A step cut by
    the time limit adds gamma * V(final obs) to its reward, as SB3 does."""
    t_len, n = seg.rewards.shape
    with torch.no_grad():
        truncated = seg.truncated.any()
        batch = [seg.obs.view(t_len * n, -1), seg.next_obs] + ([seg.final_obs[seg.truncated]] if truncated else [])
        all_values = critic(torch.cat(batch)).squeeze(-1)  # one pass over every state that needs a value
        values, next_value = all_values[:t_len * n].view(t_len, n), all_values[t_len * n:t_len * n + n]
        rewards = seg.rewards.clone()
        if truncated:
            rewards[seg.truncated] += gamma * all_values[t_len * n + n:]
        next_nonterminal = 1.0 - seg.next_start
        adv = torch.zeros(t_len, n, device=values.device)
        last = torch.zeros(n, device=values.device)
        for t in reversed(range(t_len)):
            delta = rewards[t] + gamma * next_value * next_nonterminal - values[t]
            last = delta + gamma * lam * next_nonterminal * last
            adv[t] = last
            next_value, next_nonterminal = values[t], 1.0 - seg.starts[t]
    return adv, adv + values
