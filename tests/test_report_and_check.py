"""Report built from records only; `suite check` catches a changed hyperparameter; `suite compare` sees a regression."""

from __future__ import annotations

import pytest

from suite.cli import main
from suite.record import RunRecord
from suite.report import build_report
from suite.report_pages import write_benchmarks
from suite.runner import plan_jobs
from suite.spec import SpecError, load_spec
from suite.store import read_record, record_path, write_record
from tests.records import make_record


@pytest.fixture
def toy_results(tmp_path, toy_spec_path):
    root = tmp_path / "results"
    assert main(["run", str(toy_spec_path), "--profile", "smoke", "--workers", "0", "--results", str(root),
                 "--no-report"]) == 0
    return root


def test_tables_and_benchmarks_come_from_records(toy_results, toy_spec_path, tmp_path):
    spec = load_spec(toy_spec_path)
    report = build_report(spec, "smoke", toy_results)
    cell = report.cells[("fast", "toy-a", "weight_error")]
    assert cell.n == 3 and cell.ci[0] <= cell.mean <= cell.ci[1]
    assert [c.verdict for c in report.claims] == ["holds"]
    out = write_benchmarks([spec], toy_results, tmp_path / "BENCHMARKS.md")
    text = out.read_text()
    assert "## Toy regression" in text and "✅ holds" in text and "| fast | 0.0" in text
    assert (toy_results / "smoke" / "toy" / "table.csv").read_text().count("\n") == 1 + 2 * 2 * 2
    assert (toy_results / "smoke" / "toy" / "figures" / "loss.png").stat().st_size > 10_000
    # change a record on disk (validly re-sealed): the table follows the disk, not a cache
    path = record_path(toy_results, plan_jobs(spec, "smoke")[0].key)
    record = read_record(path)
    record.metrics["weight_error"] = 123.0
    write_record(toy_results, record)
    assert build_report(spec, "smoke", toy_results).cells[("fast", "toy-a", "weight_error")].mean > 40


def test_check_passes_then_fails_on_changed_hyperparameter(toy_results, write_spec, capsys):
    spec_copy = write_spec()  # identical spec: check must pass
    assert main(["check", str(spec_copy), "--workers", "0", "--results", str(toy_results)]) == 0
    changed = write_spec({"fast: {lr: 0.1}": "fast: {lr: 0.11}"}, name="changed.yaml")
    capsys.readouterr()
    assert main(["check", str(changed), "--workers", "0", "--results", str(toy_results)]) == 1
    out = capsys.readouterr().out
    assert "| toy | fast | toy-a | 0 | weight_error |" in out  # the changed variant's row
    assert "| toy | slow |" not in out  # the untouched variant still matches exactly
    assert "check FAILED" in out


def test_check_reports_corrupt_committed_record_by_path(toy_results, toy_spec_path, capsys):
    spec = load_spec(toy_spec_path)
    path = record_path(toy_results, plan_jobs(spec, "smoke")[0].key)
    path.write_text(path.read_text().replace("weight_error", "weight_errr", 1))
    assert main(["check", str(toy_spec_path), "--workers", "0", "--results", str(toy_results)]) == 1
    assert f"{path}: " in capsys.readouterr().err


def test_check_update_rewrites_on_purpose(toy_results, write_spec, capsys):
    changed = write_spec({"fast: {lr: 0.1}": "fast: {lr: 0.11}"}, name="changed.yaml")
    assert main(["check", str(changed), "--workers", "0", "--results", str(toy_results), "--update"]) == 0
    assert "updated" in capsys.readouterr().out
    assert main(["check", str(changed), "--workers", "0", "--results", str(toy_results)]) == 0


def test_compare_flags_a_worse_candidate(toy_results, tmp_path, write_spec, capsys):
    worse = write_spec({"fast: {lr: 0.1}": "fast: {lr: 0.02}"}, name="worse.yaml")
    b_root = tmp_path / "b"
    assert main(["run", str(worse), "--profile", "smoke", "--workers", "0", "--results", str(b_root),
                 "--no-report", "--seeds", "3"]) == 0
    capsys.readouterr()
    assert main(["compare", str(toy_results), str(b_root), str(worse), "--profile", "smoke",
                 "--fail-on-worse", "--alpha", "0.1"]) == 1
    out = capsys.readouterr().out
    assert "| fast | toy-a |" in out and "| worse |" in out
    assert "| slow | toy-a |" in out and "no significant change" in out


def test_unknown_baseline_is_one_line_error(write_spec, capsys):
    bad = write_spec({"baseline: toy_regression": "baseline: nope"})
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown baseline 'nope'" in err and str(bad) in err


def test_curve_x_axis_is_labelled_with_the_runs_step_unit():
    from suite.plots import step_unit_label

    def record(unit: str, curve: str = "eval_return") -> RunRecord:
        return make_record(step_unit=unit, curves={curve: [[1.0, 2.0]]})

    assert step_unit_label([record("env_steps"), record("env_steps")], "eval_return") == "env steps"
    assert step_unit_label([record("frames"), record("env_steps")], "eval_return") == "step"
    assert step_unit_label([record("frames", curve="other"), record("env_steps")], "eval_return") == "env steps"


NORMALIZATION = """normalization:
  scores:
    toy-a: {random: 2.0, reference: 0.0, source: weight error of zero weights}
    toy-b: {random: 2.5, reference: 0.0, source: weight error of zero weights}
"""


def _pooled_rows(spec_path, root) -> dict[str, str]:
    from suite.report import pooled_table

    table = pooled_table(build_report(load_spec(spec_path), "smoke", root, figures=False))
    return {line.split(" | ")[0].strip("| ").split(" (")[0]: line for line in table.splitlines() if line.startswith("| ")
            and not line.startswith("| variant")}


def test_pooled_table_uses_the_specs_fixed_scores_and_keeps_diverged_variants(toy_results, write_spec):
    both = write_spec({"claims:": NORMALIZATION + "claims:"}, name="both.yaml")
    alone = write_spec({"claims:": NORMALIZATION + "claims:",
                        "smoke: {seeds: 3,": "smoke: {seeds: 3, variants: [fast],"}, name="alone.yaml")
    text = build_report(load_spec(both), "smoke", toy_results, figures=False)
    from suite.report import pooled_table

    assert ("fixed scores, 0 = random, 1 = reference: toy-a 2 → 0, toy-b 2.5 → 0 (weight error of zero weights)"
            in pooled_table(text))
    # a variant's pooled score does not depend on which other variants are in the table
    assert _pooled_rows(both, toy_results)["fast"] == _pooled_rows(alone, toy_results)["fast"]
    # a diverged run leaves its variant in the table, with the count shown
    spec = load_spec(both)
    path = record_path(toy_results, plan_jobs(spec, "smoke", variants=["slow"])[0].key)
    record = read_record(path).replace(status="diverged", reason="loss is nan", metrics={"weight_error": None})
    write_record(toy_results, record)
    row = _pooled_rows(both, toy_results)["slow"]
    assert "(⚠ 1 diverged not pooled)" in row and row.endswith("| 5 |")


def test_pooled_table_without_fixed_scores_says_it_fell_back(toy_results, toy_spec_path):
    from suite.report import pooled_table

    table = pooled_table(build_report(load_spec(toy_spec_path), "smoke", toy_results, figures=False))
    assert "⚠ min-max normalised per env over the runs of this table" in table
    assert "no fixed reference scores for toy-a, toy-b" in table


@pytest.mark.parametrize("scores, message", [
    ("toy-a: {random: 0.0, reference: 2.0, source: x}", r"reference 2 must be below random 0"),
    ("toy-a: {random: 2.0, reference: .nan, source: x}", r"normalization\.scores\.toy-a\.reference: expected a score"),
    ("toy-a: {random: 2.0, reference: 0.0}", r"normalization\.scores\.toy-a: missing required key 'source'"),
    ("toy-q: {random: 2.0, reference: 0.0, source: x}", r"normalization\.scores\.toy-q\[0\]: unknown env 'toy-q'"),
])
def test_bad_normalization_is_a_one_line_error(write_spec, scores, message):
    from suite.spec import SpecError

    path = write_spec({"claims:": f"normalization:\n  scores:\n    {scores}\nclaims:"})
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_a_claim_on_a_metric_no_record_has_is_flagged(toy_results, write_spec):
    spec = load_spec(write_spec({"columns: [weight_error, final_loss]": "columns: [weight_error, final_loss, acc]",
                                 "lhs: {variant: fast, metric: weight_error}": "lhs: {variant: fast, metric: acc}",
                                 "rhs: {variant: slow, metric: weight_error}": "rhs: {variant: slow, metric: acc}"}))
    outcome = build_report(spec, "smoke", toy_results, figures=False).claims[0]
    assert outcome.verdict == "inconclusive"
    assert outcome.detail == "⚠ no `ok` record has metric acc; recorded metrics: final_loss, weight_error"


def test_median_iqr_summary_resists_heavy_tails(write_spec):
    """`summary: median_iqr` (Lucic et al.'s view of a hyperparameter search): one diverged run at 1e12 moves the
    mean by ~1e11 but neither the median nor the quartiles shown in the cell."""
    import numpy as np

    from suite.report import Cell

    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1e12])
    robust = Cell("v", "e", "kid", values, (float("nan"), float("nan")), "median_iqr")
    assert robust.center == 4.5 and robust.text() == "4.5 [2.75, 6.25] (n=8)"
    assert Cell("v", "e", "kid", values, (1.0, 2.0)).center == pytest.approx(1.25e11, rel=1e-6)
    assert load_spec(write_spec({"curves: [loss]": "curves: [loss]\nsummary: median_iqr"})).summary == "median_iqr"
    with pytest.raises(SpecError, match=r"summary: expected one of mean_ci, median_iqr, got 'mode'"):
        load_spec(write_spec({"curves: [loss]": "curves: [loss]\nsummary: mode"}))


def test_records_of_an_earlier_config_are_left_out_and_named(toy_results, write_spec):
    """A spec edit changes a cell's config hash: its old records must not be averaged with the new protocol."""
    edited = load_spec(write_spec({"slow: {lr: 0.01}": "slow: {lr: 0.0123}"}, name="edited.yaml"))
    fresh = build_report(load_spec(write_spec()), "smoke", toy_results, figures=False)
    report = build_report(edited, "smoke", toy_results, figures=False)
    assert not fresh.stale and report.stale == ["slow/toy-a: 3 record(s) made under another config of this spec",
                                                "slow/toy-b: 3 record(s) made under another config of this spec"]
    assert report.cells[("slow", "toy-a", "weight_error")].n == 0
    assert report.cells[("fast", "toy-a", "weight_error")].n == 3
