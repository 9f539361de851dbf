"""REINFORCE (Williams 1992) without and with a learned state-value baseline.

One iteration samples ``n_episodes`` whole episodes (one per env, stepped together; an env whose episode ended
waits for the others) and ascends

    g = 1/N sum_episodes sum_t grad log pi(a_t|s_t) * (G_t - b(s_t))

with the returns-to-go G_t; b = 0 without a baseline, b = V(s_t) (an MLP regressed on G_t, its own Adam) with one
(without one, V is still fitted, when the variance is measured, but the policy never sees it).
Subtracting a function of the state leaves g unbiased and, when V is close to E[G_t|s_t], shrinks its variance.
That is measured directly (``grad_checkpoints``): with the policy's parameters frozen, ``grad_batches`` independent
batches of ``n_episodes`` episodes are drawn and both estimators are computed on each; ``grad_var_*`` is the total
variance (trace of the covariance over batches) of the flattened policy gradient, so with and without the
baseline are compared at exactly the same parameters and on the same episodes.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from baselines.pg_common import COMMON_DEFAULTS, PolicyGradientModule, discounted_returns, value_net
from baselines.pg_common import fit as fit_pg
from baselines.rollout import adam
from suite.api import RunContext, RunOutput
from suite.registry import register_baseline

DEFAULTS = dict(
    COMMON_DEFAULTS,
    use_baseline=False,  # subtract a learned state value V(s) from the returns
    n_episodes=8,  # whole episodes per update (one per env)
    lr=1e-3,  # Adam learning rate of the policy
    value_lr=1e-3,  # Adam learning rate of V
    value_epochs=5,  # V regression passes per update
    grad_checkpoints=[0.25, 0.5, 1.0],  # fractions of training at which the gradient variance is measured
    grad_batches=16,  # independent episode batches per gradient-variance measurement
)


class Reinforce(PolicyGradientModule):
    def __init__(self, env_id: str, seed: int = 0, **hp: object) -> None:
        super().__init__(env_id, seed, DEFAULTS, hp, n_envs=hp.get("n_episodes", DEFAULTS["n_episodes"]))
        hp = self.hparams
        self.critic = value_net(self.envs.obs_dim, list(hp.hidden), hp.activation)
        self.max_len = self.envs.envs[0].spec.max_episode_steps or 1000
        n, d = hp.n_episodes, self.envs.obs_dim
        act_shape = () if self.envs.n_actions else (self.envs.action_dim,)
        # non-persistent buffers: they follow the module to its device and stay out of its state dict
        t = self.max_len
        for name, value in dict(buf_obs=torch.zeros(t, n, d), buf_act=torch.zeros(t, n, *act_shape),
                                buf_rew=torch.zeros(t, n),
                                buf_mask=torch.zeros(t, n)).items():  # mask: 1 while the episode runs
            self.register_buffer(name, value, persistent=False)
        self.checkpoints = sorted(hp.grad_checkpoints)
        self.grad_curves: dict[str, list[tuple[float, float]]] = {"grad_var_with_baseline": [],
                                                                   "grad_var_without_baseline": []}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [adam(self.policy.parameters(), self.hparams.lr),
                adam(self.critic.parameters(), self.hparams.value_lr)]

    @torch.no_grad()
    def collect_episodes(self, count_steps: bool = True) -> int:
        """One whole episode per env into the buffers; returns the longest episode's length."""
        envs, policy, n = self.envs.envs, self.policy, self.hparams.n_episodes
        buf_obs, buf_act, buf_rew, buf_mask = self.buf_obs, self.buf_act, self.buf_rew, self.buf_mask
        obs = np.stack([env.reset()[0] for env in envs]).astype(np.float32)
        alive = np.ones(n, bool)
        totals = np.zeros(n)
        buf_mask.zero_()
        buf_rew.zero_()
        t = 0
        while alive.any() and t < self.max_len:
            x = torch.from_numpy(obs).to(buf_obs.device)
            action = policy.sample(x)
            env_action = self.env_actions(action)
            buf_obs[t], buf_act[t] = x, action
            buf_mask[t] = torch.from_numpy(alive.astype(np.float32))
            running = int(alive.sum())
            rewards = np.zeros(n, np.float32)  # 0 for the episodes that already ended
            for i in np.flatnonzero(alive):
                o, r, term, trunc, _ = envs[i].step(env_action[i])
                rewards[i] = r
                totals[i] += r
                obs[i] = o
                if term or trunc:
                    alive[i] = False
            buf_rew[t] = torch.from_numpy(rewards)  # one copy per step, not one per env
            if count_steps:
                self.env_steps += running
            t += 1
        if count_steps:
            self.envs.finished_returns.extend(totals.tolist())
        return t

    def policy_loss(self, length: int, baseline: bool) -> torch.Tensor:
        """-1/N sum_t log pi(a_t|s_t) (G_t - b(s_t)) over the buffered episodes."""
        obs, act, mask = self.buf_obs[:length], self.buf_act[:length], self.buf_mask[:length]
        returns = discounted_returns(self.buf_rew[:length], self.hparams.gamma)
        if baseline:
            with torch.no_grad():
                returns = returns - self.critic(obs).squeeze(-1)
        logp, _ = self.policy.log_prob_entropy(obs.reshape(-1, obs.shape[-1]),
                                               act.reshape(length * act.shape[1], *act.shape[2:]))
        return -(logp.view(length, -1) * returns * mask).sum() / self.hparams.n_episodes

    def measure_gradient_variance(self) -> None:
        """Total variance of both estimators over ``grad_batches`` fresh batches at the current parameters."""
        params = list(self.policy.parameters())
        grads: dict[bool, list[torch.Tensor]] = {False: [], True: []}
        for _ in range(self.hparams.grad_batches):
            length = self.collect_episodes(count_steps=False)
            for baseline in (False, True):
                flat = torch.autograd.grad(self.policy_loss(length, baseline), params)
                grads[baseline].append(torch.cat([g.reshape(-1) for g in flat]))
        for baseline, name in ((True, "grad_var_with_baseline"), (False, "grad_var_without_baseline")):
            stacked = torch.stack(grads[baseline])
            self.grad_curves[name].append((float(self.env_steps), float(stacked.var(0).sum())))

    def resume_state(self) -> dict[str, Any]:
        return {**super().resume_state(), "checkpoints": list(self.checkpoints),
                "grad_curves": copy.deepcopy(self.grad_curves)}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        super().load_resume_state(state)
        self.checkpoints, self.grad_curves = list(state["checkpoints"]), copy.deepcopy(state["grad_curves"])

    def train_chunk(self) -> dict[str, float]:
        """One update of the policy (and of V) from ``n_episodes`` fresh episodes; variance measurements when due."""
        hp = self.hparams
        while self.checkpoints and self.env_steps >= self.checkpoints[0] * hp.total_steps:
            self.checkpoints.pop(0)
            self.measure_gradient_variance()
        policy_opt, value_opt = self.optimizers()
        length = self.collect_episodes()
        loss = self.policy_loss(length, hp.use_baseline)
        policy_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        policy_opt.step()
        if hp.use_baseline or hp.grad_checkpoints:  # without a baseline V is fitted only to be measured
            obs, mask = self.buf_obs[:length], self.buf_mask[:length]
            returns = discounted_returns(self.buf_rew[:length], hp.gamma)
            for _ in range(hp.value_epochs):
                v_loss = ((self.critic(obs).squeeze(-1) - returns).pow(2) * mask).sum() / mask.sum()
                value_opt.zero_grad(set_to_none=True)
                self.manual_backward(v_loss)
                value_opt.step()
        if self.env_steps >= hp.total_steps and self.checkpoints:  # the last checkpoint, at the budget
            self.checkpoints = []
            self.measure_gradient_variance()
        self.end_iteration(loss)
        return {"loss": float(loss.detach())}

    def run_output(self) -> RunOutput:
        with_b = [y for _, y in self.grad_curves["grad_var_with_baseline"]]
        without = [y for _, y in self.grad_curves["grad_var_without_baseline"]]
        if with_b:
            ratios = np.asarray(with_b) / np.maximum(np.asarray(without), 1e-30)
            self.extras["metrics"] = {
                "grad_var_with_baseline": float(np.mean(with_b)),
                "grad_var_without_baseline": float(np.mean(without)),
                "grad_var_ratio_max": float(ratios.max()),  # worst checkpoint: with / without
                "grad_var_ratio_mean": float(ratios.mean()),
            }
            self.extras["curves"] = dict(self.grad_curves)
        return super().run_output()


@register_baseline("reinforce", defaults=DEFAULTS, env_families=("discrete_gym", "continuous_gym"),
                   module_class=Reinforce, renamed={"lr": "learning_rate", "value_lr": "value_learning_rate"})
def fit(ctx: RunContext) -> RunOutput:
    """REINFORCE with (use_baseline) or without a learned state-value baseline; measures gradient variance."""
    return fit_pg(Reinforce(ctx.env, ctx.seed, **ctx.hparams), ctx)
