"""SAC (Haarnoja et al. 2018) with Gaussian, gSDE or Lattice exploration (baselines.exploration).

Squashed policy a = tanh(u), u ~ N(mu(s), Sigma(s)) with the noise of the exploration head, twin Q-networks held
as one batched ensemble (one bmm per layer for both critics), polyak-averaged targets and the automatic entropy
coefficient (target entropy -|A|).  As in SB3, gSDE/Lattice redraw one shared perturbation matrix per gradient
step, so the actor's reparametrised sample carries gradients into the noise std.

One chunk of the Fabric driver (baselines.rl_loop) runs ``steps_per_call`` env steps with their interleaved
gradient steps; progress, logging and checkpoints (weights, optimizers, the filled part of the replay memory, envs,
RNG streams, curves) happen between chunks.  The replay memory stays in host memory, where the envs' transitions
arrive, and each sampled batch moves to the module's device in one copy per tensor; the acting networks get one
observation batch per env step and hand the action back to the CPU.

Defaults are rl-baselines3-zoo's gSDE SAC configuration for PyBullet locomotion (the one the Lattice authors
reuse): lr 7.3e-4, buffer 300k, batch 256, gamma 0.98, tau 0.02, 8 env steps then 8 gradient steps, 10k random
warm-up steps, 400x300 networks, log_std_init -3.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from baselines.exploration import ExplorationHead, exploration_output
from baselines.rl_loop import EnvStepBudget, fit_chunks
from baselines.rollout import ACTIVATIONS, EvalTracker, Normalizer, VecEnv, adam, complete_hparams, mlp
from suite.api import RunContext, RunOutput, check_finite
from suite.checkpoint import rng_state, set_rng_state
from suite.registry import register_baseline

DEFAULTS = dict(
    total_steps=1_000_000,  # env steps of training, summed over the parallel envs
    n_envs=1,  # parallel training envs
    lr=7.3e-4,  # Adam learning rate of actor, critics and entropy coefficient
    buffer_size=300_000,  # replay capacity in transitions
    batch_size=256,  # transitions per gradient step
    gamma=0.98,  # discount factor
    tau=0.02,  # Polyak rate of the target critics
    train_freq=8,  # vector-env steps between training rounds
    gradient_steps=8,  # gradient steps per training round
    learning_starts=10_000,  # env steps of uniform random actions before learning starts
    hidden=[400, 300],  # hidden widths of actor and critics
    activation="relu",  # hidden activation (see baselines.rollout.ACTIVATIONS)
    noise="gaussian",  # exploration noise: gaussian | gsde | lattice
    sde_sample_freq=-1,  # gSDE/Lattice: vector-env steps between noise resamples; -1 = only at training rounds
    log_std_init=-3.0,  # initial log-std of the gSDE/Lattice noise
    lattice_alpha=1.0,  # Lattice: weight of the correlated (latent-perturbation) noise
    std_clip=[1e-3, 1.0],  # Lattice: [min, max] of the noise std
    std_reg=0.0,  # Lattice: std of extra independent action noise
    use_expln=True,  # gSDE's expln: the std grows logarithmically above 1 instead of exponentially
    clip_mean=2.0,  # gSDE/Lattice: clip the pre-tanh action mean to +-clip_mean (SB3); 0 = no clip
    steps_per_call=1000,  # vector-env steps per chunk of the driver (progress, logging, checkpoints between chunks)
    eval_episodes=10,  # episodes per evaluation
    n_evals=10,  # evaluations over the run (learning-curve points)
)


class _OutputLayer(torch.autograd.Function):
    """``baddbmm(b, h, w)`` for the critics' one-unit output layer, with faster forms of two of autograd's gradients.

    MKL's batched GEMM is slow on these one-column shapes.  The gradient to ``h`` is the outer product g w^T (inner
    dimension 1): a broadcast multiply is ~10x faster and rounds each element the same single product.  The gradient
    to ``w``, h^T g, is computed as (g^T h)^T, ~8x faster: the same dot products, bit-identical on every shape tried
    (batch 1-512, width 16-400).  The floats are those of autograd's formulas (tests/test_sac.py checks).
    """

    @staticmethod
    def forward(ctx: object, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, w)
        return torch.baddbmm(b, h, w)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, w = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad
        return (grad * w.transpose(1, 2) if need_h else None,
                torch.bmm(grad.transpose(1, 2), h).transpose(1, 2) if need_w else None,
                grad.sum(1, keepdim=True) if need_b else None)


class QEnsemble(nn.Module):
    """``n`` independent MLP critics Q(s, a) evaluated together with batched matmuls; returns (n, B)."""

    def __init__(self, in_dim: int, hidden: list[int], n: int = 2, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        sizes = [in_dim, *hidden, 1]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(n_in)  # nn.Linear's default init, per member
            self.weights.append(nn.Parameter(torch.empty(n, n_in, n_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, n_out).uniform_(-bound, bound)))
        self.act = activation()
        # in place where autograd allows it (ReLU/tanh backward use the output): no fresh (n, B, hidden) buffer
        self._act_ = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_}.get(activation, self.act)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        h = torch.cat([obs, action], -1).unsqueeze(0).expand(self.weights[0].shape[0], -1, -1)
        *hidden, (w_out, b_out) = zip(self.weights, self.biases, strict=True)
        for w, b in hidden:
            h = self._act_(torch.baddbmm(b, h, w))
        return _OutputLayer.apply(h, w_out, b_out).squeeze(-1)


class SAC(EnvStepBudget, L.LightningModule):
    """Soft actor-critic with twin critics, target networks and a learned entropy coefficient."""

    def __init__(self, env_id: str, seed: int = 0, **hp: object) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(dict(complete_hparams(type(self).__name__, DEFAULTS, hp), env_id=env_id, seed=seed))
        hp = self.hparams
        self.envs = VecEnv(env_id, hp.n_envs, seed)
        obs_dim, act_dim, hidden = self.envs.obs_dim, self.envs.action_dim, list(hp.hidden)
        act_fn = ACTIVATIONS[hp.activation]
        self.actor = mlp([obs_dim, *hidden], act_fn)
        for layer in self.actor:  # in place (same floats): a gradient step runs the actor on two batches of 256
            if isinstance(layer, nn.ReLU):
                layer.inplace = True
        self.head = ExplorationHead(hidden[-1], act_dim, hp.noise, hp.log_std_init, hp.lattice_alpha,
                                    tuple(hp.std_clip), hp.std_reg, hp.use_expln, state_dependent_std=True,
                                    clip_mean=hp.clip_mean if hp.noise != "gaussian" else 0.0)
        self.critic = QEnsemble(obs_dim + act_dim, hidden, 2, act_fn)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_ent_coef = nn.Parameter(torch.zeros(1))
        self.target_entropy = -float(act_dim)
        self.norm = Normalizer(obs_dim, False, False, hp.gamma)
        self.calls = max(hp.total_steps // (hp.steps_per_call * hp.n_envs), 1)
        self.total_steps = total = self.calls * hp.steps_per_call * hp.n_envs
        self.tracker = EvalTracker(env_id, hp.eval_episodes, seed, total, hp.n_evals)
        # the policy acts in [-1, 1]; the env gets the affine image in [low, high]
        low, high = torch.from_numpy(self.envs.low), torch.from_numpy(self.envs.high)
        self.scale, self.shift = (high - low) / 2, (high + low) / 2
        cap = min(hp.buffer_size, total)
        # the replay memory, in host memory whatever the module's device (see the module docstring)
        self.buf = {"obs": torch.zeros(cap, obs_dim), "act": torch.zeros(cap, act_dim), "rew": torch.zeros(cap),
                    "next": torch.zeros(cap, obs_dim), "term": torch.zeros(cap)}
        self.buf_pos, self.buf_full = 0, False
        self.obs = torch.from_numpy(self.norm.obs(self.envs.obs))
        self.env_steps = 0

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr = self.hparams.lr
        actor_params = list(self.actor.parameters()) + list(self.head.parameters())
        return [adam(actor_params, lr), adam(self.critic.parameters(), lr), adam([self.log_ent_coef], lr)]

    # ------------------------------------------------------------------------------------ checkpoint / resume
    def resume_state(self) -> dict[str, Any]:
        """The whole state between two chunks: weights, optimizers, held noise, the filled part of the replay
        memory, envs, RNG streams, curves."""
        filled = self.buf["obs"].shape[0] if self.buf_full else self.buf_pos
        return {"module": self.state_dict(), "optimizers": [opt.state_dict() for opt in self.optimizers()],
                "noise": self.head.noise_state(),
                "replay": {k: v[:filled].clone() for k, v in self.buf.items()},
                "buf_pos": self.buf_pos, "buf_full": self.buf_full, "norm": self.norm.state_dict(),
                "envs": self.envs.state_dict(), "tracker": self.tracker.state_dict(), "rng": rng_state(),
                "obs": self.obs.clone(), "env_steps": self.env_steps}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`resume_state` (after ``fabric.setup``: the optimizers exist and the module is placed)."""
        self.load_state_dict(state["module"])
        for opt, saved in zip(self.optimizers(), state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.head.load_noise_state(state["noise"])
        for k, saved in state["replay"].items():
            self.buf[k][:saved.shape[0]] = saved
        self.buf_pos, self.buf_full = int(state["buf_pos"]), bool(state["buf_full"])
        self.norm.load_state_dict(state["norm"])
        self.envs.load_state_dict(state["envs"])
        self.tracker.load_state_dict(state["tracker"])
        self.obs, self.env_steps = state["obs"].clone(), int(state["env_steps"])
        set_rng_state(state["rng"])

    def sample_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparametrised squashed action in [-1, 1] and its log-probability (tanh change of variables)."""
        latent = self.actor(obs)
        u, mean = self.head(latent)
        a = torch.tanh(u)
        logp = self.head.distribution(latent, mean).log_prob(u) - torch.log1p(-a * a + 1e-6).sum(-1)
        return a, logp

    @torch.no_grad()
    def policy(self, obs: torch.Tensor) -> np.ndarray:
        """Deterministic policy for evaluation (tanh of the mean): CPU observations in, env units out."""
        action = torch.tanh(self.head.action_mean(self.actor(obs.to(self.log_ent_coef.device)))).cpu()
        return (action * self.scale + self.shift).numpy()

    @torch.no_grad()
    def env_step(self) -> None:
        hp, envs, n = self.hparams, self.envs, self.hparams.n_envs
        if self.env_steps < hp.learning_starts:
            action = torch.rand(n, self.envs.action_dim) * 2 - 1
        else:
            step, freq = self.env_steps // n, hp.sde_sample_freq
            # SB3: fresh matrices at every rollout start (gradient steps overwrite them with their own shared draw)
            # and every sde_sample_freq steps within a rollout
            if step % hp.train_freq == 0 or (freq > 0 and step % freq == 0) or self.head.perturbation is None:
                self.head.reset_noise(n)
            action = torch.tanh(self.head(self.actor(self.obs.to(self.log_ent_coef.device)))[0])
            action = action.to("cpu", torch.float32)  # into the host replay memory, in its dtype (bf16 under autocast)
        envs.step((action * self.scale + self.shift).numpy())
        done = envs.terminated | envs.truncated
        next_obs = np.where(done[:, None], envs.final_obs, envs.obs)
        idx = (torch.arange(n) + self.buf_pos) % self.buf["obs"].shape[0]
        self.buf["obs"][idx], self.buf["act"][idx] = self.obs, action
        self.buf["rew"][idx] = torch.from_numpy(envs.rewards).float()
        self.buf["next"][idx] = torch.from_numpy(self.norm.obs(next_obs))
        self.buf["term"][idx] = torch.from_numpy(envs.terminated).float()
        self.buf_full |= self.buf_pos + n >= self.buf["obs"].shape[0]
        self.buf_pos = (self.buf_pos + n) % self.buf["obs"].shape[0]
        self.obs = torch.from_numpy(self.norm.obs(envs.obs))
        self.env_steps += n

    def gradient_step(self) -> torch.Tensor:
        hp = self.hparams
        actor_opt, critic_opt, ent_opt = self.optimizers()
        size = self.buf["obs"].shape[0] if self.buf_full else self.buf_pos
        idx = torch.randint(size, (hp.batch_size,))
        device = self.log_ent_coef.device  # one host-to-device copy per tensor of the batch (none on the CPU)
        obs, act, rew, nxt, term = (self.buf[k][idx].to(device, non_blocking=True)
                                    for k in ("obs", "act", "rew", "next", "term"))
        with self.head.shared_terms():  # the actor's weights stay put until its optimizer step below
            self.head.reset_noise(1)
            a_pi, logp = self.sample_action(obs)
            ent_loss = -(self.log_ent_coef * (logp.detach() + self.target_entropy)).mean()
            ent_opt.zero_grad(set_to_none=True)
            self.manual_backward(ent_loss)
            ent_opt.step()
            ent_coef = self.log_ent_coef.detach().exp()
            with torch.no_grad():
                next_a, next_logp = self.sample_action(nxt)
        with torch.no_grad():
            q_next = self.critic_target(nxt, next_a).min(0).values - ent_coef * next_logp
            target = rew + (1.0 - term) * hp.gamma * q_next
        critic_loss = 0.5 * (self.critic(obs, act) - target).pow(2).mean(1).sum()
        critic_opt.zero_grad(set_to_none=True)
        self.manual_backward(critic_loss)
        critic_opt.step()
        self.critic.requires_grad_(False)  # the actor loss needs dQ/da only
        actor_loss = (ent_coef * logp - self.critic(obs, a_pi).min(0).values).mean()
        actor_opt.zero_grad(set_to_none=True)
        self.manual_backward(actor_loss)
        actor_opt.step()
        self.critic.requires_grad_(True)
        with torch.no_grad():  # else the in-place polyak step records autograd history on the target weights
            torch._foreach_lerp_(list(self.critic_target.parameters()), list(self.critic.parameters()), hp.tau)
        return critic_loss

    def train_chunk(self) -> dict[str, float]:
        """``steps_per_call`` env steps with their training rounds; returns the last critic loss."""
        hp = self.hparams
        loss = None
        for _ in range(hp.steps_per_call):
            self.env_step()
            if self.env_steps >= hp.learning_starts and (self.env_steps // hp.n_envs) % hp.train_freq == 0:
                for _ in range(hp.gradient_steps):
                    loss = self.gradient_step()
        metrics = {}
        if loss is not None:
            check_finite(loss, self.env_steps)
            metrics["critic_loss"] = float(loss.detach())
        if self.tracker.due(self.env_steps):
            self.tracker.run(self.env_steps, self.policy, self.norm, self.envs.finished_returns)
        return metrics

    def run_output(self) -> RunOutput:
        return exploration_output(self.actor, self.head, self.tracker, self.env_steps)

    def close(self) -> None:
        self.envs.close()
        self.tracker.envs.close()


@register_baseline("sac", defaults=DEFAULTS, env_families=("continuous_gym",), module_class=SAC,
                   renamed={"lr": "learning_rate", "lattice_alpha": "alpha"})
def fit(ctx: RunContext) -> RunOutput:
    """SAC with Gaussian / gSDE / Lattice exploration on continuous-control envs."""
    module = SAC(ctx.env, ctx.seed, **ctx.hparams)
    module.tracker.log = ctx.log
    return fit_chunks(module, ctx)
