"""Q-network torsos for discrete-action agents, with a plain or dueling head.

* ``mlp``: fully connected torso for vector observations (CartPole).
* ``minatar``: Young & Tian 2019 -- one 3x3 stride-1 conv with 16 filters, then 128 rectified units.
* ``nature``: Mnih et al. 2015 -- conv 32x8x8/4, 64x4x4/2, 64x3x3/1, then 512 rectified units, on 84x84x4.

Inputs arrive in their stored dtype (uint8 pixels, {0,1} MinAtar planes, float32 vectors); the network
casts and scales them, so the replay buffer never materialises float copies of its frames.

:meth:`QNetwork.greedy_fn` is the acting path: the same ops as ``forward`` on detached aliases of the
weights, with no module dispatch and no grad-mode context, on a preallocated input.  At batch size one those
costs (~60 us of ~120 us for the MinAtar net) are most of a greedy action.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class DuelingHead(nn.Module):
    """Wang et al. 2016: Q = V + A - mean(A)."""

    def __init__(self, in_features: int, n_actions: int) -> None:
        super().__init__()
        self.value = nn.Linear(in_features, 1)
        self.advantage = nn.Linear(in_features, n_actions)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.advantage(h)
        return self.value(h) + a - a.mean(dim=1, keepdim=True)


class MLPTorso(nn.Module):
    """Linear-ReLU stack whose forward calls the functional ops directly: per-submodule ``__call__`` dispatch
    costs as much as the matmuls themselves at CartPole sizes."""

    def __init__(self, in_features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        widths = (in_features, *hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers:
            x = torch.relu(F.linear(x, layer.weight, layer.bias))
        return x


class QNetwork(nn.Module):
    def __init__(self, torso: nn.Module, features: int, n_actions: int, scale: float, dueling: bool) -> None:
        super().__init__()
        self.scale = scale
        self.torso = torso
        self.head = DuelingHead(features, n_actions) if dueling else nn.Linear(features, n_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.scale != 1.0:
            x = x * self.scale
        return self.head(self.torso(x))

    def forward_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``forward`` as one closure of the same ops on the live parameters (autograd flows as through ``forward``,
        bit-identical): no module dispatch, which at the MinAtar net's size is ~10 us per submodule call, twice per
        update (online and target net).  Follows in-place updates of the parameters, not their replacement or a
        move to another device: rebuild it after one."""
        ops = [_functional(m, detach=False) for m in _leaf_modules(self.torso)]
        head = self.head if isinstance(self.head, DuelingHead) else _functional(self.head, detach=False)
        scale = self.scale

        def forward(x: torch.Tensor) -> torch.Tensor:
            x = x.float()
            if scale != 1.0:
                x = x * scale
            for op in ops:
                x = op(x)
            return head(x)

        return forward

    def greedy_fn(self) -> Callable[[np.ndarray], int]:
        """``state -> argmax_a Q(state, a)`` for one unbatched state (an array in its stored dtype), bit-identical
        to ``forward``'s argmax.

        The closure holds detached aliases of the current parameter storage: it follows in-place optimizer
        steps and ``load_state_dict``, but not a move to another device, so rebuild it after one.  On the CPU the
        state is cast into a preallocated float32 input through its numpy view (exact for uint8 and float32
        frames), and the argmax is numpy's over the same row (same first-maximum rule, NaN counts as maximal):
        this replaces four tensor ops, a fifth of a batch-one action when it runs cache-cold between updates.
        """
        ops = [_functional(m) for m in _leaf_modules(self.torso)]
        head = self.head
        if isinstance(head, DuelingHead):
            vw, vb, aw, ab = (p.detach() for p in (head.value.weight, head.value.bias,
                                                   head.advantage.weight, head.advantage.bias))

            def values(h: torch.Tensor) -> torch.Tensor:
                a = F.linear(h, aw, ab)
                return F.linear(h, vw, vb) + a - a.mean(dim=1, keepdim=True)
        else:
            values = _functional(head)
        scale = self.scale
        device = next(self.parameters()).device
        on_cpu = device.type == "cpu"
        inputs: dict[tuple[int, ...], tuple[torch.Tensor, np.ndarray]] = {}  # state shape -> (1, *shape) float32

        def greedy(state: np.ndarray) -> int:
            state = np.asarray(state)
            if on_cpu:
                staged = inputs.get(state.shape)
                if staged is None:
                    tensor = torch.empty((1, *state.shape))
                    staged = inputs[state.shape] = (tensor, tensor.numpy())
                x, x_array = staged
                x_array[0] = state
            else:
                x = torch.from_numpy(state).to(device, non_blocking=True).unsqueeze(0).float()
            if scale != 1.0:
                x = x * scale
            for op in ops:
                x = op(x)
            q = values(x)
            # numpy has no bfloat16 (autocast under bf16-mixed): those take torch's argmax, same first-maximum rule
            return int(q.numpy().argmax()) if on_cpu and q.dtype == torch.float32 else int(q.argmax())

        return greedy


def _leaf_modules(torso: nn.Module) -> list[nn.Module]:
    """The torso's layers in call order (MLPTorso's forward written out; Sequentials unnested)."""
    if isinstance(torso, MLPTorso):
        return [nn.Flatten(), *(m for layer in torso.layers for m in (layer, nn.ReLU()))]
    if isinstance(torso, nn.Sequential):
        return [leaf for child in torso for leaf in _leaf_modules(child)]
    return [torso]


def _functional(module: nn.Module, detach: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """The op ``module.forward`` runs, bound to its weights, detached unless ``detach`` is false (only the layer
    types built here)."""
    if isinstance(module, nn.Linear):
        w, b = (module.weight.detach(), module.bias.detach()) if detach else (module.weight, module.bias)
        return lambda x: F.linear(x, w, b)
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        w, b = (module.weight.detach(), module.bias.detach()) if detach else (module.weight, module.bias)
        stride, padding, dilation, groups = module.stride, module.padding, module.dilation, module.groups
        return lambda x: F.conv2d(x, w, b, stride, padding, dilation, groups)
    if isinstance(module, nn.ReLU) and not module.inplace:
        return torch.relu
    if isinstance(module, nn.Flatten):
        start, end = module.start_dim, module.end_dim
        return lambda x: x.flatten(start, end)
    raise TypeError(f"greedy_fn: no functional form for {type(module).__name__}")


def build_qnet(kind: str, obs_shape: tuple[int, ...], n_actions: int, *, scale: float = 1.0,
               dueling: bool = False, hidden: tuple[int, ...] = (64, 64)) -> QNetwork:
    """Network ``kind`` ("mlp" | "minatar" | "nature") for stacked observations of ``obs_shape``."""
    if kind == "mlp":
        in_features = int(torch.tensor(obs_shape).prod())
        torso = MLPTorso(in_features, tuple(hidden))
        return QNetwork(torso, hidden[-1] if hidden else in_features, n_actions, scale, dueling)
    if kind == "minatar":
        c, h, w = obs_shape
        torso = nn.Sequential(nn.Conv2d(c, 16, 3, 1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(16 * (h - 2) * (w - 2), 128), nn.ReLU())
        return QNetwork(torso, 128, n_actions, scale, dueling)
    if kind == "nature":
        c, h, w = obs_shape
        convs = nn.Sequential(nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                              nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = convs(torch.zeros(1, c, h, w)).shape[1]
        return QNetwork(nn.Sequential(convs, nn.Linear(flat, 512), nn.ReLU()), 512, n_actions, scale, dueling)
    raise ValueError(f"unknown network kind {kind!r}; expected mlp, minatar or nature")
