"""MAML / first-order MAML for N-way K-shot Omniglot classification (Finn et al. 2017, Sec. 5.2).

The network is the paper's: 4 modules of [3x3 conv with 64 filters, batch norm, ReLU, 2x2 max-pool]
on 28x28 inputs (leaving a 64-d feature), then a linear N-way head.  Batch norm always normalises
with the statistics of the current batch (no running averages), as in the reference code.  The inner
loop runs all tasks of a meta-batch at once (tasks folded into the channels of grouped convolutions,
see ``batched_forward``); autograd through it (``create_graph=True``) gives the exact second-order
meta-gradient, and ``first_order=True`` detaches the inner gradients.  (``vmap(grad)`` was tried
first: its double backward through batch norm disagreed with a per-task loop and finite differences.)

Hyperparameters left at ``None`` take the paper's values for the env's N (Appendix A.1):
5-way: 1 inner step of 0.4 while meta-training, 3 at test, meta-batch 32; 20-way: 5 inner steps of
0.1 for training and test, meta-batch 16; 60,000 meta-iterations with Adam 1e-3.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.meta_common import MetaLearner, train_meta_learner
from suite.api import RunContext, RunOutput
from suite.data.omniglot import EpisodeSampler, load_omniglot, parse_env, split_characters
from suite.registry import register_baseline

PAPER = {5: {"meta_batch": 32, "inner_lr": 0.4, "inner_steps": 1, "eval_steps": 3},
         20: {"meta_batch": 16, "inner_lr": 0.1, "inner_steps": 5, "eval_steps": 5}}
EVAL_SEED = 20170310

DEFAULTS: dict[str, Any] = {
    "channels": 64,  # filters per conv layer
    "meta_iterations": 60000,  # meta-updates of training
    "meta_batch": None,  # tasks per meta-iteration; None = the paper's for N (5-way 32, 20-way 16)
    "inner_lr": None,  # inner-loop SGD step size; None = the paper's for N (5-way 0.4, 20-way 0.1)
    "inner_steps": None,  # inner-loop steps in meta-training; None = the paper's for N (5-way 1, 20-way 5)
    "eval_steps": None,  # adaptation steps at test time; None = the paper's for N (5-way 3, 20-way 5)
    "outer_lr": 1e-3,  # Adam learning rate of the meta-update
    "first_order": False,  # FOMAML: no second-order terms through the inner loop
    "k_query": None,  # query drawings per class; None: K, as in the reference code
    "rotations": True,  # 90/180/270-degree rotations of each character count as new classes
    "eval_tasks": 600,  # held-out episodes of the evaluation
    "eval_batch": 50,  # held-out episodes evaluated at once
    "iters_per_step": 10,  # meta-iterations per chunk (progress, divergence check and checkpoint once per chunk)
    "curve_points": 50,  # points of the meta_loss learning curve
}


class ConvNet(nn.Module):
    """4 x [conv3x3(64), batchnorm, ReLU, maxpool 2x2] -> linear; 28x28 -> 14 -> 7 -> 3 -> 1."""

    def __init__(self, n_way: int, channels: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in in (1, channels, channels, channels):
            layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels, track_running_stats=False),
                       nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, n_way)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class MAMLClassifier(MetaLearner):
    """Meta-trains ConvNet's initialisation on episodes from ``sampler`` (set before fitting); Adam on its objective."""

    def __init__(self, n_way: int = 5, k_shot: int = 1, seed: int = 0, **hparams: Any) -> None:
        cfg = {**hparams, **{k: v for k, v in PAPER[5 if n_way <= 5 else 20].items() if hparams.get(k) is None}}
        super().__init__(seed, cfg["meta_batch"])
        self.save_hyperparameters(dict(cfg, n_way=n_way, k_shot=k_shot, seed=seed))  # complete: no None left
        self.net = ConvNet(n_way, self.hparams.channels)
        self.sampler: EpisodeSampler | None = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.outer_lr)

    def batched_forward(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """ConvNet with per-task weights ``(T, ...)`` on ``x`` (T, M, 1, H, W) -> logits (T, M, N).

        Tasks are folded into channels: a grouped convolution (groups=T) applies each task's filters to
        its own images, and batch norm's per-channel statistics are then exactly per-task statistics.
        """
        t, m = x.shape[:2]
        h = x.transpose(0, 1).reshape(m, t * x.shape[2], *x.shape[3:])
        for i in range(0, len(params) - 2, 4):
            w, b, gamma, beta = params[i:i + 4]
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), padding=1, groups=t)
            h = F.batch_norm(h, None, None, gamma.reshape(-1), beta.reshape(-1), training=True)
            h = F.max_pool2d(F.relu(h), 2)
        h = h.reshape(m, t, -1).transpose(0, 1)
        return torch.baddbmm(params[-1][:, None, :], h, params[-2].transpose(1, 2))

    def episode_losses(self, episode: tuple[torch.Tensor, ...], steps: int, first_order: bool,
                       params: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-task query cross-entropy and accuracy after ``steps`` inner SGD steps on the support set."""
        xs, ys, xq, yq = episode
        t = xs.shape[0]
        params = list(self.net.parameters()) if params is None else params
        fast = [p.expand(t, *p.shape) for p in params]
        tracking = torch.is_grad_enabled()  # False at evaluation: inner gradients only, no meta-gradient graph
        for _ in range(steps):
            with torch.enable_grad():
                inputs = fast if tracking else [f.detach().requires_grad_() for f in fast]
                logits = self.batched_forward(inputs, xs)
                # the sum over tasks of each task's mean loss: its gradient w.r.t. task j's slice is task j's own
                loss = F.cross_entropy(logits.flatten(0, 1), ys.flatten(), reduction="sum") / ys.shape[1]
                grads = torch.autograd.grad(loss, inputs, create_graph=tracking and not first_order)
            fast = [f - self.hparams.inner_lr * g for f, g in zip(inputs, grads)]
        logits = self.batched_forward(fast, xq)
        losses = F.cross_entropy(logits.flatten(0, 1), yq.flatten(), reduction="none").view(t, -1).mean(1)
        return losses, (logits.argmax(-1) == yq).float().mean(1)

    def draw_tasks(self, count: int) -> tuple[torch.Tensor, ...]:
        return self.sampler.sample(count, self.task_rng)

    def forward(self, episode: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The meta-objective: mean query cross-entropy after the training inner steps."""
        return self.episode_losses(episode, self.hparams.inner_steps, self.hparams.first_order)[0].mean()

    def evaluate(self, sampler: EpisodeSampler) -> list[float]:
        """Mean query accuracy (%) after 0..eval_steps inner steps on fixed held-out episodes."""
        h = self.hparams
        rng = torch.Generator().manual_seed(EVAL_SEED)
        params = [p.detach() for p in self.net.parameters()]
        steps = self.hparams.eval_steps
        totals = torch.zeros(steps + 1)
        done = 0
        while done < h.eval_tasks:
            episode = [t.to(self.device) for t in sampler.sample(min(h.eval_batch, h.eval_tasks - done), rng)]
            for k in range(steps + 1):
                with torch.no_grad():
                    totals[k] += self.episode_losses(episode, k, True, params)[1].sum().cpu()
            done += episode[0].shape[0]
        return (100.0 * totals / done).tolist()


def resolve(hparams: dict[str, Any], env: str, seed: int = 0) -> dict[str, Any]:
    """The registry's resolve hook: the paper's values for the env's N where left None, and ``k_query`` = K."""
    n_way, k_shot = parse_env(env)
    paper = PAPER[5 if n_way <= 5 else 20]
    resolved = {k: (paper[k] if v is None and k in paper else v) for k, v in hparams.items()}
    if resolved.get("k_query") is None:
        resolved["k_query"] = k_shot
    return resolved


@register_baseline("maml_omniglot", defaults=DEFAULTS, env_families=("omniglot",), module_class=MAMLClassifier,
                   distributed=True, resolve=resolve)
def fit_maml_omniglot(ctx: RunContext) -> RunOutput:
    """MAML (first_order=True: FOMAML) few-shot classifier on Omniglot with the 4-layer conv net."""
    n_way, k_shot = parse_env(ctx.env)
    module = MAMLClassifier(n_way=n_way, k_shot=k_shot, seed=ctx.seed, **ctx.hparams)
    train, test = split_characters(load_omniglot())
    k_query = ctx.hparams["k_query"]  # resolved to K by the harness when the spec left it None
    module.sampler = EpisodeSampler(train, n_way, k_shot, k_query, ctx.hparams["rotations"])
    seconds = train_meta_learner(module, ctx)
    accuracy = module.evaluate(EpisodeSampler(test, n_way, k_shot, k_query, ctx.hparams["rotations"]))
    return RunOutput(
        metrics={"accuracy": accuracy[-1], "accuracy_step0": accuracy[0]},
        curves={"adaptation": [(float(k), a) for k, a in enumerate(accuracy)], "meta_loss": module.meta_loss_curve},
        steps=module.iteration,
        step_unit="meta-iterations",
        extras={"train_seconds": seconds,
                **({"replica_param_sums": module.replica_sums} if module.replica_sums else {})},
    )
