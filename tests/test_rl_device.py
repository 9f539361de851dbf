"""Device handling of the RL baselines without a GPU, on PyTorch's ``meta`` device: tensors there have shapes and a
device but no data, so any op that mixes a meta tensor with a CPU one of more than one element fails, as it would
between a GPU and the CPU.  Rollout storage must follow the module; replay memories stay in host memory and their
sampled batches must reach the module's device; an update must run there end to end.  (Ops that read data on the
host, ``bool(t.any())`` or ``.numpy()``, cannot run on meta at all, so the env-stepping halves are not covered.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

META = torch.device("meta")


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", module="lightning")


def _plain_optimization(module: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
    """What Fabric would give the module, without Fabric (which has no meta accelerator)."""
    module.optimizers = lambda: optimizers if len(optimizers) > 1 else optimizers[0]
    module.manual_backward = lambda loss: loss.backward()


def test_rollout_buffers_follow_the_module_to_its_device() -> None:
    from baselines.a2c import A2C
    from baselines.ppo import PPO
    from baselines.ppo_pg import PPOPolicyGradient
    from baselines.reinforce import Reinforce

    small = dict(n_evals=1, eval_episodes=1)
    ppo = PPO("InvertedPendulum-v5", 0, n_envs=2, n_steps=8, hidden=[8, 8], total_steps=16, **small)
    a2c = A2C("CartPole-v1", 0, total_steps=80, hidden=[8, 8], **small)
    ppo_pg = PPOPolicyGradient("CartPole-v1", 0, n_steps=8, total_steps=64, hidden=[8, 8], **small)
    reinforce = Reinforce("CartPole-v1", 0, n_episodes=2, total_steps=64, hidden=[8, 8], **small)
    storage = {ppo: ["buf_obs", "buf_act", "buf_rew", "buf_start", "buf_boot", "buf_trunc", "low", "high"],
               a2c: ["seg.obs", "seg.actions", "seg.rewards", "seg.starts", "seg.truncated", "seg.final_obs",
                     "seg.next_obs", "seg.next_start"],
               ppo_pg: ["seg.obs", "seg.next_obs"], reinforce: ["buf_obs", "buf_act", "buf_rew", "buf_mask"]}
    for module, names in storage.items():
        state_keys = set(module.state_dict())
        module.to(META)
        for name in names:
            tensor = module.get_buffer(name)
            assert tensor.device == META, f"{type(module).__name__}.{name} stayed on {tensor.device}"
        assert set(module.state_dict()) == state_keys  # storage is not state: checkpoints hold only what matters
        module.close()


def test_dqn_update_runs_on_the_modules_device_from_the_host_replay_memory() -> None:
    from baselines.dqn import DQN

    module = DQN(env="MinAtar/Breakout-v1", seed=0, batch_size=4, learning_starts=5, total_frames=50, double=True)
    for _ in range(10):
        obs, _, terminated, _, _ = module.env.step(0)
        module.buffer.add(0, 1.0, terminated, obs)
    module.to(META)
    opt = module.configure_optimizers()
    module._forward, module._target_forward = module.q.forward_fn(), module.q_target.forward_fn()
    module._backward, module._discounts = torch.Tensor.backward, np.array([0.99, 0.0], dtype=np.float32)
    module._loss_sum = torch.zeros((), device=META)
    loss = module.update(opt)
    assert loss.device == META and all(p.device == META for p in module.parameters())
    assert module.buffer.frames.device.type == "cpu"  # the replay memory stays in host memory
    module.close()


def test_sac_gradient_step_runs_on_the_modules_device_from_the_host_replay_memory() -> None:
    from baselines.sac import SAC

    module = SAC("Pendulum-v1", 0, noise="gsde", hidden=[16, 16], total_steps=100, batch_size=8, learning_starts=20,
                 n_evals=1, eval_episodes=1)
    for _ in range(30):
        module.env_step()
    module.to(META)
    # SGD: the fused Adam kernel has no meta implementation; the optimizer is not what is tested here
    _plain_optimization(module, [torch.optim.SGD(p, lr=0.1) for p in (
        list(module.actor.parameters()) + list(module.head.parameters()), module.critic.parameters(),
        [module.log_ent_coef])])
    moved = []
    to = torch.Tensor.to

    def spy(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        out = to(tensor, *args, **kwargs)
        moved.append((tensor.device.type, out.device.type))
        return out

    torch.Tensor.to = spy
    try:
        loss = module.gradient_step()
    finally:
        torch.Tensor.to = to
    assert loss.device == META and module.head.p_a.device == META
    assert moved.count(("cpu", "meta")) == 5  # obs, action, reward, next obs, terminal: one copy each
    assert all(t.device.type == "cpu" for t in module.buf.values())
    module.close()
