"""Catastrophic forgetting: fine-tuning vs L2 vs EWC (+ online EWC, SI, MAS) vs multi-task training.

A task sequence (permuted / split digits or MNIST, ``suite.data.continual``) is learnt one task at a time by
one MLP.  After each task the strategy estimates parameter importances and anchors a quadratic penalty there
(``baselines.continual_penalties``); ``multitask`` instead trains on the union of all tasks seen so far (the
upper bound of the lecture notes).  After every task -- and, for the Kirkpatrick Fig. 2A-style trajectory,
after every ``eval_every`` epochs -- the model is tested on every task, giving the matrix R (row 0 = random
init) and ACC / BWT / FWT (``suite.metrics.continual``).

Training loop: Lightning Fabric (``fabric.setup_module``, ``fabric.backward``), written out in :func:`fit`: per task a
fresh optimiser, per minibatch the task loss's backward, then the strategy's penalty gradient and its importance
estimator's bookkeeping, explicitly, in the order the strategy defines them.  Under DDP (``--devices N``) each
rank takes a shard of every minibatch (:class:`RankShards`) and the ranks' gradients are averaged right after
the backward, before the strategy sees them (``suite.distributed.average_gradients``).  The ``loop``
hyperparameter is kept only so the config hashes of committed records stay valid: both of its values (``manual``,
``trainer``) run this one loop, which gives the numbers of the committed records (those of both former loops).
Measured on permuted-digits-5 with EWC (1 thread, 5 tasks x 3 epochs x 42 batches of 32, MLP 64-100-100-10): a
Trainer per task cost 1.13 s of training against 0.61 s for a plain loop; the per-step overhead of this Fabric
loop against that plain loop is in benchmarks/bench_meta_fabric.py.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.continual_penalties import STRATEGIES, make_strategy
from suite.api import RunContext, RunOutput, Throttle, check_finite
from suite.checkpoint import rng_state, set_rng_state
from suite.data.continual import Batches, TaskStream, make_stream, protocol
from suite.distributed import average_gradients, replica_checksums
from suite.metrics import continual as cm
from suite.metrics.fisher import masked_logits
from suite.registry import register_baseline

DEFAULTS: dict[str, Any] = {
    "strategy": "ewc",          # one of STRATEGIES
    "lam": 100.0,               # EWC / online EWC / L2 / MAS penalty strength (lambda)
    "fisher": "empirical",      # empirical (data labels) | true (labels sampled from the model)
    "fisher_samples": 0,        # samples of the task used for the Fisher / MAS importance; 0 = all
    "gamma": 1.0,               # online EWC decay of the accumulated Fisher
    "c": 0.1,                   # SI penalty strength
    "xi": 0.1,                  # SI damping
    "hidden": None,             # hidden widths; None = the env's protocol
    "lr": None,                 # SGD learning rate; None = the env's protocol
    "optimizer": None,          # sgd | adam (fresh state per task); None = the env's protocol
    "momentum": None,           # SGD momentum; None = the env's protocol
    "batch_size": None,         # None = the env's protocol
    "epochs": None,             # epochs per task (over the union for multitask); None = the env's protocol
    "eval_every": 1,            # epochs between trajectory evaluations on all tasks (0 = only after tasks)
    "loop": "manual",           # no-op kept for committed config hashes: manual and trainer both run the Fabric loop
}


class ContinualMLP(L.LightningModule):
    """MLP with one (masked) output layer, trained on a task sequence with a quadratic-penalty strategy."""

    def __init__(self, in_features: int, n_outputs: int, hidden: list[int], strategy: str = "ewc",
                 lam: float = 100.0, fisher: str = "empirical", gamma: float = 1.0, c: float = 0.1,
                 xi: float = 0.1, lr: float = 0.05, momentum: float = 0.0, optimizer: str = "sgd") -> None:
        super().__init__()
        self.save_hyperparameters()
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], n_outputs))
        self.importance, self.penalty = make_strategy(strategy, lam=lam, fisher=fisher, gamma=gamma, c=c, xi=xi)
        self.steps_done = 0

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return masked_logits(self.net(x), mask)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        if self.hparams.optimizer != "sgd":
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.hparams.optimizer!r}")
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum)

    def consolidate(self, x: Tensor, y: Tensor, mask: Tensor | None, generator: torch.Generator) -> None:
        """End of a task: estimate importances on its data and anchor the penalty at the current weights."""
        if self.penalty is not None:
            self.penalty.consolidate(self.net, self.importance.estimate(self.net, x, y, mask, generator))


class RankShards:
    """This rank's rows ``rank::world`` of every minibatch, with the minibatch's full size.

    Each rank's loss is its shard's summed cross-entropy times ``world / size``, so DDP's average over ranks is
    the full minibatch's mean loss (exactly, even for a last minibatch that does not split evenly); the
    penalty gradients, Fisher estimates and evaluations are computed identically on every rank.
    """

    def __init__(self, batches: Batches, rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):  # noqa: ANN204 (generator of tuples)
        for x, y, mask in self.batches:
            shard = slice(self.rank, None, self.world)
            yield x[shard], y[shard], None if mask is None else mask[shard], len(y)


def train_epoch(fabric: L.Fabric, module: ContinualMLP, optimizer: torch.optim.Optimizer,
                batches: Batches | RankShards) -> None:
    """One pass over ``batches``: task-loss backward, then the penalty gradient, then the step; the strategy's
    importance estimator sees the pure task-loss gradient and every step (SI's path integral needs both)."""
    importance, penalty, net = module.importance, module.penalty, module.net
    on_host = fabric.device.type == "cpu"  # the stream lives on the host
    first_step, losses = module.steps_done, []
    for batch in batches:
        x, y, mask, *size = batch if on_host else fabric.to_device(batch)
        optimizer.zero_grad(set_to_none=False)
        with fabric.autocast():  # the run's precision (32-true: nothing)
            logits = module(x, mask)
            if size:  # a rank's shard of a minibatch of size[0] samples (see RankShards)
                loss = F.cross_entropy(logits, y, reduction="sum") * (fabric.world_size / size[0])
            else:
                loss = F.cross_entropy(logits, y)
        losses.append(loss.detach())
        module.steps_done += 1
        fabric.backward(loss)
        average_gradients(fabric, net.parameters())  # DDP: the mean over ranks (a no-op on one device)
        importance.after_backward(net)
        if penalty is not None:
            penalty.add_grad(net)
        optimizer.step()
        importance.after_step(net)
    check_losses(torch.stack(losses), first_step)


def check_losses(losses: Tensor, first_step: int) -> None:
    """:func:`check_finite` of a pass's losses at once (one host sync per epoch, not per step): a non-finite one
    raises :class:`Diverged` naming its value and step, as a check right after that step would have."""
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        check_finite(losses[int(bad[0])], first_step + int(bad[0]))


@torch.no_grad()
def evaluate(module: ContinualMLP, stream: TaskStream, trained: int, chunk: int = 4096) -> list[float]:
    """Test accuracy on every task of the stream after ``trained`` tasks (0-indexed; -1 = untrained)."""
    was_training = module.training
    module.eval()
    accs = []
    for j, task in enumerate(stream.tasks):
        mask = stream.active(trained, j)
        mask = None if mask is None else mask.to(module.device)
        correct = 0
        for s in range(0, len(task.y_test), chunk):
            logits = module(task.inputs(task.x_test[s:s + chunk]).to(module.device), mask)
            correct += int((logits.argmax(1).cpu() == task.y_test[s:s + chunk]).sum())
        accs.append(correct / len(task.y_test))
    module.train(was_training)
    return accs


def resolve(hparams: dict[str, Any], env: str, seed: int = 0) -> dict[str, Any]:
    """Hyperparameters with the env's protocol filled in where the spec left None (the registry's resolve hook)."""
    recipe = protocol(env)
    return {k: (recipe[k] if v is None and k in recipe else v) for k, v in hparams.items()}


@register_baseline("continual", defaults=DEFAULTS, env_families=("continual",), module_class=ContinualMLP,
                   distributed=True, resolve=resolve)
def fit(ctx: RunContext) -> RunOutput:
    """Sequential training over a task stream with a continual-learning strategy; R matrix and ACC/BWT/FWT."""
    hp = dict(ctx.hparams)  # the env's protocol is already filled in (resolve, applied by the harness)
    if hp["strategy"] not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {hp['strategy']!r}")
    if hp["loop"] not in ("manual", "trainer"):  # a no-op now (see the module docstring), still validated
        raise ValueError(f"loop must be 'manual' or 'trainer', got {hp['loop']!r}")
    stream = make_stream(ctx.env)
    n_tasks, epochs = len(stream.tasks), int(hp["epochs"])
    module = ContinualMLP(stream.in_features, stream.n_outputs, list(hp["hidden"]), hp["strategy"], hp["lam"],
                          hp["fisher"], hp["gamma"], hp["c"], hp["xi"], hp["lr"], hp["momentum"],
                          hp["optimizer"])
    fabric = ctx.fabric()
    fabric.setup_module(module)  # on the run's device; the stream stays on the host, batches are moved
    rank, world = fabric.global_rank, fabric.world_size
    device = module.device
    # Data order and Fisher label samples get their own generators: independent of model-init RNG draws.
    order_gen = torch.Generator().manual_seed(ctx.seed)
    fisher_gen = torch.Generator().manual_seed(ctx.seed + 1_000_003)
    progress = Throttle(ctx.progress)

    r = [evaluate(module, stream, -1)]
    trajectory_x: list[float] = [0.0]
    trajectory: list[list[float]] = [r[0]]
    samples, t_train, t_importance, first_task = 0, 0.0, 0.0, 0

    def resume_state() -> dict[str, Any]:
        """Everything after a task: weights, strategy (anchors, importances), data/Fisher generators, RNG, R."""
        return {"module": module.state_dict(), "steps_done": module.steps_done,
                "importance": copy.deepcopy(module.importance), "penalty": copy.deepcopy(module.penalty),
                "order_gen": order_gen.get_state(), "fisher_gen": fisher_gen.get_state(), "rng": rng_state(),
                "r": copy.deepcopy(r), "trajectory_x": list(trajectory_x), "trajectory": copy.deepcopy(trajectory),
                "samples": samples, "time_s": [t_train, t_importance], "next_task": t + 1}

    saved = ctx.checkpoint.load()
    if saved is not None:  # resume after task saved["next_task"] - 1; the optimiser is fresh per task anyway
        module.load_state_dict(saved["module"])
        module.steps_done = saved["steps_done"]
        module.importance, module.penalty = saved["importance"], saved["penalty"]
        order_gen.set_state(saved["order_gen"])
        fisher_gen.set_state(saved["fisher_gen"])
        set_rng_state(saved["rng"])
        r[:], trajectory_x[:], trajectory[:] = saved["r"], saved["trajectory_x"], saved["trajectory"]
        samples, (t_train, t_importance), first_task = saved["samples"], saved["time_s"], saved["next_task"]
    for t, task in enumerate(stream.tasks):
        if t < first_task:
            continue
        seen = list(range(t + 1)) if hp["strategy"] == "multitask" else [t]
        batches = Batches(stream, seen, int(hp["batch_size"]), order_gen, trained=t)
        start = time.perf_counter()
        optimizer = fabric.setup_optimizers(module.configure_optimizers())  # a fresh optimiser per task
        module.importance.begin_task(module.net)
        for epoch in range(1, epochs + 1):
            train_epoch(fabric, module, optimizer, RankShards(batches, rank, world) if world > 1 else batches)
            progress(t * epochs + epoch, n_tasks * epochs)
            if hp["eval_every"] and epoch % hp["eval_every"] == 0 and epoch < epochs:  # Kirkpatrick Fig. 2A
                trajectory_x.append(t + epoch / epochs)
                trajectory.append(evaluate(module, stream, t))
        t_train += time.perf_counter() - start
        samples += epochs * len(batches.owner)

        start = time.perf_counter()
        keep = slice(None) if not hp["fisher_samples"] else slice(0, int(hp["fisher_samples"]))
        mask = stream.active(t, t)
        module.consolidate(task.inputs(task.x_train[keep]).to(device), task.y_train[keep].to(device),
                           None if mask is None else mask.to(device), fisher_gen)
        t_importance += time.perf_counter() - start

        r.append(evaluate(module, stream, t))
        trajectory_x.append(t + 1.0)
        trajectory.append(r[-1])
        ctx.log(samples, tasks_trained=t + 1, seen_task_acc=float(np.mean(r[-1][:t + 1])), task1_acc=r[-1][0],
                newest_task_acc=r[-1][t])
        if t + 1 < n_tasks:
            ctx.checkpoint.maybe_save(samples, resume_state)

    metrics = cm.summary(r)
    seen_acc = cm.seen_task_accuracy(r)
    curves = {
        "seen_task_acc": [(float(i + 1), a) for i, a in enumerate(seen_acc)],
        "task1_acc": [(float(i), row[0]) for i, row in enumerate(r)],
    }
    effective = {k: hp[k] for k in ("hidden", "optimizer", "lr", "momentum", "batch_size", "epochs", "loop")}
    extras = {
        "R": r,
        "task_names": [task.name for task in stream.tasks],
        "trajectory": {"x": trajectory_x, "acc": trajectory},
        "forgetting_curves": cm.forgetting_curves(r),
        "effective_hparams": effective,
        "time_s": {"train": t_train, "importance": t_importance},
        "final_penalty": module.penalty.value(module.net) if module.penalty is not None else 0.0,
    }
    if world > 1:
        extras["replica_param_sums"] = replica_checksums(module, world, fabric.all_gather)
    return RunOutput(metrics=metrics, curves=curves, steps=samples, step_unit="samples", extras=extras)
