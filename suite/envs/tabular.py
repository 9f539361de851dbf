"""Tabular worlds of the ``tabular_td`` task: the notes' 10-state chain, Sutton & Barto's 5-state random walk and
the cue -> delay -> reward trial of Schultz, Dayan & Montague (1997).

Each is its own env family, so a spec can only pair it with the baselines written for it:

* ``chain10`` (family ``tabular_chain``): the worked Q-learning example of the course notes
  (``seeds/003_*``, "Q function obtained").  States 0..9 on a line, start 0, actions R (one state right) and JR (jump
  two states right); the reward is that of the state entered, ``1 1 1 -10 1 1 -10 1 1 10``; states 3 and 6 (traps)
  and 9 (goal) end the episode.  The notes do not say what JR does from state 8 (it would land past the goal):
  here it falls off the chain with the trap penalty -10 and ends the episode (:data:`OFF_CHAIN_REWARD`).
* ``random-walk5`` (family ``random_walk``): Sutton & Barto (2018), Example 6.2: states A..E, start C, steps left or
  right with probability 1/2, reward +1 on leaving to the right, 0 otherwise, undiscounted; true values 1/6..5/6.
* ``cue-reward`` (family ``cue_trial``): one trial of ``trial_length`` time steps, a cue at ``cue_time`` and a
  reward of 1 ``delay`` steps later (Schultz, Dayan & Montague 1997, Fig. 1-2); the parameters live in the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from suite.registry import register_env

register_env("chain10", "tabular_chain", "the course notes' 10-state chain, actions R / JR, traps 3 and 6, goal 9")
register_env("random-walk5", "random_walk", "Sutton & Barto Example 6.2: 5-state random walk, true V = 1/6..5/6")
register_env("cue-reward", "cue_trial", "cue -> delay -> reward trial (Schultz, Dayan & Montague 1997)")

CHAIN_REWARDS = (1.0, 1.0, 1.0, -10.0, 1.0, 1.0, -10.0, 1.0, 1.0, 10.0)  # reward on entering state s (notes 003)
CHAIN_TRAPS = (3, 6)
CHAIN_GOAL = 9
CHAIN_ACTIONS = ("R", "JR")
OFF_CHAIN_REWARD = -10.0  # our assumption for JR from state 8 (the notes leave it open)


@dataclass(frozen=True)
class TabularMDP:
    """A deterministic episodic MDP as tables: ``next_state[s, a]`` (-1 = left the chain), ``reward[s, a]``,
    ``done[s, a]``; ``terminal[s]`` marks states whose rows are never used (their Q stays 0)."""

    next_state: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    terminal: np.ndarray
    start: int

    @property
    def n_states(self) -> int:
        return self.next_state.shape[0]

    @property
    def n_actions(self) -> int:
        return self.next_state.shape[1]


def chain_mdp() -> TabularMDP:
    """The notes' chain as tables (see the module docstring)."""
    n, terminal = len(CHAIN_REWARDS), np.zeros(len(CHAIN_REWARDS), bool)
    terminal[[*CHAIN_TRAPS, CHAIN_GOAL]] = True
    next_state = np.full((n, 2), -1, np.int64)
    reward = np.zeros((n, 2))
    done = np.ones((n, 2), bool)
    for s in range(n):
        for a, jump in enumerate((1, 2)):
            target = s + jump
            if target < n:
                next_state[s, a], reward[s, a], done[s, a] = target, CHAIN_REWARDS[target], terminal[target]
            else:
                reward[s, a] = OFF_CHAIN_REWARD
    return TabularMDP(next_state, reward, done, terminal, start=0)


def value_iteration(mdp: TabularMDP, gamma: float, tol: float = 1e-12, max_sweeps: int = 10_000) -> tuple[np.ndarray,
                                                                                                        int]:
    """Q* by synchronous value iteration on the tables; returns (Q* of shape (S, A), sweeps until the change < tol)."""
    q = np.zeros((mdp.n_states, mdp.n_actions))
    safe_next = np.where(mdp.next_state >= 0, mdp.next_state, 0)
    for sweep in range(1, max_sweeps + 1):
        target = mdp.reward + gamma * np.where(mdp.done, 0.0, q.max(axis=1)[safe_next])
        target[mdp.terminal] = 0.0
        change = float(np.abs(target - q).max())
        q = target
        if change < tol:
            return q, sweep
    return q, max_sweeps


def greedy_rollout(mdp: TabularMDP, q: np.ndarray, max_steps: int = 20) -> tuple[list[int], float]:
    """States visited by the greedy policy of ``q`` from the start (ties -> the first action) and its return."""
    s, visited, total = mdp.start, [mdp.start], 0.0
    for _ in range(max_steps):
        a = int(np.argmax(q[s]))
        total += float(mdp.reward[s, a])
        s_next = int(mdp.next_state[s, a])
        visited.append(s_next)
        if mdp.done[s, a]:
            break
        s = s_next
    return visited, total


RANDOM_WALK_STATES = 5
RANDOM_WALK_TRUE_VALUES = np.arange(1, RANDOM_WALK_STATES + 1) / (RANDOM_WALK_STATES + 1)  # S&B Example 6.2


def random_walk_episodes(rng: np.random.Generator, runs: int, episodes: int, max_len: int = 200) -> np.ndarray:
    """``(runs, episodes, max_len + 1)`` int8 state sequences of the 5-state walk (1..5 = A..E, 0 and 6 the left and
    right ends), padded with -1 after termination; every run starts each episode in C (state 3)."""
    steps = rng.choice(np.array([-1, 1], np.int8), size=(runs, episodes, max_len))
    paths = np.concatenate([np.full((runs, episodes, 1), 3, np.int8), 3 + np.cumsum(steps, axis=2, dtype=np.int8)],
                           axis=2)
    ended = np.maximum.accumulate((paths == 0) | (paths == RANDOM_WALK_STATES + 1), axis=2)
    after_end = np.concatenate([np.zeros((runs, episodes, 1), bool), ended[:, :, :-1]], axis=2)
    if not ended[:, :, -1].all():
        raise RuntimeError(f"a random-walk episode outlasted {max_len} steps; raise max_len")
    return np.where(after_end, np.int8(-1), paths)
