"""Shared machinery of the sinusoid meta-learners (MAML, first-order MAML, Reptile, pre-training, oracle).

The hot path is a ReLU MLP evaluated for a whole batch of tasks at once: per-task weights carry a
leading task dimension ``(T, out, in)`` and every layer is one batched matmul.  The inner-loop
gradient of the MSE is written out by hand (backprop through the MLP is a few batched matmuls), and
is built from differentiable ops, so autograd through it yields the exact second-order MAML
meta-gradient: ReLU's second derivative is zero almost everywhere, which is also what autograd uses.
This beats ``vmap(grad(...))`` on the 1-40-40-1 net (1.3x measured, see benchmarks/bench_maml.py),
because vmap re-derives the backward graph on every call and materialises per-task copies of the
shared weights at step 0, while here step 0 runs on the shared weights with the tasks folded into
the batch.

A meta-learner subclasses :class:`SineMetaLearner` and implements ``meta_step``; :func:`fit_meta`
drives it with a Lightning Trainer whose every ``training_step`` runs a chunk of meta-iterations
(one Trainer step per meta-iteration would cost more in Lightning overhead than the step itself).
"""

from __future__ import annotations

import abc
import math
import time
from typing import Any

import lightning as L
import torch
from torch import nn

from suite.api import RunContext, RunOutput, Throttle, check_finite
from suite.distributed import module_world_size, rank_seed, replica_checksums
from suite.envs.sinusoid import SineTasks, eval_tasks, k_shot_of, sample_tasks

Params = list[torch.Tensor]  # [W1, b1, W2, b2, ...]; W (out, in) or (T, out, in), b (out,) or (T, out)

SINE_DEFAULTS: dict[str, Any] = {
    "hidden": 40,  # units per hidden layer (1-40-40-1 ReLU MLP, Finn et al. Sec. 5.1)
    "layers": 2,  # hidden layers of the MLP
    "meta_batch": 25,  # tasks per meta-iteration
    "meta_iterations": 70000,  # meta-updates of training
    "k_query": None,  # query points per task during meta-training; None: K, as in the reference code
    "inner_lr": 0.01,  # step size of the inner-loop (adaptation) SGD during meta-training
    "inner_steps": 1,  # inner-loop SGD steps during meta-training
    "outer_lr": 1e-3,  # Adam learning rate of the meta-update
    "eval_tasks": 600,  # held-out tasks of the evaluation
    "eval_query": 100,  # query points per held-out task
    "eval_steps": 10,  # adaptation steps at test time (mse_step0 .. mse_step<eval_steps>)
    "eval_lr": 0.01,  # the same step size for every variant at test time, as in Fig. 2
    "iters_per_step": 50,  # meta-iterations per Lightning training_step
    "curve_points": 50,  # points of the meta_loss learning curve
    "eval_points": 10,  # mid-training evaluations (mse_step1 on the held-out tasks)
}


# ---------------------------------------------------------------------------- batched MLP, analytic backward
def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    bias = b if b.dim() == 1 else b[:, None, :]
    return torch.matmul(h, w.transpose(-1, -2)) + bias


def mlp_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """``x`` (T, N, in) -> (T, N, out); each of ``params`` is shared or carries a leading task dim."""
    h = x
    last = len(params) // 2 - 1
    for i in range(0, len(params), 2):
        h = _linear(h, params[i], params[i + 1])
        if i // 2 < last:
            h = torch.relu(h)
    return h


def mse_and_grad(params: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Params]:
    """Per-task MSE ``(T,)`` and its gradient w.r.t. each task's parameters (each with a leading T dim).

    Differentiable: when ``params`` require grad, autograd through the result is exact to second order.
    """
    hs = [x]
    n_layers = len(params) // 2
    for i in range(n_layers):
        a = _linear(hs[-1], params[2 * i], params[2 * i + 1])
        hs.append(torch.relu(a) if i < n_layers - 1 else a)
    err = hs[-1] - y
    n = err.shape[1] * err.shape[2]
    loss = err.pow(2).sum(dim=(1, 2)) / n
    d = err * (2.0 / n)
    grads: Params = [torch.empty(0)] * len(params)
    for i in reversed(range(n_layers)):
        grads[2 * i] = torch.matmul(d.transpose(1, 2), hs[i])
        grads[2 * i + 1] = d.sum(dim=1)
        if i > 0:
            # relu'(a) as a mask of the layer output: the same (zero) second derivative autograd uses
            d = torch.matmul(d, params[2 * i]) * (hs[i] > 0)
    return loss, grads


def sgd_adapt(params: Params, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int, create_graph: bool) -> Params:
    """``steps`` SGD steps of every task from ``params`` on its own (x, y); returns per-task parameters.

    ``create_graph=False`` detaches the inner gradients (first-order MAML / plain fine-tuning).
    """
    for _ in range(steps):
        _, grads = mse_and_grad(params, x, y)
        params = [p - lr * (g if create_graph else g.detach()) for p, g in zip(params, grads)]
    return params


@torch.no_grad()
def adaptation_curve(params: Params, x_s: torch.Tensor, y_s: torch.Tensor, x_q: torch.Tensor,
                     y_q: torch.Tensor, lr: float, steps: int) -> list[float]:
    """Mean query MSE after 0, 1, ..., ``steps`` SGD steps on the support points (Finn et al. Fig. 2)."""
    params = [p.detach() for p in params]
    mses = []
    for k in range(steps + 1):
        if k:
            _, grads = mse_and_grad(params, x_s, y_s)
            params = [p - lr * g for p, g in zip(params, grads)]
        mses.append(float((mlp_forward(params, x_q) - y_q).pow(2).mean()))
    return mses


def make_mlp(in_dim: int, hidden: int, layers: int, out_dim: int = 1) -> nn.Sequential:
    sizes = [in_dim] + [hidden] * layers + [out_dim]
    mods: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


# ---------------------------------------------------------------------------- several devices (DDP)
def split_meta_batch(module: L.LightningModule, seed: int, meta_batch: int) -> tuple[int, float]:
    """(tasks this rank draws, weight of its mean loss); call from ``on_fit_start``.

    Under DDP each of W ranks draws its share of the meta-batch (M // W, the first M % W ranks one more)
    from its own task stream, and scales its mean loss by ``share * W / M``, so DDP's average of the
    ranks' gradients is exactly the gradient of the mean over all M tasks, even when W does not divide M.
    On one device: (M, 1.0) and the task stream is untouched, so records stay bit-identical.
    """
    world = module_world_size(module)
    if world == 1:
        return meta_batch, 1.0
    if meta_batch < world:
        raise ValueError(f"meta_batch {meta_batch} is smaller than the {world} devices")
    rank = module.global_rank
    share = meta_batch // world + (rank < meta_batch % world)
    module.task_rng = torch.Generator().manual_seed(rank_seed(seed, rank))
    return share, share * world / meta_batch


def weighted(loss: torch.Tensor, weight: float) -> torch.Tensor:
    """``loss`` scaled by its rank's weight (:func:`split_meta_batch`); untouched on one device."""
    return loss if weight == 1.0 else loss * weight


def average_gradients(module: L.LightningModule, params: Params) -> None:
    """Mean of ``.grad`` over ranks, for updates that set gradients without a backward (Reptile)."""
    if module_world_size(module) > 1:
        for p in params:
            p.grad = module.trainer.strategy.reduce(p.grad, reduce_op="mean")


# ---------------------------------------------------------------------------- Lightning module and fit loop
class SineMetaLearner(L.LightningModule, abc.ABC):
    """Base: an MLP, a task stream from the run's seed, a chunked manual-optimisation training step."""

    oracle_inputs = False  # the oracle sees (x, amplitude, phase)

    def __init__(self, k_shot: int = 10, seed: int = 0, **hparams: Any) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        h = self.hparams
        self.net = make_mlp(3 if self.oracle_inputs else 1, h.hidden, h.layers)
        self.k_query = h.k_query or k_shot
        self.task_rng = torch.Generator().manual_seed(seed)
        self.iteration = 0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.meta_loss_curve: list[tuple[float, float]] = []
        self.eval_curve: list[tuple[float, float]] = []
        self.eval_set: SineTasks | None = None
        self.progress: Any = lambda step, total: None
        self.live_log: Any = lambda step, **metrics: None  # ctx.log, at each curve point (meta-iterations)
        self.tasks_per_rank, self.rank_weight = h.meta_batch, 1.0
        self.replica_sums: list[float] = []

    def on_fit_start(self) -> None:
        self.tasks_per_rank, self.rank_weight = split_meta_batch(self, self.hparams.seed, self.hparams.meta_batch)

    def on_train_end(self) -> None:
        self.replica_sums = replica_checksums(self)

    def params(self) -> Params:
        return [t for layer in self.net if isinstance(layer, nn.Linear) for t in (layer.weight, layer.bias)]

    def inputs(self, tasks: SineTasks, x: torch.Tensor) -> torch.Tensor:
        return tasks.features(x) if self.oracle_inputs else x

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.outer_lr)

    @abc.abstractmethod
    def meta_step(self, tasks: SineTasks) -> torch.Tensor:
        """One meta-iteration on a batch of tasks; returns the (detached) objective it minimised."""

    def training_step(self, batch: Any, batch_idx: int) -> None:
        h = self.hparams
        total = h.meta_iterations
        n = min(h.iters_per_step, total - self.iteration)
        losses = torch.empty(n)
        log_every = max(1, total // h.curve_points)
        eval_every = max(1, total // h.eval_points) if h.eval_points else 0
        for j in range(n):
            tasks = sample_tasks(self.tasks_per_rank, h.k_shot, self.k_query, self.task_rng)
            losses[j] = self.meta_step(tasks)
            self.iteration += 1
            self.loss_sum += float(losses[j])
            self.loss_count += 1
            if self.iteration % log_every == 0:  # the curve shows the mean objective since the last point
                self.meta_loss_curve.append((self.iteration, self.loss_sum / self.loss_count))
                self.loss_sum, self.loss_count = 0.0, 0
                self.live_log(self.iteration, meta_loss=self.meta_loss_curve[-1][1])
            if eval_every and self.iteration % eval_every == 0:
                self.eval_curve.append((self.iteration, self.evaluate(steps=1)[1]))
                self.live_log(self.iteration, eval_mse_step1=self.eval_curve[-1][1])
        check_finite(losses.mean(), self.iteration, "meta_loss")
        self.progress(self.iteration, total)

    def evaluate(self, steps: int | None = None) -> list[float]:
        """MSE on the fixed held-out tasks after 0..steps SGD steps on their K support points."""
        h = self.hparams
        if self.eval_set is None:
            self.eval_set = eval_tasks(h.k_shot, h.eval_tasks, h.eval_query)
        t = self.eval_set
        return adaptation_curve(self.params(), self.inputs(t, t.x_support), t.y_support,
                                self.inputs(t, t.x_query), t.y_query, h.eval_lr,
                                h.eval_steps if steps is None else steps)


class _Chunks(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def train_meta_learner(module: L.LightningModule, ctx: RunContext | None = None, **trainer_overrides: Any) -> float:
    """Run ``module.hparams.meta_iterations`` meta-iterations under a Lightning Trainer; returns seconds."""
    h = module.hparams
    n_chunks = math.ceil(h.meta_iterations / h.iters_per_step)
    loader = torch.utils.data.DataLoader(_Chunks(n_chunks), batch_size=None, shuffle=False)
    kwargs = ctx.trainer_kwargs() if ctx is not None else dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    # The loader only counts chunks of meta-iterations; under DDP every rank runs all of them.
    kwargs.update(max_epochs=1, num_sanity_val_steps=0, use_distributed_sampler=False, **trainer_overrides)
    if ctx is not None:
        module.progress = Throttle(ctx.progress)
        module.live_log = ctx.log
    start = time.perf_counter()
    L.Trainer(**kwargs).fit(module, loader)
    return time.perf_counter() - start


def fit_sine(module_class: type[SineMetaLearner], ctx: RunContext) -> RunOutput:
    """Shared ``fit`` body of the sinusoid baselines: train, then the adaptation curve on held-out tasks."""
    hp = dict(ctx.hparams)
    module = module_class(k_shot=k_shot_of(ctx.env), seed=ctx.seed, **hp)
    train_s = train_meta_learner(module, ctx)
    mses = module.evaluate()
    for k, mse in enumerate(mses):
        check_finite(mse, module.iteration, f"mse_step{k}")
    metrics = {f"mse_step{k}": mse for k, mse in enumerate(mses)}
    return RunOutput(
        metrics=metrics,
        curves={"adaptation": [(float(k), m) for k, m in enumerate(mses)],
                "meta_loss": module.meta_loss_curve, "eval_mse_step1": module.eval_curve},
        steps=module.iteration,
        step_unit="meta-iterations",
        extras={"train_seconds": train_s, "ms_per_meta_iteration": 1000 * train_s / max(1, module.iteration),
                **({"replica_param_sums": module.replica_sums} if module.replica_sums else {})},
    )
