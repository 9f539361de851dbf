"""PPO (Schulman et al. 2017) with Gaussian, gSDE or Lattice exploration (baselines.exploration).

One chunk of the Fabric driver (baselines.rl_loop) is one PPO iteration: collect ``n_steps`` x ``n_envs``
transitions, then ``n_epochs`` passes of minibatch updates; progress, logging and checkpoints happen between
iterations.  The rollout buffers live on the module's device (observations and actions cross to and from the CPU
envs once per step); the minibatch permutation is drawn from the CPU generator wherever the networks run.
The rollout only runs the actor's mean path and the noise; values and old log-probabilities are computed
afterwards in one batched pass (the parameters do not change during a rollout, so they are the same numbers),
which is where most of the speed over SB3 comes from, besides preallocated buffers and no distribution objects.

Defaults follow rl-baselines3-zoo's gSDE PPO configuration for PyBullet locomotion (16 envs x 512 steps,
minibatch 128, 20 epochs, lr 3e-5, clip 0.4, GAE 0.9, log_std_init -2, 256x256 ReLU, normalised obs and reward).
``init_action_std`` > 0 overrides ``log_std_init``: the log-std is shifted so that the action noise's per-joint std
over the first observations equals it, whatever the noise type (``ExplorationHead.match_initial_std``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from baselines.exploration import ExplorationHead, exploration_output, maybe_reset_noise
from baselines.rl_loop import EnvStepBudget, fit_chunks
from baselines.rollout import ACTIVATIONS, EvalTracker, Normalizer, VecEnv, adam, complete_hparams, mlp
from suite.api import RunContext, RunOutput, check_finite
from suite.checkpoint import rng_state, set_rng_state
from suite.registry import register_baseline

DEFAULTS = dict(
    total_steps=1_000_000,  # env steps of training, summed over the parallel envs
    n_envs=16,  # parallel training envs
    n_steps=512,  # steps per env per rollout
    batch_size=128,  # minibatch size of the PPO epochs
    n_epochs=20,  # passes over each rollout
    lr=3e-5,  # Adam learning rate
    gamma=0.99,  # discount factor
    gae_lambda=0.9,  # GAE lambda
    clip_range=0.4,  # PPO clip range of the probability ratio
    ent_coef=0.0,  # entropy bonus coefficient
    vf_coef=0.5,  # value-loss coefficient
    max_grad_norm=0.5,  # gradient-norm clip
    hidden=[256, 256],  # hidden widths of actor and critic
    activation="relu",  # hidden activation (see baselines.rollout.ACTIVATIONS)
    norm_obs=True,  # normalise observations by running mean and std
    norm_reward=True,  # scale rewards by the running std of the discounted return
    noise="gaussian",  # exploration noise: gaussian | gsde | lattice
    sde_sample_freq=4,  # gSDE/Lattice: rollout steps between noise resamples; -1 = once per rollout
    log_std_init=-2.0,  # initial log-std of the action noise
    lattice_alpha=1.0,  # Lattice: weight of the correlated (latent-perturbation) noise
    std_clip=[1e-3, 10.0],  # Lattice: [min, max] of the noise std
    std_reg=0.0,  # Lattice: std of extra independent action noise
    use_expln=False,  # gSDE's expln: the std grows logarithmically above 1 instead of exponentially
    init_action_std=0.0,  # > 0: shift the log-std so the initial per-joint action std is this (any noise type)
    eval_episodes=10,  # episodes per evaluation
    n_evals=10,  # evaluations over the run (learning-curve points)
)


class PPO(EnvStepBudget, L.LightningModule):
    """Clipped-objective PPO with GAE, separate actor and critic MLPs and one Adam optimiser."""

    def __init__(self, env_id: str, seed: int = 0, **hp: object) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(dict(complete_hparams(type(self).__name__, DEFAULTS, hp), env_id=env_id, seed=seed))
        hp = self.hparams
        self.env_id, self.seed = env_id, seed
        self.envs = VecEnv(env_id, hp.n_envs, seed)
        obs_dim, act_dim, hidden = self.envs.obs_dim, self.envs.action_dim, list(hp.hidden)
        act_fn = ACTIVATIONS[hp.activation]
        self.actor = mlp([obs_dim, *hidden], act_fn)
        self.head = ExplorationHead(hidden[-1], act_dim, hp.noise, hp.log_std_init, hp.lattice_alpha,
                                    tuple(hp.std_clip), hp.std_reg, hp.use_expln)
        self.critic = torch.nn.Sequential(mlp([obs_dim, *hidden], act_fn), torch.nn.Linear(hidden[-1], 1))
        self.norm = Normalizer(obs_dim, hp.norm_obs, hp.norm_reward, hp.gamma)
        self.iterations = max(hp.total_steps // (hp.n_envs * hp.n_steps), 1)
        self.total_steps = self.iterations * hp.n_envs * hp.n_steps
        self.tracker = EvalTracker(env_id, hp.eval_episodes, seed, self.total_steps, hp.n_evals)
        t, n = hp.n_steps, hp.n_envs
        # non-persistent buffers: they follow the module to its device and stay out of checkpoints
        for name, value in dict(low=torch.from_numpy(self.envs.low), high=torch.from_numpy(self.envs.high),
                                buf_obs=torch.zeros(t, n, obs_dim), buf_act=torch.zeros(t, n, act_dim),
                                buf_rew=torch.zeros(t, n),
                                buf_start=torch.zeros(t, n),  # 1 where the step's obs begins a new episode
                                buf_boot=torch.zeros(t, n, obs_dim),  # final obs of time-limit truncations (for V)
                                buf_trunc=torch.zeros(t, n, dtype=torch.bool)).items():
            self.register_buffer(name, value, persistent=False)
        self.obs = torch.from_numpy(self.norm.obs(self.envs.obs, update=True))
        if hp.init_action_std > 0:  # equal initial exploration across noise types, over the first states
            with torch.no_grad():
                self.initial_action_std = self.head.match_initial_std(self.actor(self.obs), hp.init_action_std)
        self.episode_start = torch.ones(n)
        self.env_steps = 0

    # ------------------------------------------------------------------------------------ checkpoint / resume
    def resume_state(self) -> dict[str, Any]:
        """The whole state between two iterations: weights, optimizer, normaliser, envs, RNG streams, curves."""
        head = self.head
        return {"module": self.state_dict(), "optimizer": self.optimizers().state_dict(),
                "noise": head.noise_state(), "norm": self.norm.state_dict(),
                "envs": self.envs.state_dict(), "tracker": self.tracker.state_dict(), "rng": rng_state(),
                "obs": self.obs.clone(), "episode_start": self.episode_start.clone(), "env_steps": self.env_steps}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`resume_state` (after ``fabric.setup``: the optimizer exists and the module is placed)."""
        self.load_state_dict(state["module"])
        self.optimizers().load_state_dict(state["optimizer"])
        self.head.load_noise_state(state["noise"])
        self.norm.load_state_dict(state["norm"])
        self.envs.load_state_dict(state["envs"])
        self.tracker.load_state_dict(state["tracker"])
        self.obs, self.episode_start = state["obs"].clone(), state["episode_start"].clone()
        self.env_steps = int(state["env_steps"])
        set_rng_state(state["rng"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), self.hparams.lr, eps=1e-5)

    def env_action(self, gaussian_action: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(gaussian_action, self.high), self.low)

    @torch.no_grad()
    def policy(self, obs: torch.Tensor) -> np.ndarray:
        """Deterministic policy for evaluation: CPU observations in, env actions out."""
        return self.env_action(self.head.mean_net(self.actor(obs.to(self.low.device)))).cpu().numpy()

    @torch.no_grad()
    def collect_rollout(self) -> None:
        hp, envs, norm, head, actor = self.hparams, self.envs, self.norm, self.head, self.actor
        # locals: nn.Module attribute reads and writes are slow in a hot loop
        buf_obs, buf_act, buf_rew, buf_start = self.buf_obs, self.buf_act, self.buf_rew, self.buf_start
        device = buf_obs.device
        obs, start = self.obs.to(device), self.episode_start.to(device)
        with head.shared_terms():  # weights fixed during a rollout: Lattice's std once, not at every draw
            head.reset_noise(hp.n_envs)
            for t in range(hp.n_steps):
                if t > 0:
                    maybe_reset_noise(head, t, hp.sde_sample_freq, hp.n_envs)
                action, _ = head(actor(obs))
                envs.step(self.env_action(action).cpu().numpy())
                buf_obs[t], buf_act[t], buf_start[t] = obs, action, start
                done = envs.terminated | envs.truncated
                buf_rew[t] = torch.from_numpy(norm.reward(envs.rewards, done))
                trunc = envs.truncated & ~envs.terminated
                if trunc.any():
                    self.buf_trunc[t] = torch.from_numpy(trunc)
                    self.buf_boot[t, trunc] = torch.from_numpy(norm.obs(envs.final_obs[trunc]))
                else:
                    self.buf_trunc[t] = False
                obs = torch.from_numpy(norm.obs(envs.obs, update=True)).to(device)
                start = torch.from_numpy(done.astype(np.float32)).to(device)
        self.obs, self.episode_start = obs, start
        self.env_steps += hp.n_steps * hp.n_envs

    @torch.no_grad()
    def advantages(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GAE(lambda) with time-limit bootstrapping; returns (advantages, returns, old log-probs), flattened."""
        hp = self.hparams
        t_len, n = hp.n_steps, hp.n_envs
        values = self.critic(self.buf_obs.view(t_len * n, -1)).view(t_len, n)
        rewards = self.buf_rew.clone()
        if self.buf_trunc.any():  # SB3: add gamma * V(final obs) to the reward of a truncated step
            rewards[self.buf_trunc] += hp.gamma * self.critic(self.buf_boot[self.buf_trunc]).squeeze(-1)
        next_value, next_nonterminal = self.critic(self.obs).squeeze(-1), 1.0 - self.episode_start
        adv = torch.zeros(t_len, n, device=values.device)
        last = torch.zeros(n, device=values.device)
        for t in reversed(range(t_len)):
            delta = rewards[t] + hp.gamma * next_value * next_nonterminal - values[t]
            last = delta + hp.gamma * hp.gae_lambda * next_nonterminal * last
            adv[t] = last
            next_value, next_nonterminal = values[t], 1.0 - self.buf_start[t]
        obs, act = self.buf_obs.view(t_len * n, -1), self.buf_act.view(t_len * n, -1)
        old_logp = self.head.distribution(self.actor(obs)).log_prob(act)
        return adv.view(-1), (adv + values).view(-1), old_logp

    def train_chunk(self) -> dict[str, float]:
        """One PPO iteration: a rollout, then ``n_epochs`` passes of minibatch updates; returns its last losses."""
        hp, opt = self.hparams, self.optimizers()
        self.collect_rollout()
        adv, returns, old_logp = self.advantages()
        obs, act = self.buf_obs.view(-1, self.buf_obs.shape[-1]), self.buf_act.view(-1, self.buf_act.shape[-1])
        n, bs = obs.shape[0], hp.batch_size
        params = [p for group in opt.param_groups for p in group["params"]]
        for _ in range(hp.n_epochs):
            perm = torch.randperm(n)  # on the CPU's generator wherever the module runs
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                dist = self.head.distribution(self.actor(obs[idx]))
                ratio = torch.exp(dist.log_prob(act[idx]) - old_logp[idx])
                a = adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg_loss = -torch.min(a * ratio, a * ratio.clamp(1 - hp.clip_range, 1 + hp.clip_range)).mean()
                v_loss = (returns[idx] - self.critic(obs[idx]).squeeze(-1)).pow(2).mean()
                loss = pg_loss + hp.vf_coef * v_loss
                if hp.ent_coef:
                    loss = loss - hp.ent_coef * dist.entropy().mean()
                opt.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm, foreach=True)
                opt.step()
        check_finite(loss, self.env_steps)
        metrics = {"loss": float(loss.detach()), "pg_loss": float(pg_loss.detach()), "v_loss": float(v_loss.detach())}
        if self.tracker.due(self.env_steps):
            self.tracker.run(self.env_steps, self.policy, self.norm, self.envs.finished_returns)
        return metrics

    def run_output(self) -> RunOutput:
        return exploration_output(self.actor, self.head, self.tracker, self.env_steps)

    def close(self) -> None:
        self.envs.close()
        self.tracker.envs.close()


@register_baseline("ppo", defaults=DEFAULTS, env_families=("continuous_gym",), module_class=PPO,
                   renamed={"lr": "learning_rate", "lattice_alpha": "alpha"})
def fit(ctx: RunContext) -> RunOutput:
    """PPO with Gaussian / gSDE / Lattice exploration on continuous-control envs."""
    module = PPO(ctx.env, ctx.seed, **ctx.hparams)
    module.tracker.log = ctx.log
    return fit_chunks(module, ctx)
