"""Task specs: YAML (``safe_load``) -> validated, typed dataclasses.

Every error is one line ``<file>: <field.path>: expected <what>, got <what>``; unknown
keys and unknown baseline/env/hyperparameter names are errors that list the valid names.
See docs/task-spec.md for the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite import registry
from suite.normalization import Normalization, parse_normalization
from suite.spec_reader import SAFE_ENV, Reader, SpecError, clip, load_yaml

PROFILES_REQUIRED = ("smoke", "cpu", "paper")
TESTS = ("welch", "mannwhitney", "noninferiority")
SUMMARIES = ("mean_ci", "median_iqr")
_NAME = re.compile(r"^[a-z0-9_]+$")
MAX_SEEDS = 1000  # the largest shipped profile has 100; 10**30 seeds used to be planned until memory ran out


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int
    envs: tuple[str, ...]
    variants: tuple[str, ...]
    params: dict[str, Any]
    timeout: float
    skip: str | None = None  # why this profile cannot run (e.g. data that cannot ship); planned runs: none


@dataclass(frozen=True)
class Variant:
    name: str
    baseline: str
    overrides: dict[str, Any]
    envs: tuple[str, ...] = ()  # the reserved key `envs`: the only envs this variant runs on (empty: all)

    def runs_on(self, env: str) -> bool:
        return not self.envs or env in self.envs


@dataclass(frozen=True)
class Reference:
    name: str
    source: str
    metric: str
    note: str
    values: dict[str, dict[str, float]]  # env -> variant -> value
    tolerance: float | None = None       # relative; `suite compare --against-paper` uses it


@dataclass(frozen=True)
class CellSelector:
    variants: tuple[str, ...]
    metric: str


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    kind: str = "compare"
    lhs: CellSelector | None = None
    op: str = "<"
    rhs: CellSelector | None = None
    envs: tuple[str, ...] = ()
    test: str = "welch"
    alpha: float = 0.05
    args: dict[str, Any] = field(default_factory=dict)
    margin: float | None = None  # test: noninferiority -> lhs op margin * rhs


@dataclass(frozen=True)
class CheckPolicy:
    exact: tuple[str, ...]
    tolerance: dict[str, float]


@dataclass(frozen=True)
class TaskSpec:
    path: Path
    name: str
    title: str
    paper: str
    protocol: str
    baseline: str
    params: dict[str, Any]
    variants: dict[str, Variant]
    envs: tuple[str, ...]
    metric: Metric
    columns: tuple[str, ...]
    curves: tuple[str, ...]
    curve_x_labels: dict[str, str]  # curve -> x-axis label, where it is not the records' step unit
    figures: tuple[str, ...]
    profiles: dict[str, Profile]
    references: tuple[Reference, ...]
    claims: tuple[Claim, ...]
    check: CheckPolicy
    normalization: Normalization = field(default_factory=lambda: Normalization({}))
    curve_y_labels: dict[str, str] = field(default_factory=dict)  # curve -> y-axis label (default: its name)
    summary: str = "mean_ci"  # table cells: mean [95% bootstrap CI] | median [IQR] (heavy-tailed metrics)

    def resolve(self, variant: str, profile: str) -> tuple[str, dict[str, Any]]:
        """Baseline name and fully resolved hyperparameters of one variant under one profile."""
        chosen = self.variants[variant]
        entry = registry.get_baseline(chosen.baseline)
        hparams = {**entry.defaults}
        for layer in (self.params, chosen.overrides, self.profiles[profile].params):
            hparams.update({k: v for k, v in layer.items() if k in entry.defaults})
        return chosen.baseline, hparams


def load_spec(path: str | Path) -> TaskSpec:
    """Read and validate one task spec; raises :class:`SpecError` with a one-line message."""
    path = Path(path)
    reader = Reader(path)
    raw = load_yaml(path)
    top_keys = ("name", "title", "paper", "protocol", "baseline", "params", "variants", "envs", "metric",
                "columns", "curves", "figures", "profiles", "references", "claims", "check", "normalization",
                "summary")
    raw = reader.mapping(raw, "", top_keys, required=("name", "paper", "baseline", "variants", "envs",
                                                       "metric", "profiles"))
    registry.load_all()
    name = reader.typed(raw["name"], "name", str, "a string")
    if not _NAME.match(name):
        raise reader.fail("name", f"expected lowercase letters, digits and '_', got {clip(name)!r}")
    baseline = _baseline_name(reader, raw["baseline"], "baseline")
    params = reader.mapping(raw.get("params", {}) or {}, "params")
    env_names = sorted(registry.ENVS)
    envs = _env_names(reader, raw["envs"], "envs", env_names)
    variants = _variants(reader, raw["variants"], baseline, params, envs)
    for variant in variants.values():
        _check_env_family(reader, variant, envs, "envs")
    metric_raw = reader.mapping(raw["metric"], "metric", ("name", "higher_is_better"), ("name", "higher_is_better"))
    metric = Metric(reader.typed(metric_raw["name"], "metric.name", str, "a string"),
                    reader.typed(metric_raw["higher_is_better"], "metric.higher_is_better", bool, "a bool"))
    columns = reader.strings(raw.get("columns", [metric.name]), "columns")
    profiles = _profiles(reader, raw["profiles"], variants, envs, env_names)
    reader.distinct_file_names("envs", [*envs, *(e for p in profiles.values() for e in p.envs)])
    curves, curve_x_labels, curve_y_labels = _curves(reader, raw.get("curves", []))
    figures = reader.strings(raw.get("figures", []), "figures")
    for i, figure in enumerate(figures):
        if figure not in registry.FIGURES:
            raise reader.fail(f"figures[{i}]", f"unknown figure {clip(figure)!r}; registered: "
                              f"{', '.join(sorted(registry.FIGURES)) or 'none'}")
    return TaskSpec(
        path=path, name=name,
        title=reader.typed(raw.get("title", name), "title", str, "a string"),
        paper=reader.typed(raw["paper"], "paper", str, "a string"),
        protocol=reader.typed(raw.get("protocol", ""), "protocol", str, "a string"),
        baseline=baseline, params=params, variants=variants, envs=envs, metric=metric, columns=columns,
        curves=curves, curve_x_labels=curve_x_labels, curve_y_labels=curve_y_labels, figures=figures, profiles=profiles,
        references=_references(reader, raw.get("references", []), variants),
        claims=_claims(reader, raw.get("claims", []), variants, env_names, (metric.name, *columns)),
        check=_check_policy(reader, raw.get("check", {}) or {}),
        normalization=parse_normalization(reader, raw.get("normalization"), env_names, metric.higher_is_better),
        summary=_choice(reader, raw.get("summary", "mean_ci"), "summary", SUMMARIES),
    )


def load_specs(paths: list[str | Path]) -> list[TaskSpec]:
    """Load every ``*.yaml`` named directly or found in a named folder, sorted by path."""
    files: list[Path] = []
    for item in map(Path, paths):
        files.extend(sorted(item.glob("*.yaml")) if item.is_dir() else [item])
    if not files:
        raise SpecError(f"no task specs found in {', '.join(map(str, paths))}")
    return [load_spec(f) for f in files]


def _baseline_name(reader: Reader, value: Any, where: str) -> str:
    reader.typed(value, where, str, "a baseline name")
    if value not in registry.BASELINES:
        raise reader.fail(where, f"unknown baseline {clip(value)!r}; registered: "
                          f"{', '.join(sorted(registry.BASELINES))}" + registry._import_hint())
    return value


def _check_hparams(reader: Reader, overrides: dict[str, Any], baseline: str, where: str) -> None:
    defaults = registry.BASELINES[baseline].defaults
    for key, value in overrides.items():
        if key not in defaults:
            raise reader.fail(f"{where}.{key}", registry.former_name_error(baseline, key) or
                              f"unknown hyperparameter of baseline {baseline!r}; valid: {', '.join(sorted(defaults))}")
        reader.like_default(value, defaults[key], f"{where}.{key}")


def _renamed(key: str, baselines: set[str]) -> str | None:
    """The rename message for ``key`` if one of ``baselines`` used to call a hyperparameter so."""
    return next(filter(None, (registry.former_name_error(b, key) for b in sorted(baselines))), None)


def _env_names(reader: Reader, raw: Any, where: str, env_names: list[str]) -> tuple[str, ...]:
    envs = reader.names(raw, where, env_names, "env")
    for i, env in enumerate(envs):
        reader.safe_name(env, f"{where}[{i}]", "env", SAFE_ENV)
    return envs


def _variants(reader: Reader, raw: Any, default_baseline: str, params: dict[str, Any],
              task_envs: tuple[str, ...] = ()) -> dict[str, Variant]:
    raw = reader.mapping(raw, "variants")
    if not raw:
        raise reader.fail("variants", "expected at least one variant")
    variants = {}
    for name, overrides in raw.items():
        reader.safe_name(name, f"variants.{clip(name, 20)}", "variant")
        where = f"variants.{name}"
        overrides = dict(reader.mapping(overrides or {}, where))
        baseline = _baseline_name(reader, overrides.pop("baseline"), f"{where}.baseline") \
            if "baseline" in overrides else default_baseline
        own_envs = reader.names(overrides.pop("envs"), f"{where}.envs", list(task_envs), "env of the task") \
            if "envs" in overrides else ()
        _check_hparams(reader, overrides, baseline, where)
        shared = {k: v for k, v in params.items() if k in registry.BASELINES[baseline].defaults}
        _check_hparams(reader, shared, baseline, "params")
        variants[name] = Variant(name, baseline, overrides, own_envs)
    reader.distinct_file_names("variants", list(variants))
    known = set().union(*(registry.BASELINES[v.baseline].defaults for v in variants.values()))
    for key in params:
        if key not in known:
            raise reader.fail(f"params.{key}", _renamed(key, {v.baseline for v in variants.values()}) or
                              f"no variant's baseline has this hyperparameter; valid: {', '.join(sorted(known))}")
    return variants


def _check_env_family(reader: Reader, variant: Variant, envs: tuple[str, ...], where: str) -> None:
    families = registry.BASELINES[variant.baseline].env_families
    for env in filter(variant.runs_on, envs):
        if registry.ENVS[env].family not in families:
            raise reader.fail(where, f"env {env!r} (family {registry.ENVS[env].family!r}) cannot be run by "
                              f"baseline {variant.baseline!r} of variant {variant.name!r}, which takes "
                              f"{', '.join(families)}")


def _profiles(reader: Reader, raw: Any, variants: dict[str, Variant], envs: tuple[str, ...],
              env_names: list[str]) -> dict[str, Profile]:
    raw = reader.mapping(raw, "profiles")
    for required in PROFILES_REQUIRED:
        if required not in raw:
            raise reader.fail("profiles", f"missing required profile {required!r}")
    profiles = {}
    for name, body in raw.items():
        where = f"profiles.{name}"
        body = reader.mapping(body, where, ("seeds", "envs", "variants", "params", "timeout", "skip"), ("seeds",))
        skip = reader.typed(body["skip"], f"{where}.skip", str, "a reason") if "skip" in body else None
        seeds = reader.typed(body["seeds"], f"{where}.seeds", int, "an int")
        if not 1 <= seeds <= MAX_SEEDS:
            raise reader.fail(f"{where}.seeds", f"expected 1 to {MAX_SEEDS} seeds, got {clip(seeds)}")
        profile_envs = _env_names(reader, body["envs"], f"{where}.envs", env_names) if "envs" in body else envs
        chosen = reader.names(body["variants"], f"{where}.variants", list(variants), "variant") \
            if "variants" in body else tuple(variants)
        params = reader.mapping(body.get("params", {}) or {}, f"{where}.params")
        for variant_name in chosen:
            variant = variants[variant_name]
            _check_env_family(reader, variant, profile_envs, f"{where}.envs")
            own = {k: v for k, v in params.items() if k in registry.BASELINES[variant.baseline].defaults}
            _check_hparams(reader, own, variant.baseline, f"{where}.params")
        known = set().union(*(registry.BASELINES[variants[v].baseline].defaults for v in chosen))
        for key in params:
            if key not in known:
                raise reader.fail(f"{where}.params.{key}", _renamed(key, {variants[v].baseline for v in chosen}) or
                                  f"no variant's baseline has this hyperparameter; valid: {', '.join(sorted(known))}")
        # NaN compares false with everything, so `timeout: .nan` would silently disable the timeout
        timeout = reader.number(body.get("timeout", 3600), f"{where}.timeout", "seconds", low=0, open_low=True)
        profiles[name] = Profile(name, seeds, profile_envs, chosen, dict(params), float(timeout), skip)
    return profiles


def _references(reader: Reader, raw: Any, variants: dict[str, Variant]) -> tuple[Reference, ...]:
    items = reader.typed(raw or [], "references", list, "a list")
    references = []
    for i, item in enumerate(items):
        where = f"references[{i}]"
        item = reader.mapping(item, where, ("name", "source", "metric", "note", "values", "tolerance"),
                              ("name", "values"))
        tolerance = item.get("tolerance")
        if tolerance is not None:
            reader.number(tolerance, f"{where}.tolerance", "a relative tolerance", low=0)
        values: dict[str, dict[str, float]] = {}
        for env, row in reader.mapping(item["values"], f"{where}.values").items():
            row = reader.mapping(row, f"{where}.values.{env}")
            for variant, value in row.items():
                if variant not in variants:
                    raise reader.fail(f"{where}.values.{env}.{variant}",
                                      f"unknown variant; valid: {', '.join(variants)}")
                reader.number(value, f"{where}.values.{env}.{variant}", "a number")
            values[str(env)] = {k: float(v) for k, v in row.items()}
        references.append(Reference(
            name=reader.typed(item["name"], f"{where}.name", str, "a string"),
            source=str(item.get("source", "")), metric=str(item.get("metric", "")),
            note=str(item.get("note", "")), values=values,
            tolerance=float(tolerance) if tolerance is not None else None))
    return tuple(references)


def _selector(reader: Reader, raw: Any, where: str, variants: dict[str, Variant],
              metrics: tuple[str, ...]) -> CellSelector:
    raw = reader.mapping(raw, where, ("variant", "metric"), ("variant", "metric"))
    metric = reader.typed(raw["metric"], f"{where}.metric", str, "a metric name")
    # Baselines do not declare their metrics, the spec does (metric + columns): a claim about anything else
    # could never be checked by a reader of the table and was silently "inconclusive" when misspelt.
    if metric not in metrics:
        raise reader.fail(f"{where}.metric", f"unknown metric {clip(metric)!r}; the spec's metric and columns "
                          f"are: {', '.join(dict.fromkeys(metrics))}")
    return CellSelector(reader.names(raw["variant"], f"{where}.variant", list(variants), "variant"), metric)


def _claims(reader: Reader, raw: Any, variants: dict[str, Variant], env_names: list[str],
            metrics: tuple[str, ...]) -> tuple[Claim, ...]:
    items = reader.typed(raw or [], "claims", list, "a list")
    claims, seen = [], set()
    for i, item in enumerate(items):
        where = f"claims[{i}]"
        item = reader.mapping(item, where, ("id", "text", "kind", "lhs", "op", "rhs", "envs", "test", "alpha",
                                            "args", "margin"), ("id", "text"))
        claim_id = reader.typed(item["id"], f"{where}.id", str, "a string")
        if claim_id in seen:
            raise reader.fail(f"{where}.id", f"duplicate claim id {clip(claim_id)!r}")
        seen.add(claim_id)
        kind = reader.typed(item.get("kind", "compare"), f"{where}.kind", str, "a string")
        envs = reader.names(item["envs"], f"{where}.envs", env_names, "env") if "envs" in item else ()
        args = reader.mapping(item.get("args", {}) or {}, f"{where}.args")
        if kind != "compare":
            if kind not in registry.CLAIM_CHECKERS:
                raise reader.fail(f"{where}.kind", f"unknown claim kind {clip(kind)!r}; valid: compare, "
                                  + ", ".join(sorted(registry.CLAIM_CHECKERS)))
            claims.append(Claim(claim_id, str(item["text"]), kind, envs=envs, args=dict(args)))
            continue
        for key in ("lhs", "op", "rhs"):
            if key not in item:
                raise reader.fail(where, f"missing required key {key!r} for a compare claim")
        if item["op"] not in ("<", ">"):
            raise reader.fail(f"{where}.op", f"expected '<' or '>', got {clip(item['op'])!r}")
        test = item.get("test", "welch")
        if test not in TESTS:
            raise reader.fail(f"{where}.test", f"expected one of {', '.join(TESTS)}, got {clip(test)!r}")
        alpha = reader.typed(item.get("alpha", 0.05), f"{where}.alpha", (int, float), "a number")
        if not 0 < alpha < 1:
            raise reader.fail(f"{where}.alpha", f"expected a number in (0, 1), got {clip(alpha)}")
        margin = None
        if test == "noninferiority" or "margin" in item:
            if test != "noninferiority":
                raise reader.fail(f"{where}.margin", f"a margin needs test: noninferiority, got test {clip(test)!r}")
            if "margin" not in item:
                raise reader.fail(where, "missing required key 'margin' for a noninferiority test")
            margin = reader.typed(item["margin"], f"{where}.margin", (int, float), "a number")
            if not margin > 0:
                raise reader.fail(f"{where}.margin", f"expected a positive number, got {clip(margin)}")
            margin = float(margin)
        lhs = _selector(reader, item["lhs"], f"{where}.lhs", variants, metrics)
        rhs = _selector(reader, item["rhs"], f"{where}.rhs", variants, metrics)
        claims.append(Claim(claim_id, str(item["text"]), kind, lhs, item["op"], rhs, envs, test, float(alpha),
                            dict(args), margin))
    return tuple(claims)


def _check_policy(reader: Reader, raw: Any) -> CheckPolicy:
    raw = reader.mapping(raw, "check", ("exact", "tolerance"))
    exact = reader.strings(raw.get("exact", []), "check.exact")
    tolerance = reader.mapping(raw.get("tolerance", {}) or {}, "check.tolerance")
    for device, value in tolerance.items():
        reader.number(value, f"check.tolerance.{device}", "a relative tolerance", low=0)
    return CheckPolicy(exact, {k: float(v) for k, v in tolerance.items()})


def _curves(reader: Reader, raw: Any) -> tuple[tuple[str, ...], dict[str, str], dict[str, str]]:
    """``[name, {name: x-axis label}, {name: {x: label, y: label}}, ...]`` -> names, x labels, y labels."""
    names, x_labels, y_labels = [], {}, {}
    what = "a list of names, {name: x-axis label} or {name: {x: label, y: label}}"
    for i, item in enumerate(reader.typed(raw, "curves", list, what)):
        if isinstance(item, dict) and len(item) == 1:
            (item, label), = item.items()
            if isinstance(label, dict):
                axes = reader.mapping(label, f"curves[{i}].{item}", ("x", "y"))
                for axis, labels in (("x", x_labels), ("y", y_labels)):
                    if axis in axes:
                        labels[item] = reader.typed(axes[axis], f"curves[{i}].{item}.{axis}", str, "a label (string)")
            else:
                x_labels[item] = reader.typed(label, f"curves[{i}].{item}", str, "an x-axis label (string)")
        names.append(reader.typed(item, f"curves[{i}]", str, "a name or {name: x-axis label}"))
    return tuple(names), x_labels, y_labels


def _choice(reader: Reader, value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise reader.fail(where, f"expected one of {', '.join(choices)}, got {clip(value)!r}")
    return value
