"""The cached fast paths give exactly torch's parameters: FusedAdam vs torch.optim.Adam(fused=True), FusedRMSprop
vs torch.optim.RMSprop(foreach=True)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines.optim import FusedAdam, FusedRMSprop


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


def _conv_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)  # MinAtar's Q-network at a small size: conv 3x3, linear, head
    return nn.Sequential(nn.Conv2d(4, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 6 * 6, 64), nn.ReLU(),
                         nn.Linear(64, 6))


@pytest.mark.parametrize("centered, momentum", [(True, 0.0), (False, 0.0), (True, 0.9)])
def test_rmsprop_fast_path_is_bit_identical_to_torch_foreach_rmsprop(centered: bool, momentum: float) -> None:
    """DQN's optimizer (MinAtar 2019: centered, no momentum, lr 2.5e-4, alpha 0.95, eps 0.01) over many steps of a
    small conv net's real gradients: parameters and every state tensor equal torch's, bit for bit."""
    ours_net, ref_net = _conv_net(0), _conv_net(0)
    kwargs = dict(lr=2.5e-4, alpha=0.95, eps=0.01, momentum=momentum, centered=centered)
    ours = FusedRMSprop(ours_net.parameters(), **kwargs)
    ref = torch.optim.RMSprop(ref_net.parameters(), foreach=True, **kwargs)
    gen = torch.Generator().manual_seed(1)
    for step in range(200):
        x = (torch.rand(32, 4, 8, 8, generator=gen) < 0.1).float()
        target = torch.randn(32, 6, generator=gen)
        if step == 100:  # a scheduler changing the learning rate is seen by the fast path
            for group in (*ours.param_groups, *ref.param_groups):
                group["lr"] = 1e-3
        for net, opt in ((ours_net, ours), (ref_net, ref)):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.smooth_l1_loss(net(x), target).backward()
            if step == 150:
                net[-1].bias.grad = None  # a missing grad takes torch's own path
            opt.step(lambda: None) if step == 50 else opt.step()  # Lightning passes a closure
        for a, b in zip(ours_net.parameters(), ref_net.parameters()):
            assert torch.equal(a, b), f"step {step}"
            sa, sb = ours.state[a], ref.state[b]
            assert sa.keys() == sb.keys()
            assert all(torch.equal(sa[k], sb[k]) for k in sa), f"state at step {step}"
    assert ours._cache is not None  # the fast path was in use


def test_rmsprop_loaded_state_dict_continues_identically() -> None:
    ours_net, ref_net = _conv_net(2), _conv_net(2)
    kwargs = dict(lr=2.5e-4, alpha=0.95, eps=0.01, centered=True)
    ours = FusedRMSprop(ours_net.parameters(), **kwargs)
    ref = torch.optim.RMSprop(ref_net.parameters(), foreach=True, **kwargs)
    x = torch.rand(8, 4, 8, 8)
    for step in range(10):
        if step == 5:
            resumed = FusedRMSprop(ours_net.parameters(), **kwargs)
            resumed.load_state_dict(ours.state_dict())
            ours = resumed
        for net, opt in ((ours_net, ours), (ref_net, ref)):
            opt.zero_grad()
            net(x * step).square().mean().backward()
            opt.step()
        assert all(torch.equal(a, b) for a, b in zip(ours_net.parameters(), ref_net.parameters()))


@pytest.mark.parametrize("centered, eps", [(True, 0.01), (False, 1e-8), (True, 1e-13)])
def test_rmsprop_zero_safe_sqrt_keeps_torch_floats_on_dead_features(centered: bool, eps: float) -> None:
    """Half the inputs of the large layer are zero in every batch, so half its denominators are exact zeros (the
    case the clamped square root speeds up; eps 1e-13 is too small to hide sqrt(FLT_MIN) and takes torch's path).
    Parameters equal torch's bit for bit, with and without denormal flushing."""
    torch.manual_seed(3)
    ours_net = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 4))
    ref_net = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 4))
    ref_net.load_state_dict(ours_net.state_dict())
    kwargs = dict(lr=1e-3, alpha=0.95, eps=eps, centered=centered)
    ours = FusedRMSprop(ours_net.parameters(), **kwargs)
    ref = torch.optim.RMSprop(ref_net.parameters(), foreach=True, **kwargs)
    gen = torch.Generator().manual_seed(4)
    live = torch.arange(256) % 2 == 0
    for step in range(120):
        torch.set_flush_denormal(step >= 60)
        try:
            x = torch.randn(16, 256, generator=gen) * live
            target = torch.randn(16, 4, generator=gen)
            for net, opt in ((ours_net, ours), (ref_net, ref)):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.mse_loss(net(x), target).backward()
                opt.step()
        finally:
            torch.set_flush_denormal(False)
        assert all(torch.equal(a, b) for a, b in zip(ours_net.parameters(), ref_net.parameters())), f"step {step}"
    assert ours._large == [0]  # the 256x64 weight took the clamped path
    assert (ours.state[ours_net[0].weight]["square_avg"] == 0).float().mean() >= 0.5
