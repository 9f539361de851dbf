"""``suite list BASELINE``: every hyperparameter a spec may set, with its default and a one-line doc."""

from __future__ import annotations

import pytest

from suite import registry
from suite.api import RunContext, RunOutput
from suite.cli import main


def test_list_baseline_prints_every_hyperparameter_with_default_and_doc(capsys):
    assert main(["list", "toy_regression"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("toy_regression: Linear regression by SGD")
    rows = {line.split()[0]: line for line in out[3:]}
    assert list(rows) == ["steps", "lr", "mode", "sleep"]  # declaration order, nothing else
    assert rows["lr"].split()[1:] == ["0.05", "SGD", "step", "size"]
    assert "'ok'" in rows["mode"] and rows["mode"].endswith("ok | crash | nan | hang | kill: which failure to inject")


def test_list_a_real_baseline_lists_its_whole_defaults(capsys):
    assert main(["list", "continual"]) == 0
    out = capsys.readouterr().out
    entry = registry.get_baseline("continual")
    for name, default in entry.defaults.items():
        assert any(line.split()[:2] == [name, repr(default)] for line in out.splitlines()), name
    assert "EWC / online EWC / L2 / MAS penalty strength (lambda)" in out  # the comment beside the default


def test_every_shipped_hyperparameter_has_a_doc():
    """A new hyperparameter comes with its one-line doc (a trailing comment on its default, or docs=)."""
    registry.load_all()
    missing = [f"{name}.{param.name}" for name, entry in sorted(registry.BASELINES.items())
               if entry.fit.__module__.startswith("baselines.") for param in registry.hyperparameters(name)
               if not param.doc]
    assert not missing, "hyperparameters without a doc: " + ", ".join(missing)


def test_unknown_baseline_is_one_line_and_exit_2(capsys):
    assert main(["list", "no_such_baseline"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "unknown baseline 'no_such_baseline'" in captured.err
    assert "toy_regression" in captured.err  # says what exists


def test_registered_docs_are_shown_and_must_name_real_hyperparameters(monkeypatch):
    monkeypatch.setattr(registry, "BASELINES", dict(registry.BASELINES))

    def fit(ctx: RunContext) -> RunOutput:
        return RunOutput(metrics={})

    defaults = {"steps": 1, "width": 8}
    registry.register_baseline("doc_probe", defaults=defaults, env_families=("toy",),
                               docs={"steps": "updates to run"})(fit)
    params = {p.name: p for p in registry.hyperparameters("doc_probe")}
    assert params["steps"].doc == "updates to run" and params["width"].doc == "" and params["width"].default == 8
    with pytest.raises(ValueError, match="unknown hyperparameter.*typo"):
        registry.register_baseline("doc_probe2", defaults=defaults, env_families=("toy",), docs={"typo": "x"})
