"""Speed of one second-order MAML meta-iteration (25 tasks, K=10, 1-40-40-1 MLP, 1 inner step).

Three implementations of the same meta-gradient, timed in the same process:
the batched analytic inner loop used by the suite, ``vmap(grad)``, and the per-task
``autograd.grad(create_graph=True)`` loop.  The suite's version must be >= 5x faster than the loop.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/bench_maml.py --benchmark-only
"""

from __future__ import annotations

import time

import pytest
import torch

from baselines.maml import maml_loss, maml_loss_loop, maml_loss_vmap
from baselines.meta_common import make_mlp
from suite.envs.sinusoid import sample_tasks

REQUIRED_SPEEDUP = 5.0


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, object]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = make_mlp(1, 40, 2)
    tasks = sample_tasks(25, 10, 10, torch.Generator().manual_seed(0))
    return net, tasks


def _step(net: torch.nn.Module, tasks: object, impl: str) -> list[torch.Tensor]:
    params = list(net.parameters())
    if impl == "analytic":
        loss = maml_loss(params, tasks, 0.01, 1)
    elif impl == "vmap":
        loss = maml_loss_vmap(net, tasks, 0.01, 1)
    else:
        loss = maml_loss_loop(net, tasks, 0.01, 1)
    return list(torch.autograd.grad(loss, params))


def _best_of(fn: object, repeats: int = 7, number: int = 20) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


@pytest.mark.parametrize("impl", ["analytic", "vmap", "loop"])
def test_meta_iteration(benchmark: object, setup: tuple, impl: str) -> None:
    net, tasks = setup
    benchmark(_step, net, tasks, impl)


def test_speedup_over_loop(setup: tuple) -> None:
    net, tasks = setup
    reference = _step(net, tasks, "loop")
    for got in (_step(net, tasks, "analytic"), _step(net, tasks, "vmap")):
        for a, b in zip(got, reference):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    times = {impl: _best_of(lambda impl=impl: _step(net, tasks, impl)) for impl in ("analytic", "vmap", "loop")}
    print({k: f"{1000 * v:.3f} ms" for k, v in times.items()},
          f"speedup vs loop {times['loop'] / times['analytic']:.1f}x, vs vmap {times['vmap'] / times['analytic']:.1f}x")
    assert times["loop"] / times["analytic"] >= REQUIRED_SPEEDUP
