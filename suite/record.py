"""The run record as a type: :class:`RunRecord` and its :class:`Provenance`, to and from their JSON form.

One record per run (see :mod:`suite.store` for where and how it is written).  ``to_json`` gives exactly the JSON object
``from_json`` read: the same keys, the same values, so a committed record keeps its ``record_hash``.  Fields a record
of an older schema lacks, and optional facts (a resumed run, a DDP world size, ``suite run -o`` overrides) are ``None``
here and absent from the JSON; fields that are always written stay in the JSON even when ``None`` (``reason``).

Schema versions:

1. the original record.
2. adds ``resolved``: the hyperparameters the baseline's module received, after the baseline's per-env/per-seed
   resolution hook (``register_baseline(..., resolve=...)``).  ``config`` and ``config_hash`` stay what the spec
   declares, so the hash names a sweep cell independently of the seed, and schema-1 records keep their identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
STATUSES = ("ok", "failed", "diverged")


class CorruptRecord(ValueError):
    """A record file failed its integrity check; the message starts with its path."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and non-finite floats into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays/scalars, torch tensors
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


_NUMBER = (int, float)
_ALWAYS = "always"  # written even when None
_IF_SET = "if set"  # absent from the JSON when None (older schema, or a fact that does not apply)


class _JsonRecord:
    """Field table driven conversion shared by the record and its provenance.

    ``_TYPES`` maps each JSON key to its accepted types (``None`` in the tuple: may be null) and whether it is
    always written or only when set.  Booleans never count as numbers (``True`` is no seed).
    """

    _TYPES: ClassVar[dict[str, tuple[tuple[type | None, ...], str]]] = {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (_, presence) in self._TYPES.items():
            value = getattr(self, name)
            if isinstance(value, _JsonRecord):
                value = value.to_json()
            if value is not None or presence == _ALWAYS:
                out[name] = value
        return out

    @classmethod
    def _fields_from(cls, data: Any, where: str, prefix: str = "") -> dict[str, Any]:
        if not isinstance(data, dict):
            raise CorruptRecord(f"{where}: expected a JSON object")
        unknown = sorted(set(data) - set(cls._TYPES))
        if unknown:
            raise CorruptRecord(f"{where}: unknown field {prefix + unknown[0]!r}")
        values: dict[str, Any] = {}
        for name, (kinds, presence) in cls._TYPES.items():
            if name not in data:
                if presence == _ALWAYS:
                    raise CorruptRecord(f"{where}: missing field {prefix + name!r}")
                values[name] = None
                continue
            value = data[name]
            allowed = tuple(k for k in kinds if k is not None)
            ok = (value is None and None in kinds) or (
                isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed))
            if not ok:
                raise CorruptRecord(f"{where}: field {prefix + name!r} has type {type(value).__name__}")
            values[name] = value
        return values


@dataclass
class Provenance(_JsonRecord):
    """Where and with what a run was produced (see :func:`suite.store.provenance`)."""

    git_commit: str
    git_dirty: bool
    python: str
    torch: str
    lightning: str
    numpy: str
    platform: str
    cpu: str
    cpu_count: int | None
    gpu: str | None
    accelerator: str
    threads: int
    device_class: str
    command: str
    cpu_isa: list[str] | None = None  # absent from records made before kernel pinning existed
    numerics: dict[str, Any] | None = None  # likewise: the pinning level and the kernels each library ran
    precision: str | None = None  # likewise; such records ran "32-true"
    world_size: int | None = None  # only for DDP runs (more than one rank)
    resumed: dict[str, Any] | None = None  # only for a run continued from a checkpoint: from_step, prior wall time

    _TYPES: ClassVar = {
        "git_commit": ((str,), _ALWAYS), "git_dirty": ((bool,), _ALWAYS), "python": ((str,), _ALWAYS),
        "torch": ((str,), _ALWAYS), "lightning": ((str,), _ALWAYS), "numpy": ((str,), _ALWAYS),
        "platform": ((str,), _ALWAYS), "cpu": ((str,), _ALWAYS), "cpu_count": ((int, None), _ALWAYS),
        "gpu": ((str, None), _ALWAYS), "accelerator": ((str,), _ALWAYS), "threads": ((int,), _ALWAYS),
        "device_class": ((str,), _ALWAYS), "command": ((str,), _ALWAYS),
        "cpu_isa": ((list,), _IF_SET), "numerics": ((dict,), _IF_SET), "precision": ((str,), _IF_SET),
        "world_size": ((int,), _IF_SET), "resumed": ((dict,), _IF_SET),
    }

    @classmethod
    def from_json(cls, data: Any, where: str = "<record>") -> Provenance:
        return cls(**cls._fields_from(data, where, "provenance."))

    @property
    def numerics_level(self) -> str | None:
        """The kernel pinning level the run was made under; None for records that predate pinning."""
        return (self.numerics or {}).get("level")


@dataclass
class RunRecord(_JsonRecord):
    """One run: which cell of which sweep, what it ran with, what came out and where it was made.

    ``config``/``config_hash``: the declared hyperparameters (spec + profile over the baseline's defaults) and the
    hash naming the sweep cell; ``resolved``: what the module received after the baseline's resolution hook
    (``None`` in schema-1 records).  ``record_hash`` is the sha256 of everything else (set by :func:`seal`).
    """

    task: str
    variant: str
    env: str
    seed: int
    profile: str
    baseline: str
    config: dict[str, Any]
    config_hash: str
    provenance: Provenance
    status: str = "failed"
    reason: str | None = None
    diverged_step: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    step_unit: str = "steps"
    wall_time_s: float = 0.0
    throughput: float | None = None
    resolved: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None  # only for runs made with `suite run -o KEY=VALUE`
    schema: int = SCHEMA_VERSION
    record_hash: str = ""

    _TYPES: ClassVar = {
        "schema": ((int,), _ALWAYS), "task": ((str,), _ALWAYS), "variant": ((str,), _ALWAYS),
        "env": ((str,), _ALWAYS), "seed": ((int,), _ALWAYS), "profile": ((str,), _ALWAYS),
        "baseline": ((str,), _ALWAYS), "config": ((dict,), _ALWAYS), "config_hash": ((str,), _ALWAYS),
        "status": ((str,), _ALWAYS), "reason": ((str, None), _ALWAYS), "diverged_step": ((int, None), _ALWAYS),
        "metrics": ((dict,), _ALWAYS), "curves": ((dict,), _ALWAYS), "extras": ((dict,), _ALWAYS),
        "steps": ((int,), _ALWAYS), "step_unit": ((str,), _ALWAYS), "wall_time_s": (_NUMBER, _ALWAYS),
        "throughput": ((int, float, None), _ALWAYS), "resolved": ((dict,), _IF_SET),
        "overrides": ((dict,), _IF_SET), "provenance": ((dict,), _ALWAYS), "record_hash": ((str,), _ALWAYS),
    }

    @classmethod
    def from_json(cls, data: Any, where: str = "<record>") -> RunRecord:
        """Parse and verify one record's JSON object; raises :class:`CorruptRecord` whose message starts with ``where``.

        Checks the schema, every field's type, the status and the content hash, so a truncated, hand-edited or
        foreign file is never used as a record.
        """
        if not isinstance(data, dict):
            raise CorruptRecord(f"{where}: expected a JSON object")
        for name in ("schema", "status"):  # the two whose value, not only type, decides how to read the rest
            if name not in data:
                raise CorruptRecord(f"{where}: missing field {name!r}")
        if data["schema"] not in READABLE_SCHEMAS:
            readable = ", ".join(map(str, READABLE_SCHEMAS))
            raise CorruptRecord(f"{where}: schema {data['schema']!r} (this suite reads {readable})")
        values = cls._fields_from(data, where)
        if values["schema"] < 2 and values["resolved"] is not None:
            raise CorruptRecord(f"{where}: field 'resolved' in a schema-{values['schema']} record")
        if values["status"] not in STATUSES:
            raise CorruptRecord(f"{where}: unknown status {values['status']!r}")
        if content_hash(data) != values["record_hash"]:
            raise CorruptRecord(f"{where}: content hash mismatch (edited or partially written)")
        values["provenance"] = Provenance.from_json(values["provenance"], where)
        return cls(**values)

    @property
    def key_label(self) -> str:
        return f"{self.task}/{self.variant}/{self.env}/seed{self.seed}"

    @property
    def cell(self) -> tuple[str, str]:
        """(variant, env): the table cell this run is one seed of."""
        return self.variant, self.env

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def last_reason_line(self) -> str:
        """The last line of ``reason`` (a traceback's exception line), '' when there is none."""
        lines = (self.reason or "").strip().splitlines()
        return lines[-1] if lines else ""

    def replace(self, **changes: Any) -> RunRecord:
        return dataclasses.replace(self, **changes)

    def __getitem__(self, name: str) -> Any:
        """Read-only ``record["metrics"]`` for scripts written against the untyped record (benchmarks/, notebooks);
        the suite itself uses attributes."""
        if name not in self._TYPES:
            raise KeyError(name)
        value = getattr(self, name)
        return value.to_json() if isinstance(value, Provenance) else value


def content_hash(data: dict[str, Any]) -> str:
    """sha256 of a record's JSON object without its ``record_hash``."""
    body = {k: v for k, v in data.items() if k != "record_hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def seal(record: RunRecord) -> RunRecord:
    """``record`` made JSON-clean (numpy scalars, tuples, non-finite floats) at the current schema, with its hash."""
    data = jsonable({**record.to_json(), "schema": SCHEMA_VERSION})
    data["record_hash"] = content_hash(data)
    return RunRecord.from_json(data, record.key_label)
