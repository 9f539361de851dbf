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
