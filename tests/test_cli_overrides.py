"""`suite run -o`, `--dry-run`, `--version`, help text and `suite list`'s notation."""

from __future__ import annotations

import argparse

import pytest

from suite import __version__
from suite.cli import build_parser, main
from suite.overrides import _seconds, parse_overrides
from suite.store import scan


def _run(spec, results, *extra: str) -> int:
    return main(["run", str(spec), "--profile", "smoke", "--variants", "fast", "--envs", "toy-a", "--seeds", "1",
                 "--workers", "0", "--results", str(results), *extra])


def test_parse_overrides_reads_yaml_scalars_and_scientific_notation():
    assert parse_overrides(["lr=1e-4", "steps=20", "double=true", "net=mlp", "x=[1, 2]"]) == {
        "lr": 1e-4, "steps": 20, "double": True, "net": "mlp", "x": [1, 2]}


def test_override_changes_config_hash_is_recorded_and_shown(toy_spec_path, tmp_path, capsys):
    assert _run(toy_spec_path, tmp_path, "--no-report") == 0
    (plain,), _ = scan(tmp_path, "smoke", "toy")
    assert plain.overrides is None and plain.config["steps"] == 40
    capsys.readouterr()
    assert _run(toy_spec_path, tmp_path, "-o", "steps=20") == 0  # a different config: the cell re-runs
    (record,), _ = scan(tmp_path, "smoke", "toy")
    assert record.overrides == {"steps": 20} and record.config["steps"] == 20
    assert record.config_hash != plain.config_hash
    assert "*overrides:* `steps=20`" in capsys.readouterr().out
    assert "*overrides:* `steps=20`" in (tmp_path / "smoke" / "toy" / "table.md").read_text()


@pytest.mark.parametrize("override, message", [
    ("steps=many", "-o (toy): steps: expected int, got str 'many'"),
    ("stepz=3", "-o (toy): stepz: not a hyperparameter of toy_regression; valid: lr, mode, sleep, steps"),
    ("steps", "expected key=value"),
])
def test_bad_override_is_one_line_exit_2(toy_spec_path, tmp_path, capsys, override, message):
    assert _run(toy_spec_path, tmp_path, "-o", override) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "smoke").exists()


def test_dry_run_plans_and_runs_nothing(toy_spec_path, tmp_path, capsys):
    argv = ["run", str(toy_spec_path), "--profile", "smoke", "--results", str(tmp_path), "--dry-run", "--workers", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "toy [smoke]: 2 variants x 2 envs x 3 seeds = 12 runs; 12 to run, 0 already recorded" in out
    assert "estimate: unknown: no records of toy" in out and not (tmp_path / "smoke").exists()
    assert _run(toy_spec_path, tmp_path, "--no-report") == 0
    (record,), _ = scan(tmp_path, "smoke", "toy")
    capsys.readouterr()
    assert main([*argv, "-o", "steps=80"]) == 0
    out = capsys.readouterr().out
    assert "12 to run, 0 already recorded" in out and "overrides: steps=80" in out  # the override re-runs all
    expected = 12 * 2 * record.wall_time_s  # each run: the only record's wall time, doubled with the budget
    assert expected < 60 and f"~{expected:.0f} s of run time, ~{expected / 2:.0f} s wall-clock with 2 workers" in out
    assert len(scan(tmp_path, "smoke", "toy")[0]) == 1  # nothing ran
    argv[argv.index("smoke")] = "paper"
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = 20 * record.wall_time_s * 500 / 40  # no paper records: the smoke one, scaled 40 -> 500 steps
    assert f"~{_seconds(expected)} of run time" in out and f"{tmp_path}/smoke, scaled by budget" in out


def test_version_and_help_on_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"suite {__version__}"
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, sub in subparsers.choices.items() for action in sub._actions
               if not action.help and not isinstance(action, argparse._HelpAction)]
    assert not missing


def test_list_explains_its_notation_and_marks_skipped_profiles(capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "variants x envs x seeds" in out
    omniglot = next(line for line in out.splitlines() if "tasks/maml_omniglot.yaml" in line)
    assert "smoke(2x4x1) [skipped]" in omniglot and "paper(2x4x3)" in omniglot and "paper(2x4x3) [" not in omniglot
