"""Tabular TD control on the course notes' chain (``chain10``): Q-learning, SARSA and value iteration.

Q-learning (Watkins 1989) is the notes' own algorithm (``seeds/003_*``)::

    Q(s,a) = Q(s,a) + alfa * [r + gamma * max_an Q(sn, an) - Q(s,a)]

with epsilon-greedy actions (ties broken at random, so the all-zero start explores both actions).  SARSA
(Rummery & Niranjan 1994) bootstraps from the action it takes next instead of the greedy one, so under a fixed
epsilon it learns the values of the epsilon-greedy policy itself: lower next to a trap, because one exploratory step
from there falls in (the cliff-walking effect, Sutton & Barto 2018, Example 6.6).  Value iteration on the known tables
gives the exact Q* both are measured against.

No network and no Trainer: a table of 10 x 2 floats is the whole model, and an optimizer or a Lightning loop around
it would only hide the update rule.  The baselines still run through the harness (seeded per run, recorded, reported).
"""

from __future__ import annotations

import numpy as np

from suite.api import RunContext, RunOutput, Throttle
from suite.envs.tabular import CHAIN_TRAPS, TabularMDP, chain_mdp, greedy_rollout, value_iteration
from suite.registry import register_baseline

DEFAULTS = dict(
    episodes=2000,  # training episodes
    lr=0.1,  # TD step size
    gamma=0.9,  # discount factor
    epsilon=0.1,  # epsilon-greedy exploration of the behaviour policy
    eval_every=50,  # episodes between curve points (max |Q - Q*|; mean return of those episodes)
    near_trap_states=[1, 2, 4, 5],  # states with one action into a trap
    notes_q_table=[],               # the notes' printed Q-table (rows s, columns R, JR); the spec gives it
    notes_match_tol=0.05,           # an entry matches the notes' when within this (the notes print one decimal)
)
RENAMED = {"lr": "alpha"}  # issue #16: one name for the step size; hashes keep "alpha" (suite.registry)


def chain_metrics(q: np.ndarray, q_star: np.ndarray, mdp: TabularMDP, hp: dict) -> dict[str, float]:
    """Error against Q*, the greedy policy's trap entries and return, values next to the traps, match with the notes."""
    visited, greedy_return = greedy_rollout(mdp, q)
    metrics = {
        "max_abs_error": float(np.abs(q - q_star).max()),
        "greedy_trap_entries": float(sum(s in CHAIN_TRAPS for s in visited)),
        "greedy_return": greedy_return,
        "v_near_traps": float(q[hp["near_trap_states"]].max(axis=1).mean()),
    }
    if hp["notes_q_table"]:
        diff = np.abs(q - np.asarray(hp["notes_q_table"], float))
        metrics["notes_entries_matched"] = float((diff <= hp["notes_match_tol"]).sum())
        metrics["notes_max_abs_diff"] = float(diff.max())
    return metrics


def td_control(ctx: RunContext, on_policy: bool) -> RunOutput:
    """Q-learning (``on_policy=False``) or SARSA (``True``) for ``episodes`` episodes from the start state."""
    hp, mdp = ctx.hparams, chain_mdp()
    q_star, _ = value_iteration(mdp, hp["gamma"])
    rng = np.random.default_rng(ctx.seed)
    alpha, gamma, epsilon = hp["lr"], hp["gamma"], hp["epsilon"]  # alpha: the notes' symbol for the step size
    next_state, reward, done = mdp.next_state.tolist(), mdp.reward.tolist(), mdp.done.tolist()
    q = np.zeros((mdp.n_states, mdp.n_actions))
    qs = q.tolist()  # the hot loop reads and writes Python floats (numpy scalar indexing is ~10x slower)
    episodes = hp["episodes"]
    # every random number up front: one uniform for explore-or-not, one for the explored / tie-broken action
    explore_u = rng.random((episodes, 64))
    pick_u = rng.random((episodes, 64))
    progress = Throttle(ctx.progress)
    curves: dict[str, list[tuple[float, float]]] = {"max_abs_error": [], "episode_return": []}
    steps, returns = 0, []

    def act(s: int, e: int, t: int) -> int:
        row = qs[s]
        if explore_u[e, t] < epsilon or row[0] == row[1]:
            return int(pick_u[e, t] * 2)
        return 0 if row[0] > row[1] else 1

    for e in range(episodes):
        s, t, total = mdp.start, 0, 0.0
        a = act(s, e, t)
        while True:
            s_next, r, end = next_state[s][a], reward[s][a], done[s][a]
            total += r
            t += 1
            if end:
                target, a_next = r, 0
            else:
                a_next = act(s_next, e, t)
                bootstrap = qs[s_next][a_next] if on_policy else max(qs[s_next])
                target = r + gamma * bootstrap
            qs[s][a] += alpha * (target - qs[s][a])
            if end:
                break
            s, a = s_next, a_next
        steps += t
        returns.append(total)
        if (e + 1) % hp["eval_every"] == 0 or e + 1 == episodes:
            q = np.array(qs)
            curves["max_abs_error"].append((float(e + 1), float(np.abs(q - q_star).max())))
            curves["episode_return"].append((float(e + 1), float(np.mean(returns[-hp["eval_every"]:]))))
            ctx.log(e + 1, max_abs_error=curves["max_abs_error"][-1][1], episode_return=curves["episode_return"][-1][1])
            progress(e + 1, episodes)
    q = np.array(qs)
    return RunOutput(chain_metrics(q, q_star, mdp, hp), curves, steps=steps, step_unit="env_steps",
                     extras={"q_table": q.tolist(), "q_star": q_star.tolist()})


@register_baseline("qlearning", defaults=DEFAULTS, env_families=("tabular_chain",), renamed=RENAMED)
def fit_qlearning(ctx: RunContext) -> RunOutput:
    """Tabular Q-learning with epsilon-greedy exploration (the notes' algorithm)."""
    return td_control(ctx, on_policy=False)


@register_baseline("sarsa", defaults=DEFAULTS, env_families=("tabular_chain",), renamed=RENAMED)
def fit_sarsa(ctx: RunContext) -> RunOutput:
    """Tabular SARSA: on-policy TD control under the same epsilon-greedy behaviour."""
    return td_control(ctx, on_policy=True)


@register_baseline("value_iteration", defaults=DEFAULTS, env_families=("tabular_chain",), renamed=RENAMED)
def fit_value_iteration(ctx: RunContext) -> RunOutput:
    """Value iteration on the known tables: the exact optimum Q* (deterministic; every seed is the same run)."""
    hp, mdp = ctx.hparams, chain_mdp()
    q_star, sweeps = value_iteration(mdp, hp["gamma"])
    return RunOutput(chain_metrics(q_star, q_star, mdp, hp), {}, steps=sweeps, step_unit="sweeps",
                     extras={"q_table": q_star.tolist(), "q_star": q_star.tolist()})
