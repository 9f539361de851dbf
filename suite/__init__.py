"""Reproducibility harness: task specs -> seeded runs -> records -> tables with CIs.

Importing ``suite`` pins the CPU kernels of torch, MKL, oneDNN, OpenBLAS and NumPy (``suite.numerics``) by
setting their environment variables, which only works before those libraries are imported: import ``suite``
first.  ``SUITE_NUMERICS=native`` turns pinning off.  So nothing here imports numpy/pandas/torch eagerly: the
data API (``load_results``, ``to_rliable``) loads on first use.
"""

from __future__ import annotations

from typing import Any

from suite import numerics as _numerics

__version__ = "0.1.0"
__all__ = ["__version__", "load_results", "to_rliable"]

try:
    _numerics.apply()
except _numerics.NumericsError:
    pass  # an unknown SUITE_NUMERICS is reported in one line by the CLI and by every run

_LAZY = {"load_results": "suite.results", "to_rliable": "suite.results"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'suite' has no attribute {name!r}")
