"""Adam for small, hot update loops: torch's fused kernel without the per-step Python bookkeeping.

``torch.optim.Adam(fused=True).step`` spends most of a small network's step in Python: it rebuilds the
parameter/state lists, checks sparsity and complexity, and groups the tensors by device and dtype on every
call (measured with the torch profiler on CartPole DQN: ~270 us of Python around a ~40 us fused kernel,
about a fifth of a whole env step + update).  :class:`FusedAdam` lets torch do its first step (which creates
the state), caches those lists, and from then on calls the same two kernels torch would
(``_foreach_add_`` of 1 on the step counters, ``_fused_adam_``) with the same arguments: the parameters are
bit-identical to ``torch.optim.Adam(fused=True)`` after any number of steps (tests/test_optim.py).

Anything unusual -- several parameter groups, a missing gradient, amsgrad, a tensor learning rate, a
loaded state dict -- falls back to (or re-primes from) torch's own ``step``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

_FLT_MIN = torch.finfo(torch.float32).tiny
_SQRT_FLT_MIN = _FLT_MIN**0.5
_LARGE = 4096  # elements: below this a few zeros cost less than the clamp and the min check


class _CachedStep:
    """The step both optimizers share: torch's own ``step`` until ``_prime`` has cached the tensor lists (and
    whenever something unusual shows up), then ``_fast_step(cache, grads)`` on the cached lists; each optimizer
    below defines those two."""

    _cache: tuple[list[torch.Tensor], ...] | None
    param_groups: list[dict[str, Any]]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self._cache = None  # the state tensors were replaced

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # noqa: ANN401 - whatever closure returns
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        cache = self._cache
        grads = [p.grad for p in cache[0]] if cache is not None else None
        if cache is None or len(self.param_groups) != 1 or any(g is None for g in grads):
            super().step()  # type: ignore[misc]  # torch's full path; the closure (if any) already ran
            if len(self.param_groups) == 1 and self._cache is None:
                self._prime()  # type: ignore[attr-defined]
            return loss
        self._fast_step(cache, grads)  # type: ignore[attr-defined]
        return loss


class FusedAdam(_CachedStep, torch.optim.Adam):
    """``torch.optim.Adam(..., fused=True)`` with a cached fast path for its step (same results)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True)
        self._cache: tuple[list[torch.Tensor], ...] | None = None
        # foreach-add of a python 1 on CPU tensors re-wraps the scalar per tensor; a tensor 1 is wrapped once.
        self._one = torch.ones((), dtype=torch.float32)

    def _prime(self) -> None:
        (group,) = self.param_groups
        params = group["params"]
        states = [self.state[p] for p in params]
        if not all("step" in s for s in states):
            return
        same_kind = len({(p.device, p.dtype) for p in params}) == 1
        if same_kind and not group["amsgrad"] and not isinstance(group["lr"], torch.Tensor):
            steps = [s["step"] for s in states]
            self._one = torch.ones((), dtype=steps[0].dtype, device=steps[0].device)
            self._cache = (list(params), [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], steps)

    def _fast_step(self, cache: tuple[list[torch.Tensor], ...], grads: list[torch.Tensor]) -> None:
        group = self.param_groups[0]
        params, exp_avgs, exp_avg_sqs, steps = cache
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, self._one, alpha=1.0)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                           beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                           maximize=group["maximize"], grad_scale=None, found_inf=None)


class FusedRMSprop(_CachedStep, torch.optim.RMSprop):
    """``torch.optim.RMSprop(..., foreach=True)`` with a cached fast path for its step (same results).

    torch's foreach step rebuilds its tensor lists, groups them by device and dtype and wraps a fresh tensor 1 for
    the step counters on every call; on the MinAtar net (6 tensors) that Python costs about as much as the
    arithmetic.  After torch's first step has created the state, :class:`FusedRMSprop` caches the lists and calls
    the same ``torch._foreach_*`` kernels as ``torch.optim.rmsprop._multi_tensor_rmsprop``, in the same order, with
    the same scalars, on the same tensors, so every element goes through the same kernel at the same position: the
    parameters and state are bit-identical to torch's after any number of steps (tests/test_optim.py).  The one
    difference is where the centered denominator lives: torch allocates it per step (``_foreach_addcmul``), here it
    is written into cached buffers with the out-of-place kernel (``torch.addcmul(..., out=)``: the same kernel).

    Anything unusual -- several parameter groups, a missing gradient, weight decay, maximize, complex or mixed
    device/dtype parameters, a tensor learning rate, capturable/differentiable, a loaded state dict -- falls back
    to (or re-primes from) torch's own ``step``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered, foreach=True)
        self._cache: tuple[list[torch.Tensor], ...] | None = None
        self._one = torch.tensor(1.0)

    def _prime(self) -> None:
        (group,) = self.param_groups
        params = list(group["params"])
        states = [self.state[p] for p in params]
        if not all("step" in s for s in states):
            return
        plain = (len({(p.device, p.dtype) for p in params}) == 1 and not any(torch.is_complex(p) for p in params)
                 and params[0].device.type == "cpu" and group["weight_decay"] == 0 and not group["maximize"]
                 and not group["capturable"] and not group["differentiable"]
                 and not isinstance(group["lr"], torch.Tensor))
        if not plain:
            return
        centered, momentum = group["centered"], group["momentum"] > 0
        self._cache = (
            params, [s["step"] for s in states], [s["square_avg"] for s in states],
            [s["grad_avg"] for s in states] if centered else [],
            [s["momentum_buffer"] for s in states] if momentum else [],
            [torch.empty_like(p) for p in params],  # the denominator, reused
        )
        self._one = torch.tensor(1.0, dtype=states[0]["step"].dtype)
        # Large float32 tensors may take the zero-safe square root (see _sqrt).
        self._large = [i for i, p in enumerate(params) if p.dtype == torch.float32 and p.numel() >= _LARGE]
        self._small = [i for i in range(len(params)) if i not in self._large]

    def _fast_step(self, cache: tuple[list[torch.Tensor], ...], grads: list[torch.Tensor]) -> None:
        group = self.param_groups[0]
        params, steps, square_avgs, grad_avgs, momentum_buffers, avg = cache
        alpha, eps, lr, momentum = group["alpha"], group["eps"], group["lr"], group["momentum"]
        # torch.optim.rmsprop._multi_tensor_rmsprop, op for op (weight_decay 0, not maximize, real CPU tensors).
        torch._foreach_add_(steps, self._one, alpha=1.0)
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
        if group["centered"]:
            torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
            for out, sq, ga in zip(avg, square_avgs, grad_avgs):
                torch.addcmul(sq, ga, ga, value=-1, out=out)
            self._sqrt(avg, avg, eps)
        else:
            self._sqrt(square_avgs, avg, eps)
        torch._foreach_add_(avg, eps)
        if momentum > 0:
            torch._foreach_mul_(momentum_buffers, momentum)
            torch._foreach_addcdiv_(momentum_buffers, grads, avg)
            torch._foreach_add_(params, momentum_buffers, alpha=-lr)
        else:
            torch._foreach_addcdiv_(params, grads, avg, value=-lr)

    def _sqrt(self, inputs: list[torch.Tensor], out: list[torch.Tensor], eps: float) -> None:
        """``out = sqrt(inputs)`` elementwise (in place where they are the same), as torch's step takes it before
        ``eps`` is added.

        torch's CPU sqrt (MKL VML) is ~4x slower on a vector that holds an exact zero, and a Q-network's large
        layer has many: every weight fed by an input that was zero in every sampled batch (dead features) has a
        zero denominator.  Large tensors are clamped to FLT_MIN first.  That changes no parameter: an input >=
        FLT_MIN is untouched, and VML gives each element the same result whatever its neighbours are (checked for
        every positive normal float32 mixed 45% with zeros: no difference); an input in [0, FLT_MIN) becomes
        sqrt(FLT_MIN) ~ 1.08e-19 instead of at most that, which ``+ eps`` rounds away (half an ulp of eps is
        above it whenever eps > ~4e-12, checked here).  A negative input (rounding in the centered variance)
        keeps torch's own path, so it gives torch's NaN.
        """
        hidden = 2.0 * _SQRT_FLT_MIN < eps * 2.0**-25  # below half an ulp of eps, with a factor 2 to spare
        for i in self._small:
            torch.sqrt(inputs[i], out=out[i])
        for i in self._large:
            if hidden and inputs[i].min() >= 0:
                torch.clamp_min(inputs[i], _FLT_MIN, out=out[i]).sqrt_()
            else:
                torch.sqrt(inputs[i], out=out[i])
