"""Shared machinery of the meta-learners: the batched MLP of the sinusoid ones (MAML, first-order MAML, Reptile,
pre-training, oracle) and the Fabric training loop of all of them (Omniglot MAML too).

The hot path is a ReLU MLP evaluated for a whole batch of tasks at once: per-task weights carry a
leading task dimension ``(T, out, in)`` and every layer is one batched matmul.  The inner-loop
gradient of the MSE is written out by hand (backprop through the MLP is a few batched matmuls), and
is built from differentiable ops, so autograd through it yields the exact second-order MAML
meta-gradient: ReLU's second derivative is zero almost everywhere, which is also what autograd uses.
This beats ``vmap(grad(...))`` on the 1-40-40-1 net (1.3x measured, see benchmarks/bench_maml.py),
because vmap re-derives the backward graph on every call and materialises per-task copies of the
shared weights at step 0, while here step 0 runs on the shared weights with the tasks folded into
the batch.

Every meta-learner here (the sinusoid ones and Omniglot MAML) subclasses :class:`MetaLearner` and is
trained by :func:`train_meta_learner` with Lightning Fabric, in chunks of ``iters_per_step``
meta-iterations: after each chunk the loop checks for divergence, reports progress and saves a checkpoint
when one is due, so a re-run resumes from the last chunk boundary with bit-identical results.  A learner
gives its meta-objective as ``forward(tasks)`` and its update as ``meta_step``: Adam on the objective unless
it overrides it (Reptile does).  Under DDP each rank draws its share of the meta-batch and the update
averages the ranks' gradients (``suite.distributed.average_gradients``) before the optimiser step.
"""

from __future__ import annotations

import abc
import time
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn

from suite.api import RunContext, RunOutput, Throttle, check_finite
from suite.checkpoint import Checkpointer, rng_state, set_rng_state
from suite.distributed import average_gradients, rank_seed, replica_checksums
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
    "iters_per_step": 50,  # meta-iterations per chunk (progress, divergence check and checkpoint once per chunk)
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
def split_meta_batch(rank: int, world: int, meta_batch: int) -> tuple[int, float]:
    """(tasks rank ``rank`` of ``world`` draws, weight of its mean loss).

    Under DDP each of W ranks draws its share of the meta-batch (M // W, the first M % W ranks one more)
    from its own task stream, and scales its mean loss by ``share * W / M``, so DDP's average of the
    ranks' gradients is exactly the gradient of the mean over all M tasks, even when W does not divide M.
    On one device: (M, 1.0).
    """
    if world == 1:
        return meta_batch, 1.0
    if meta_batch < world:
        raise ValueError(f"meta_batch {meta_batch} is smaller than the {world} devices")
    share = meta_batch // world + (rank < meta_batch % world)
    return share, share * world / meta_batch


def weighted(loss: torch.Tensor, weight: float) -> torch.Tensor:
    """``loss`` scaled by its rank's weight (:func:`split_meta_batch`); untouched on one device."""
    return loss if weight == 1.0 else loss * weight


# ---------------------------------------------------------------------------- the meta-learner and its Fabric loop
class MetaLearner(L.LightningModule, abc.ABC):
    """What :func:`train_meta_learner` drives: a task stream, the meta-update, the run's counters and curves."""

    # the held-out score tracked ``eval_points`` times during training, by a learner that defines
    # ``score_during_training()``; "" = the learner has none, and ``eval_points`` is ignored
    eval_name = ""

    def __init__(self, seed: int, meta_batch: int) -> None:
        super().__init__()
        self.task_rng = torch.Generator().manual_seed(seed)
        self.meta_batch = meta_batch
        self.tasks_per_rank, self.rank_weight = meta_batch, 1.0  # this rank's share (DDP: split_meta_batch)
        self.iteration = 0
        self.loss_sum, self.loss_count = 0.0, 0  # the objective since the last curve point
        self.meta_loss_curve: list[tuple[float, float]] = []
        self.eval_curve: list[tuple[float, float]] = []
        self.replica_sums: list[float] = []

    @abc.abstractmethod
    def draw_tasks(self, count: int) -> Any:
        """A meta-batch of ``count`` tasks drawn from ``self.task_rng`` (on the host)."""

    def meta_step(self, tasks: Any) -> torch.Tensor:
        """One meta-iteration: an optimiser step on the objective ``self(tasks)``; returns it, detached."""
        opt = self.optimizers()
        loss = self(tasks)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(weighted(loss, self.rank_weight))
        average_gradients(self.fabric, self.parameters())  # DDP: the mean over ranks (a no-op on one device)
        opt.step()
        return loss.detach()

    def progress_state(self) -> dict[str, Any]:
        """The counters and curves a checkpoint needs besides weights, optimiser and random streams."""
        return {"iteration": self.iteration, "loss_sum": self.loss_sum, "loss_count": self.loss_count,
                "meta_loss_curve": list(self.meta_loss_curve), "eval_curve": list(self.eval_curve)}

    def load_progress_state(self, state: dict[str, Any]) -> None:
        self.iteration, self.loss_sum, self.loss_count = state["iteration"], state["loss_sum"], state["loss_count"]
        self.meta_loss_curve, self.eval_curve = list(state["meta_loss_curve"]), list(state["eval_curve"])


def _task_rng_states(fabric: L.Fabric, module: MetaLearner) -> torch.Tensor:
    """Every rank's task-stream state, ``(world, n)`` (a collective under DDP: each rank draws its own tasks)."""
    state = module.task_rng.get_state()
    if fabric.world_size == 1:
        return state[None]
    return fabric.all_gather(state).cpu().reshape(fabric.world_size, -1)


def _state(module: MetaLearner, optimizer: torch.optim.Optimizer, task_rngs: torch.Tensor,
           seconds: float) -> dict[str, Any]:
    """Everything a resumed run needs: weights, optimiser, every rank's task stream, counters, curves, RNGs."""
    return {"module": module.state_dict(), "optimizer": optimizer.state_dict(), "task_rngs": task_rngs,
            "progress": module.progress_state(), "rng": rng_state(), "train_seconds": seconds}


def train_meta_learner(module: MetaLearner, ctx: RunContext | None = None) -> float:
    """Meta-train ``module`` for ``hparams.meta_iterations`` meta-iterations with Lightning Fabric.

    Runs on ``ctx``'s device(s) (none: one CPU), resumes from ``ctx.checkpoint`` when the run left one and saves
    one at chunk boundaries when due.  Returns the seconds of training, those of interrupted attempts included.
    """
    h = module.hparams
    fabric = ctx.fabric() if ctx is not None else L.Fabric(accelerator="cpu", devices=1)
    checkpoint = ctx.checkpoint if ctx is not None else Checkpointer()
    log = ctx.log if ctx is not None else lambda step, **metrics: None
    progress = Throttle(ctx.progress) if ctx is not None else lambda step, total: None
    _, optimizer = fabric.setup(module, module.configure_optimizers())
    rank, world = fabric.global_rank, fabric.world_size
    if world > 1:
        module.tasks_per_rank, module.rank_weight = split_meta_batch(rank, world, module.meta_batch)
        module.task_rng = torch.Generator().manual_seed(rank_seed(h.seed, rank))
    prior_seconds = 0.0
    saved = checkpoint.load()
    if saved is not None:  # every rank resumes from rank 0's file, each with its own task stream
        module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        module.task_rng.set_state(saved["task_rngs"][rank])
        module.load_progress_state(saved["progress"])
        set_rng_state(saved["rng"])
        prior_seconds = saved["train_seconds"]

    total = h.meta_iterations
    log_every = max(1, total // h.curve_points)
    eval_every = max(1, total // h.eval_points) if h.get("eval_points") and module.eval_name else 0
    on_host = fabric.device.type == "cpu"  # task streams are drawn on the host from a CPU generator
    start = time.perf_counter()
    while module.iteration < total:
        n = min(h.iters_per_step, total - module.iteration)
        losses = torch.empty(n)
        for j in range(n):
            tasks = module.draw_tasks(module.tasks_per_rank)
            with fabric.autocast():  # the run's precision over the whole meta-step (32-true: a no-op)
                losses[j] = module.meta_step(tasks if on_host else fabric.to_device(tasks))
            module.iteration += 1
            module.loss_sum += float(losses[j])
            module.loss_count += 1
            if module.iteration % log_every == 0:  # the curve shows the mean objective since the last point
                module.meta_loss_curve.append((module.iteration, module.loss_sum / module.loss_count))
                module.loss_sum, module.loss_count = 0.0, 0
                log(module.iteration, meta_loss=module.meta_loss_curve[-1][1])
            if eval_every and module.iteration % eval_every == 0:
                module.eval_curve.append((module.iteration, module.score_during_training()))
                log(module.iteration, **{module.eval_name: module.eval_curve[-1][1]})
        check_finite(losses.mean(), module.iteration, "meta_loss")
        progress(module.iteration, total)
        task_rngs = _task_rng_states(fabric, module)  # every chunk: under DDP a collective, rank 0 alone saves
        if module.iteration < total:
            seconds = prior_seconds + time.perf_counter() - start
            checkpoint.maybe_save(module.iteration, partial(_state, module, optimizer, task_rngs, seconds))
    seconds = prior_seconds + time.perf_counter() - start
    module.replica_sums = replica_checksums(module, world, fabric.all_gather)
    return seconds


class SineMetaLearner(MetaLearner):
    """Base of the sinusoid learners: the MLP, a task stream from the run's seed, held-out evaluation."""

    oracle_inputs = False  # the oracle sees (x, amplitude, phase)
    eval_name = "eval_mse_step1"

    def __init__(self, k_shot: int = 10, seed: int = 0, **hparams: Any) -> None:
        super().__init__(seed, hparams["meta_batch"])
        self.save_hyperparameters()
        h = self.hparams
        self.net = make_mlp(3 if self.oracle_inputs else 1, h.hidden, h.layers)
        self.k_query = h.k_query or k_shot
        self.eval_set: SineTasks | None = None

    def params(self) -> Params:
        return [t for layer in self.net if isinstance(layer, nn.Linear) for t in (layer.weight, layer.bias)]

    def inputs(self, tasks: SineTasks, x: torch.Tensor) -> torch.Tensor:
        return tasks.features(x) if self.oracle_inputs else x

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.outer_lr)

    def draw_tasks(self, count: int) -> SineTasks:
        return sample_tasks(count, self.hparams.k_shot, self.k_query, self.task_rng)

    def score_during_training(self) -> float:
        return self.evaluate(steps=1)[1]

    def evaluate(self, steps: int | None = None) -> list[float]:
        """MSE on the fixed held-out tasks after 0..steps SGD steps on their K support points."""
        h = self.hparams
        if self.eval_set is None:
            self.eval_set = eval_tasks(h.k_shot, h.eval_tasks, h.eval_query)
        t = self.eval_set
        return adaptation_curve(self.params(), self.inputs(t, t.x_support), t.y_support,
                                self.inputs(t, t.x_query), t.y_query, h.eval_lr,
                                h.eval_steps if steps is None else steps)


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
