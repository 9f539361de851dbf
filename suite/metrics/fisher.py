"""Diagonal importance estimates from per-sample gradients, without materialising per-sample gradients.

For a linear layer ``z = W a + b`` the gradient of sample n's loss is ``g_n a_n^T`` (and ``g_n`` for the
bias), with ``g_n = dL_n/dz_n``.  Hence

    sum_n (g_n a_n^T)^2  = (g^2)^T (a^2)        (elementwise squares; BackPACK's SumGradSquared)
    sum_n |g_n a_n^T|    = |g|^T |a|            (MAS's mean absolute gradient)

is one matmul per layer.  ``g`` for every sample comes from a single backward of the *summed* per-sample
losses with respect to the layer outputs, which is exact as long as samples do not interact inside the
network (no batch norm) and each linear layer is applied once per sample -- checked at run time.

:func:`diag_fisher_loop` (one backward per sample) is the oracle the fast path is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FisherMode = Literal["empirical", "true"]
# logits (B, C), targets (B,) or None -> per-sample scalar losses (B,)
PerSampleLoss = Callable[[Tensor, Tensor], Tensor]


def masked_logits(logits: Tensor, mask: Tensor | None) -> Tensor:
    """Logits with inactive output units (task-/class-incremental heads) set to -inf; ``mask`` is (C,) or (B, C)."""
    return logits if mask is None else logits.masked_fill(~mask, float("-inf"))


def nll_per_sample(logits: Tensor, targets: Tensor) -> Tensor:
    """Negative log-likelihood of each sample: the per-sample loss whose squared gradient is the Fisher."""
    return F.cross_entropy(logits, targets, reduction="none")


def output_sq_norm(logits: Tensor, targets: Tensor) -> Tensor:
    """MAS's label-free per-sample objective: squared L2 norm of the (active) outputs."""
    del targets
    return logits.masked_fill(torch.isinf(logits), 0.0).pow(2).sum(dim=1)


@torch.no_grad()
def fisher_targets(
    model: nn.Module, x: Tensor, y: Tensor, mode: FisherMode, mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Labels the Fisher is taken at: the data labels (empirical) or one draw per sample from the model (true)."""
    if mode == "empirical":
        return y
    if mode != "true":
        raise ValueError(f"fisher mode must be 'empirical' or 'true', got {mode!r}")
    probs = torch.softmax(masked_logits(model(x), _rows(mask, 0, len(x))), dim=1)
    # sampled on the host so a CPU generator gives the same labels on every device
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(probs.device)


def diag_fisher(
    model: nn.Module, x: Tensor, y: Tensor, *, mode: FisherMode = "empirical", mask: Tensor | None = None,
    generator: torch.Generator | None = None, chunk_size: int = 2048,
) -> dict[str, Tensor]:
    """Diagonal Fisher ``mean_n (d log p(t_n|x_n) / d theta)^2`` for every trainable parameter, by name.

    ``t_n`` is ``y_n`` for the empirical Fisher, a sample from the model's predictive for the true Fisher.
    """
    targets = fisher_targets(model, x, y, mode, mask, generator)
    return per_sample_grad_stat(model, x, targets, nll_per_sample, power=2, mask=mask, chunk_size=chunk_size)


def diag_fisher_loop(
    model: nn.Module, x: Tensor, y: Tensor, *, mode: FisherMode = "empirical", mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Reference implementation of :func:`diag_fisher`: one backward pass per sample."""
    targets = fisher_targets(model, x, y, mode, mask, generator)
    return per_sample_grad_stat_loop(model, x, targets, nll_per_sample, power=2, mask=mask)


def per_sample_grad_stat(
    model: nn.Module, x: Tensor, targets: Tensor, loss_fn: PerSampleLoss, *, power: int = 2,
    mask: Tensor | None = None, chunk_size: int = 2048,
) -> dict[str, Tensor]:
    """``mean_n |d loss_fn(model(x_n), t_n) / d theta|^power`` (power 1 or 2) for every parameter of ``model``.

    Every trainable parameter must belong to an ``nn.Linear``; other layers may only be parameter-free and
    act per sample (activations, flatten, dropout in eval mode).
    """
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power}")
    linears = _linear_layers(model)
    stats = {name: torch.zeros_like(p) for name, p in model.named_parameters() if p.requires_grad}
    names = {id(layer): name for name, layer in linears.items()}
    captured: list[tuple[nn.Linear, Tensor, Tensor]] = []

    def hook(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        captured.append((layer, inputs[0].detach(), output))

    handles = [layer.register_forward_hook(hook) for layer in linears.values()]
    try:
        for start in range(0, len(x), chunk_size):
            stop = min(start + chunk_size, len(x))
            captured.clear()
            with torch.enable_grad():
                logits = masked_logits(model(x[start:stop]), _rows(mask, start, stop))
                total = loss_fn(logits, targets[start:stop]).sum()
                if len(captured) != len(linears):
                    raise ValueError("each nn.Linear must run exactly once per forward pass")
                out_grads = torch.autograd.grad(total, [out for _, _, out in captured])
            for (layer, a, _), g in zip(captured, out_grads, strict=True):
                if a.dim() != 2:
                    raise ValueError("per-sample statistics need 2-d inputs to every nn.Linear")
                a, g = (a * a, g * g) if power == 2 else (a.abs(), g.abs())
                name = names[id(layer)]
                stats[f"{name}.weight"] += g.T @ a
                if layer.bias is not None:
                    stats[f"{name}.bias"] += g.sum(dim=0)
    finally:
        for handle in handles:
            handle.remove()
    return {name: s / len(x) for name, s in stats.items()}


def per_sample_grad_stat_loop(
    model: nn.Module, x: Tensor, targets: Tensor, loss_fn: PerSampleLoss, *, power: int = 2,
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Oracle for :func:`per_sample_grad_stat`: materialises each sample's gradient with its own backward."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    stats = {name: torch.zeros_like(p) for name, p in params.items()}
    for n in range(len(x)):
        with torch.enable_grad():
            logits = masked_logits(model(x[n:n + 1]), _rows(mask, n, n + 1))
            grads = torch.autograd.grad(loss_fn(logits, targets[n:n + 1]).sum(), list(params.values()))
        for name, grad in zip(params, grads, strict=True):
            stats[name] += grad.abs() if power == 1 else grad * grad
    return {name: s / len(x) for name, s in stats.items()}


def _linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    covered = {f"{name}.{p}" for name, m in linears.items() for p, _ in m.named_parameters(recurse=False)}
    missing = [name for name, p in model.named_parameters() if p.requires_grad and name not in covered]
    if missing:
        raise ValueError(f"fast per-sample statistics support nn.Linear parameters only; not: {missing}")
    return linears


def _rows(mask: Tensor | None, start: int, stop: int) -> Tensor | None:
    """The mask rows of samples ``start:stop`` (a (C,) mask applies to every sample)."""
    if mask is None or mask.dim() == 1:
        return mask
    return mask[start:stop]
