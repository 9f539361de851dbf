"""PPO for the policy-gradient comparison: the clipped surrogate or the adaptive KL penalty (Schulman et al. 2017,
Sec. 3 and 4), on discrete and continuous actions.

Each iteration collects ``n_steps`` x ``n_envs`` steps, computes GAE(lambda) advantages, then runs ``n_epochs``
passes of minibatch Adam steps on

    clip:  -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A))
    kl:    -mean(ratio * A) + beta * KL(pi_old || pi)

plus the value loss, with ratio = pi(a|s) / pi_old(a|s) and A normalised per minibatch.  After each iteration the KL
variant adapts beta as in Sec. 4: halve it if the mean KL d < d_targ / 1.5, double it if d > 1.5 d_targ.  KL(pi_old ||
pi) is estimated from the sampled actions as mean((ratio - 1) - log ratio) (unbiased and >= 0 per sample; the paper
does not say which estimator it used).  The suite's other PPO (baselines/ppo.py) is the continuous-only learner of
the exploration task (gSDE / Lattice noise); this one shares the family's policy and rollout (baselines/pg_common.py).
Defaults: the paper's MuJoCo setting (lr 3e-4, 10 epochs, minibatch 64, gamma 0.99, lambda 0.95, eps 0.2,
d_targ 0.01, beta_0 1) on 8 envs x 256 steps.
"""

from __future__ import annotations

from typing import Any

import torch

from baselines.pg_common import COMMON_DEFAULTS, PolicyGradientModule, Segment, collect_segment, gae, value_net
from baselines.pg_common import fit as fit_pg
from baselines.rollout import adam
from suite.api import RunContext, RunOutput
from suite.registry import register_baseline

DEFAULTS = dict(
    COMMON_DEFAULTS,
    objective="clip",  # clip (clipped surrogate) | kl (adaptive KL penalty)
    n_envs=8,  # parallel envs
    n_steps=256,  # steps per env per rollout
    batch_size=64,  # minibatch size of the epochs
    n_epochs=10,  # passes over each rollout
    lr=3e-4,  # Adam learning rate
    gae_lambda=0.95,  # GAE lambda
    clip_range=0.2,  # clip range of the probability ratio (objective=clip)
    kl_target=0.01,  # target KL per update (objective=kl): beta halves below target/1.5, doubles above 1.5 x target
    kl_beta_init=1.0,  # initial KL penalty coefficient beta (objective=kl)
    vf_coef=0.5,  # value-loss coefficient
    ent_coef=0.0,  # entropy bonus coefficient
    max_grad_norm=0.5,  # gradient-norm clip
)


class PPOPolicyGradient(PolicyGradientModule):
    def __init__(self, env_id: str, seed: int = 0, **hp: object) -> None:
        super().__init__(env_id, seed, DEFAULTS, hp)
        hp, envs = self.hparams, self.envs
        if hp.objective not in ("clip", "kl"):
            raise ValueError(f"objective must be 'clip' or 'kl', got {hp.objective!r}")
        self.critic = value_net(envs.obs_dim, list(hp.hidden), hp.activation)
        self.seg = Segment(hp.n_steps, hp.n_envs, envs.obs_dim, () if envs.n_actions else (envs.action_dim,))
        self.seg.next_obs = torch.from_numpy(envs.obs).float()
        self.beta = hp.kl_beta_init
        self.beta_curve: list[tuple[float, float]] = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), self.hparams.lr, eps=1e-5)

    def resume_state(self) -> dict[str, Any]:
        seg = self.seg
        return {**super().resume_state(), "next_obs": seg.next_obs.clone(), "next_start": seg.next_start.clone(),
                "beta": self.beta, "beta_curve": list(self.beta_curve)}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        super().load_resume_state(state)
        self.seg.next_obs, self.seg.next_start = state["next_obs"].clone(), state["next_start"].clone()
        self.beta, self.beta_curve = state["beta"], list(state["beta_curve"])

    def train_chunk(self) -> dict[str, float]:
        """One iteration: a rollout, ``n_epochs`` passes of minibatch updates, then (KL) the new beta."""
        hp, seg, opt = self.hparams, self.seg, self.optimizers()
        collect_segment(self, seg)
        adv, returns = gae(seg, self.critic, hp.gamma, hp.gae_lambda)
        obs = seg.obs.view(-1, seg.obs.shape[-1])
        actions = seg.actions.view(obs.shape[0], *seg.actions.shape[2:])
        adv, returns = adv.view(-1), returns.view(-1)
        with torch.no_grad():
            old_logp, _ = self.policy.log_prob_entropy(obs, actions)
        n = obs.shape[0]
        for _ in range(hp.n_epochs):
            perm = torch.randperm(n)  # on the CPU's generator wherever the module runs
            for start in range(0, n, hp.batch_size):
                idx = perm[start:start + hp.batch_size]
                logp, entropy = self.policy.log_prob_entropy(obs[idx], actions[idx])
                log_ratio = logp - old_logp[idx]
                ratio = log_ratio.exp()
                a = adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                kl = ((ratio - 1) - log_ratio).mean()
                if hp.objective == "clip":
                    eps = hp.clip_range
                    pg_loss = -torch.min(a * ratio, a * ratio.clamp(1 - eps, 1 + eps)).mean()
                else:
                    pg_loss = -(a * ratio).mean() + self.beta * kl
                v_loss = (returns[idx] - self.critic(obs[idx]).squeeze(-1)).pow(2).mean()
                loss = pg_loss + hp.vf_coef * v_loss - hp.ent_coef * entropy.mean()
                opt.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                torch.nn.utils.clip_grad_norm_(self.parameters(), hp.max_grad_norm, foreach=True)
                opt.step()
        if hp.objective == "kl":  # Sec. 4: adapt beta to the KL between the old and the updated policy
            with torch.no_grad():
                log_ratio = self.policy.log_prob_entropy(obs, actions)[0] - old_logp
                d = float(((log_ratio.exp() - 1) - log_ratio).mean())
            if d < hp.kl_target / 1.5:
                self.beta /= 2
            elif d > hp.kl_target * 1.5:
                self.beta *= 2
            self.beta_curve.append((float(self.env_steps), self.beta))
        self.end_iteration(loss)
        return {"loss": float(loss.detach())}

    def run_output(self) -> RunOutput:
        if self.beta_curve:
            self.extras["curves"] = {"kl_beta": self.beta_curve}
        return super().run_output()


@register_baseline("ppo_pg", defaults=DEFAULTS, env_families=("discrete_gym", "continuous_gym"),
                   module_class=PPOPolicyGradient, renamed={"lr": "learning_rate"})
def fit(ctx: RunContext) -> RunOutput:
    """PPO with the clipped surrogate (objective=clip) or the adaptive KL penalty (objective=kl)."""
    return fit_pg(PPOPolicyGradient(ctx.env, ctx.seed, **ctx.hparams), ctx)
