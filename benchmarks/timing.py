"""Timing helper shared by the benchmark files (on sys.path as their folder under pytest's default import mode)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest of ``repeats`` wall-clock timings of ``fn()``: the least disturbed by other load on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
