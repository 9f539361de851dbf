"""Results as data: `suite export` / `load_results` / `to_rliable` give the report's numbers."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.cli import main
from suite.report import build_report
from suite.results import ResultsError, load_results, to_rliable
from suite.spec import load_specs

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = "cpu"


def _readme_notebook() -> str:
    section = (ROOT / "README.md").read_text().split("## Results as data", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_readme_notebook_example_runs(monkeypatch):
    code = _readme_notebook()
    assert len(code.strip().splitlines()) == 3
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    df, scores = namespace["df"], namespace["scores"]
    assert isinstance(df, pd.DataFrame) and set(df["profile"]) == {COMMITTED}
    assert scores and all(a.ndim == 2 and a.shape[1] == df[df.task == "maml_sinusoid"].env.nunique()
                          for a in scores.values())


@functools.lru_cache(maxsize=1)  # the report of every task takes ~20 s; build it once
def _report_means(profile: str) -> dict[tuple[str, str, str, str], float]:
    means = {}
    for spec in load_specs([str(ROOT / "tasks")]):
        if spec.profiles[profile].skip:
            continue
        report = build_report(spec, profile, ROOT / "results", figures=False)
        for (variant, env, metric), cell in report.cells.items():
            if cell.n:
                means[(spec.name, variant, env, metric)] = cell.mean
    return means


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_round_trips_to_the_report_table(fmt, tmp_path):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"cpu.{fmt}"
    assert main(["export", "--profile", COMMITTED, "--format", fmt, "--output", str(out),
                 "--results", str(ROOT / "results")]) == 0
    loaded = load_results(out)
    direct = load_results(ROOT / "results", profile=COMMITTED)
    pd.testing.assert_frame_equal(loaded, direct, check_exact=True)  # exact: floats survive the file format bit for bit
    means = loaded[loaded.status == "ok"].groupby(["task", "variant", "env", "metric"])["value"].mean()
    expected = _report_means(COMMITTED)
    assert len(expected) > 100
    for key, value in expected.items():
        assert means[key] == pytest.approx(value, rel=1e-12, abs=0), key


def test_export_rows_carry_identity_and_provenance(tmp_path, capsys):
    assert main(["export", "--profile", COMMITTED, "--tasks", "maml_sinusoid", "--format", "json",
                 "--results", str(ROOT / "results")]) == 0
    rows = json.loads(capsys.readouterr().out)
    record = json.loads(next((ROOT / "results" / COMMITTED / "maml_sinusoid" / "runs").glob("*.json")).read_text())
    mine = [r for r in rows if (r["variant"], r["env"], r["seed"]) == (record["variant"], record["env"],
                                                                       record["seed"])]
    assert {r["metric"] for r in mine} == set(record["metrics"])
    assert all(r["config_hash"] == record["config_hash"] and r["commit"] == record["provenance"]["git_commit"]
               and r["status"] == record["status"] for r in mine)
    assert {r["task"] for r in rows} == {"maml_sinusoid"}


@pytest.mark.parametrize("argv, message", [
    (["--profile", "nope"], "no such profile folder"),
    (["--profile", "cpu", "--tasks", "nope"], "no records for task(s) nope"),
    (["--profile", "cpu", "--format", "parquet"], "give a file with --output"),
])
def test_export_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(["export", *argv, "--results", str(ROOT / "results")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def _table(rows: list[tuple[str, str, int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"task": "t", "variant": v, "env": e, "seed": s, "status": st, "metric": "m", "value": x}
                         for v, e, s, st, x in rows])


def test_to_rliable_shapes_orders_and_drops_incomplete_seeds():
    rows = [(v, e, s, "ok", 10 * i + s + (0.5 if e == "b" else 0)) for i, v in enumerate(("y", "x"))
            for e in ("b", "a") for s in range(3)]
    rows[-1] = ("x", "a", 2, "failed", float("nan"))  # x lost seed 2 in env a
    with pytest.warns(UserWarning, match=r"x: seeds \[2\]"):
        scores = to_rliable(_table(rows), "m")
    assert list(scores) == ["y", "x"]  # order of appearance unless variants=... is given
    np.testing.assert_array_equal(scores["y"], [[0, 0.5], [1, 1.5], [2, 2.5]])  # columns: envs sorted (a, b)
    assert scores["x"].shape == (2, 2)
    assert list(to_rliable(_table(rows), "m", variants=["x", "y"])) == ["x", "y"]


def test_to_rliable_needs_one_task_and_a_known_metric():
    table = pd.concat([_table([("v", "e", 0, "ok", 1.0)]), _table([("v", "e", 0, "ok", 2.0)]).assign(task="u")])
    with pytest.raises(ResultsError, match="several tasks"):
        to_rliable(table, "m")
    assert to_rliable(table, "m", task="u")["v"].tolist() == [[2.0]]
    with pytest.raises(ResultsError, match="metrics in this table: m"):
        to_rliable(table, "nope")


def test_import_suite_stays_free_of_numpy_pandas_torch():
    code = ("import sys, suite; heavy = [m for m in ('numpy', 'pandas', 'torch') if m in sys.modules]; "
            "assert not heavy, heavy; assert callable(suite.load_results)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
