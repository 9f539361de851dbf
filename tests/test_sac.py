"""SAC with the three exploration noises runs end to end; gSDE noise is held across the sampling interval."""

from __future__ import annotations

from pathlib import Path

import lightning
import pytest
import torch

from suite.api import RunContext
from suite.registry import get_baseline


@pytest.mark.parametrize("noise", ["gaussian", "gsde", "lattice"])
def test_sac_runs_and_reports_metrics(tmp_path: Path, noise: str) -> None:
    entry = get_baseline("sac")
    lightning.seed_everything(0, verbose=False)
    torch.set_num_threads(1)
    hparams = {**entry.defaults, "noise": noise, "total_steps": 600, "learning_starts": 200, "hidden": [32, 32],
               "batch_size": 32, "steps_per_call": 300, "n_evals": 1, "eval_episodes": 2, "log_std_init": -1.0}
    out = entry.fit(RunContext("t", noise, "Pendulum-v1", 0, "test", "sac", hparams, tmp_path))
    assert out.steps == 600
    assert set(out.metrics) == {"eval_return", "energy", "noise_correlation"}
    assert -2000 < out.metrics["eval_return"] < 0  # Pendulum returns are negative, bounded by ~-16.3 per step
    assert 0.0 <= out.metrics["energy"] <= 4.0  # torque in [-2, 2]


def test_sac_actor_update_reaches_the_noise_std() -> None:
    """The reparametrised gSDE sample carries gradient into log_std (SB3 redraws matrices per gradient step)."""
    from baselines.sac import SAC

    torch.manual_seed(0)
    module = SAC("Pendulum-v1", 0, noise="lattice", hidden=[16, 16], total_steps=100, n_evals=1, eval_episodes=1)
    module.head.reset_noise(1)
    a, logp = module.sample_action(torch.randn(8, module.envs.obs_dim))
    (a.sum() + logp.sum()).backward()
    assert module.head.log_std.grad is not None and module.head.log_std.grad.abs().sum() > 0
    assert module.actor[0].weight.grad.abs().sum() > 0


def test_target_critic_stays_a_detached_leaf_after_updates() -> None:
    from baselines.sac import SAC

    torch.manual_seed(0)
    module = SAC("Pendulum-v1", 0, noise="gsde", hidden=[16, 16], total_steps=100, batch_size=8, learning_starts=20,
                 n_evals=1, eval_episodes=1)
    module.optimizers = lambda: [opt for opt in module.configure_optimizers()]  # outside Fabric
    module.manual_backward = lambda loss: loss.backward()
    before = [p.clone() for p in module.critic_target.parameters()]
    for _ in range(30):
        module.env_step()
    for _ in range(3):
        module.gradient_step()
    after = list(module.critic_target.parameters())
    assert all(p.is_leaf and not p.requires_grad and p.grad_fn is None for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))  # polyak moved them


@pytest.mark.parametrize("batch, width", [(32, 32), (256, 256)])
def test_critic_output_layer_gradients_are_autograds_floats(batch: int, width: int) -> None:
    """QEnsemble's custom output layer and in-place activations give autograd's own floats, values and gradients."""
    from baselines.sac import QEnsemble

    torch.manual_seed(0)
    q = QEnsemble(23, [width, width], 2)
    obs, act = torch.randn(batch, 17), torch.randn(batch, 6, requires_grad=True)

    def plain(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        h = torch.cat([obs, action], -1).unsqueeze(0).expand(2, -1, -1)
        for i, (w, b) in enumerate(zip(q.weights, q.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            h = torch.relu(h) if i < len(q.weights) - 1 else h
        return h.squeeze(-1)

    def run(forward: object) -> list[torch.Tensor]:
        for p in [*q.parameters(), act]:
            p.grad = None
        out = forward(obs, act)
        (out.min(0).values * torch.linspace(-1, 1, batch)).sum().backward()
        return [out.detach(), act.grad.clone(), *(p.grad.clone() for p in q.parameters())]

    for ours, ref in zip(run(q), run(plain), strict=True):
        assert torch.equal(ours, ref)
