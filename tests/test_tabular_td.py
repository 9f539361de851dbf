"""tabular_td: the notes' chain and its Q-table, Q-learning vs SARSA, the TD-error-as-dopamine model, MC vs TD(0),
the ``every_seed`` claim checker and per-variant env restrictions in specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from suite import registry
from suite.api import RunContext, RunOutput
from suite.envs.tabular import (
    RANDOM_WALK_TRUE_VALUES,
    chain_mdp,
    greedy_rollout,
    random_walk_episodes,
    value_iteration,
)
from suite.record import RunRecord
from suite.spec import SpecError, load_spec
from tests.records import make_record

ROOT = Path(__file__).resolve().parent.parent
NOTES_Q = [[10, 10], [10, -9.5], [-10, 10], [0, 0], [10, -10], [-10, 10], [0, 0], [10, 10], [10, -8.3], [0, 0]]


def fit(baseline: str, env: str, seed: int = 0, **overrides: object) -> RunOutput:
    entry = registry.get_baseline(baseline)
    hparams = {**entry.defaults, **overrides}
    return entry.fit(RunContext("tabular_td", baseline, env, seed, "test", baseline, hparams, Path("/tmp")))


def test_value_iteration_reproduces_18_of_the_notes_20_entries():
    q_star, sweeps = value_iteration(chain_mdp(), gamma=0.9)
    mismatched = np.argwhere(np.abs(q_star - np.asarray(NOTES_Q)) > 0.05).tolist()
    assert mismatched == [[1, 1], [8, 1]]  # Q(1,JR) and Q(8,JR): -10 here, -9.5 and -8.3 in the notes
    assert q_star[1, 1] == q_star[8, 1] == -10.0
    assert q_star[0].tolist() == [10.0, 10.0] and sweeps < 20
    # hand-checked Bellman entries: Q(7,R) = r(8) + 0.9 * V(8) = 1 + 0.9 * 10; Q(5,R) enters trap 6
    assert q_star[7, 0] == pytest.approx(10.0) and q_star[5, 0] == -10.0
    visited, ret = greedy_rollout(chain_mdp(), q_star)
    assert visited[-1] == 9 and not {3, 6} & set(visited) and ret == 16.0


def test_the_other_two_entries_are_q_learning_snapshots_for_a_small_step_size():
    """-10 (1 - (1 - alpha)^n) prints as -9.5 and -8.3 for alpha 0.1 (n = 29, 17), never for alpha 0.5."""
    def printed(alpha: float, n: int) -> float:
        return round(-10 * (1 - (1 - alpha) ** n), 1)

    assert printed(0.1, 29) == -9.5 and printed(0.1, 17) == -8.3
    assert not any(printed(0.5, n) in (-9.5, -8.3) for n in range(1, 100))


def test_q_learning_converges_to_q_star_and_its_greedy_policy_avoids_the_traps():
    out = fit("qlearning", "chain10", seed=3, episodes=20_000, epsilon=0.2, notes_q_table=NOTES_Q)
    assert out.metrics["max_abs_error"] < 1e-3
    assert out.metrics["greedy_trap_entries"] == 0 and out.metrics["greedy_return"] >= 14
    assert out.metrics["notes_entries_matched"] == 18
    errors = [y for _, y in out.curves["max_abs_error"]]
    assert errors[-1] < errors[0]


def test_sarsa_values_next_to_the_traps_are_lower_than_q_learning():
    q = fit("qlearning", "chain10", seed=1, episodes=5000)
    s = fit("sarsa", "chain10", seed=1, episodes=5000)
    assert s.metrics["v_near_traps"] < q.metrics["v_near_traps"] - 0.5
    assert fit("sarsa", "chain10", seed=1, episodes=5000).metrics == s.metrics  # seeded


def test_greedy_epsilon_zero_sarsa_equals_q_learning_once_tied_values_are_broken():
    """With epsilon 0 the next action is the greedy one, so SARSA's target is Q-learning's: same tables."""
    q = fit("qlearning", "chain10", seed=2, episodes=300, epsilon=0.0)
    s = fit("sarsa", "chain10", seed=2, episodes=300, epsilon=0.0)
    assert q.extras["q_table"] == s.extras["q_table"]


def test_td_error_moves_from_reward_to_cue_and_dips_on_omission():
    m = fit("td_dopamine", "cue-reward").metrics
    assert m["early_delta_reward"] == 1.0 and m["early_delta_cue"] == 0.0 and m["early_peak_time"] == 10
    assert m["late_delta_cue"] > 0.95 and m["late_abs_delta_reward"] < 0.01 and m["late_peak_time"] == 0
    assert m["omission_delta_reward"] < -0.95
    short = fit("td_dopamine", "cue-reward", trials=3).metrics  # the error walks back one step per trial
    assert short["late_delta_cue"] == 0.0 and short["late_delta_reward"] < 1.0


def test_random_walk_episodes_are_valid_walks():
    paths = random_walk_episodes(np.random.default_rng(0), runs=50, episodes=20)
    for path in paths.reshape(-1, paths.shape[-1]):
        walk = path[path >= 0]
        assert walk[0] == 3 and walk[-1] in (0, 6) and np.all(np.abs(np.diff(walk)) == 1)
        assert np.all((walk[1:-1] > 0) & (walk[1:-1] < 6))
    ends = paths.max(axis=2) == 6
    assert 0.35 < ends.mean() < 0.65  # P(right end) = 1/2 from the centre


def test_td_and_mc_estimate_the_true_values_and_td_learns_faster():
    td = fit("td_prediction", "random-walk5", method="td", runs=50)
    mc = fit("td_prediction", "random-walk5", method="mc", step_sizes=[0.01, 0.02, 0.03, 0.04], runs=50)
    assert td.metrics["rms_first100"] < mc.metrics["rms_first100"]
    start = np.sqrt(np.mean((0.5 - RANDOM_WALK_TRUE_VALUES) ** 2))
    for out in (td, mc):
        curve = [y for _, y in out.curves["rms_error"]]
        assert curve[0] == pytest.approx(start) and curve[-1] < 0.6 * start
    long = fit("td_prediction", "random-walk5", method="td", step_sizes=[0.02], runs=20, walk_episodes=1000)
    assert long.metrics["rms_final"] < 0.05


def _record(variant: str, seed: int, **metrics: float) -> RunRecord:
    return make_record(variant=variant, env="chain10", seed=seed, metrics=metrics)


def test_every_seed_checker_holds_fails_and_is_inconclusive():
    check = registry.CLAIM_CHECKERS["every_seed"]
    args = {"variant": "q", "metric": "err", "op": "<", "value": 0.01, "envs": ["chain10"]}
    good = [_record("q", s, err=0.001) for s in range(3)]
    assert check(args, good, "err", False)["verdict"] == "holds"
    result = check(args, [*good, _record("q", 3, err=0.5)], "err", False)
    assert result["verdict"] == "fails" and "seeds [3]" in result["detail"] and result["statistic"] == 0.5
    assert check(args, [_record("other", 0, err=0.0)], "err", False)["verdict"] == "inconclusive"


def test_shipped_spec_runs_each_variant_only_on_its_env():
    from suite.runner import plan_jobs

    spec = load_spec(ROOT / "tasks" / "tabular_td.yaml")
    cells = {(job.key.variant, job.key.env) for job in plan_jobs(spec, "smoke", seeds=1)}
    assert cells == {("value_iteration", "chain10"), ("qlearning", "chain10"), ("sarsa", "chain10"),
                     ("td_dopamine", "cue-reward"), ("td0", "random-walk5"), ("mc", "random-walk5")}


def test_a_variant_env_outside_the_task_is_an_error(write_spec):
    path = write_spec({"fast: {lr: 0.1}": "fast: {lr: 0.1, envs: [toy-c]}"})
    with pytest.raises(SpecError, match=r"variants\.fast\.envs"):
        load_spec(path)
    path = write_spec({"fast: {lr: 0.1}": "fast: {lr: 0.1, envs: [toy-b]}"}, name="ok.yaml")
    assert load_spec(path).variants["fast"].envs == ("toy-b",)
