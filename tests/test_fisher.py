"""The matmul diagonal Fisher / MAS importance equals the per-sample backward loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from suite.metrics.fisher import (
    diag_fisher,
    diag_fisher_loop,
    output_sq_norm,
    per_sample_grad_stat,
    per_sample_grad_stat_loop,
)


def _mlp(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 5)).to(dtype)


def _data(n: int = 64, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 20, generator=gen, dtype=dtype), torch.randint(0, 5, (n,), generator=gen)


def _assert_close(fast: dict, slow: dict, rtol: float) -> None:
    assert fast.keys() == slow.keys()
    for name in slow:
        assert slow[name].abs().sum() > 0, name
        torch.testing.assert_close(fast[name], slow[name], rtol=rtol, atol=0.0)


@pytest.mark.parametrize("mode", ["empirical", "true"])
def test_fast_fisher_equals_loop(mode: str) -> None:
    model, (x, y) = _mlp(), _data()
    fast = diag_fisher(model, x, y, mode=mode, generator=torch.Generator().manual_seed(3), chunk_size=24)
    slow = diag_fisher_loop(model, x, y, mode=mode, generator=torch.Generator().manual_seed(3))
    _assert_close(fast, slow, rtol=1e-6)


def test_true_fisher_differs_from_empirical() -> None:
    model, (x, y) = _mlp(), _data()
    true = diag_fisher(model, x, y, mode="true", generator=torch.Generator().manual_seed(3))
    emp = diag_fisher(model, x, y, mode="empirical")
    assert not torch.allclose(true["4.weight"], emp["4.weight"])


def test_float32_fisher_within_1e6_relative() -> None:
    model, (x, y) = _mlp(torch.float32), _data(200, torch.float32)
    fast, slow = diag_fisher(model, x, y), diag_fisher_loop(model, x, y)
    for name in slow:
        assert float((fast[name] - slow[name]).norm() / slow[name].norm()) < 1e-6


def test_masked_heads_and_mas_abs_gradients() -> None:
    model, (x, y) = _mlp(), _data()
    mask = torch.zeros(len(x), 5, dtype=torch.bool)
    mask[:, :2] = True
    mask[::3, 2:4] = True  # per-sample masks, as in mixed task-incremental batches
    y = torch.where(mask[torch.arange(len(x)), y], y, torch.zeros_like(y))
    _assert_close(diag_fisher(model, x, y, mask=mask), diag_fisher_loop(model, x, y, mask=mask), rtol=1e-6)
    fast = per_sample_grad_stat(model, x, y, output_sq_norm, power=1, mask=mask)
    slow = per_sample_grad_stat_loop(model, x, y, output_sq_norm, power=1, mask=mask)
    _assert_close(fast, slow, rtol=1e-6)
    # masked-out output units get no importance
    assert fast["4.weight"][4].abs().sum() == 0


def test_rejects_layers_it_cannot_handle() -> None:
    model = nn.Sequential(nn.Linear(20, 8), nn.BatchNorm1d(8), nn.Linear(8, 5)).double()
    x, y = _data()
    with pytest.raises(ValueError, match="nn.Linear"):
        diag_fisher(model, x, y)
