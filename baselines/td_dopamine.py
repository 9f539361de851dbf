"""The TD error as the dopamine signal (Schultz, Dayan & Montague 1997, Science 275:1593, Fig. 1 and 2).

A trial is ``trial_length`` time steps; a cue comes at ``cue_time`` and a reward of ``reward`` ``delay`` steps later.
The state is a tapped delay line (the complete serial compound): feature ``i`` is 1 exactly ``i`` steps after the cue,
so V(t) = w[t - cue_time] after the cue and 0 before it (nothing predicts the cue, as in the experiments, where the
cue comes at a random time).  TD(0) learns ``w`` from the error

    delta_t = r_t + gamma * V(t) - V(t - 1)          w[i] += alpha * delta_t  for the feature active at t - 1

which is the model's dopamine response at time t.  Before learning delta is positive only at the reward; after
learning it jumps at the cue (the cue is unpredicted but predicts the reward) and is ~0 at the now-predicted reward;
omitting the reward after learning gives delta = -V at the reward time, the dip below baseline.  Everything here
is deterministic: the seed changes nothing, so every seed reproduces the same record (the harness still runs them).
"""

from __future__ import annotations

import numpy as np

from suite.api import RunContext, RunOutput
from suite.registry import register_baseline

DEFAULTS = dict(
    trials=200,  # rewarded training trials
    trial_length=25,  # time steps per trial
    cue_time=5,  # time step of the cue
    delay=10,  # steps from the cue to the reward
    reward=1.0,  # reward size
    lr=0.1,  # TD(0) step size
    gamma=1.0,  # discount factor
)


def run_trial(w: np.ndarray, hp: dict, rewarded: bool = True, learn: bool = True) -> np.ndarray:
    """One trial: the TD error at t = 1..trial_length-1 (index t), updating ``w`` in place when ``learn``."""
    length, cue, reward_time = hp["trial_length"], hp["cue_time"], hp["cue_time"] + hp["delay"]
    values = np.zeros(length)
    values[cue:] = w[: length - cue]  # V(t) of the tapped delay line
    rewards = np.zeros(length)
    if rewarded:
        rewards[reward_time] = hp["reward"]
    delta = np.zeros(length)
    for t in range(1, length):
        delta[t] = rewards[t] + hp["gamma"] * values[t] - values[t - 1]
        if learn and t - 1 >= cue:  # only a feature active at t - 1 is updated (before the cue none is)
            w[t - 1 - cue] += hp["lr"] * delta[t]
            values[t - 1] = w[t - 1 - cue]
    return delta


@register_baseline("td_dopamine", defaults=DEFAULTS, env_families=("cue_trial",), renamed={"lr": "alpha"})
def fit(ctx: RunContext) -> RunOutput:
    """TD(0) with a tapped-delay-line state on cue -> delay -> reward trials; the TD error as dopamine."""
    hp = ctx.hparams
    cue, reward_time = hp["cue_time"], hp["cue_time"] + hp["delay"]
    if not 0 < cue < reward_time < hp["trial_length"]:
        raise ValueError("need 0 < cue_time < cue_time + delay < trial_length")
    w = np.zeros(hp["trial_length"] - cue)
    deltas = np.empty((hp["trials"], hp["trial_length"]))
    for trial in range(hp["trials"]):
        deltas[trial] = run_trial(w, hp)
    omission = run_trial(w.copy(), hp, rewarded=False, learn=False)  # a probe: the learned weights, no reward
    first, last = deltas[0], deltas[-1]
    metrics = {
        "early_delta_reward": float(first[reward_time]), "early_delta_cue": float(first[cue]),
        "late_delta_reward": float(last[reward_time]), "late_delta_cue": float(last[cue]),
        "late_abs_delta_reward": float(abs(last[reward_time])),
        "omission_delta_reward": float(omission[reward_time]),
        "late_peak_time": float(np.argmax(last) - cue), "early_peak_time": float(np.argmax(first) - cue),
    }
    trials = np.arange(1, hp["trials"] + 1, dtype=float).tolist()
    curves = {"delta_at_cue": list(zip(trials, deltas[:, cue].tolist(), strict=True)),
              "delta_at_reward": list(zip(trials, deltas[:, reward_time].tolist(), strict=True))}
    shown = sorted({0, 1, 2, 5, 10, 20, 50, hp["trials"] - 1} & set(range(hp["trials"])))
    extras = {"cue_time": cue, "reward_time": reward_time, "omission_delta": omission.tolist(),
              "trial_deltas": {str(i + 1): deltas[i].tolist() for i in shown}}
    return RunOutput(metrics, curves, steps=hp["trials"] * hp["trial_length"], step_unit="time_steps", extras=extras)
