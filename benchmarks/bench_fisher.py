"""Diagonal empirical Fisher of a 784-400-400-10 MLP over 1000 samples: matmul form vs references.

References measured in the same process: the per-sample backward loop (the test oracle) and
``torch.func.vmap(grad)``, which materialises every per-sample gradient.  The fast path must be >= 10x faster
than the loop and agree with it to 1e-6 relative (norm of the difference over the norm, per parameter).

    OMP_NUM_THREADS=1 flock /tmp/suite-heavy.lock .venv/bin/python -m pytest benchmarks/bench_fisher.py \
        -p no:cacheprovider -s
"""

from __future__ import annotations

import pytest
import torch
from timing import best_time
from torch import nn
from torch.func import functional_call, grad, vmap

from suite.metrics.fisher import diag_fisher, diag_fisher_loop

N = 1000


@pytest.fixture(scope="module")
def problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 10))
    gen = torch.Generator().manual_seed(1)
    return model, torch.rand(N, 784, generator=gen), torch.randint(0, 10, (N,), generator=gen)


def vmap_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, p, (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, yi.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return {k: (g * g).mean(0) for k, g in grads.items()}




def test_fast_fisher(benchmark, problem) -> None:  # noqa: ANN001
    model, x, y = problem
    fast = benchmark(diag_fisher, model, x, y)
    slow = diag_fisher_loop(model, x, y)
    for name in slow:
        assert float((fast[name] - slow[name]).norm() / slow[name].norm()) < 1e-6, name


def test_loop_fisher(benchmark, problem) -> None:  # noqa: ANN001
    model, x, y = problem
    benchmark.pedantic(diag_fisher_loop, args=(model, x, y), rounds=3, iterations=1)


def test_vmap_fisher(benchmark, problem) -> None:  # noqa: ANN001
    model, x, y = problem
    out = benchmark.pedantic(vmap_fisher, args=(model, x, y), rounds=1, iterations=1)
    torch.testing.assert_close(out["0.weight"], diag_fisher(model, x, y)["0.weight"], rtol=1e-4, atol=1e-10)


def test_speedup_over_loop(problem) -> None:  # noqa: ANN001
    model, x, y = problem
    t_fast = best_time(lambda: diag_fisher(model, x, y), 5)
    t_loop = best_time(lambda: diag_fisher_loop(model, x, y), 2)
    t_vmap = best_time(lambda: vmap_fisher(model, x, y), 1)
    print(f"\nfisher 1000 samples: matmul {t_fast * 1e3:.1f} ms, loop {t_loop * 1e3:.1f} ms "
          f"({t_loop / t_fast:.1f}x), vmap(grad) {t_vmap * 1e3:.1f} ms ({t_vmap / t_fast:.1f}x)")
    assert t_loop / t_fast >= 10
