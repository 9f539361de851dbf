"""Renaming a hyperparameter (``register_baseline(..., renamed={new: former})``) keeps every record that ran valid.

The toy baseline runs under its original name ``lr``; then it is renamed ``step_size`` (as a baseline edit would)
and the same spec, written with the new name, must find those records current: same cell hash, nothing to re-run,
nothing stale, a fresh run identical, and the old name in a spec or ``-o`` answered with the new one.  The last test
checks the same for every committed record of every task: an unnoticed rename would make them stale.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from suite import registry
from suite.check import compare_record
from suite.cli import main
from suite.jobs import split_stale
from suite.overrides import apply_overrides
from suite.runner import plan_jobs
from suite.spec import load_spec, load_specs
from suite.spec_reader import SpecError
from suite.store import scan
from suite.sweep import pending, run_sweep

ROOT = Path(__file__).resolve().parent.parent
SPEC = """
name: toy_rename
title: Toy regression, before and after a rename
paper: "none (harness tests)"
baseline: toy_regression
variants:
  slow: {LR_NAME: 0.01}
  fast: {LR_NAME: 0.1}
envs: [toy-a]
metric: {name: weight_error, higher_is_better: false}
profiles:
  smoke: {seeds: 2, params: {steps: 20}, timeout: 60}
  cpu: {seeds: 2}
  paper: {seeds: 2}
"""


def _rename_lr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-register ``toy_regression`` with ``lr`` renamed ``step_size`` (its fit reads the new name)."""
    entry = registry.get_baseline("toy_regression")
    defaults = {("step_size" if k == "lr" else k): v for k, v in entry.defaults.items()}

    def fit(ctx):
        return entry.fit(dataclasses.replace(ctx, hparams={**ctx.hparams, "lr": ctx.hparams["step_size"]}))

    monkeypatch.setitem(registry.BASELINES, "toy_regression",
                        dataclasses.replace(entry, fit=fit, defaults=defaults, renamed={"step_size": "lr"}))


@pytest.fixture
def before(write_spec, tmp_path):
    """Records of the spec run under the old name, and the spec file written with the new one."""
    old = load_spec(write_spec(text=SPEC.replace("LR_NAME", "lr"), name="old.yaml"))
    summary = run_sweep(plan_jobs(old, "smoke"), tmp_path, workers=0, in_process=True)
    assert len(summary.done) == 4 and not summary.failed
    return write_spec(text=SPEC.replace("LR_NAME", "step_size"), name="new.yaml")


def test_a_rename_keeps_the_cells_and_their_records(before, tmp_path, monkeypatch):
    old_records, _ = scan(tmp_path, "smoke", "toy_rename")
    _rename_lr(monkeypatch)
    spec = load_spec(before)
    jobs = plan_jobs(spec, "smoke")
    assert {j.config_hash for j in jobs} == {r.config_hash for r in old_records}  # hashed under the former name
    todo, done, corrupt = pending(jobs, tmp_path)
    assert not todo and len(done) == 4 and not corrupt  # the resolved hparams read back under the new name
    assert split_stale(spec, "smoke", old_records)[1] == []
    assert "step_size" in registry.current_config("toy_regression", old_records[0].resolved)

    fresh_root = tmp_path / "fresh"
    run_sweep(jobs, fresh_root, workers=0, in_process=True)
    fresh, _ = scan(fresh_root, "smoke", "toy_rename")
    assert all("step_size" in r.config and "lr" not in r.config for r in fresh)  # new records use the new name
    by_key = {(r.variant, r.seed): r for r in old_records}
    for record in fresh:
        assert compare_record(spec, by_key[record.variant, record.seed], record) == []  # same numbers, same config


def test_the_old_name_is_refused_with_the_new_one(write_spec, monkeypatch, capsys):
    _rename_lr(monkeypatch)
    with pytest.raises(SpecError, match="'lr' of baseline 'toy_regression' was renamed to "
                                                           "'step_size'"):
        load_spec(write_spec(text=SPEC.replace("LR_NAME", "lr")))
    spec = load_spec(write_spec(text=SPEC.replace("LR_NAME", "step_size")))
    with pytest.raises(SpecError, match="renamed to 'step_size'"):
        apply_overrides(spec, plan_jobs(spec, "smoke"), {"lr": 0.3})
    assert main(["list", "toy_regression"]) == 0
    assert "(formerly lr)" in capsys.readouterr().out


def test_a_rename_must_name_a_current_key_and_a_free_former_one():
    def fit(ctx):
        raise AssertionError

    with pytest.raises(ValueError, match="rename"):
        registry.register_baseline("bad_rename", defaults={"lr": 1}, env_families=("toy",),
                                   renamed={"step": "lr"})(fit)
    assert "bad_rename" not in registry.BASELINES


def test_every_committed_record_matches_its_spec_cell():
    """No committed record is stale: renames and spec edits left every cell's hash where its records are."""
    checked = 0
    for spec in load_specs([ROOT / "tasks"]):
        for profile in spec.profiles:
            records, corrupt = scan(ROOT / "results", profile, spec.name)
            assert not corrupt, corrupt
            assert split_stale(spec, profile, records)[1] == [], (spec.name, profile)
            checked += len(records)
    assert checked > 0
