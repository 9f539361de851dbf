"""Continuous-control envs (family ``continuous_gym``): classic control for smoke runs, MuJoCo v5 locomotion,
and MyoSuite musculoskeletal tasks behind the optional ``myosuite`` extra."""

from __future__ import annotations

from typing import Any

from suite.registry import register_env

FAMILY = "continuous_gym"
MYOSUITE_HINT = (
    "needs MyoSuite, which is not installed: run `make myosuite` "
    "(pip install -r requirements-myosuite.txt -c constraints-myosuite.txt)"
)

# name -> (description, action_dim); dims let a spec or figure order envs by action dimension without building them
GYM_ENVS = {
    "Pendulum-v1": ("swing-up pendulum, 1-D torque (smoke)", 1),
    "InvertedPendulum-v5": ("MuJoCo cart-pole balance, 1-D force (smoke)", 1),
    "Hopper-v5": ("MuJoCo Hopper locomotion", 3),
    "HalfCheetah-v5": ("MuJoCo HalfCheetah locomotion", 6),
    "Walker2d-v5": ("MuJoCo Walker2d locomotion", 6),
    "Ant-v5": ("MuJoCo Ant locomotion", 8),
    "Humanoid-v5": ("MuJoCo Humanoid locomotion", 17),
}
MYOSUITE_ENVS = {
    "myoElbowPose1D6MRandom-v0": ("MyoSuite elbow posing, 6 muscles", 6),
    "myoHandPoseRandom-v0": ("MyoSuite hand posing, 39 muscles", 39),
    "myoChallengeDieReorientP1-v0": ("MyoChallenge 2022 die reorientation, 39 muscles", 39),
}

for _name, (_desc, _dim) in GYM_ENVS.items():
    register_env(_name, FAMILY, _desc, action_dim=_dim)
for _name, (_desc, _dim) in MYOSUITE_ENVS.items():
    register_env(_name, FAMILY, _desc, action_dim=_dim, extra="myosuite")


def action_dim(name: str) -> int:
    """Action dimension of a registered continuous env (no simulator needed)."""
    return {**GYM_ENVS, **MYOSUITE_ENVS}[name][1]


def make_env(name: str, **kwargs: Any) -> Any:
    """Build one gymnasium env; MyoSuite ids raise one clear error when the extra is missing."""
    import gymnasium as gym

    if name in MYOSUITE_ENVS:
        try:
            import myosuite  # noqa: F401  (registers the myo* ids with gymnasium)
        except ImportError as error:
            raise RuntimeError(f"{name} {MYOSUITE_HINT}") from error
    kwargs.setdefault("disable_env_checker", True)
    return gym.make(name, **kwargs)
