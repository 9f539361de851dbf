"""Batched env stepping, running observation/reward normalisation and evaluation, shared by PPO and SAC.

Several gymnasium envs live in one process and are stepped in a Python loop over a preallocated batch (the same
work SB3's DummyVecEnv does, minus its wrappers); an episode that ends is reset at once and its last observation is
handed back separately so the algorithm can bootstrap on time-limit truncation.  Normalisation follows SB3's
VecNormalize: observations by a running mean/std (clipped to +-10), rewards by the running std of the discounted
return.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from baselines.optim import FusedAdam
from suite.envs.mujoco_envs import make_env
from suite.envs.snapshot import env_state, set_env_state


class RunningMeanStd:
    """Running mean and variance of a stream of batches (Chan et al. parallel update, float64)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        n = batch.shape[0]
        if n == 1:  # numpy's mean/var carry ~20 us of overhead each; a single row needs neither
            b_mean, b_var = batch[0], 0.0
        else:
            b_mean, b_var = batch.mean(0), batch.var(0)
        delta, total = b_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.var, self.count = m2 / total, total

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({"mean": self.mean, "var": self.var, "count": self.count})  # keeps scalar vs array

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


class Normalizer:
    """Observation (and optionally reward) normalisation with running statistics; ``frozen`` during evaluation."""

    def __init__(self, obs_dim: int, norm_obs: bool, norm_reward: bool, gamma: float, clip: float = 10.0) -> None:
        self.norm_obs, self.norm_reward, self.gamma, self.clip = norm_obs, norm_reward, gamma, clip
        self.obs_rms, self.ret_rms = RunningMeanStd((obs_dim,)), RunningMeanStd()
        self.returns: np.ndarray | None = None

    def obs(self, obs: np.ndarray, update: bool = False) -> np.ndarray:
        if not self.norm_obs:
            return obs.astype(np.float32)
        if update:
            self.obs_rms.update(obs)
        out = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"obs_rms": self.obs_rms.state_dict(), "ret_rms": self.ret_rms.state_dict(),
                "returns": copy.deepcopy(self.returns)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.returns = copy.deepcopy(state["returns"])

    def reward(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        if not self.norm_reward:
            return reward.astype(np.float32)
        self.returns = reward if self.returns is None else self.returns * self.gamma + reward
        self.ret_rms.update(self.returns)
        out = np.clip(reward / np.sqrt(self.ret_rms.var + 1e-8), -self.clip, self.clip).astype(np.float32)
        self.returns = np.where(done, 0.0, self.returns)
        return out


class VecEnv:
    """``n`` copies of one env stepped together; env ``i`` is seeded with ``seed + i`` at its first reset."""

    def __init__(self, env_id: str, n: int, seed: int) -> None:
        self.envs = [make_env(env_id) for _ in range(n)]
        space = self.envs[0].action_space
        self.n_actions = int(getattr(space, "n", 0))  # > 0 for a discrete action space (CartPole), which has no box
        if self.n_actions:
            self.low = self.high = np.zeros(0, np.float32)
        else:
            self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape))
        self.action_dim = int(np.prod(space.shape)) if not self.n_actions else 1
        for i, env in enumerate(self.envs):
            env.action_space.seed(seed + i)
        self.obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)]).astype(np.float64)
        self.rewards = np.zeros(n, np.float64)
        self.terminated = np.zeros(n, bool)
        self.truncated = np.zeros(n, bool)
        self.final_obs = np.zeros_like(self.obs)
        self.ep_return = np.zeros(n)
        self.finished_returns: list[float] = []

    def step(self, actions: np.ndarray) -> None:
        """Step every env; fills ``obs``, ``rewards``, ``terminated``, ``truncated`` and, where done, ``final_obs``."""
        for i, env in enumerate(self.envs):
            obs, reward, term, trunc, _ = env.step(actions[i])
            self.rewards[i], self.terminated[i], self.truncated[i] = reward, term, trunc
            self.ep_return[i] += reward
            if term or trunc:
                self.final_obs[i] = obs
                self.finished_returns.append(float(self.ep_return[i]))
                self.ep_return[i] = 0.0
                obs, _ = env.reset()
            self.obs[i] = obs

    def state_dict(self) -> dict[str, Any]:
        """The envs' states and the batch arrays between steps (see :func:`suite.envs.snapshot.env_state`)."""
        arrays = {k: getattr(self, k).copy() for k in ("obs", "rewards", "terminated", "truncated", "final_obs",
                                                       "ep_return")}
        return {"envs": [env_state(env) for env in self.envs], "finished_returns": list(self.finished_returns),
                **arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for env, saved in zip(self.envs, state["envs"], strict=True):
            set_env_state(env, saved)
        for k in ("obs", "rewards", "terminated", "truncated", "final_obs", "ep_return"):
            setattr(self, k, state[k].copy())
        self.finished_returns = list(state["finished_returns"])

    def close(self) -> None:
        for env in self.envs:
            env.close()


def evaluate(
    policy: Callable[[torch.Tensor], np.ndarray],
    envs: VecEnv,
    normalizer: Normalizer,
    seed: int,
) -> tuple[float, float, np.ndarray]:
    """Run one episode in each env of ``envs`` (reset with ``seed + i``) with the deterministic ``policy``.

    ``policy`` maps normalised observations to actions in env units.  Returns (mean episode return,
    energy = mean over steps and joints of the squared action, the normalised observations visited).
    """
    n = len(envs.envs)
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs.envs)]).astype(np.float64)
    returns, alive = np.zeros(n), np.ones(n, bool)
    sq_sum, n_steps, visited = 0.0, 0, []
    while alive.any():
        x = normalizer.obs(obs)
        visited.append(x[alive])
        actions = policy(torch.from_numpy(x))
        for i in np.flatnonzero(alive):
            o, r, term, trunc, _ = envs.envs[i].step(actions[i])
            returns[i] += r
            sq_sum += float(np.square(actions[i]).mean())
            n_steps += 1
            obs[i] = o
            alive[i] = not (term or trunc)
    return float(returns.mean()), sq_sum / max(n_steps, 1), np.concatenate(visited)


ACTIVATIONS: dict[str, type[torch.nn.Module]] = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}


def adam(params: object, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with the fused CPU kernel (one op per step instead of ~8 foreach ops) and a cached step
    (:class:`baselines.optim.FusedAdam`): the same update as ``torch.optim.Adam``."""
    return FusedAdam(params, lr=lr, eps=eps)


def complete_hparams(owner: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` under ``given``: what a module saves as ``self.hparams``, complete whatever subset a caller (a test,
    a benchmark) passed.  A key the module does not have is an error rather than silently left at its default."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"unknown {owner} hyperparameters: {unknown}")
    return {**defaults, **given}


def mlp(sizes: list[int], activation: type[torch.nn.Module] = torch.nn.ReLU) -> torch.nn.Sequential:
    """Linear layers with ``activation`` after each, including the last (it feeds an action or value layer)."""
    layers: list[torch.nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(n_in, n_out), activation()]
    return torch.nn.Sequential(*layers)


class EvalTracker:
    """Evaluation schedule, learning curves and the final metrics shared by the RL modules.

    ``act`` maps a batch of normalised observations to (env-unit actions, policy latents); the latents of the
    states visited in the last evaluation give the ``noise_correlation`` metric.
    """

    def __init__(self, env_id: str, episodes: int, seed: int, total_steps: int, n_evals: int) -> None:
        self.envs = VecEnv(env_id, episodes, seed + 10_000)  # eval seeds disjoint from training seeds
        self.seed, self.total_steps = seed + 10_000, total_steps
        self.every = max(total_steps // max(n_evals, 1), 1)
        self.next_at = self.every
        self.curves: dict[str, list[tuple[float, float]]] = {"eval_return": [], "energy": [], "train_return": []}
        self.last: dict[str, float] = {}
        self.visited = np.zeros((0, self.envs.obs_dim), np.float32)
        self.log: Callable[..., None] | None = None  # ctx.log: each evaluation goes to the run's live log

    def state_dict(self) -> dict[str, Any]:
        """Schedule, curves and last evaluation (the eval envs are reset with fixed seeds at every evaluation)."""
        return {"next_at": self.next_at, "curves": copy.deepcopy(self.curves), "last": dict(self.last),
                "visited": self.visited.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_at, self.curves = state["next_at"], copy.deepcopy(state["curves"])
        self.last, self.visited = dict(state["last"]), state["visited"].copy()

    def due(self, step: int) -> bool:
        return step >= self.next_at or step >= self.total_steps

    def run(self, step: int, policy: Callable[[torch.Tensor], np.ndarray], normalizer: Normalizer,
            train_returns: list[float]) -> None:
        ret, energy, self.visited = evaluate(policy, self.envs, normalizer, self.seed)
        self.curves["eval_return"].append((float(step), ret))
        self.curves["energy"].append((float(step), energy))
        if train_returns:
            self.curves["train_return"].append((float(step), float(np.mean(train_returns[-10:]))))
        self.last = {"eval_return": ret, "energy": energy}
        while self.next_at <= step:
            self.next_at += self.every
        if self.log is not None:
            self.log(step, eval_return=ret, energy=energy,
                     **({"train_return": self.curves["train_return"][-1][1]} if train_returns else {}))
