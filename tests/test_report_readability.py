"""Readable reports: per-env claim tables, one precision per cell, budget-flagged deltas, no empty tables."""

from __future__ import annotations

from pathlib import Path

from suite.cli import main
from suite.report import _same_decimals

ROOT = Path(__file__).resolve().parent.parent


def test_a_cell_and_its_interval_share_their_decimals():
    assert _same_decimals(9.667, 9.333, 10.0) == ["9.67", "9.33", "10.00"]
    assert _same_decimals(0.02041, 0.00382, 0.037) == ["0.02041", "0.00382", "0.03700"]
    assert _same_decimals(2597.8, 1825.6, 3632.6) == ["2597.8", "1825.6", "3632.6"]


def test_report_shows_claims_per_env_flags_budget_deltas_and_ends_with_a_summary(toy_spec_path, tmp_path, capsys):
    assert main(["run", str(toy_spec_path), "--profile", "smoke", "--workers", "0", "--results", str(tmp_path),
                 "--no-report"]) == 0
    capsys.readouterr()
    assert main(["report", str(toy_spec_path), "--profile", "smoke", "--results", str(tmp_path),
                 "--benchmarks", ""]) == 0
    out = capsys.readouterr().out
    assert "  | env | left | mean | < | right | mean | verdict | test |" in out
    assert sum(line.startswith("  | toy-") for line in out.splitlines()) == 2  # one comparison per env
    assert "Δ ours − paper †" in out and "† budget differs from the paper's: steps 40 here vs 500" in out
    assert out.strip().splitlines()[-1].startswith("smoke: 12 runs — 12 ok, 0 diverged, 0 failed; tables and figures")


def test_a_skipped_task_prints_one_line_not_an_empty_table(tmp_path, capsys):
    assert main(["report", str(ROOT / "tasks" / "maml_omniglot.yaml"), "--profile", "smoke", "--results",
                 str(tmp_path), "--benchmarks", ""]) == 0
    out = capsys.readouterr().out
    assert "— smoke: skipped (" in out and "| variant" not in out


def test_step_axis_ticks_are_compact() -> None:
    from suite.plots import compact_tick

    assert [compact_tick(v) for v in (0, 0.25, 500, 25_000, 150_000, 1_500_000, 10_000_000)] == \
        ["0", "0.25", "500", "25k", "150k", "1.5M", "10M"]
