"""Per-baseline resolution before the run: the module gets the resolved hyperparameters and the record stores them.

``config``/``config_hash`` stay the declared configuration (the sweep cell, the same for every seed); ``resolved``
is what ``fit`` received, compared on resume and by ``suite check``.
"""

from __future__ import annotations

import dataclasses

import pytest

from suite import registry
from suite.check import compare_record
from suite.runner import plan_jobs
from suite.spec import load_spec
from suite.store import scan
from suite.sweep import pending, run_sweep

SPEC = """
name: toy
title: Toy regression with resolved hyperparameters
paper: "none (harness tests)"
baseline: toy_resolved
variants:
  declared: {}
  given: {lr: 0.2, batch: 8}
envs: [toy-a, toy-b]
metric: {name: weight_error, higher_is_better: false}
profiles:
  smoke: {seeds: 2, params: {steps: 20}, timeout: 60}
  cpu: {seeds: 2}
  paper: {seeds: 2}
"""


@pytest.fixture
def spec(write_spec):
    return load_spec(write_spec(text=SPEC))


@pytest.fixture
def swept(spec, tmp_path):
    jobs = plan_jobs(spec, "smoke", seeds=2)
    summary = run_sweep(jobs, tmp_path, workers=0, in_process=True)
    assert len(summary.done) == 8 and not summary.failed, [r.reason for r in summary.failed]
    return jobs


def test_the_record_holds_what_the_module_received(spec, swept, tmp_path):
    records, errors = scan(tmp_path, "smoke", spec.name)
    assert len(records) == 8 and not errors
    for record in records:
        assert record.resolved == record.extras["seen"]  # exactly the hparams fit saw
        if record.variant == "declared":
            assert record.config["lr"] is None and record.config["batch"] is None  # the declaration, as before
            assert record.resolved["lr"] == (0.1 if record.env == "toy-a" else 0.05)
            assert record.resolved["batch"] == (16 if record.seed % 2 else 32)
        else:
            assert record.resolved["lr"] == 0.2 and record.resolved["batch"] == 8  # a spec value is never replaced
    hashes = {}
    for record in records:
        hashes.setdefault(record.cell, set()).add(record.config_hash)
    assert all(len(h) == 1 for h in hashes.values())  # the cell's hash does not depend on the seed


def test_resume_reruns_what_an_edited_hook_resolves_differently(swept, tmp_path, monkeypatch):
    todo, done, corrupt = pending(swept, tmp_path)
    assert not todo and len(done) == 8 and not corrupt
    entry = registry.get_baseline("toy_resolved")

    def new_hook(hparams, env, seed):
        resolved = entry.resolve(hparams, env, seed)
        return {**resolved, "batch": 64} if hparams["batch"] is None else resolved

    monkeypatch.setitem(registry.BASELINES, "toy_resolved", dataclasses.replace(entry, resolve=new_hook))
    todo, done, _ = pending(swept, tmp_path)
    assert {j.key.variant for j in todo} == {"declared"} and len(todo) == 4  # same config hash, other run
    assert {j.key.variant for j in done} == {"given"}


def test_check_names_a_changed_resolution(spec, swept, tmp_path):
    records, _ = scan(tmp_path, "smoke", spec.name)
    committed = next(r for r in records if r.variant == "declared")
    fresh = committed.replace(resolved={**committed.resolved, "batch": 64})
    rows = compare_record(spec, committed, fresh)
    assert [(m.metric, m.committed, m.now) for m in rows] == [("resolved.batch", committed.resolved["batch"], 64)]
    assert compare_record(spec, committed.replace(resolved=None), fresh) == []  # a schema-1 record: nothing to compare
