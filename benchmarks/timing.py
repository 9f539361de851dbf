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


def alternating_medians(fns: dict[str, Callable[[], float]], rounds: int = 4) -> dict[str, float]:
    """:func:`interleaved_medians` with the order reversed every other round, so that whatever favours a position
    in the round (caches, the allocator, a periodic load) favours every contender alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(rounds):
        for name in (list(fns) if i % 2 == 0 else list(reversed(fns))):
            samples[name].append(fns[name]())
    return {name: statistics.median(values) for name, values in samples.items()}


def our_names(sb3_hparams: dict[str, object]) -> dict[str, object]:
    """SB3 keyword arguments under our hyperparameter names (SB3's ``learning_rate`` is our ``lr``)."""
    return {("lr" if key == "learning_rate" else key): value for key, value in sb3_hparams.items()}
