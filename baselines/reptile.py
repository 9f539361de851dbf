"""Reptile (Nichol, Achiam, Schulman 2018) on sinusoid regression.

Each meta-iteration runs ``inner_steps`` SGD steps (step size ``inner_lr``) on every task of the
meta-batch, from the shared initialisation, on all of the task's points, and moves the
initialisation towards the mean adapted weights: theta <- theta + eps * (mean(phi) - theta), with
eps = ``outer_lr`` = 1 annealed linearly to 0, the setting Nichol et al. use with meta-batches of
tasks.  The move is applied as an SGD step on the pseudo-gradient (theta - mean(phi)), so the inner
loop needs no autograd.
"""

from __future__ import annotations

import torch

from baselines.meta_common import SINE_DEFAULTS, SineMetaLearner, fit_sine, mlp_forward, sgd_adapt, weighted
from suite.api import RunContext, RunOutput
from suite.distributed import average_gradients
from suite.envs.sinusoid import SineTasks
from suite.registry import register_baseline

REPTILE_DEFAULTS = {
    **SINE_DEFAULTS,
    "inner_steps": 5,  # inner-loop SGD steps per task
    "inner_lr": 0.02,  # inner-loop SGD step size
    "outer_lr": 1.0,  # outer step size epsilon, annealed linearly to 0 over training
    "outer_optimizer": "sgd",  # sgd: theta += eps (mean(phi) - theta) | adam: (theta - mean(phi)) fed to Adam
}


class Reptile(SineMetaLearner):
    """Batched Reptile: all tasks of a meta-batch adapt at once with the analytic MLP gradient."""

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # sgd: theta += eps (mean(phi) - theta), Nichol et al.'s update; adam: (theta - mean(phi)) fed to Adam,
        # the variant the paper mentions (Sec. 3) and uses for its few-shot classification runs
        make = torch.optim.SGD if self.hparams.outer_optimizer == "sgd" else torch.optim.Adam
        return make(self.parameters(), lr=self.hparams.outer_lr)

    def meta_step(self, tasks: SineTasks) -> torch.Tensor:
        h = self.hparams
        opt = self.optimizers()
        for group in opt.param_groups:  # eps annealed linearly to 0 over training
            group["lr"] = h.outer_lr * max(0.0, 1.0 - self.iteration / h.meta_iterations)
        x = torch.cat([tasks.x_support, tasks.x_query], dim=1)
        y = torch.cat([tasks.y_support, tasks.y_query], dim=1)
        params = self.params()
        with torch.no_grad():
            adapted = sgd_adapt(params, x, y, h.inner_lr, h.inner_steps, create_graph=False)
            for p, phi in zip(params, adapted):
                p.grad = weighted(p - phi.mean(dim=0), self.rank_weight)
            average_gradients(self.fabric, params)  # no backward pass, so DDP never sees these
            # the objective reported is the post-adaptation loss on the task's own points
            loss = (mlp_forward(adapted, x) - y).pow(2).mean()
        opt.step()
        return loss


@register_baseline("reptile", defaults=REPTILE_DEFAULTS, env_families=("sinusoid",), module_class=Reptile,
                   distributed=True)
def fit_reptile(ctx: RunContext) -> RunOutput:
    """Reptile with a linearly annealed outer step size."""
    return fit_sine(Reptile, ctx)
