"""Discrete-action gymnasium environments: CartPole, MinAtar and ALE Atari with Nature-DQN preprocessing.

Every name registered here belongs to the ``discrete_gym`` family.  :func:`make_env` builds one
environment, seeded, with the observation layout a Q-network wants (channels first, uint8 pixels);
:func:`env_info` describes it without building it twice.  Heavy imports (``ale_py``, ``minatar``)
happen inside the makers so that registry discovery stays cheap.

Observations per family:

* ``CartPole-v1``: float32 vector (4,).
* ``MinAtar/<Game>-v0`` (all 6 actions, as in Young & Tian 2019) and ``-v1`` (minimal action set):
  uint8 {0, 1} images, channels first (C, 10, 10); sticky actions with probability 0.1 and difficulty
  ramping, MinAtar's own defaults.
* ``ALE/<Game>-v5``: Nature preprocessing (Mnih et al. 2015): emulator frameskip 1 wrapped by
  ``AtariPreprocessing`` (action repeat 4 with max-pooling of the last two frames, up to 30 no-op starts,
  84x84 grayscale uint8), no sticky actions, minimal action set.  ``stack_frames=True`` adds the
  4-frame stack (zero padding at episode start); a replay buffer that stacks frames itself asks for
  single frames (``stack_frames=False``).  Reward clipping and life-loss-as-terminal are training-time
  choices of the agent (the evaluation score is the raw game score over full games), so the agent
  applies them, using ``info["lives"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from suite.registry import register_env

FAMILY = "discrete_gym"
MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
ATARI_GAMES = ("Breakout", "Enduro", "Riverraid", "Seaquest", "SpaceInvaders")
ATARI_FRAME_STACK = 4
# Nature DQN plays at most 5 minutes per evaluation episode: 18000 emulator frames = 4500 agent steps.
ATARI_MAX_EVAL_STEPS = 4500


@dataclass(frozen=True)
class EnvInfo:
    """What an agent needs to size its networks and buffers."""

    kind: str  # "classic" | "minatar" | "atari"
    frame_shape: tuple[int, ...]  # one observation frame as the env returns it with stack_frames=False
    frame_dtype: np.dtype
    frame_stack: int  # frames an agent stacks into one state
    obs_scale: float  # multiply stored values by this to get network inputs
    n_actions: int
    max_eval_steps: int | None  # cap on agent steps per evaluation episode (None: the env's own limit)


register_env("CartPole-v1", FAMILY, "Classic control pole balancing, 500-step limit", kind="classic")
for _game in MINATAR_GAMES:
    register_env(f"MinAtar/{_game}-v0", FAMILY, f"MinAtar {_game}, 6 actions, sticky p=0.1", kind="minatar")
    register_env(f"MinAtar/{_game}-v1", FAMILY, f"MinAtar {_game}, minimal action set, sticky p=0.1",
                 kind="minatar")
for _game in ATARI_GAMES:
    register_env(f"ALE/{_game}-v5", FAMILY, f"Atari {_game} with Nature DQN preprocessing", kind="atari")


def _kind(name: str) -> str:
    if name.startswith("MinAtar/"):
        return "minatar"
    if name.startswith("ALE/"):
        return "atari"
    return "classic"


class _ChannelsFirstUint8(gym.ObservationWrapper):
    """MinAtar's bool (10, 10, C) state -> uint8 (C, 10, 10), the layout conv nets and the buffer use."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(observation.transpose(2, 0, 1)).view(np.uint8)


def _make_raw(name: str, stack_frames: bool) -> gym.Env:
    kind = _kind(name)
    if kind == "minatar":
        from minatar.gym import register_envs

        if name not in gym.registry:
            register_envs()
        return _ChannelsFirstUint8(gym.make(name, disable_env_checker=True))
    if kind == "atari":
        import ale_py
        from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

        gym.register_envs(ale_py)
        env = gym.make(name, frameskip=1, repeat_action_probability=0.0, full_action_space=False,
                       disable_env_checker=True)
        env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False,
                                 grayscale_obs=True, scale_obs=False)
        if stack_frames:
            env = FrameStackObservation(env, ATARI_FRAME_STACK, padding_type="zero")
        return env
    return gym.make(name, disable_env_checker=True)


def make_env(name: str, seed: int | None = None, *, stack_frames: bool = True) -> gym.Env:
    """Build env ``name`` (a registered ``discrete_gym`` name) and seed its dynamics and action space.

    The first ``reset`` after this call must pass ``seed=seed`` too for gymnasium envs; :func:`make_env`
    does that reset once so callers can simply call ``reset()`` afterwards.
    """
    env = _make_raw(name, stack_frames)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


_INFO_CACHE: dict[str, EnvInfo] = {}


def env_info(name: str) -> EnvInfo:
    """Shapes, dtype, stacking and action count of env ``name`` (cached; builds the env once)."""
    if name not in _INFO_CACHE:
        env = _make_raw(name, stack_frames=False)
        obs, _ = env.reset(seed=0)
        kind = _kind(name)
        _INFO_CACHE[name] = EnvInfo(
            kind=kind,
            frame_shape=tuple(obs.shape),
            frame_dtype=np.asarray(obs).dtype,
            frame_stack=ATARI_FRAME_STACK if kind == "atari" else 1,
            obs_scale=1.0 / 255.0 if kind == "atari" else 1.0,
            n_actions=int(env.action_space.n),
            max_eval_steps=ATARI_MAX_EVAL_STEPS if kind == "atari" else None,
        )
        env.close()
    return _INFO_CACHE[name]


def lives(info: dict[str, Any]) -> int | None:
    """Remaining lives from an ALE step/reset info dict (None for envs without a life counter)."""
    value = info.get("lives")
    return None if value is None else int(value)
