"""Sinusoid regression task distribution of Finn, Abbeel, Levine 2017, Sec. 5.1.

A task is ``y = a sin(x + b)`` with amplitude ``a ~ U[0.1, 5]`` and phase ``b ~ U[0, pi]``;
inputs are drawn from ``U[-5, 5]``.  The env name fixes K, the number of support points a
learner sees per task (``sinusoid-K5``, ``sinusoid-K10``).

Everything is drawn from an explicit ``torch.Generator`` so the meta-training stream belongs
to the run's seed while the evaluation tasks come from one fixed seed shared by every variant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from suite.registry import register_env

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)
EVAL_SEED = 20170309  # fixed: the held-out tasks are the same for every variant, seed and profile

for _k in (5, 10):
    register_env(f"sinusoid-K{_k}", "sinusoid", f"sine regression, {_k} support points per task", k_shot=_k)


def k_shot_of(env: str) -> int:
    """K of a ``sinusoid-K<k>`` env name."""
    if not env.startswith("sinusoid-K"):
        raise ValueError(f"not a sinusoid env: {env!r}")
    return int(env.removeprefix("sinusoid-K"))


@dataclass
class SineTasks:
    """A batch of T tasks: support ``(T, K, 1)``, query ``(T, Q, 1)`` and the task parameters ``(T,)``."""

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs of the oracle: ``x`` with amplitude and phase appended, ``(T, N, 3)``."""
        t, n, _ = x.shape
        ab = torch.stack([self.amplitude, self.phase], dim=-1)[:, None, :].expand(t, n, 2)
        return torch.cat([x, ab], dim=-1)


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return torch.rand(shape, generator=generator) * (high - low) + low


def sample_tasks(num_tasks: int, k_support: int, k_query: int, generator: torch.Generator) -> SineTasks:
    """Draw ``num_tasks`` sinusoids with ``k_support`` support and ``k_query`` query points each."""
    amplitude = _uniform((num_tasks,), AMPLITUDE, generator)
    phase = _uniform((num_tasks,), PHASE, generator)
    x = _uniform((num_tasks, k_support + k_query, 1), X_RANGE, generator)
    y = amplitude[:, None, None] * torch.sin(x + phase[:, None, None])
    return SineTasks(x[:, :k_support], y[:, :k_support], x[:, k_support:], y[:, k_support:], amplitude, phase)


def eval_tasks(k_support: int, num_tasks: int = 600, k_query: int = 100, seed: int = EVAL_SEED) -> SineTasks:
    """The fixed held-out tasks: the same for every variant and seed (drawn from ``seed``, not the run's seed)."""
    return sample_tasks(num_tasks, k_support, k_query, torch.Generator().manual_seed(seed))


def mean_function(x: torch.Tensor) -> torch.Tensor:
    """E[a sin(x + b)] over the task distribution: the best a single model can predict without adapting.

    With b ~ U[lo, hi], E[sin(x + b)] = (cos(x + lo) - cos(x + hi)) / (hi - lo); for [0, pi] that is
    2 cos(x) / pi, so the prediction is (2 * 2.55 / pi) cos x.
    """
    lo, hi = PHASE
    mean_amplitude = sum(AMPLITUDE) / 2
    return mean_amplitude * (torch.cos(x + lo) - torch.cos(x + hi)) / (hi - lo)


def eval_set_optimum_mse(k_support: int) -> float:
    """Query MSE of the best shared predictor, :func:`mean_function`, on the fixed evaluation tasks of ``eval_tasks``.

    The analytic optimum over the task distribution (about 3.006) is an expectation; the 600 x 100 evaluation
    points are one sample of it, so the floor a non-adapting model can reach *on this evaluation set* differs from
    it by sampling error.  Pre-training's ``mse_step0`` is compared against this number, not the expectation.
    """
    tasks = eval_tasks(k_support)
    return float((mean_function(tasks.x_query) - tasks.y_query).pow(2).mean())
