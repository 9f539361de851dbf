"""Monte Carlo vs TD(0) prediction on the 5-state random walk (Sutton & Barto 2018, Example 6.2, Fig. 6.2 right).

Both estimate V of the equiprobable walk from V = 0.5 everywhere, with a constant step size:

    TD(0):          V(s_t) += alpha * (r_{t+1} + V(s_{t+1}) - V(s_t))          after every step
    constant-a MC:  V(s_t) += alpha * (G - V(s_t))   for every visit, after the episode (G = 1 iff it ends right)

The book plots the RMS error over the five states, averaged over 100 runs, against episodes, for TD alpha in
{0.05, 0.1, 0.15} and MC alpha in {0.01, 0.02, 0.03, 0.04}.  One of our runs is one seed of that experiment:
``runs`` independent learners per step size, all step sizes learning from the same episodes (common random
numbers: prediction does not change the walk), vectorised over runs and step sizes.  ``rms_first100`` is the
mean RMS error over episodes 1..100 at the best step size of the method, the area under the book's curves.
"""

from __future__ import annotations

import numpy as np

from suite.api import RunContext, RunOutput
from suite.envs.tabular import RANDOM_WALK_STATES, RANDOM_WALK_TRUE_VALUES, random_walk_episodes
from suite.registry import register_baseline

DEFAULTS = dict(
    method="td",  # td (TD(0)) | mc (constant-alpha Monte Carlo)
    step_sizes=[0.05, 0.1, 0.15],  # constant step sizes alpha, all learned side by side
    runs=100,  # independent learners per step size (the book averages 100 runs)
    walk_episodes=100,  # random-walk episodes per learner
    v_init=0.5,  # initial value estimate of every state
)


def rms_curves(paths: np.ndarray, step_sizes: np.ndarray, method: str, v_init: float) -> np.ndarray:
    """RMS error over the states after 0..E episodes, mean over runs: ``(len(step_sizes), E + 1)``."""
    runs, episodes, _ = paths.shape
    right = RANDOM_WALK_STATES + 1
    v = np.full((len(step_sizes), runs, right + 1), v_init)
    v[:, :, [0, right]] = 0.0  # the two ends are terminal
    alpha = step_sizes[:, None]
    rows = np.arange(runs)
    curves = np.empty((len(step_sizes), episodes + 1))

    def rms() -> np.ndarray:
        err = v[:, :, 1:right] - RANDOM_WALK_TRUE_VALUES
        return np.sqrt((err**2).mean(axis=2)).mean(axis=1)

    curves[:, 0] = rms()
    for e in range(episodes):
        path = paths[:, e]
        length = int((path >= 0).sum(axis=1).max())
        ret = (path.max(axis=1) == right).astype(float)  # the only reward is +1 on leaving right (undiscounted)
        for t in range(length - 1):
            s, s_next = path[:, t], path[:, t + 1]
            live = rows[(s_next >= 0)]
            if live.size == 0:
                break
            s_live, next_live = s[live], s_next[live]
            if method == "td":
                target = (next_live == right) + v[:, live, next_live]
            else:
                target = np.broadcast_to(ret[live], (len(step_sizes), live.size))
            v[:, live, s_live] += alpha * (target - v[:, live, s_live])
        curves[:, e + 1] = rms()
    return curves


@register_baseline("td_prediction", defaults=DEFAULTS, env_families=("random_walk",))
def fit(ctx: RunContext) -> RunOutput:
    """TD(0) or constant-alpha Monte Carlo prediction on the random walk, several step sizes at once."""
    hp = ctx.hparams
    if hp["method"] not in ("td", "mc"):
        raise ValueError(f"method must be 'td' or 'mc', got {hp['method']!r}")
    rng = np.random.default_rng(ctx.seed)
    paths = random_walk_episodes(rng, hp["runs"], hp["walk_episodes"])
    step_sizes = np.asarray(hp["step_sizes"], float)
    curves = rms_curves(paths, step_sizes, hp["method"], hp["v_init"])
    area = curves[:, 1:101].mean(axis=1)
    best = int(np.argmin(area))
    episodes = np.arange(curves.shape[1], dtype=float)
    return RunOutput(
        metrics={"rms_first100": float(area[best]), "best_step_size": float(step_sizes[best]),
                 "rms_final": float(curves[best, -1])},
        curves={"rms_error": list(zip(episodes.tolist(), curves[best].tolist(), strict=True))},
        steps=int((paths >= 0).sum() - paths.shape[0] * paths.shape[1]), step_unit="env_steps",
        extras={"step_sizes": step_sizes.tolist(), "rms_by_step_size": curves.tolist()},
    )
