"""Name -> baseline / environment / figure / claim checker.

Modules register themselves on import with the decorators below.  The registry
imports every module of the ``baselines`` package and of ``suite.envs``,
``suite.data``, ``suite.metrics`` and ``suite.figures``, then any plugin named in
the ``suite.plugins`` entry-point group, so a spec can only name code that is
installed and registered, never an import path.  ``SUITE_PLUGINS`` (comma-separated
module names) adds modules to import, e.g. a user's own baselines without packaging them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import io
import os
import pkgutil
import sys
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from suite.api import RunContext, RunOutput

FitFn = Callable[[RunContext], RunOutput]
ResolveFn = Callable[[dict[str, Any], str, int], dict[str, Any]]  # (declared hparams, env, seed) -> module hparams
DISCOVERED_PACKAGES = ("baselines", "suite.envs", "suite.data", "suite.metrics", "suite.figures")


@dataclass(frozen=True)
class BaselineEntry:
    name: str
    fit: FitFn
    defaults: dict[str, Any]
    env_families: tuple[str, ...]
    description: str
    module_class: type | None = None
    distributed: bool = False
    docs: dict[str, str] = field(default_factory=dict)
    resolve: ResolveFn | None = None
    renamed: dict[str, str] = field(default_factory=dict)  # current name -> former name (see register_baseline)

    def former_names(self, hparams: dict[str, Any]) -> dict[str, Any]:
        """``hparams`` under the names the baseline had when its cells were first hashed (what ``config_hash`` sees)."""
        return {self.renamed.get(key, key): value for key, value in hparams.items()}

    def current_names(self, config: dict[str, Any]) -> dict[str, Any]:
        """A record's ``config``/``resolved`` under today's names (records written before a rename keep the old)."""
        current = {former: new for new, former in self.renamed.items()}
        return {current.get(key, key): value for key, value in config.items()}

    def resolved(self, hparams: dict[str, Any], env: str, seed: int) -> dict[str, Any]:
        """The hyperparameters ``fit`` receives for ``env`` and ``seed``: ``hparams`` through the baseline's hook."""
        return dict(hparams) if self.resolve is None else dict(self.resolve(dict(hparams), env, seed))


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter a spec may set: its name, default, one-line doc ("" when undocumented), former name."""

    name: str
    default: Any
    doc: str
    former: str | None = None


@dataclass(frozen=True)
class EnvEntry:
    name: str
    family: str
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


BASELINES: dict[str, BaselineEntry] = {}
ENVS: dict[str, EnvEntry] = {}
FIGURES: dict[str, Callable[..., Any]] = {}
CLAIM_CHECKERS: dict[str, Callable[..., Any]] = {}
IMPORT_ERRORS: dict[str, str] = {}
_loaded = False


def register_baseline(
    name: str,
    *,
    defaults: dict[str, Any],
    env_families: tuple[str, ...] | list[str],
    description: str = "",
    module_class: type | None = None,
    distributed: bool = False,
    docs: dict[str, str] | None = None,
    resolve: ResolveFn | None = None,
    renamed: dict[str, str] | None = None,
) -> Callable[[FitFn], FitFn]:
    """Register ``fit`` under ``name``.

    ``defaults`` lists every hyperparameter a spec may set, with its default;
    specs setting any other key are rejected.  ``env_families`` are the env
    families (see :func:`register_env`) this baseline can run on.  ``distributed``: ``fit`` is
    correct when run as several DDP ranks (``--devices N``, see :mod:`suite.distributed`).
    ``docs`` gives hyperparameters a one-line doc for ``suite list BASELINE``; without it, the trailing
    ``# comment`` on the line that declares the default is the doc (see :func:`hyperparameters`).
    ``resolve(hparams, env, seed) -> hparams`` fills in what depends on the env or seed (a paper's per-env protocol
    for keys left ``None``, a search setting chosen by seed); the harness applies it before ``fit``, so
    ``ctx.hparams`` is exactly what the module uses and the record stores it (``resolved``).  It must be pure.
    ``renamed`` maps a hyperparameter's current name to its former one.  A rename changes nothing that ran, so the
    config hash is computed under the former names (a cell keeps its identity and committed records stay valid),
    records written before the rename are read under the new names (:meth:`BaselineEntry.current_names`), and a
    spec or ``-o`` override using a former name is rejected with a message naming the new one.
    """
    unknown = sorted(set(docs or {}) - set(defaults))
    if unknown:  # a doc of a name the baseline does not take would document a typo
        raise ValueError(f"baseline {name!r}: docs for unknown hyperparameter(s) {', '.join(unknown)}")
    renamed = dict(renamed or {})
    bad = sorted(new for new, former in renamed.items() if new not in defaults or former in defaults)
    if bad or len(set(renamed.values())) < len(renamed):  # two keys hashing under one name would merge two cells
        raise ValueError(f"baseline {name!r}: a rename must map a current hyperparameter to a distinct name it no "
                         f"longer has; check {', '.join(bad) or 'the former names'}")

    def wrap(fit: FitFn) -> FitFn:
        if name in BASELINES and BASELINES[name].fit is not fit:
            raise ValueError(f"baseline {name!r} registered twice")
        BASELINES[name] = BaselineEntry(
            name, fit, dict(defaults), tuple(env_families), description or (fit.__doc__ or "").strip().split("\n")[0],
            module_class, distributed, dict(docs or {}), resolve, renamed,
        )
        return fit

    return wrap


def register_env(name: str, family: str, description: str = "", **meta: Any) -> None:
    """Declare an environment / dataset name a spec may use; ``family`` ties it to baselines."""
    ENVS[name] = EnvEntry(name, family, description, dict(meta))


def register_figure(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a figure plugin ``fn(task_spec, records, out_dir) -> list[Path]`` a spec can ask for."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        FIGURES[name] = fn
        return fn

    return wrap


def register_claim_checker(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a custom claim kind ``fn(claim, table) -> ClaimResult`` (see suite.claims)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        CLAIM_CHECKERS[kind] = fn
        return fn

    return wrap


def load_all() -> None:
    """Import every module that may register something (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in DISCOVERED_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            _import(info.name)
    for module_name in filter(None, os.environ.get("SUITE_PLUGINS", "").split(",")):
        _import(module_name.strip())
    for entry_point in importlib.metadata.entry_points(group="suite.plugins"):
        try:
            entry_point.load()
        except Exception as error:  # a broken plugin must not hide the others
            IMPORT_ERRORS[entry_point.value] = f"{type(error).__name__}: {error}"


def _import(module_name: str) -> None:
    try:
        importlib.import_module(module_name)
    except Exception as error:
        IMPORT_ERRORS[module_name] = f"{type(error).__name__}: {error}"


def get_baseline(name: str) -> BaselineEntry:
    load_all()
    if name not in BASELINES:
        known = ", ".join(sorted(BASELINES)) or "none"
        raise KeyError(f"unknown baseline {name!r}; registered: {known}{_import_hint()}")
    return BASELINES[name]


def get_env(name: str) -> EnvEntry:
    load_all()
    if name not in ENVS:
        raise KeyError(f"unknown env {name!r}; registered: {', '.join(sorted(ENVS)) or 'none'}{_import_hint()}")
    return ENVS[name]


def _import_hint() -> str:
    if not IMPORT_ERRORS:
        return ""
    return " (modules that failed to import: " + "; ".join(f"{m}: {e}" for m, e in IMPORT_ERRORS.items()) + ")"


def former_name_error(baseline: str, key: str) -> str | None:
    """The message for a hyperparameter that ``baseline`` used to call ``key`` (``None``: not a former name)."""
    entry = BASELINES.get(baseline)
    new = next((n for n, former in entry.renamed.items() if former == key), None) if entry else None
    return None if new is None else f"hyperparameter {key!r} of baseline {baseline!r} was renamed to {new!r}"


def current_config(baseline: str, config: dict[str, Any]) -> dict[str, Any]:
    """A record's ``config`` (or ``resolved``) of ``baseline`` under today's names; unchanged for unknown baselines."""
    load_all()
    entry = BASELINES.get(baseline)
    return dict(config) if entry is None else entry.current_names(config)


def hyperparameters(name: str) -> list[Hyperparameter]:
    """Every hyperparameter of baseline ``name``, in declaration order, with its default and one-line doc.

    The doc is the one given to :func:`register_baseline` (``docs=``) or else the trailing comment on the line
    declaring the key in a module-level defaults dict (``"lam": 100.0,  # penalty strength``) of the baseline's
    own module or a module it builds on (e.g. a shared ``SINE_DEFAULTS``): the convention the baselines already
    follow, so a default and its explanation stay on one line and cannot drift apart.
    """
    entry = get_baseline(name)
    comments: dict[str, str] = {}
    for module in _defining_modules(entry):
        for key, doc in _default_comments(module).items():
            comments.setdefault(key, doc)
    return [Hyperparameter(key, value, entry.docs.get(key) or comments.get(key, ""), entry.renamed.get(key))
            for key, value in entry.defaults.items()]


def _defining_modules(entry: BaselineEntry) -> list[Any]:
    """The module of ``fit``, then those of the classes/functions it imports from the same top-level package."""
    home = sys.modules.get(entry.fit.__module__)
    if home is None:
        return []
    package = home.__name__.partition(".")[0]
    names = {getattr(value, "__module__", None) for value in vars(home).values()
             if inspect.isclass(value) or inspect.isfunction(value)}
    if entry.module_class is not None:
        names.add(entry.module_class.__module__)
    others = sorted(n for n in names if n and n != home.__name__ and n.partition(".")[0] == package)
    return [home, *(sys.modules[n] for n in others if n in sys.modules)]


def _default_comments(module: Any) -> dict[str, str]:
    """Key -> trailing comment, for keys of dicts assigned at module level (``X = {...}`` or ``X = dict(...)``)."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):  # no source (a frozen or compiled module): no docs, not an error
        return {}
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    docs: dict[str, str] = {}
    for statement in ast.parse(source).body:
        value = statement.value if isinstance(statement, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Dict):
            pairs = [(k.value, v) for k, v in zip(value.keys, value.values)
                     if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
            pairs = [(keyword.arg, keyword.value) for keyword in value.keywords if keyword.arg]
        else:
            continue
        lines = [v.end_lineno for _, v in pairs]
        for key, v in pairs:
            # a comment shared by several keys on one line describes none of them in particular
            if v.end_lineno in comments and lines.count(v.end_lineno) == 1:
                docs.setdefault(key, comments[v.end_lineno])
    return docs
