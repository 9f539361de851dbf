"""Reproducibility harness: task specs -> seeded runs -> records -> tables with CIs."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_results", "to_rliable"]

# The data API loads lazily: `import suite` must not import numpy/pandas/torch, because numerics settings
# have to be in place before those libraries load.
_LAZY = {"load_results": "suite.results", "to_rliable": "suite.results"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'suite' has no attribute {name!r}")
