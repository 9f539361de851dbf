"""A2C: the synchronous form of A3C (Mnih et al. 2016), as in SB3 and OpenAI baselines.

``n_envs`` envs step together for ``n_steps`` steps; the advantage of each step is its n-step return (bootstrapped
from V at the end of the segment, GAE lambda = 1 by default) minus V(s_t), and one RMSprop step descends

    -mean(log pi(a_t|s_t) A_t) + vf_coef * mean((R_t - V(s_t))^2) - ent_coef * mean(H(pi(.|s_t)))

with the gradient clipped to ``max_grad_norm``.  Defaults are SB3's A2C (n_steps 5, lr 7e-4, RMSprop alpha 0.99,
eps 1e-5, vf_coef 0.5, max_grad_norm 0.5, 64x64 tanh), with an entropy bonus of 0.01 (A3C's).
"""

from __future__ import annotations

from typing import Any

import torch

from baselines.optim import FusedRMSprop
from baselines.pg_common import COMMON_DEFAULTS, PolicyGradientModule, Segment, collect_segment, gae, value_net
from baselines.pg_common import fit as fit_pg
from suite.api import RunContext, RunOutput
from suite.registry import register_baseline

DEFAULTS = dict(
    COMMON_DEFAULTS,
    n_envs=8,  # parallel envs
    n_steps=5,  # steps per env per update (n-step returns)
    lr=7e-4,  # RMSprop learning rate
    rms_alpha=0.99,  # RMSprop smoothing constant
    rms_eps=1e-5,  # RMSprop epsilon
    gae_lambda=1.0,  # GAE lambda (1 = plain n-step returns)
    ent_coef=0.01,  # entropy bonus coefficient
    vf_coef=0.5,  # value-loss coefficient
    max_grad_norm=0.5,  # gradient-norm clip
    updates_per_step=16,  # A2C updates per chunk of the driver (speed only: progress and logging between chunks)
)


class A2C(PolicyGradientModule):
    def __init__(self, env_id: str, seed: int = 0, **hp: object) -> None:
        super().__init__(env_id, seed, DEFAULTS, hp)
        hp, envs = self.hparams, self.envs
        self.critic = value_net(envs.obs_dim, list(hp.hidden), hp.activation)
        self.seg = Segment(hp.n_steps, hp.n_envs, envs.obs_dim, () if envs.n_actions else (envs.action_dim,))
        self.seg.next_obs = torch.from_numpy(envs.obs).float()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # torch's foreach RMSprop, bit for bit, without its per-step Python (baselines/optim.py)
        return FusedRMSprop(self.parameters(), lr=self.hparams.lr, alpha=self.hparams.rms_alpha,
                            eps=self.hparams.rms_eps)

    def resume_state(self) -> dict[str, Any]:
        seg = self.seg
        return {**super().resume_state(), "next_obs": seg.next_obs.clone(), "next_start": seg.next_start.clone()}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        super().load_resume_state(state)
        self.seg.next_obs, self.seg.next_start = state["next_obs"].clone(), state["next_start"].clone()

    def train_chunk(self) -> dict[str, float]:
        for _ in range(self.hparams.updates_per_step):
            loss = self.update()
            if self.done:
                break
        return {"loss": float(loss.detach())}

    def update(self) -> torch.Tensor:
        hp, seg, opt = self.hparams, self.seg, self.optimizers()
        collect_segment(self, seg)
        adv, returns = gae(seg, self.critic, hp.gamma, hp.gae_lambda)
        obs = seg.obs.view(-1, seg.obs.shape[-1])
        actions = seg.actions.view(obs.shape[0], *seg.actions.shape[2:])
        logp, entropy = self.policy.log_prob_entropy(obs, actions)
        values = self.critic(obs).squeeze(-1)
        loss = (-(logp * adv.view(-1)).mean() + hp.vf_coef * (returns.view(-1) - values).pow(2).mean()
                - hp.ent_coef * entropy.mean())
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        torch.nn.utils.clip_grad_norm_(self.parameters(), hp.max_grad_norm, foreach=True)
        opt.step()
        self.end_iteration(loss)
        return loss


@register_baseline("a2c", defaults=DEFAULTS, env_families=("discrete_gym", "continuous_gym"), module_class=A2C,
                   renamed={"lr": "learning_rate"})
def fit(ctx: RunContext) -> RunOutput:
    """A2C: synchronous advantage actor-critic with n-step returns and an entropy bonus."""
    return fit_pg(A2C(ctx.env, ctx.seed, **ctx.hparams), ctx)
