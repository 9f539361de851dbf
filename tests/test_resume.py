"""Mid-run checkpoints and resume (Avalanche's pattern): a run killed after a checkpoint at about half of its
budget and resumed ends with a record bit-identical to an uninterrupted run's; plus the checkpoint file's
contract (atomic, corrupt = reported by path and ignored, not part of the run's identity, deleted with the record)
and the live CSV log every sweep run leaves."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from suite.checkpoint import CHECKPOINT_FILE, Checkpointer
from suite.jobs import Job, plan_jobs, with_live
from suite.runner import release_checkpoint, run_one
from suite.spec import load_spec
from suite.store import RunKey, config_hash, live_path
from suite.sweep import run_sweep
from tests.records import make_record

TIMING = ("time_s", "train_fps", "train_seconds", "ms_per_meta_iteration", "train_time_s", "train_cpu_s")  # wall-clock extras: never reproducible, not results


class Killed(Exception):
    """Stands for a preemption or a killed worker right after a checkpoint reached the disk."""


def _job(baseline: str, env: str, hparams: dict[str, Any], root: Path | None = None, every: int = 0) -> Job:
    from suite.registry import get_baseline

    full = {**get_baseline(baseline).defaults, **hparams}
    job = Job(RunKey("resume_test", "v", env, 0, "test"), baseline, full, config_hash(baseline, env, full), 600.0)
    return with_live([job], root, checkpoint_every=every, checkpoint_interval_s=0)[0] if root else job


def _kill_after_checkpoint_at(monkeypatch: pytest.MonkeyPatch, at_least: int) -> list[int]:
    """Make the first checkpoint saved at step >= ``at_least`` raise :class:`Killed` once it is on disk."""
    saved: list[int] = []
    original = Checkpointer.save

    def save(self: Checkpointer, step: int, state: dict[str, Any]) -> Path:
        path = original(self, step, state)
        saved.append(step)
        if step >= at_least:
            monkeypatch.setattr(Checkpointer, "save", original)
            raise Killed(f"killed after the checkpoint of step {step}")
        return path

    monkeypatch.setattr(Checkpointer, "save", save)
    return saved


def _same_result(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.status == b.status == "ok", (a.reason, b.reason)
    assert a.metrics == b.metrics
    assert a.curves == b.curves
    assert a.steps == b.steps
    assert {k: v for k, v in a.extras.items() if k not in TIMING} == \
        {k: v for k, v in b.extras.items() if k not in TIMING}


def _kill_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, baseline: str, env: str,
                     hparams: dict[str, Any], every: int, half: int) -> tuple[dict, dict]:
    uninterrupted = run_one(_job(baseline, env, hparams))
    job = _job(baseline, env, hparams, tmp_path, every)
    saved = _kill_after_checkpoint_at(monkeypatch, half)
    killed = run_one(job)
    assert killed.status == "failed" and "Killed" in killed.reason, killed.reason
    release_checkpoint(job, killed)  # a failed run keeps its checkpoint for the re-run
    assert (job.live_dir / CHECKPOINT_FILE).exists() and saved[-1] >= half
    resumed = run_one(job)
    assert resumed.provenance.resumed["from_step"] == saved[-1]
    _same_result(uninterrupted, resumed)
    release_checkpoint(job, resumed)
    assert not (job.live_dir / CHECKPOINT_FILE).exists()
    return uninterrupted, resumed


def test_ppo_killed_at_half_and_resumed_is_bit_identical(tmp_path, monkeypatch):
    """Lattice PPO on MuJoCo InvertedPendulum: 4 iterations of 4 envs x 256 steps, killed after iteration 2."""
    hp = dict(total_steps=4096, n_envs=4, n_steps=256, batch_size=64, n_epochs=2, lr=3e-4,
              hidden=[32, 32], n_evals=2, eval_episodes=2, noise="lattice", sde_sample_freq=4)
    _, resumed = _kill_and_resume(tmp_path, monkeypatch, "ppo", "InvertedPendulum-v5", hp, every=1024, half=2048)
    assert resumed.steps == 4096 and len(resumed.curves["eval_return"]) == 2


@pytest.mark.parametrize("env", ["CartPole-v1", "MinAtar/Breakout-v1"])
def test_dqn_killed_at_half_and_resumed_is_bit_identical(tmp_path, monkeypatch, env):
    """DQN (replay + target network) for 1200 frames in chunks of 200, killed after frame 600: the replay memory,
    both envs mid-episode, the exploration/evaluation/replay generators and the optimizer come back."""
    hp = dict(total_frames=1200, learning_starts=200, buffer_size=2000, batch_size=16, target_update=100,
              eps_decay_frames=600, eval_every=400, eval_episodes=2, eval_max_steps=100, chunk=200)
    if env == "CartPole-v1":
        hp.update(optimizer="adam", lr=1e-3, hidden=[32, 32])
    _, resumed = _kill_and_resume(tmp_path, monkeypatch, "dqn", env, hp, every=200, half=600)
    assert resumed.steps == 1200 and len(resumed.curves["eval_return"]) == 3
    assert resumed.extras["updates"] == 1000


def test_sac_killed_at_half_and_resumed_is_bit_identical(tmp_path, monkeypatch):
    """gSDE SAC on MuJoCo InvertedPendulum for 1000 env steps in calls of 100, killed after step 500: its replay
    memory of 400 has wrapped by then, and it resumes mid training round (500 is no multiple of train_freq 8), on
    the noise matrices it held."""
    hp = dict(total_steps=1000, steps_per_call=100, learning_starts=300, buffer_size=400, batch_size=32,
              hidden=[32, 32], noise="gsde", log_std_init=-2.0, n_evals=2, eval_episodes=2)
    _, resumed = _kill_and_resume(tmp_path, monkeypatch, "sac", "InvertedPendulum-v5", hp, every=100, half=500)
    assert resumed.steps == 1000 and len(resumed.curves["eval_return"]) == 2


def test_a2c_killed_at_half_and_resumed_is_bit_identical(tmp_path, monkeypatch):
    """The policy-gradient family's state (A2C on CartPole: 4 chunks of 16 updates of 8 envs x 5 steps)."""
    hp = dict(total_steps=2560, n_evals=2, eval_episodes=2)
    _kill_and_resume(tmp_path, monkeypatch, "a2c", "CartPole-v1", hp, every=640, half=1280)


def test_continual_ewc_killed_at_half_and_resumed_is_bit_identical(tmp_path, monkeypatch):
    """EWC (true Fisher: it draws from the Fisher generator) on 3 permuted-digit tasks, killed after task 2."""
    hp = dict(strategy="ewc", lam=30.0, fisher="true", epochs=1)
    full = run_one(_job("continual", "permuted-digits-3", hp))
    per_task = full.steps // 3
    _kill_and_resume(tmp_path, monkeypatch, "continual", "permuted-digits-3", hp, every=1, half=3 * per_task // 2)


@pytest.mark.parametrize("baseline", ["maml", "reptile"])
def test_meta_learner_killed_at_half_and_resumed_is_bit_identical(tmp_path, monkeypatch, baseline):
    """Sinusoid MAML (Adam state) and Reptile (annealed outer step): 200 meta-iterations in chunks of 20, killed
    after the checkpoint at 100, mid-way between two curve points (every 33) and two evaluations (every 66)."""
    hp = dict(meta_iterations=200, iters_per_step=20, curve_points=6, eval_points=3, eval_tasks=50, eval_query=20)
    _, resumed = _kill_and_resume(tmp_path, monkeypatch, baseline, "sinusoid-K5", hp, every=50, half=100)
    assert resumed["steps"] == 200
    assert len(resumed["curves"]["meta_loss"]) == 6 and len(resumed["curves"]["eval_mse_step1"]) == 3


@pytest.mark.parametrize(("baseline", "driver"), [("gan", "trainer"), ("gan", "loop"), ("vae", "trainer")])
def test_generative_killed_at_half_and_resumed_is_bit_identical(tmp_path, monkeypatch, baseline, driver):
    """WGAN-GP (n_critic 3: the generator's turn depends on the step count) and the VAE on the digits, 40
    minibatches, killed after the checkpoint at 20: 20 is no multiple of 3, the data stream resumes mid-block
    of its 32-index draws, and the FID curve has one point on each side of the kill."""
    hp = dict(train_steps=40, batch_size=16, n_evals=2, eval_samples=200, width=8, z_dim=8, driver=driver)
    if baseline == "gan":
        hp.update(loss="wgan_gp", n_critic=3, d_batchnorm=False)
    _, resumed = _kill_and_resume(tmp_path, monkeypatch, baseline, "digits", hp, every=10, half=20)
    assert resumed.steps == 40 and [x for x, _ in resumed.curves["fid"]] == [20, 40]


def test_checkpoint_is_atomic_and_a_corrupt_one_is_reported_by_path_and_ignored(tmp_path, capsys):
    identity = {"config_hash": "abc"}
    ckpt = Checkpointer(tmp_path, every=10, identity=identity)
    assert ckpt.load() is None
    assert not ckpt.due(9) and ckpt.due(10)
    ckpt.save(10, {"x": [1, 2]})
    assert not ckpt.due(19) and ckpt.due(20)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]  # no temp file left behind
    fresh = Checkpointer(tmp_path, every=10, identity=identity)
    assert fresh.load() == {"x": [1, 2]} and fresh.resumed_step == 10 and fresh.due(20) and not fresh.due(19)
    assert Checkpointer(tmp_path, identity={"config_hash": "other"}).load() is None  # another config's checkpoint
    assert "another configuration" in capsys.readouterr().err
    path = tmp_path / CHECKPOINT_FILE
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    assert Checkpointer(tmp_path, identity=identity).load() is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{path}: corrupt checkpoint ignored")
    path.write_bytes(b"garbage")
    assert Checkpointer(tmp_path, identity=identity).load() is None
    assert str(path) in capsys.readouterr().err


def test_checkpoint_options_are_not_part_of_the_run_identity(tmp_path, toy_spec_path):
    spec = load_spec(toy_spec_path)
    plain = plan_jobs(spec, "smoke")
    live = with_live(plain, tmp_path, checkpoint_every=5, keep_checkpoints=True)
    assert [j.config_hash for j in plain] == [j.config_hash for j in live]
    assert [j.hparams for j in plain] == [j.hparams for j in live]
    assert [j.settings for j in plain] == [j.settings for j in live]
    assert live[0].live_dir == live_path(tmp_path, live[0].key)


def test_keep_checkpoints_keeps_it_and_a_failed_run_keeps_it(tmp_path):
    plain = _job("continual", "permuted-digits-3", dict(strategy="finetune", epochs=1))
    job, kept = with_live([plain], tmp_path)[0], with_live([plain], tmp_path, keep_checkpoints=True)[0]
    ckpt = job.live_dir / CHECKPOINT_FILE
    Checkpointer(job.live_dir, every=1).save(1, {})
    release_checkpoint(kept, make_record(status="ok"))
    assert ckpt.exists()
    release_checkpoint(job, make_record(status="failed"))
    assert ckpt.exists()
    release_checkpoint(job, make_record(status="diverged"))
    assert not ckpt.exists()


def test_sweep_rerun_resumes_a_killed_run_and_force_starts_over(tmp_path, monkeypatch):
    plain = _job("continual", "permuted-digits-3", dict(strategy="si", c=10.0, epochs=1))
    jobs = with_live([plain], tmp_path, checkpoint_every=1, checkpoint_interval_s=0)
    _kill_after_checkpoint_at(monkeypatch, 1)
    assert run_sweep(jobs, tmp_path, workers=1, in_process=True).failed
    resumed = run_sweep(jobs, tmp_path, workers=1, in_process=True).done[0]
    assert resumed.status == "ok" and resumed.provenance.resumed["from_step"] > 0
    assert not (jobs[0].live_dir / CHECKPOINT_FILE).exists()
    _kill_after_checkpoint_at(monkeypatch, 1)
    assert run_sweep(jobs, tmp_path, workers=1, force=True, in_process=True).failed
    fresh = run_sweep(jobs, tmp_path, workers=1, force=True, in_process=True).done[0]
    assert fresh.status == "ok" and fresh.provenance.resumed is None
    _same_result(resumed, fresh)


def test_sweep_leaves_a_live_csv_log_per_run_in_real_units(tmp_path):
    """A smoke-sized sweep of the continual task: each run's live folder holds metrics.csv, step axis = samples."""
    spec = load_spec(Path(__file__).resolve().parent.parent / "tasks" / "ewc_permuted_digits.yaml")
    jobs = [j for j in plan_jobs(spec, "smoke", seeds=1) if j.key.variant in ("finetune", "ewc")]
    summary = run_sweep(jobs, tmp_path, workers=1, in_process=True)
    assert [r.status for r in summary.done] == ["ok", "ok"]
    for job, record in zip(jobs, summary.done, strict=True):
        folder = live_path(tmp_path, job.key)
        assert not (folder / CHECKPOINT_FILE).exists()
        rows = list(csv.DictReader(open(folder / "metrics.csv")))
        assert [int(r["step"]) for r in rows][-1] == record.steps
        per_task = [float(r["seen_task_acc"]) for r in rows if r["seen_task_acc"]]
        assert per_task == [p[1] for p in record.curves["seen_task_acc"]]


def test_track_streams_the_live_log_to_wandb_offline_without_changing_a_number(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from suite.tracking import enable_tracking

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    hp = dict(strategy="ewc", lam=30.0, epochs=1)
    plain = run_one(_job("continual", "permuted-digits-3", hp))
    job = enable_tracking(with_live([_job("continual", "permuted-digits-3", hp)], tmp_path))[0]
    tracked = run_one(job)
    _same_result(plain, tracked)
    assert list((job.live_dir / "wandb").glob("offline-run-*")), "one offline W&B run, streamed while it ran"
    assert (job.live_dir / "metrics.csv").exists()


def test_every_run_of_a_sweep_leaves_a_live_csv_log_ending_with_its_final_metrics(tmp_path, toy_spec_path):
    jobs = plan_jobs(load_spec(toy_spec_path), "smoke", seeds=1)
    summary = run_sweep(jobs, tmp_path, workers=1, in_process=True)
    assert summary.done and all(r.status == "ok" for r in summary.done)
    for job, record in zip(jobs, summary.done, strict=True):
        rows = list(csv.DictReader(open(live_path(tmp_path, job.key) / "metrics.csv")))
        assert int(rows[-1]["step"]) == record.steps
        assert {k: float(rows[-1][k]) for k in record.metrics} == record.metrics


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout-v1", "ALE/Breakout-v5", "InvertedPendulum-v5"])
def test_env_snapshot_restored_into_a_fresh_env_replays_the_same_steps(env_id):
    """What a resumed run relies on: a snapshot taken mid-episode, put into a fresh env built the same way, gives
    the same observations and rewards for the same actions (sticky actions, no-op starts and resets included)."""
    import numpy as np

    from suite.envs.snapshot import env_state, set_env_state

    if env_id == "InvertedPendulum-v5":
        from suite.envs.mujoco_envs import make_env

        def build():
            env = make_env(env_id)
            env.reset(seed=3)
            return env
    else:
        from suite.envs.gym_envs import make_env

        def build():
            return make_env(env_id, 3, stack_frames=False)

    def play(env, actions):
        out = []
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
            out.append((np.array(obs).copy(), float(reward), terminated, truncated))
        return out

    env = build()
    actions = [env.action_space.sample() for _ in range(160)]
    play(env, actions[:60])
    snapshot = env_state(env)
    expected = play(env, actions[60:])
    fresh = build()
    set_env_state(fresh, snapshot)
    replayed = play(fresh, actions[60:])
    assert len(replayed) == len(expected)
    for (o1, r1, t1, u1), (o2, r2, t2, u2) in zip(expected, replayed, strict=True):
        assert np.array_equal(o1, o2) and (r1, t1, u1) == (r2, t2, u2)
    assert any(not np.array_equal(expected[0][0], e[0]) for e in expected)  # the env really moved
