"""Benchmarks run under the suite's CPU-kernel pinning (``SUITE_NUMERICS``, default avx2), both sides alike.

Importing ``suite`` first sets the pinning variables before any benchmark imports torch or numpy; every
benchmark's JSON gets the level and the kernels that actually ran, so stored baselines say what they measured.
"""

from __future__ import annotations

import pytest

import suite  # noqa: F401  (must precede torch/numpy)
from suite import numerics


@pytest.fixture(autouse=True)
def _record_numerics(request: pytest.FixtureRequest) -> None:
    if "benchmark" in request.fixturenames:
        bench = request.getfixturevalue("benchmark")
        bench.extra_info["numerics"] = numerics.identity(numerics.describe())
