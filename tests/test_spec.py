"""Spec validation: a good spec loads; each class of bad spec gives its own one-line message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from suite.spec import SpecError, load_spec, load_specs


def test_good_spec_loads_and_resolves(toy_spec_path):
    spec = load_spec(toy_spec_path)
    assert spec.name == "toy" and list(spec.variants) == ["fast", "slow"]
    assert spec.profiles["smoke"].seeds == 3 and spec.profiles["smoke"].envs == ("toy-a", "toy-b")
    baseline, hparams = spec.resolve("slow", "smoke")
    # defaults < variant < profile
    assert baseline == "toy_regression" and hparams == {"steps": 40, "lr": 0.01, "mode": "ok", "sleep": 0.0}
    assert spec.claims[0].lhs.variants == ("fast",) and spec.claims[0].op == "<"
    assert spec.curves == ("loss",) and spec.curve_x_labels == {}


def test_curves_may_label_their_x_axis(write_spec):
    spec = load_spec(write_spec({"curves: [loss]": "curves: [{loss: epochs}, other]"}))
    assert spec.curves == ("loss", "other") and spec.curve_x_labels == {"loss": "epochs"}


def test_curves_may_name_their_y_quantity(write_spec):
    spec = load_spec(write_spec({"curves: [loss]": "curves: [{loss: {x: epochs, y: training MSE}}, {other: {y: b}}]"}))
    assert spec.curve_x_labels == {"loss": "epochs"} and spec.curve_y_labels == {"loss": "training MSE", "other": "b"}
    with pytest.raises(SpecError, match=r"curves\[0\]\.loss\.z: unknown key; expected one of x, y"):
        load_spec(write_spec({"curves: [loss]": "curves: [{loss: {z: epochs}}]"}))


def test_every_shipped_task_spec_validates():
    specs = load_specs([Path(__file__).resolve().parent.parent / "tasks"])
    assert {s.name for s in specs} >= {"maml_sinusoid"}
    for spec in specs:
        assert {"smoke", "cpu", "paper"} <= set(spec.profiles)


@pytest.mark.parametrize("replace, message", [
    ({"lr: 0.1}": "lr: 'fast'}"}, r"variants\.fast\.lr: expected float, got str 'fast'"),
    ({"fast: {lr: 0.1}": "fast: {lr: 0.1, momentum: 0.9}"},
     r"variants\.fast\.momentum: unknown hyperparameter of baseline 'toy_regression'; valid: lr, mode, sleep, steps"),
    ({"baseline: toy_regression": "baseline: toy_regresion"}, r"baseline: unknown baseline 'toy_regresion'; registered: .*toy_regression"),
    ({"envs: [toy-a, toy-b]": "envs: [toy-a, toy-c]"}, r"envs\[1\]: unknown env 'toy-c'; valid: .*toy-a"),
    ({"curves: [loss]": "curves: [loss]\ncolour: red"}, r"colour: unknown key; expected one of name, title"),
    ({"curves: [loss]": "curves: [{loss: 3}]"}, r"curves\[0\]\.loss: expected an x-axis label \(string\), got int 3"),
    ({"curves: [loss]": "curves: [{loss: a, acc: b}]"}, r"curves\[0\]: expected a name or \{name: x-axis label\}, got dict"),
    ({"  paper: {seeds: 5, params: {steps: 500}}\n": ""}, r"profiles: missing required profile 'paper'"),
    ({"smoke: {seeds: 3,": "smoke: {seeds: three,"}, r"profiles\.smoke\.seeds: expected an int, got str 'three'"),
    ({'op: "<"': 'op: "<="'}, r"claims\[0\]\.op: expected '<' or '>', got '<='"),
    ({"rhs: {variant: slow,": "rhs: {variant: medium,"}, r"claims\[0\]\.rhs\.variant\[0\]: unknown variant 'medium'; valid: fast, slow"),
    ({"{toy-a: {fast: 0.1}": "{toy-a: {fastest: 0.1}"}, r"references\[0\]\.values\.toy-a\.fastest: unknown variant"),
    ({"name: toy\n": "name: Toy Task\n"}, r"name: expected lowercase letters"),
    ({"metric: {name: weight_error, higher_is_better: false}": "metric: {name: weight_error, higher_is_better: no_idea}"},
     r"metric\.higher_is_better: expected a bool, got str 'no_idea'"),
])
def test_bad_specs_name_file_field_and_expectation(write_spec, replace, message):
    path = write_spec(replace)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert re.search(message, text), text


def test_invalid_yaml_reports_line(write_spec):
    path = write_spec(text="name: x\nvariants: [unclosed\n")
    with pytest.raises(SpecError, match=r"line \d+: not valid YAML"):
        load_spec(path)


def test_env_family_mismatch_is_an_error(write_spec):
    path = write_spec({"envs: [toy-a, toy-b]": "envs: [toy-a, sinusoid-K5]"})
    with pytest.raises(SpecError, match=r"env 'sinusoid-K5' \(family 'sinusoid'\) cannot be run by baseline 'toy_regression'"):
        load_spec(path)


# Values that parse but must not run: each is a one-line error naming the field (issue 14).
BAD_VALUES = [
    ({"smoke: {seeds: 3,": "smoke: {seeds: 1000000000000000000000000000000,"},
     r"profiles\.smoke\.seeds: expected 1 to 1000 seeds, got 1000000000000000000000000000000"),
    ({"timeout: 60}": "timeout: .nan}"}, r"profiles\.smoke\.timeout: expected seconds: a finite number in \(0, inf\], got float nan"),
    ({"timeout: 60}": "timeout: -5}"}, r"profiles\.smoke\.timeout: expected seconds: a finite number in \(0, inf\], got int -5"),
    ({"timeout: 60}": "timeout: .inf}"}, r"profiles\.smoke\.timeout: expected seconds: a finite number"),
    ({"lr: 0.1}": "lr: .nan}"}, r"variants\.fast\.lr: expected a finite number, got nan"),
    ({"lr: 0.01}": "lr: -.inf}"}, r"variants\.slow\.lr: expected a finite number, got -inf"),
    ({"{toy-a: {fast: 0.1}": "{toy-a: {fast: .nan}"}, r"references\[0\]\.values\.toy-a\.fast: expected a number: a finite"),
    ({"baseline: toy_regression\n": "baseline: toy_regression\nbaseline: toy_regression\n"},
     r"line 5: not valid YAML \(duplicate key 'baseline'\)"),
    ({"  fast: {lr: 0.1}\n": "  fast: {lr: 0.1, lr: 0.2}\n"}, r"line 6: not valid YAML \(duplicate key 'lr'\)"),
    ({"  fast: {lr: 0.1}\n": "  a/b: {lr: 0.1}\n"}, r"variants\.a/b: variant name 'a/b' is not file-name safe"),
    ({"  fast: {lr: 0.1}\n": "  ../../x: {lr: 0.1}\n"}, r"variants\.\.\./\.\./x: variant name '\.\./\.\./x' is not file-name safe"),
    ({"  fast: {lr: 0.1}\n": "  fäst: {lr: 0.1}\n"}, r"variant name 'fäst' is not file-name safe"),
    ({"  fast: {lr: 0.1}\n": "  .hidden: {lr: 0.1}\n"}, r"variant name '\.hidden' is not file-name safe"),
    ({"  fast: {lr: 0.1}\n": "  fast: {lr: 0.1}\n  Fast: {lr: 0.2}\n"},
     r"variants: 'fast' and 'Fast' would share the record file name 'Fast'"),
    ({"lhs: {variant: fast, metric: weight_error}": "lhs: {variant: fast, metric: weight_eror}"},
     r"claims\[0\]\.lhs\.metric: unknown metric 'weight_eror'; the spec's metric and columns are: weight_error, "
     r"final_loss"),
    ({"name: toy\n": "name: " + "X" * 5_000 + "\n"}, r"name: expected lowercase letters, digits and '_', got 'XXX+\.\.\. \(5,000 characters\)'$"),
]


@pytest.mark.parametrize("replace, message", BAD_VALUES)
def test_bad_values_name_file_and_field(write_spec, replace, message):
    path = write_spec(replace)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and "\n" not in text and len(text) < 400, text
    assert re.search(message, text), text


def test_names_that_map_to_one_record_file_are_an_error(write_spec, monkeypatch):
    from suite import registry

    monkeypatch.setitem(registry.ENVS, "toy/a", registry.EnvEntry("toy/a", "toy"))
    path = write_spec({"envs: [toy-a, toy-b]": "envs: [toy-a, toy/a]"})
    with pytest.raises(SpecError, match=r"envs: 'toy-a' and 'toy/a' would share the record file name 'toy-a'"):
        load_spec(path)


@pytest.mark.parametrize("content, message", [
    (b"name: toy\n\xff\xfe\x00binary", r"byte 10: not UTF-8 text \(byte 0xff\)"),
    (b"x: " + b"[" * 100_000 + b"]" * 100_000, r"nested"),
    (b"x: " + b"{a: " * 50 + b"1" + b"}" * 50, r"x\.a\.a.*: nested more than 32 levels deep"),
    (b"name: toy\npaper: " + b"p" * 5_000_000, r"file is 5,000,017 bytes; a task spec is at most 1,000,000"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and "\n" not in text and len(text) < 400, text
    assert re.search(message, text), text


@pytest.mark.parametrize("command", ["validate", "run"])
def test_validate_and_run_both_refuse_a_bad_value_with_exit_2(write_spec, tmp_path, capsys, command):
    from suite.cli import main

    path = write_spec({"timeout: 60}": "timeout: .nan}"})
    extra = ["--profile", "smoke", "--workers", "0", "--results", str(tmp_path / "r")] if command == "run" else []
    assert main([command, str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}: profiles.smoke.timeout" in err
    assert not (tmp_path / "r").exists()
