"""Runner and sweep: failure isolation, determinism, resume after SIGKILL, corrupt-record re-runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from suite.runner import plan_jobs, run_one
from suite.spec import load_spec
from suite.store import read_record, record_path, scan
from suite.sweep import pending, run_sweep

ROOT = Path(__file__).resolve().parent.parent


class QuietReporter:
    def __init__(self):
        self.lines = []

    def note(self, message):
        self.lines.append(message)

    def begin(self, **kwargs):
        self.begin_args = kwargs

    def started(self, job):
        pass

    def progress(self, job, step, total):
        pass

    def finished(self, job, record):
        self.lines.append(f"{job.key.label} {record['status']}")

    def end(self):
        pass


def _jobs(write_spec, mode_by_variant: dict[str, str], timeout: int = 60, steps: int = 20):
    variants = "\n".join(f"  {name}: {{mode: {mode}}}" for name, mode in mode_by_variant.items())
    text = Path(ROOT / "tests/specs/toy.yaml").read_text()
    text = text.replace("  fast: {lr: 0.1}\n  slow: {lr: 0.01}", variants)
    text = text.replace("smoke: {seeds: 3, params: {steps: 40}, timeout: 60}",
                        f"smoke: {{seeds: 1, envs: [toy-a], params: {{steps: {steps}}}, timeout: {timeout}}}")
    text = text.split("references:")[0]
    return plan_jobs(load_spec(write_spec(text=text)), "smoke")


def test_same_seed_gives_identical_metrics(toy_spec_path):
    job = plan_jobs(load_spec(toy_spec_path), "smoke")[0]
    first, second = run_one(job), run_one(job)
    assert first["status"] == "ok"
    assert first["metrics"] == second["metrics"] and first["curves"] == second["curves"]
    other_seed = plan_jobs(load_spec(toy_spec_path), "smoke")[1]
    assert run_one(other_seed)["metrics"] != first["metrics"]


def test_nan_is_diverged_with_step_and_exception_is_failed_with_traceback(write_spec):
    nan_job, crash_job = _jobs(write_spec, {"nan": "nan", "crash": "crash"})
    diverged = run_one(nan_job)
    assert diverged["status"] == "diverged" and diverged["diverged_step"] == 7 and "loss is nan" in diverged["reason"]
    failed = run_one(crash_job)
    assert failed["status"] == "failed" and "RuntimeError: injected failure" in failed["reason"]


def test_crash_kill_and_timeout_fail_only_their_run(tmp_path, write_spec):
    jobs = _jobs(write_spec, {"good": "ok", "crash": "crash", "kill": "kill", "hang": "hang", "nan": "nan",
                              "after": "ok"}, timeout=8)
    summary = run_sweep(jobs, tmp_path, workers=2, reporter=QuietReporter())
    status = {r["variant"]: (r["status"], r["reason"] or "") for r in summary.done}
    assert status["good"][0] == "ok" and status["after"][0] == "ok"
    assert status["crash"][0] == "failed" and "injected failure" in status["crash"][1]
    assert status["kill"][0] == "failed" and "SIGKILL" in status["kill"][1]
    assert status["hang"][0] == "failed" and "timeout" in status["hang"][1]
    assert status["nan"][0] == "diverged"
    records, errors = scan(tmp_path, "smoke", jobs[0].key.task)
    assert len(records) == 6 and not errors
    # resume: ok/diverged are kept, failed runs are retried
    todo, done, corrupt = pending(jobs, tmp_path)
    assert {j.key.variant for j in done} == {"good", "after", "nan"}
    assert {j.key.variant for j in todo} == {"crash", "kill", "hang"}


def test_corrupt_record_is_rerun(tmp_path, toy_spec_path):
    jobs = plan_jobs(load_spec(toy_spec_path), "smoke", seeds=1)
    run_sweep(jobs, tmp_path, workers=0, in_process=True, reporter=QuietReporter())
    path = record_path(tmp_path, jobs[0].key)
    path.write_text(path.read_text()[:100])
    reporter = QuietReporter()
    summary = run_sweep(jobs, tmp_path, workers=0, in_process=True, reporter=reporter)
    assert len(summary.done) == 1 and len(summary.skipped) == len(jobs) - 1
    assert any(str(path) in line and "not valid JSON" in line for line in reporter.lines)
    assert read_record(path)["status"] == "ok"


def test_sigkilled_sweep_resumes_and_completes_every_run_once(tmp_path, write_spec):
    spec_text = Path(ROOT / "tests/specs/toy.yaml").read_text().replace(
        "smoke: {seeds: 3, params: {steps: 40}, timeout: 60}",
        "smoke: {seeds: 4, params: {steps: 20, sleep: 0.05}, timeout: 60}")
    spec_path = write_spec(text=spec_text)
    command = [sys.executable, "-m", "suite.cli", "run", str(spec_path), "--profile", "smoke", "--workers", "2",
               "--results", str(tmp_path), "--no-report"]
    env = dict(os.environ)
    sweep = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    runs_dir = tmp_path / "smoke" / "toy" / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(runs_dir.glob("*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGKILL)  # the whole sweep, workers included
    sweep.wait()
    first = {p.name for p in runs_dir.glob("*.json")}
    assert 3 <= len(first) < 16, "kill the sweep part-way"
    mtimes = {p.name: p.stat().st_mtime_ns for p in runs_dir.glob("*.json")}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(first)} already recorded" in result.stderr
    records, errors = scan(tmp_path, "smoke", "toy")
    assert not errors and len(records) == 16 and all(r["status"] == "ok" for r in records)
    assert not list(runs_dir.glob(".tmp-*"))
    # the runs recorded before the kill were not run again
    assert all((runs_dir / name).stat().st_mtime_ns == mtime for name, mtime in mtimes.items())
