"""Continual-learning metrics on the accuracy matrix R (Lopez-Paz & Ranzato 2017, GEM).

``R`` has shape (T + 1, T): row 0 is the randomly initialised model, row i (1..T) the model after training
task i, column j the test accuracy on task j + 1 (tasks are 1-indexed in the formulas, 0-indexed in arrays).

    ACC = 1/T       sum_{i=1}^{T}   R[T, i]
    BWT = 1/(T-1)   sum_{i=1}^{T-1} R[T, i] - R[i, i]
    FWT = 1/(T-1)   sum_{i=2}^{T}   R[i-1, i] - R[0, i]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Matrix = np.ndarray | Sequence[Sequence[float]]


def _check(r: Matrix) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] + 1 or r.shape[1] < 1:
        raise ValueError(f"R must have shape (T + 1, T) with row 0 = random init; got {r.shape}")
    return r


def average_accuracy(r: Matrix) -> float:
    """ACC: mean accuracy over all tasks after training the last one."""
    r = _check(r)
    return float(r[-1].mean())


def backward_transfer(r: Matrix) -> float:
    """BWT: how much the final model gained (> 0) or forgot (< 0) on earlier tasks since learning them."""
    r = _check(r)
    t = r.shape[1]
    if t < 2:
        return 0.0
    return float(np.mean([r[t, i] - r[i + 1, i] for i in range(t - 1)]))


def forward_transfer(r: Matrix) -> float:
    """FWT: accuracy on task i before training it (after task i-1) relative to the random initialisation."""
    r = _check(r)
    t = r.shape[1]
    if t < 2:
        return 0.0
    return float(np.mean([r[i, i] - r[0, i] for i in range(1, t)]))


def newest_task_accuracy(r: Matrix) -> float:
    """Mean of R[i, i]: accuracy on each task right after learning it (plasticity; low = intransigence)."""
    r = _check(r)
    return float(np.mean(np.diagonal(r[1:])))


def max_forgetting(r: Matrix) -> float:
    """Chaudhry et al. 2018 forgetting: mean over tasks 1..T-1 of the best earlier accuracy minus the final one."""
    r = _check(r)
    t = r.shape[1]
    if t < 2:
        return 0.0
    return float(np.mean([r[j + 1:t, j].max() - r[t, j] for j in range(t - 1)]))


def seen_task_accuracy(r: Matrix) -> list[float]:
    """Mean accuracy over the tasks learnt so far after each task (the usual 'average accuracy' curve)."""
    r = _check(r)
    return [float(r[i, :i].mean()) for i in range(1, r.shape[0])]


def forgetting_curves(r: Matrix) -> list[list[float]]:
    """For each task j, its accuracy after training tasks j, j+1, ..., T (one decaying curve per task)."""
    r = _check(r)
    return [r[j + 1:, j].tolist() for j in range(r.shape[1])]


def summary(r: Matrix) -> dict[str, float]:
    """Every scalar metric of ``R`` by the names the task specs use."""
    return {
        "acc": average_accuracy(r),
        "bwt": backward_transfer(r),
        "fwt": forward_transfer(r),
        "newest_task_acc": newest_task_accuracy(r),
        "forgetting": max_forgetting(r),
    }
