"""Timing helper shared by the benchmark files (on sys.path as their folder under pytest's default import mode)."""

from __future__ import annotations

import statistics
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


def interleaved_medians(fns: dict[str, Callable[[], float]], rounds: int = 3) -> dict[str, float]:
    """Median of each contender's result over ``rounds``, interleaved so machine-load drifts hit every one alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(fn())
    return {name: statistics.median(values) for name, values in samples.items()}
