"""The validating walk over a raw YAML mapping that :mod:`suite.spec` builds on: every failure is a one-line
:class:`SpecError` ``<file>: <field.path>: expected <what>, got <what>``."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from suite.store import slug

MAX_BYTES = 1_000_000  # shipped specs are a few kB; a megabyte is a mistake or an attack, not a task
MAX_DEPTH = 32  # the deepest shipped spec nests 5 levels; deeper input would only exhaust the recursion limit
MAX_ECHO = 80  # characters of a found value an error message repeats
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # variants: ASCII, no path separators, no dot-files
SAFE_ENV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*(/[A-Za-z0-9][A-Za-z0-9_.+-]*)*$")  # envs: `Family/Name-v0`


class SpecError(ValueError):
    """A task spec is malformed; the message names the file and the field path."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``safe_load`` that rejects a key given twice in one mapping instead of keeping the last silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: construct_mapping itself reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {clip(key)!r}",
                                                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    """The file's YAML as plain Python data; a :class:`SpecError` for anything that is not a small YAML text."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except OSError as error:
        raise SpecError(f"{path}: unreadable ({error.strerror or error})") from None
    if len(data) > MAX_BYTES:
        raise SpecError(f"{path}: file is {len(data):,} bytes; a task spec is at most {MAX_BYTES:,}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: byte {error.start}: not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "yaml"
        problem = getattr(error, "problem", None) or error
        raise SpecError(f"{path}: {where}: not valid YAML ({clip(str(problem))})") from None
    except RecursionError:
        raise SpecError(f"{path}: yaml: nested deeper than this reader can follow (limit {MAX_DEPTH})") from None
    where = _too_deep(raw)
    if where is not None:
        raise SpecError(f"{path}: {where}: nested more than {MAX_DEPTH} levels deep")
    return raw


def _too_deep(value: Any) -> str | None:
    """The field path where ``value`` nests deeper than MAX_DEPTH, or None (iterative: no recursion limit)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return where or "<top>"
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in children:
            path = f"{where}[{key}]" if isinstance(item, list) else f"{where}.{clip(str(key), 20)}".lstrip(".")
            stack.append((child, path, depth + 1))
    return None


class Reader:
    """Walks the raw YAML mapping, tracking the field path for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.path}: {clip(where, 2 * MAX_ECHO)}: {message}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...] | None = None,
                required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {describe(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where or "<top>", f"expected string keys, got {describe(key)}")
            if allowed is not None and key not in allowed:
                raise self.fail(f"{where}.{key}" if where else key,
                                f"unknown key; expected one of {', '.join(allowed)}")
        for key in required:
            if key not in value:
                raise self.fail(where or "<top>", f"missing required key {key!r}")
        return value

    def typed(self, value: Any, where: str, kind: type | tuple[type, ...], what: str) -> Any:
        ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in as_tuple(kind))
        if not ok:
            raise self.fail(where, f"expected {what}, got {describe(value)}")
        return value

    def number(self, value: Any, where: str, what: str, low: float = -math.inf, high: float = math.inf,
               open_low: bool = False) -> float:
        """A finite int or float within [low, high] (``(low, high]`` with ``open_low``); NaN and inf never pass."""
        self.typed(value, where, (int, float), what)
        if not math.isfinite(value) or value > high or value < low or (open_low and value == low):
            bounds = f"{'(' if open_low else '['}{low:g}, {high:g}]"
            raise self.fail(where, f"expected {what}: a finite number in {bounds}, got {describe(value)}")
        return value

    def safe_name(self, name: Any, where: str, what: str, pattern: re.Pattern[str] = SAFE_NAME) -> str:
        """A name that becomes part of a record's file name: ASCII letters, digits and ``_.+-``, no leading dot."""
        self.typed(name, where, str, f"a {what} name")
        if not pattern.match(name) or ".." in name:
            raise self.fail(where, f"{what} name {clip(name)!r} is not file-name safe; use ASCII letters, digits "
                            f"and _ . + -{' (and / between parts)' if pattern is SAFE_ENV else ''}, starting with a "
                            "letter or digit")
        return name

    def names(self, value: Any, where: str, valid: list[str] | tuple[str, ...], what: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise self.fail(where, f"expected a {what} name or a non-empty list of them, got {describe(value)}")
        for i, item in enumerate(items):
            if item not in valid:
                raise self.fail(f"{where}[{i}]", f"unknown {what} {clip(item)!r}; valid: {', '.join(valid)}")
        return tuple(items)

    def like_default(self, value: Any, default: Any, where: str) -> None:
        """A hyperparameter value of the default's type (an int passes for a float), finite throughout."""
        self.finite(value, where)
        if default is None or value is None:
            return
        if isinstance(default, bool):
            expected: tuple[type, ...] = (bool,)
        elif isinstance(default, float):
            expected = (int, float)
        elif isinstance(default, int):
            expected = (int,)
        elif isinstance(default, (list, tuple)):
            expected = (list, tuple)
        else:
            expected = (type(default),)
        what = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "mapping"}
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            raise self.fail(where, f"expected {what.get(expected[-1], expected[-1].__name__)}, got {describe(value)}")

    def finite(self, value: Any, where: str) -> None:
        """NaN or inf anywhere in a hyperparameter (lists included) would only fail every run later."""
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(where, f"expected a finite number, got {value}")
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                self.finite(item, f"{where}[{i}]")
        if isinstance(value, dict):
            for key, item in value.items():
                self.finite(item, f"{where}.{key}")

    def distinct_file_names(self, where: str, names: list[str]) -> None:
        """Two names whose records would share one file (``a/b`` and ``a-b``; ``A`` and ``a`` on macOS) are an error."""
        seen: dict[str, str] = {}
        for name in dict.fromkeys(names):
            key = slug(name).casefold()
            if key in seen:
                raise self.fail(where, f"{seen[key]!r} and {name!r} would share the record file name "
                                f"{slug(name)!r}; rename one")
            seen[key] = name

    def strings(self, raw: Any, where: str) -> tuple[str, ...]:
        items = self.typed(raw, where, list, "a list of strings")
        for i, item in enumerate(items):
            self.typed(item, f"{where}[{i}]", str, "a string")
        return tuple(items)


def as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def clip(value: Any, limit: int = MAX_ECHO) -> Any:
    """``value`` unchanged, or a string shortened to ``limit`` characters with the cut marked: errors stay short."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return value
    return f"{text[:limit]}... ({len(text):,} characters)"


def describe(value: Any) -> str:
    """``value`` as an error message shows what was found: its type, and the value itself when short."""
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return f"{type(value).__name__} {clip(value)!r}" if value is not None else "nothing"
