"""Hand-made run records for tests of pure functions over records (claims, figures, statistics)."""

from __future__ import annotations

import dataclasses
from typing import Any

from suite.record import Provenance, RunRecord

PROVENANCE = Provenance(git_commit="0" * 40, git_dirty=False, python="3", torch="2", lightning="2", numpy="2",
                        platform="test", cpu="test cpu", cpu_count=2, gpu=None, accelerator="cpu", threads=1,
                        device_class="cpu-x86_64", command="test")


def make_record(provenance: dict[str, Any] | None = None, **fields: Any) -> RunRecord:
    """A record of an ``ok`` run of ``toy`` with ``fields`` set (``provenance``: fields of its provenance)."""
    base: dict[str, Any] = dict(task="toy", variant="a", env="toy-a", seed=0, profile="smoke", baseline="toy",
                                config={}, config_hash="0" * 16, status="ok")
    return RunRecord(**{**base, **fields}, provenance=dataclasses.replace(PROVENANCE, **(provenance or {})))
