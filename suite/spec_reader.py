"""The validating walk over a raw YAML mapping that :mod:`suite.spec` builds on: every failure is a one-line
:class:`SpecError` ``<file>: <field.path>: expected <what>, got <what>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SpecError(ValueError):
    """A task spec is malformed; the message names the file and the field path."""


class Reader:
    """Walks the raw YAML mapping, tracking the field path for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.path}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...] | None = None,
                required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {describe(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"expected string keys, got {describe(key)}")
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

    def names(self, value: Any, where: str, valid: list[str] | tuple[str, ...], what: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise self.fail(where, f"expected a {what} name or a non-empty list of them, got {describe(value)}")
        for i, item in enumerate(items):
            if item not in valid:
                raise self.fail(f"{where}[{i}]", f"unknown {what} {item!r}; valid: {', '.join(valid)}")
        return tuple(items)

    def strings(self, raw: Any, where: str) -> tuple[str, ...]:
        items = self.typed(raw, where, list, "a list of strings")
        for i, item in enumerate(items):
            self.typed(item, f"{where}[{i}]", str, "a string")
        return tuple(items)


def as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def describe(value: Any) -> str:
    """``value`` as an error message shows what was found: its type, and the value itself when short."""
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return f"{type(value).__name__} {value!r}" if value is not None else "nothing"
