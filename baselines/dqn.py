"""DQN (Mnih et al. 2015) with the experience-replay x target-network ablation switches.

One LightningModule, read top to bottom:

* ``replay``: on -> uniform minibatches from a replay memory of ``buffer_size`` transitions after
  ``learning_starts`` warm-up frames; off -> every update uses only the transition just observed
  (batch of one, learning from the first frame), as the no-replay agents of Mnih et al. 2015
  (Extended Data Table 3) and Young & Tian 2019 (MinAtar ``--replayoff``).
* ``target_network``: on -> bootstrap from a copy synced every ``target_update`` updates;
  off -> bootstrap from the online network itself (with gradients stopped).
* extras: ``double`` (van Hasselt et al. 2016 targets) and ``dueling`` (Wang et al. 2016 head).

Huber loss (Nature's error clipping to [-1, 1]); epsilon-greedy with epsilon 1 during warm-up, then
decaying linearly to ``eps_end`` over ``eps_decay_frames``; evaluation episodes at epsilon 0.05 every
``eval_every`` frames and at the end.  ``best_mean_eval`` is the paper's "best average evaluation
score" (max over evaluation points of the mean return), ``final_mean_eval`` the last one.  A "frame" is
one agent step (one action), as in the paper's own counting (Extended Data Table 1).

Training runs on Lightning Fabric (``baselines.rl_loop``) in chunks of ``chunk`` frames: progress, the loss log,
the divergence check and checkpoints (weights, optimizer, the filled part of the replay memory, envs, RNG streams,
counters, curves) happen between chunks.  Inside a chunk the updates use Fabric's optimizer wrapper and
``manual_backward`` (``fabric.backward``), which apply the run's precision (loss scaling for 16-mixed); in plain
32-bit on one device they would add nothing but ~2% per update, so the update then calls ``loss.backward()`` and
the raw optimizer (``baselines.rl_loop.plain_updates``, decided from the run's settings).  The replay
buffer and its frames stay in host memory (``baselines.replay``); a sampled batch moves to the module's device in
one copy per tensor.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from baselines.optim import FusedAdam, FusedRMSprop
from baselines.qnets import build_qnet
from baselines.replay import ReplayBuffer
from baselines.rl_loop import fit_chunks, plain_updates
from suite.api import RunContext, RunOutput, check_finite
from suite.checkpoint import rng_state, set_rng_state
from suite.envs.gym_envs import FAMILY, env_info, lives, make_env
from suite.envs.snapshot import env_state, set_env_state
from suite.registry import register_baseline

# MinAtar's protocol (Young & Tian 2019, examples/dqn.py as of the 2019 commit 47cdec8: centered RMSProp with no
# gradient momentum; GRAD_MOMENTUM was defined there but never passed, and a 2024 commit passing it was reverted);
# the task spec switches to Nature's for `paper`.
DEFAULTS: dict = dict(
    replay=True,  # sample minibatches from a replay buffer; False = learn from each newest transition only
    target_network=True,  # bootstrap from a periodically synced copy of the Q-network; False = from itself
    double=False,  # Double DQN: the online network picks the next action, the target network values it
    dueling=False,  # dueling head: separate state-value and advantage streams
    net="auto",  # mlp | minatar | nature; auto = by env kind (classic control, MinAtar, Atari)
    hidden=[64, 64],  # hidden widths of the mlp network
    total_frames=100_000,  # agent steps of training
    buffer_size=100_000,  # replay capacity in transitions
    batch_size=32,  # transitions per update
    learning_starts=5_000,  # agent steps before the first update (and before epsilon starts decaying)
    train_freq=1,  # agent steps per update
    target_update=1_000,  # updates between target-network syncs
    gamma=0.99,  # discount factor
    optimizer="rmsprop",  # rmsprop | adam
    lr=2.5e-4,  # learning rate
    rms_alpha=0.95,  # RMSprop smoothing constant of the squared gradients
    rms_eps=0.01,  # RMSprop epsilon
    rms_momentum=0.0,  # RMSprop momentum
    rms_centered=True,  # centered RMSprop (normalise by the gradient's variance estimate)
    eps_start=1.0,  # epsilon-greedy exploration: initial epsilon
    eps_end=0.1,  # final epsilon
    eps_decay_frames=100_000,  # agent steps of the linear decay from eps_start to eps_end
    eval_eps=0.05,  # epsilon of the evaluation policy
    eval_every=10_000,  # agent steps between evaluations (and one at the end)
    eval_episodes=5,  # episodes per evaluation; 0 = no evaluation
    eval_max_steps=0,  # step cap of an evaluation episode; 0 = the env's own cap
    clip_rewards=True,  # train on the sign of the reward (in evaluation returns too)
    life_loss_terminal=True,  # losing a life ends the bootstrapped return (Atari), not the episode
    chunk=1_000,  # agent steps per chunk of the driver (progress, divergence checks and checkpoints between chunks)
)


@dataclass
class Counters:
    frames: int = 0  # agent steps taken in training
    updates: int = 0
    target_syncs: int = 0
    loss_n: int = 0  # updates in this chunk (for its mean loss)
    ep_return: float = 0.0
    lives: int | None = None


class DQN(L.LightningModule):
    def __init__(self, env: str = "CartPole-v1", seed: int = 0, **hparams) -> None:
        super().__init__()
        unknown = set(hparams) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown DQN hyperparameters: {sorted(unknown)}")
        self.save_hyperparameters(dict(DEFAULTS, **hparams, env=env, seed=seed))
        hp = self.hparams
        self.info = env_info(env)
        self.obs_shape = (self.info.frame_stack, *self.info.frame_shape) if self.info.frame_stack > 1 \
            else self.info.frame_shape
        net = hp.net if hp.net != "auto" else {"classic": "mlp", "minatar": "minatar", "atari": "nature"}[
            self.info.kind]
        with torch.random.fork_rng(devices=[]):  # weights depend on the seed only, not on who ran before
            torch.manual_seed(seed)
            self.q = build_qnet(net, self.obs_shape, self.info.n_actions, scale=self.info.obs_scale,
                                dueling=hp.dueling, hidden=tuple(hp.hidden))
        self._params = list(self.q.parameters())
        self.q_target = copy.deepcopy(self.q).requires_grad_(False) if hp.target_network else None
        self.automatic_optimization = False
        # oneDNN's per-call setup costs more than the convolution itself on 10x10 MinAtar frames.
        self.use_mkldnn = net != "minatar"
        # The no-replay agent keeps only the frames of the newest transition (and its stack history).
        capacity = hp.buffer_size if hp.replay else self.info.frame_stack + 2
        self.buffer = ReplayBuffer(capacity, self.info.frame_shape, self.info.frame_dtype, self.info.frame_stack,
                                   seed=seed)
        self.learning_starts = hp.learning_starts if hp.replay else 0
        self.rng = np.random.Generator(np.random.PCG64([seed, 1]))  # exploration
        self.eval_rng = np.random.Generator(np.random.PCG64([seed, 2]))
        self.total_steps = hp.total_frames
        self.plain_updates = False  # True: raw backward and optimizer step (set from the run's settings)
        self.env = make_env(hp.env, seed, stack_frames=False)
        self.eval_env = make_env(hp.env, seed + 10_000, stack_frames=True)
        self._greedy: Callable[[np.ndarray], int] | None = None
        # Hot-loop counters live on a plain object: nn.Module.__setattr__ costs microseconds per assignment.
        self.n = Counters()
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.eval_curve: list[tuple[float, float]] = []
        self.train_curve: list[tuple[float, float]] = []
        self.episode_returns: list[float] = []
        self.losses: list[float] = []
        self.q_estimates: list[tuple[float, float]] = []  # final evaluation: (max_a Q(s, a), discounted return)
        self._begin_episode(*self.env.reset())

    # ----------------------------------------------------------------------------------------- setup
    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        if hp.optimizer == "adam":
            # torch's fused kernel without its per-step Python bookkeeping (baselines.optim); same update rule.
            return FusedAdam(self.q.parameters(), lr=hp.lr)
        if hp.optimizer == "rmsprop":
            # torch's centered RMSprop: alpha = squared-gradient momentum, eps = min squared gradient, no momentum
            # (as MinAtar's 2019 code; Nature's "gradient momentum" is the centering average).
            # torch.optim.RMSprop(foreach=True) without its per-step Python bookkeeping (baselines.optim), same floats.
            return FusedRMSprop(self.q.parameters(), lr=hp.lr, alpha=hp.rms_alpha, eps=hp.rms_eps,
                                momentum=hp.rms_momentum, centered=hp.rms_centered)
        raise ValueError(f"unknown optimizer {hp.optimizer!r}")

    @property
    def step(self) -> int:
        return self.n.frames

    @property
    def done(self) -> bool:
        return self.n.frames >= self.total_steps

    # ------------------------------------------------------------------------------------ checkpoint / resume
    def resume_state(self) -> dict[str, Any]:
        """The whole state between two chunks: weights, optimizer, replay memory (its filled slots), both envs,
        the exploration/evaluation/replay generators and the global RNG streams, counters and curves."""
        return {"module": self.state_dict(), "optimizer": self.optimizers().state_dict(),
                "replay": self.buffer.state_dict(), "env": env_state(self.env), "eval_env": env_state(self.eval_env),
                "rng": self.rng.bit_generator.state, "eval_rng": self.eval_rng.bit_generator.state,
                "global_rng": rng_state(), "counters": dataclasses.asdict(self.n),
                "curves": copy.deepcopy({k: getattr(self, k) for k in _CURVES})}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`resume_state` (after ``fabric.setup``: the optimizer exists and the module is placed)."""
        self.load_state_dict(state["module"])
        self.optimizers().load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["replay"])
        set_env_state(self.env, state["env"])
        set_env_state(self.eval_env, state["eval_env"])
        self.rng.bit_generator.state, self.eval_rng.bit_generator.state = state["rng"], state["eval_rng"]
        set_rng_state(state["global_rng"])
        self.n = Counters(**state["counters"])
        for k, v in copy.deepcopy(state["curves"]).items():
            setattr(self, k, v)

    def _begin_episode(self, obs: np.ndarray, info: dict) -> None:
        self.buffer.add_first(obs)
        self.n.lives = lives(info)
        self.n.ep_return = 0.0

    # --------------------------------------------------------------------------------------- acting
    def epsilon(self) -> float:
        hp = self.hparams
        if self.n.frames < self.learning_starts:
            return 1.0
        done = (self.n.frames - self.learning_starts) / hp.eps_decay_frames
        return hp.eps_end if done >= 1.0 else hp.eps_start + (hp.eps_end - hp.eps_start) * done

    def greedy(self, state: np.ndarray) -> int:
        """The online net's greedy action for one state (``QNetwork.greedy_fn``, rebuilt every chunk)."""
        if self._greedy is None:
            self._greedy = self.q.greedy_fn()
        return self._greedy(state)

    # ------------------------------------------------------------------------------------- learning
    def train_chunk(self) -> dict[str, float]:
        """``chunk`` frames (fewer at the end of the budget) with their updates and evaluations; returns the
        chunk's mean loss (nothing before learning starts)."""
        hp = self.hparams
        opt = self.optimizers()
        if self.plain_updates:
            opt, self._backward = opt.optimizer, torch.Tensor.backward
        else:
            self._backward = self.manual_backward
        self._loss_sum = torch.zeros((), device=self.device)
        self.n.loss_n = 0
        self._greedy = self.q.greedy_fn()  # on this chunk's parameter storage (the module may have moved)
        self._forward = self.q.forward_fn()
        self._target_forward = self.q_target.forward_fn() if self.q_target is not None else self._forward
        # gamma * (1 - terminated) for terminated = 0 / 1, in float32 as torch computes it: a lookup, not two ops.
        self._discounts = np.array([hp.gamma, 0.0], dtype=np.float32)
        started, eval_before = time.perf_counter(), self.eval_seconds
        chunk_returns: list[float] = []
        # RMSProp's running averages of gradients that stay zero (dead ReLUs) decay into denormal floats,
        # on which x86 arithmetic is ~50x slower; flushing them to zero changes nothing above 1e-38.
        torch.set_flush_denormal(True)
        try:
            with torch.backends.mkldnn.flags(enabled=self.use_mkldnn and torch.backends.mkldnn.is_available()):
                self._run_chunk(min(hp.chunk, hp.total_frames - self.n.frames), opt, chunk_returns)
        finally:
            torch.set_flush_denormal(False)
        self.train_seconds += time.perf_counter() - started - (self.eval_seconds - eval_before)
        if chunk_returns:
            self.episode_returns += chunk_returns
            self.train_curve.append((float(self.n.frames), float(np.mean(chunk_returns))))
        if not self.n.loss_n:
            return {}
        mean_loss = self._loss_sum / self.n.loss_n
        check_finite(mean_loss, self.n.frames)
        self.losses.append(float(mean_loss))
        return {"loss": self.losses[-1]}

    def _run_chunk(self, chunk: int, opt: torch.optim.Optimizer, chunk_returns: list[float]) -> None:
        hp = self.hparams
        n_actions, clip, life_terminal = self.info.n_actions, hp.clip_rewards, hp.life_loss_terminal
        for _ in range(chunk):
            if self.rng.random() < self.epsilon():
                action = int(self.rng.integers(n_actions))
            else:
                action = self.greedy(self.buffer.current_state())
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.n.ep_return += float(reward)
            cut = terminated
            if self.n.lives is not None:  # Nature: a lost life ends the episode for the learning target only
                now = lives(info)
                cut = cut or (life_terminal and now < self.n.lives)
                self.n.lives = now
            self.buffer.add(action, math.copysign(1.0, reward) if clip and reward else float(reward), cut, obs)
            self.n.frames += 1
            if self.n.frames > self.learning_starts and self.n.frames % hp.train_freq == 0:
                self.update(opt)
            if terminated or truncated:
                chunk_returns.append(self.n.ep_return)
                self._begin_episode(*self.env.reset())
            if hp.eval_episodes and (self.n.frames % hp.eval_every == 0 or self.n.frames == hp.total_frames):
                self.eval_curve.append((float(self.n.frames), self.evaluate(self.n.frames == hp.total_frames)))

    def update(self, opt: torch.optim.Optimizer) -> torch.Tensor:
        """One gradient step on a replay minibatch (or on the newest transition without replay)."""
        hp = self.hparams
        batch = self.buffer.sample(hp.batch_size) if hp.replay else self.buffer.latest()
        if self.device.type != "cpu":  # the buffer lives in host memory
            batch = batch._replace(**{k: getattr(batch, k).to(self.device, non_blocking=True)
                                      for k in ("obs", "actions", "rewards", "next_obs", "terminated")})
        # The module's forward as one closure (QNetwork.forward_fn, the same ops without module dispatch) and the
        # Huber loss's ATen op without F.smooth_l1_loss's Python checks: the same floats, fewer microseconds.
        q = self._forward(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            q_next = self._target_forward(batch.next_obs)
            if hp.double:
                online_next = self._forward(batch.next_obs) if self.q_target is not None else q_next
                v_next = q_next.gather(1, online_next.argmax(1, keepdim=True)).squeeze(1)
            else:
                v_next = q_next.amax(1)  # the max values without the argmax indices
            if batch.terminated.device.type == "cpu":
                discount = torch.from_numpy(self._discounts.take(batch.terminated.numpy().astype(np.intp)))
            else:
                discount = hp.gamma * (1.0 - batch.terminated)
            y = batch.rewards + discount * v_next
        loss = _smooth_l1_mean(q, y, 1.0)
        for p in self._params:  # zero_grad(set_to_none=True) without the optimizer's profiling wrapper
            p.grad = None
        self._backward(loss)
        opt.step()
        self.n.updates += 1
        self._loss_sum.add_(loss.detach())
        self.n.loss_n += 1
        if self.q_target is not None and self.n.updates % hp.target_update == 0:
            self.sync_target()
        return loss

    @torch.no_grad()
    def sync_target(self) -> None:
        for target, online in zip(self.q_target.parameters(), self.q.parameters()):
            target.copy_(online)
        self.n.target_syncs += 1

    # ----------------------------------------------------------------------------------- evaluation
    def evaluate(self, estimates: bool = False) -> float:
        """Mean raw return of ``eval_episodes`` full episodes at epsilon ``eval_eps``.

        With ``estimates`` it also records, at every visited state, the net's value estimate max_a Q(s, a) and the
        discounted (clipped, as in training) return the episode actually went on to obtain from there, the
        comparison of van Hasselt et al. 2016 (Figure 3): ``self.q_estimates`` holds (estimate, return) pairs.
        An episode cut by ``eval_max_steps`` counts the return up to the cut, so the realised value is a lower bound.
        The actions are the same as without ``estimates`` (the value pass does not touch the eval RNG).
        """
        hp = self.hparams
        started = time.perf_counter()
        max_steps = hp.eval_max_steps or self.info.max_eval_steps or 10**9
        returns, pairs = [], []
        for _ in range(hp.eval_episodes):
            obs, _ = self.eval_env.reset()
            total, steps, done = 0.0, 0, False
            values, rewards = [], []
            while not done and steps < max_steps:
                if estimates:
                    with torch.no_grad():
                        values.append(float(self.q(torch.as_tensor(obs, device=self.device)[None]).max()))
                if self.eval_rng.random() < hp.eval_eps:
                    action = int(self.eval_rng.integers(self.info.n_actions))
                else:
                    action = self.greedy(obs)
                obs, reward, terminated, truncated, _ = self.eval_env.step(action)
                total += float(reward)
                rewards.append(math.copysign(1.0, reward) if hp.clip_rewards and reward else float(reward))
                steps += 1
                done = terminated or truncated
            returns.append(total)
            if estimates:
                pairs += zip(values, discounted_returns(rewards, hp.gamma))
        self.eval_seconds += time.perf_counter() - started
        if estimates:
            self.q_estimates = pairs
        return float(np.mean(returns))

    def run_output(self) -> RunOutput:
        evals = [y for _, y in self.eval_curve]
        last = self.episode_returns[-100:]
        estimate, realised = np.array(self.q_estimates or [(np.nan, np.nan)]).T
        return RunOutput(
            metrics=dict(
                best_mean_eval=max(evals) if evals else float("nan"),
                final_mean_eval=evals[-1] if evals else float("nan"),
                final_train_return=float(np.mean(last)) if last else float("nan"),
                train_episodes=float(len(self.episode_returns)),
                mean_q_estimate=float(estimate.mean()),
                mean_discounted_return=float(realised.mean()),
                q_overestimation=float((estimate - realised).mean()),
            ),
            curves=dict(eval_return=self.eval_curve, train_return=self.train_curve),
            steps=self.n.frames,
            step_unit="frames",
            extras=dict(updates=self.n.updates, target_syncs=self.n.target_syncs,
                        train_fps=self.n.frames / max(self.train_seconds, 1e-9),
                        buffer_bytes_per_slot=self.buffer.bytes_per_slot(),
                        mean_loss_per_chunk=self.losses),
        )

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


_CURVES = ("eval_curve", "train_curve", "episode_returns", "losses", "q_estimates", "train_seconds", "eval_seconds")


_MEAN = torch.nn._reduction.get_enum("mean")


def _smooth_l1_mean(input: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:  # noqa: A002
    """``F.smooth_l1_loss(input, target)`` for same-shape tensors, straight to its ATen op."""
    return torch._C._nn.smooth_l1_loss(input, target, _MEAN, beta)


def discounted_returns(rewards: list[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma r_{t+1} + ... to the end of the list, for every t."""
    out, g = [0.0] * len(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def train_dqn(env: str, seed: int, hparams: dict, ctx: RunContext | None = None) -> DQN:
    """Build and train a :class:`DQN` on ``ctx``'s Fabric (default: a CPU run without live folder); returns the
    trained module (its ``run_output()`` has the results; its envs are closed)."""
    module = DQN(env=env, seed=seed, **hparams)
    if ctx is None:
        ctx = RunContext("dqn", "dqn", env, seed, "adhoc", "dqn", dict(module.hparams), run_dir=Path("."))
    module.plain_updates = plain_updates(ctx)
    fit_chunks(module, ctx, dataloader_seed_draw=False)  # DQN's Trainer was fed from a list, which draws nothing
    return module


@register_baseline("dqn", defaults=DEFAULTS, env_families=(FAMILY,), module_class=DQN,
                   description="DQN with replay / target-network switches, Double and Dueling variants")
def fit(ctx: RunContext) -> RunOutput:
    """Train DQN on ``ctx.env`` for ``total_frames`` agent steps and report evaluation scores."""
    return train_dqn(ctx.env, ctx.seed, ctx.hparams, ctx).run_output()
