"""Snapshots of a gymnasium env's whole state, for mid-run checkpoints (the RL baselines' ``resume_state``).

:func:`env_state` captures everything the env's next steps depend on, :func:`set_env_state` puts it back into an
env built the same way, so that a run resumed from a checkpoint steps through the same states and rewards as one
that never stopped.  Per kind of env:

* MuJoCo: the whole ``MjData`` (positions, velocities, actuator activations, time, the solver's warm start and the
  derived quantities of the last step, which some rewards read before stepping, e.g. Ant's torso position),
  restored with ``mj_copyData``;
* ALE Atari: the emulator's state with its RNG (``cloneState(include_rng=True)``);
* MinAtar: the game object (board, its RNG, sticky-action memory), deep-copied;
* others (classic control): their plain attributes (``state``, ``last_u``, ...).

Plus, for every env: its ``np_random`` and its action space's generator, and the wrappers' counters and buffers
(TimeLimit's elapsed steps, AtariPreprocessing's max-pool buffer and life count, a frame stack's queue).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

# TimeLimit, OrderEnforcing, AtariPreprocessing, FrameStackObservation
_WRAPPER_STATE = ("_elapsed_steps", "_has_reset", "obs_buffer", "lives", "game_over", "obs_queue")
_PLAIN = (np.ndarray, np.generic, int, float, bool, tuple, type(None))


def env_state(env: Any) -> dict[str, Any]:  # noqa: ANN401 - any gymnasium env
    """Everything a gymnasium env's next steps depend on (see the module docstring)."""
    inner = env.unwrapped
    state: dict[str, Any] = {"np_random": inner.np_random.bit_generator.state,
                             "action_space": env.action_space.np_random.bit_generator.state, "wrappers": []}
    wrapper = env
    while hasattr(wrapper, "env"):
        state["wrappers"].append({k: copy.deepcopy(v) for k, v in vars(wrapper).items() if k in _WRAPPER_STATE})
        wrapper = wrapper.env
    if type(getattr(inner, "data", None)).__name__ == "MjData":
        state["mjdata"] = copy.copy(inner.data)
    elif hasattr(inner, "ale"):
        state["ale"] = inner.ale.cloneState(include_rng=True)
    elif type(getattr(inner, "game", None)).__name__ == "Environment":  # MinAtar
        state["game"] = copy.deepcopy(inner.game)
    else:
        state["attrs"] = {k: copy.deepcopy(v) for k, v in vars(inner).items()
                          if isinstance(v, _PLAIN) and not k.startswith("_np_random")}
    return state


def set_env_state(env: Any, state: dict[str, Any]) -> None:  # noqa: ANN401 - any gymnasium env
    """Put :func:`env_state`'s snapshot back into ``env`` (built like the one it was taken from)."""
    inner = env.unwrapped
    inner.np_random.bit_generator.state = state["np_random"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
    wrapper, saved = env, iter(state["wrappers"])
    while hasattr(wrapper, "env"):
        for k, v in next(saved).items():
            setattr(wrapper, k, copy.deepcopy(v))
        wrapper = wrapper.env
    if "mjdata" in state:
        import mujoco

        mujoco.mj_copyData(inner.data, inner.model, state["mjdata"])
    elif "ale" in state:
        inner.ale.restoreState(state["ale"])
    elif "game" in state:
        inner.game = copy.deepcopy(state["game"])
    else:
        for k, v in state["attrs"].items():
            setattr(inner, k, copy.deepcopy(v))
