"""FusedAdam's cached fast path gives exactly torch.optim.Adam(fused=True)'s parameters."""

from __future__ import annotations

import torch

from baselines.optim import FusedAdam


def _pair(seed: int = 0) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    torch.manual_seed(seed)
    shapes = [(16, 8), (16,), (4, 16), (4,)]
    base = [torch.randn(s) for s in shapes]
    return [torch.nn.Parameter(t.clone()) for t in base], [torch.nn.Parameter(t.clone()) for t in base]


def _set_grads(params_a, params_b, step: int, skip_last: bool = False) -> None:
    gen = torch.Generator().manual_seed(step)
    for i, (a, b) in enumerate(zip(params_a, params_b)):
        g = torch.randn(a.shape, generator=gen)
        if skip_last and i == len(params_a) - 1:
            a.grad = b.grad = None
        else:
            a.grad, b.grad = g.clone(), g.clone()


def test_fast_path_is_bit_identical_to_torch_fused_adam() -> None:
    ours_p, ref_p = _pair()
    ours = FusedAdam(ours_p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3)
    ref = torch.optim.Adam(ref_p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3, fused=True)
    for step in range(30):
        if step == 10:  # a scheduler changing the learning rate is seen by the fast path
            for group in (*ours.param_groups, *ref.param_groups):
                group["lr"] = 3e-3
        _set_grads(ours_p, ref_p, step, skip_last=step == 15)  # a missing grad takes torch's own path
        if step == 20:
            ours.step(lambda: None), ref.step(lambda: None)  # Lightning passes a closure
        else:
            ours.step(), ref.step()
        for a, b in zip(ours_p, ref_p):
            assert torch.equal(a, b), f"step {step}"
    assert ours._cache is not None  # the fast path was in use


def test_loaded_state_dict_continues_identically() -> None:
    ours_p, ref_p = _pair(1)
    ours, ref = FusedAdam(ours_p, lr=1e-2), torch.optim.Adam(ref_p, lr=1e-2, fused=True)
    for step in range(5):
        _set_grads(ours_p, ref_p, step)
        ours.step(), ref.step()
    resumed = FusedAdam(ours_p, lr=1e-2)
    resumed.load_state_dict(ours.state_dict())
    for step in range(5, 10):
        _set_grads(ours_p, ref_p, step)
        resumed.step(), ref.step()
        assert all(torch.equal(a, b) for a, b in zip(ours_p, ref_p))
