"""MAML (Finn, Abbeel, Levine 2017) and first-order MAML on sinusoid regression.

Meta-objective (Sec. 2.2): for each task of a meta-batch, take ``inner_steps`` SGD steps with step
size ``inner_lr`` from the shared initialisation on the task's K support points, then measure the
MSE of the adapted parameters on the task's query points; Adam minimises the mean of those query
losses w.r.t. the initialisation.  Second order by default: the gradient flows through the inner
update (exactly, see :mod:`baselines.meta_common`); ``first_order=True`` drops the Hessian term.

Pre-training (:mod:`baselines.pretrain`) instead minimises the loss *at* the initialisation.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from baselines.meta_common import SINE_DEFAULTS, SineMetaLearner, fit_sine, mlp_forward, sgd_adapt
from suite.api import RunContext, RunOutput
from suite.envs.sinusoid import SineTasks
from suite.registry import register_baseline


def maml_loss(params: list[torch.Tensor], tasks: SineTasks, inner_lr: float, inner_steps: int,
              first_order: bool = False) -> torch.Tensor:
    """Mean over tasks of the query MSE after ``inner_steps`` SGD steps on the support points."""
    adapted = sgd_adapt(params, tasks.x_support, tasks.y_support, inner_lr, inner_steps, create_graph=not first_order)
    return (mlp_forward(adapted, tasks.x_query) - tasks.y_query).pow(2).mean()


# ---------------------------------------------------------------------------- references (tests, benchmark)
def maml_loss_loop(net: torch.nn.Module, tasks: SineTasks, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """Textbook second-order MAML: a Python loop over tasks with ``autograd.grad(create_graph=True)``.

    The forward is plain ``x @ W.T + b`` on the net's parameter list (no ``functional_call`` overhead), so
    the loop is a fair reference for the benchmark.
    """
    params = list(net.parameters())
    losses = []
    for t in range(tasks.x_support.shape[0]):
        fast = params
        for _ in range(inner_steps):
            inner = (mlp_forward(fast, tasks.x_support[t]) - tasks.y_support[t]).pow(2).mean()
            grads = torch.autograd.grad(inner, fast, create_graph=True)
            fast = [p - inner_lr * g for p, g in zip(fast, grads)]
        losses.append((mlp_forward(fast, tasks.x_query[t]) - tasks.y_query[t]).pow(2).mean())
    return torch.stack(losses).mean()


def maml_loss_vmap(net: torch.nn.Module, tasks: SineTasks, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """Second-order MAML with ``torch.func``: ``vmap`` over tasks of ``grad`` of the inner loss."""
    params = dict(net.named_parameters())

    def inner_loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (functional_call(net, p, (x,)) - y).pow(2).mean()

    def task_loss(xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor) -> torch.Tensor:
        fast = params
        for _ in range(inner_steps):
            grads = torch.func.grad(inner_loss)(fast, xs, ys)
            fast = {k: fast[k] - inner_lr * grads[k] for k in fast}
        return inner_loss(fast, xq, yq)

    return torch.func.vmap(task_loss)(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query).mean()


class MAML(SineMetaLearner):
    """MAML / first-order MAML for regression with a batched, analytic inner loop; Adam on its objective."""

    def forward(self, tasks: SineTasks) -> torch.Tensor:
        h = self.hparams
        return maml_loss(self.params(), tasks, h.inner_lr, h.inner_steps, h.first_order)


@register_baseline("maml", defaults={**SINE_DEFAULTS, "first_order": False}, env_families=("sinusoid",),
                   module_class=MAML, distributed=True,
                   docs={"first_order": "FOMAML: no second-order terms through the inner loop"})
def fit_maml(ctx: RunContext) -> RunOutput:
    """MAML (second order; first_order=True gives FOMAML) on sinusoid regression."""
    return fit_sine(MAML, ctx)
