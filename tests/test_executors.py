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
    return {(r["variant"], r["env"], r["seed"]): (r["status"], r["metrics"], r["curves"]) for r in records}


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
    assert record["status"] == "ok"
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
    assert full["status"] == bf16["status"] == "ok"
    assert full["metrics"]["mse_step1"] != bf16["metrics"]["mse_step1"]
    assert abs(full["metrics"]["mse_step1"] - bf16["metrics"]["mse_step1"]) < 0.5  # same training, lower precision
