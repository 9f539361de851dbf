"""Ray executor gives the local executor's records; --track logs offline without touching the network."""

from __future__ import annotations

import socket

import pytest

from suite.cli import main
from suite.spec import load_spec
from suite.store import scan


def _metrics(root):
    records, errors = scan(root, "smoke", "toy")
    assert not errors
    return {(r.variant, r.env, r.seed): (r.status, r.metrics, r.curves) for r in records}


@pytest.mark.ray
def test_ray_executor_matches_local_records(tmp_path, toy_spec_path):
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    local, ray_root = tmp_path / "local", tmp_path / "ray"
    common = [str(toy_spec_path), "--profile", "smoke", "--seeds", "2", "--no-report"]
    assert main(["run", *common, "--workers", "2", "--results", str(local)]) == 0
    assert main(["run", *common, "--executor", "ray", "--results", str(ray_root)]) == 0
    assert _metrics(local) == _metrics(ray_root) and len(_metrics(local)) == 8
    # resume under ray: nothing left to run
    from suite.executors.ray_executor import run_sweep_ray
    from suite.runner import plan_jobs

    summary = run_sweep_ray(plan_jobs(load_spec(toy_spec_path), "smoke", seeds=2), ray_root)
    assert not summary.done and len(summary.skipped) == 8


def test_track_offline_writes_a_run_dir_and_never_uses_the_network(tmp_path, toy_spec_path, monkeypatch):
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))

    attempts = []
    real_connect = socket.socket.connect

    def local_only(sock, address):
        # W&B talks to its own service over a unix socket or loopback; anything else is the network
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError("network disabled by the test")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    from suite.runner import plan_jobs, run_one
    from suite.tracking import enable_tracking, log_record

    job = enable_tracking(plan_jobs(load_spec(toy_spec_path), "smoke", seeds=1))[0]
    record = run_one(job)
    assert record.status == "ok"
    run_dir = log_record(record, directory=str(tmp_path / "wandb-dir"))
    assert run_dir is not None
    offline_runs = list((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*"))
    assert offline_runs, "an offline run directory is written"
    assert attempts == []


def test_precision_flag_reaches_the_lightning_trainer():
    """--precision flows into the baseline's Trainer: bf16 autocast changes a MAML smoke run's numbers."""
    import dataclasses
    from pathlib import Path

    from suite.runner import plan_jobs, run_one

    spec = load_spec(Path(__file__).resolve().parent.parent / "tasks" / "maml_sinusoid.yaml")
    job = next(j for j in plan_jobs(spec, "smoke", seeds=1) if j.key.variant == "pretrain")
    full, bf16 = run_one(job), run_one(dataclasses.replace(job, precision="bf16-mixed"))
    assert full.status == bf16.status == "ok"
    assert full.metrics["mse_step1"] != bf16.metrics["mse_step1"]
    assert abs(full.metrics["mse_step1"] - bf16.metrics["mse_step1"]) < 0.5  # same training, lower precision


def test_ray_tasks_ask_for_a_gpu_per_rank_only_for_gpu_runs(toy_spec_path):
    import dataclasses

    from suite.executors.ray_executor import task_resources
    from suite.jobs import plan_jobs

    job = plan_jobs(load_spec(toy_spec_path), "smoke", seeds=1, threads=3)[0]
    assert task_resources(job) == {"num_cpus": 3, "num_gpus": 0}
    assert task_resources(dataclasses.replace(job, accelerator="gpu")) == {"num_cpus": 3, "num_gpus": 1}
    assert task_resources(dataclasses.replace(job, accelerator="cuda", devices=2))["num_gpus"] == 2
    assert task_resources(dataclasses.replace(job, accelerator="gpu", devices="0,1"))["num_gpus"] == 2
    assert task_resources(dataclasses.replace(job, accelerator="auto"))["num_gpus"] == 0  # Ray cannot know


@pytest.mark.ray
def test_ray_timeout_is_per_run_not_per_queue(tmp_path, write_spec, toy_spec_path):
    """One CPU, two runs: the hanging one fails after about its own timeout (not timeout x queue length), and
    the run queued behind it still finishes although its wait plus its run exceed the timeout."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    from pathlib import Path

    from suite.executors.ray_executor import run_sweep_ray
    from suite.jobs import plan_jobs

    text = Path(toy_spec_path).read_text().replace("  fast: {lr: 0.1}\n  slow: {lr: 0.01}",
                                                   "  hang: {mode: hang}\n  after: {sleep: 0.15}")
    text = text.replace("smoke: {seeds: 3, params: {steps: 40}, timeout: 60}",
                        "smoke: {seeds: 1, envs: [toy-a], params: {steps: 20}, timeout: 6}").split("references:")[0]
    jobs = plan_jobs(load_spec(write_spec(text=text)), "smoke")
    assert [j.key.variant for j in jobs] == ["hang", "after"]
    summary = run_sweep_ray(jobs, tmp_path / "results", num_cpus=1)
    by_variant = {r.variant: r for r in summary.done}
    assert by_variant["hang"].status == "failed" and "timeout" in by_variant["hang"].reason
    assert 6 <= by_variant["hang"].wall_time_s < 12  # the old clock allowed 6 x (1 + 2 runs) = 18 s
    assert by_variant["after"].status == "ok"
