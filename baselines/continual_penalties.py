"""Quadratic-penalty continual-learning strategies behind one interface.

Every regularisation strategy is "estimate a per-parameter importance Omega after a task, then pull the
weights towards the anchor theta* with  strength * sum_i Omega_i (theta_i - theta*_i)^2  while learning the
next tasks".  They differ only in

* the importance estimator:  L2 -> 1;  EWC -> diagonal Fisher (Kirkpatrick et al. 2017);  MAS -> mean
  |d ||f(x)||^2 / d theta| (Aljundi et al. 2018);  SI -> path integral of -g * dtheta over the task,
  normalised by (total displacement^2 + xi) (Zenke et al. 2017);
* how importances of successive tasks combine:  EWC keeps one term per task with its own anchor (the paper's
  sum of penalties);  online EWC (Schwarz et al. 2018) decays the running Fisher, Omega <- gamma Omega + F;
  SI and MAS add importances (gamma = 1);  L2 keeps only the latest anchor (gamma = 0);
* the strength:  lambda / 2 for EWC, online EWC and L2 (Kirkpatrick's form);  c for SI;  lambda for MAS.

The penalty never enters autograd: its gradient 2 * strength * Omega * (theta - theta*) is added to ``.grad``
after the task-loss backward.  That is exact, cheaper than a graph over all parameters, leaves ``.grad``
holding the pure task-loss gradient when SI reads it (as SI's path integral is defined), and with
strength 0 adds exact zeros, so ``lambda = 0`` reproduces fine-tuning bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from suite.metrics.fisher import diag_fisher, output_sq_norm, per_sample_grad_stat

Params = dict[str, Tensor]


def _params(net: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in net.named_parameters() if p.requires_grad}


class Importance:
    """Per-parameter importance of the task just learnt.  The hooks let online estimators (SI) watch training."""

    def begin_task(self, net: nn.Module) -> None:
        """Called before training each task."""

    def after_backward(self, net: nn.Module) -> None:
        """Called when ``.grad`` holds the task-loss gradient, before the penalty gradient is added."""

    def after_step(self, net: nn.Module) -> None:
        """Called after each optimiser step."""

    def estimate(self, net: nn.Module, x: Tensor, y: Tensor, mask: Tensor | None,
                 generator: torch.Generator) -> Params:
        """Per-parameter importance of the task just learned (the base class is the no-penalty strategy)."""
        raise TypeError(f"{type(self).__name__} has no importance estimate; fine-tuning never asks for one")


class Uniform(Importance):
    """Plain L2: every parameter equally important."""

    def estimate(self, net, x, y, mask, generator):  # noqa: ANN001, ANN201 (see base class)
        return {name: torch.ones_like(p) for name, p in _params(net).items()}


@dataclass
class Fisher(Importance):
    """Diagonal Fisher on the task's training data, ``empirical`` (data labels) or ``true`` (sampled labels)."""

    mode: str = "empirical"

    def estimate(self, net, x, y, mask, generator):  # noqa: ANN001, ANN201
        was_training = net.training
        net.eval()
        fisher = diag_fisher(net, x, y, mode=self.mode, mask=mask, generator=generator)
        net.train(was_training)
        return fisher


class MemoryAwareSynapses(Importance):
    """MAS: sensitivity of the squared output norm, label-free (mean over samples of |gradient|)."""

    def estimate(self, net, x, y, mask, generator):  # noqa: ANN001, ANN201
        return per_sample_grad_stat(net, x, y, output_sq_norm, power=1, mask=mask)


@dataclass
class SynapticIntelligence(Importance):
    """SI: omega_i = sum_t -g_i(t) * dtheta_i(t) over the task; Omega_i = omega_i / (Delta_i^2 + xi)."""

    xi: float = 0.1
    omega: Params = field(default_factory=dict)
    start: Params = field(default_factory=dict)
    before_step: Params = field(default_factory=dict)
    grad: Params = field(default_factory=dict)

    def begin_task(self, net: nn.Module) -> None:
        params = _params(net)
        self.start = {n: p.detach().clone() for n, p in params.items()}
        self.omega = {n: torch.zeros_like(p) for n, p in params.items()}
        self.before_step = {n: p.detach().clone() for n, p in params.items()}
        self.grad = {n: torch.zeros_like(p) for n, p in params.items()}

    def after_backward(self, net: nn.Module) -> None:
        for name, p in _params(net).items():
            self.before_step[name].copy_(p.detach())
            if p.grad is None:
                self.grad[name].zero_()
            else:
                self.grad[name].copy_(p.grad)

    def after_step(self, net: nn.Module) -> None:
        for name, p in _params(net).items():
            self.omega[name].addcmul_(self.grad[name], p.detach() - self.before_step[name], value=-1.0)

    def estimate(self, net, x, y, mask, generator):  # noqa: ANN001, ANN201
        return {name: self.omega[name] / ((p.detach() - self.start[name]) ** 2 + self.xi)
                for name, p in _params(net).items()}


@dataclass
class QuadraticPenalty:
    """``strength * sum_k sum_i Omega_k,i (theta_i - theta*_k,i)^2`` over the stored terms k.

    gamma None: a new term per task (EWC).  Otherwise one term: Omega <- gamma * Omega + Omega_new, anchored
    at the latest parameters.
    """

    strength: float
    gamma: float | None
    terms: list[tuple[Params, Params]] = field(default_factory=list)

    def consolidate(self, net: nn.Module, importance: Params) -> None:
        anchor = {n: p.detach().clone() for n, p in _params(net).items()}
        if self.gamma is None or not self.terms:
            self.terms.append((importance, anchor))
        else:
            old, _ = self.terms[0]
            self.terms[0] = ({n: self.gamma * old[n] + importance[n] for n in importance}, anchor)

    @torch.no_grad()
    def value(self, net: nn.Module) -> float:
        params = _params(net)
        return self.strength * sum(
            float((omega[n] * (params[n] - anchor[n]) ** 2).sum()) for omega, anchor in self.terms for n in params
        )

    @torch.no_grad()
    def add_grad(self, net: nn.Module) -> None:
        if not self.terms:
            return
        for name, p in _params(net).items():
            for omega, anchor in self.terms:
                p.grad.addcmul_(omega[name], p - anchor[name], value=2.0 * self.strength)


STRATEGIES = ("finetune", "l2", "ewc", "online_ewc", "si", "mas", "multitask")


def make_strategy(strategy: str, *, lam: float, fisher: str, gamma: float, c: float,
                  xi: float) -> tuple[Importance, QuadraticPenalty | None]:
    """The importance estimator and penalty of ``strategy``; (no-op estimator, None) for unregularised ones."""
    if strategy in ("finetune", "multitask"):
        return Importance(), None
    table: dict[str, tuple[Importance, float, float | None]] = {
        "l2": (Uniform(), lam / 2, 0.0),
        "ewc": (Fisher(fisher), lam / 2, None),
        "online_ewc": (Fisher(fisher), lam / 2, gamma),
        "si": (SynapticIntelligence(xi), c, 1.0),
        "mas": (MemoryAwareSynapses(), lam, 1.0),
    }
    if strategy not in table:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    importance, strength, merge = table[strategy]
    return importance, QuadraticPenalty(strength, merge)
