"""Model pre-training and the oracle baselines of Finn et al. 2017, Sec. 5.1.

Pre-training regresses one network onto samples of every task at once, i.e. minimises the loss at
the shared initialisation (no inner step); at test time it is fine-tuned on the K support points
exactly like MAML.  Its optimum predicts the mean function E[a sin(x + b)] = (2 * 2.55 / pi) cos x.

The oracle is the same regression with the task's amplitude and phase given as two extra inputs:
the lower bound any meta-learner could reach.
"""

from __future__ import annotations

import torch

from baselines.meta_common import SINE_DEFAULTS, SineMetaLearner, fit_sine, mlp_forward
from suite.api import RunContext, RunOutput
from suite.envs.sinusoid import SineTasks
from suite.registry import register_baseline


class Pretrain(SineMetaLearner):
    """Joint regression on all points (support and query) of the meta-batch; Adam on its objective."""

    def forward(self, tasks: SineTasks) -> torch.Tensor:
        x = torch.cat([tasks.x_support, tasks.x_query], dim=1)
        y = torch.cat([tasks.y_support, tasks.y_query], dim=1)
        return (mlp_forward(self.params(), self.inputs(tasks, x)) - y).pow(2).mean()


class Oracle(Pretrain):
    """Pre-training that also receives amplitude and phase as inputs."""

    oracle_inputs = True


@register_baseline("pretrain", defaults=dict(SINE_DEFAULTS), env_families=("sinusoid",), module_class=Pretrain,
                   distributed=True)
def fit_pretrain(ctx: RunContext) -> RunOutput:
    """Pre-training on the joint loss over tasks, fine-tuned on K points at test time."""
    return fit_sine(Pretrain, ctx)


# The oracle already knows the task; fine-tuning it on K points only adds noise (its inputs include the
# amplitude, up to 5, so lr 0.01 is too large for its first layer), and the paper draws it as a flat line.
@register_baseline("oracle", defaults={**SINE_DEFAULTS, "eval_lr": 0.0}, env_families=("sinusoid",),
                   docs={"eval_lr": "test-time step size; 0 = no fine-tuning (the oracle's inputs give the task)"},
                   module_class=Oracle, distributed=True)
def fit_oracle(ctx: RunContext) -> RunOutput:
    """Regression that receives the task's amplitude and phase as extra inputs."""
    return fit_sine(Oracle, ctx)
