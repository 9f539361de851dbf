"""DQN behaviour: learns CartPole, the four ablation cells run, no-replay and target-network semantics, determinism."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch

import baselines.dqn as dqn_module
from baselines.dqn import DQN, fit, train_dqn
from baselines.qnets import build_qnet
from suite.api import RunContext

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="lightning")

# CartPole settings the smoke profile also uses: Adam, small MLP, short exploration.
CARTPOLE = dict(optimizer="adam", lr=1e-3, hidden=[64, 64], batch_size=64, buffer_size=50_000, learning_starts=500,
                target_update=200, eps_decay_frames=5_000, eps_end=0.02, train_freq=1)
TINY = dict(CARTPOLE, total_frames=300, learning_starts=100, eval_every=150, eval_episodes=1, chunk=100)
VARIANTS = {
    "replay_target": dict(replay=True, target_network=True),
    "replay_only": dict(replay=True, target_network=False),
    "target_only": dict(replay=False, target_network=True),
    "neither": dict(replay=False, target_network=False),
}


def test_replay_target_learns_cartpole(tmp_path) -> None:
    hparams = dict(CARTPOLE, total_frames=6_000, eval_every=2_000, eval_episodes=10)
    ctx = RunContext(task="t", variant="replay_target", env="CartPole-v1", seed=0, profile="test", baseline="dqn",
                     hparams=hparams, run_dir=tmp_path)
    out = fit(ctx)
    assert out.metrics["best_mean_eval"] >= 150, out.curves["eval_return"]
    assert out.steps == 6_000 and out.step_unit == "frames"
    assert [x for x, _ in out.curves["eval_return"]] == [2000.0, 4000.0, 6000.0]


@pytest.mark.parametrize("variant", [*VARIANTS, "double", "dueling"])
def test_variants_build_and_run(variant: str) -> None:
    switches = VARIANTS.get(variant, {variant: True})
    module = train_dqn("CartPole-v1", 0, dict(TINY, **switches))
    out = module.run_output()
    assert np.isfinite(out.metrics["best_mean_eval"]) and len(out.curves["eval_return"]) == 2
    assert (module.q_target is not None) == switches.get("target_network", True)
    replay = switches.get("replay", True)
    assert out.extras["updates"] == (300 - 100 if replay else 300)  # no warm-up without replay, as MinAtar


def test_minatar_and_atari_networks_run() -> None:
    module = train_dqn("MinAtar/Breakout-v1", 0, dict(total_frames=120, learning_starts=40, eval_every=120,
                                                     eval_episodes=1, eval_max_steps=50, chunk=60))
    assert module.run_output().extras["updates"] == 80
    atari = train_dqn("ALE/Breakout-v5", 0, dict(buffer_size=200, dueling=True, total_frames=150, learning_starts=130,
                                                 batch_size=4, eval_every=150, eval_episodes=1, eval_max_steps=30,
                                                 chunk=150))
    assert atari.obs_shape == (4, 84, 84) and atari.buffer.frames.shape == (200, 84, 84)
    assert atari.buffer.frames.dtype == torch.uint8 and atari.run_output().extras["updates"] == 20
    # Breakout with random play loses lives within 150 steps: they are terminal for learning, not for the episode.
    assert atari.buffer.terminated.sum() > atari.buffer.first.sum() - 1


class _Recorder:
    """Wraps the training env and remembers every transition it produced."""

    def __init__(self, env) -> None:
        self.env, self.steps = env, []
        self.action_space = env.action_space

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.last = obs
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps.append((self.last.copy(), action, obs.copy()))
        self.last = obs
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()


def test_no_replay_learns_only_from_the_newest_transition(monkeypatch) -> None:
    envs: list[_Recorder] = []
    original_make_env = dqn_module.make_env

    def make_recorded(name, seed, stack_frames):
        env = original_make_env(name, seed, stack_frames=stack_frames)
        if not stack_frames:  # the training env
            envs.append(_Recorder(env))
            return envs[-1]
        return env

    batches = []
    monkeypatch.setattr(dqn_module, "make_env", make_recorded)
    original_latest = dqn_module.ReplayBuffer.latest

    def spy_latest(self):
        batch = original_latest(self)
        batches.append((len(envs[0].steps), batch))
        return batch

    monkeypatch.setattr(dqn_module.ReplayBuffer, "latest", spy_latest)
    monkeypatch.setattr(dqn_module.ReplayBuffer, "sample", lambda *a: pytest.fail("no-replay agent sampled"))
    module = train_dqn("CartPole-v1", 0, dict(TINY, replay=False, target_network=False, eval_episodes=0))
    assert module.buffer.capacity == 3  # holds nothing but the newest transition
    assert len(batches) == 300
    for n_steps, batch in batches:
        obs, action, next_obs = envs[0].steps[n_steps - 1]
        assert batch.obs.shape[0] == 1
        assert np.array_equal(batch.obs[0].numpy(), obs) and np.array_equal(batch.next_obs[0].numpy(), next_obs)
        assert int(batch.actions[0]) == action


def test_target_network_changes_only_every_c_updates(monkeypatch) -> None:
    c = 7
    history = []
    original_update = DQN.update

    def tracked(self, opt):
        loss = original_update(self, opt)
        history.append((self.n.updates, [p.detach().clone() for p in self.q_target.parameters()],
                        [p.detach().clone() for p in self.q.parameters()]))
        return loss

    monkeypatch.setattr(DQN, "update", tracked)
    module = train_dqn("CartPole-v1", 0, dict(TINY, target_update=c, eval_episodes=0))
    assert module.n.target_syncs == module.n.updates // c
    for (_, prev_target, prev_online), (n, target, online) in zip(history, history[1:]):
        target_changed = any(not torch.equal(a, b) for a, b in zip(prev_target, target))
        assert target_changed == (n % c == 0), f"update {n}"
        assert any(not torch.equal(a, b) for a, b in zip(prev_online, online))
        if n % c == 0:
            assert all(torch.equal(a, b) for a, b in zip(target, online))


def test_same_seed_same_metrics() -> None:
    runs = [train_dqn("CartPole-v1", seed, TINY).run_output() for seed in (5, 5, 6)]
    assert runs[0].metrics == runs[1].metrics and runs[0].curves == runs[1].curves
    assert runs[0].extras["mean_loss_per_chunk"] == runs[1].extras["mean_loss_per_chunk"]
    assert runs[0].extras["mean_loss_per_chunk"] != runs[2].extras["mean_loss_per_chunk"]


@pytest.mark.parametrize("kind, shape, dueling", [("mlp", (4,), False), ("minatar", (4, 10, 10), False),
                                                  ("minatar", (4, 10, 10), True), ("nature", (4, 84, 84), True)])
def test_greedy_fn_is_the_forward_argmax_and_follows_updates(kind: str, shape: tuple, dueling: bool) -> None:
    torch.manual_seed(0)
    q = build_qnet(kind, shape, 6, scale=1 / 255 if kind == "nature" else 1.0, dueling=dueling, hidden=(32, 32))
    greedy = q.greedy_fn()
    states = {"mlp": torch.randn(20, *shape), "minatar": (torch.rand(20, *shape) < 0.3).to(torch.uint8),
              "nature": torch.randint(0, 256, (20, *shape), dtype=torch.uint8)}[kind]
    for _ in range(2):
        with torch.no_grad():  # in-place steps, as the optimizer makes: the closure must see them
            for p in q.parameters():
                p.add_(torch.randn_like(p) * 0.2)
            expected = q(states).argmax(1)
        assert [greedy(s.numpy()) for s in states] == expected.tolist()
        assert len(set(expected.tolist())) > 1  # the states really disagree, so the check can fail


@pytest.mark.parametrize("kind, shape, dueling", [("mlp", (4,), False), ("minatar", (4, 10, 10), False),
                                                  ("minatar", (4, 10, 10), True), ("nature", (4, 84, 84), True)])
def test_forward_fn_gives_forwards_values_and_gradients_bit_for_bit(kind: str, shape: tuple, dueling: bool) -> None:
    """The update's closure (QNetwork.forward_fn) against the module's forward: same outputs, same gradients."""
    torch.manual_seed(0)
    q = build_qnet(kind, shape, 6, scale=1 / 255 if kind == "nature" else 1.0, dueling=dueling, hidden=(32, 32))
    forward = q.forward_fn()
    states = {"mlp": torch.randn(8, *shape), "minatar": (torch.rand(8, *shape) < 0.3).to(torch.uint8),
              "nature": torch.randint(0, 256, (8, *shape), dtype=torch.uint8)}[kind]
    grads = []
    for f in (q, forward):
        q.zero_grad(set_to_none=True)
        out = f(states)
        out.square().sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in q.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = grads
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_discounted_returns_by_hand() -> None:
    assert dqn_module.discounted_returns([1.0, 0.0, 2.0], 0.5) == [1.0 + 0.5 * 0.0 + 0.25 * 2.0, 1.0, 2.0]
    assert dqn_module.discounted_returns([], 0.99) == []


def test_q_overestimation_compares_the_nets_values_with_realised_returns(monkeypatch) -> None:
    """The final evaluation records max_a Q(s, a) at every visited state and the discounted return from there
    (van Hasselt et al. 2016); the metric is their mean difference, and recording it leaves the actions alone."""
    hp = dict(TINY, eval_episodes=2)
    module = train_dqn("CartPole-v1", 0, hp)
    out = module.run_output()
    estimates, realised = np.array(module.q_estimates).T
    assert estimates.size > 0
    # CartPole pays +1 per step, so G_t is a geometric sum of the steps left: 1 at the last, < 1 / (1 - gamma)
    assert realised.min() == 1.0 and realised.max() < 1 / (1 - module.hparams.gamma)
    assert out.metrics["q_overestimation"] == pytest.approx(float((estimates - realised).mean()))
    assert out.metrics["mean_q_estimate"] == pytest.approx(float(estimates.mean()))
    assert out.metrics["mean_discounted_return"] == pytest.approx(float(realised.mean()))
    # the same run without recording evaluates identically (same eval RNG stream, same greedy actions)
    plain = DQN.evaluate
    monkeypatch.setattr(DQN, "evaluate", lambda self, estimates=False: plain(self, False))
    again = train_dqn("CartPole-v1", 0, hp)
    assert again.q_estimates == [] and again.run_output().curves["eval_return"] == out.curves["eval_return"]


def test_updates_go_through_fabric_unless_the_run_is_plain_32_bit(monkeypatch, tmp_path) -> None:
    """32-bit on one device: raw ``loss.backward()`` (Fabric would add nothing); bf16-mixed: ``fabric.backward`` and
    Fabric's optimizer wrapper for every update, under Fabric's autocast."""
    import lightning

    calls = []
    original = lightning.Fabric.backward

    def counted(self, loss, *args, **kwargs):
        calls.append(loss.dtype)
        return original(self, loss, *args, **kwargs)

    monkeypatch.setattr(lightning.Fabric, "backward", counted)
    hp = dict(TINY, eval_episodes=0)
    plain = train_dqn("CartPole-v1", 0, hp)
    assert plain.n.updates == 200 and calls == []
    ctx = RunContext(task="t", variant="v", env="CartPole-v1", seed=0, profile="test", baseline="dqn", hparams=hp,
                     run_dir=tmp_path, precision="bf16-mixed")
    mixed = train_dqn("CartPole-v1", 0, hp, ctx)
    assert len(calls) == mixed.n.updates == 200
    assert mixed.run_output().extras["mean_loss_per_chunk"] != plain.run_output().extras["mean_loss_per_chunk"]
