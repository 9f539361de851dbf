"""CLI edges: every bad argument is one line on stderr and exit 2 with nothing run; report writes only what it should."""

from __future__ import annotations

import pytest

from suite.cli import main
from suite.runner import plan_jobs
from suite.spec import load_spec
from suite.store import record_files, record_path


@pytest.fixture
def toy_results(tmp_path, toy_spec_path):
    root = tmp_path / "results"
    assert main(["run", str(toy_spec_path), "--profile", "smoke", "--workers", "0", "--results", str(root),
                 "--no-report", "--seeds", "2"]) == 0
    return root


def test_report_on_another_results_folder_leaves_benchmarks_md_alone(toy_results, toy_spec_path, tmp_path,
                                                                     monkeypatch, capsys):
    repo = tmp_path / "repo"  # stands in for the repository root: the committed BENCHMARKS.md lives there
    repo.mkdir()
    (repo / "BENCHMARKS.md").write_text("committed\n")
    monkeypatch.chdir(repo)
    assert main(["report", str(toy_spec_path), "--results", str(toy_results)]) == 0
    assert (repo / "BENCHMARKS.md").read_text() == "committed\n"
    assert "BENCHMARKS.md not written" in capsys.readouterr().err
    asked = tmp_path / "mine.md"
    assert main(["report", str(toy_spec_path), "--results", str(toy_results), "--benchmarks", str(asked)]) == 0
    assert "## Toy regression" in asked.read_text()


def test_report_prints_corrupt_records_on_the_console(toy_results, toy_spec_path, capsys):
    path = record_path(toy_results, plan_jobs(load_spec(toy_spec_path), "smoke")[0].key)
    path.write_text(path.read_text()[:50])
    assert main(["report", str(toy_spec_path), "--results", str(toy_results), "--profile", "smoke"]) == 0
    err = capsys.readouterr().err
    assert f"corrupt record ignored (re-run the sweep to replace it): {path}: not valid JSON" in err


@pytest.mark.parametrize("argv, culprit", [
    (["--variants", "mamll"], "--variants: unknown variant 'mamll'"),
    (["--envs", "nosuch"], "--envs: unknown env 'nosuch'"),
    (["--envs", "toy-b", "--profile", "narrow"], "--envs: env 'toy-b' is not in profile 'narrow'"),
    (["--variants", "slow", "--profile", "narrow"], "--variants: variant 'slow' is not in profile 'narrow'"),
    (["--seeds", "0"], "--seeds: expected a whole number from 1 to 1000, got '0'"),
    (["--seeds", "-1"], "--seeds: expected a whole number from 1 to 1000, got '-1'"),
    (["--seeds", "10000000000"], "--seeds: expected a whole number from 1 to 1000"),
    (["--workers", "-1"], "--workers: expected a whole number from 0 to"),
    (["--threads", "0"], "--threads: expected a whole number from 1 to"),
])
def test_bad_run_arguments_are_one_line_errors_and_run_nothing(write_spec, tmp_path, capsys, argv, culprit):
    spec = write_spec({"  cpu: {seeds: 5}": "  cpu: {seeds: 5}\n  narrow: {seeds: 1, envs: [toy-a], variants: [fast]}"})
    argv = ["--profile", "smoke", *argv] if "--profile" not in argv else argv
    try:
        code = main(["run", str(spec), "--results", str(tmp_path / "r"), "--no-report", "--workers", "0", *argv])
    except SystemExit as exit_:  # argparse's way out
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2, (code, err)
    assert err.count("\n") == 0 and culprit in err, err
    assert not record_files(tmp_path / "r" / "smoke" / "toy" / "runs")
