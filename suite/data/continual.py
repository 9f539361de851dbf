"""Task streams for continual learning: permuted and split digits / MNIST, in the three scenarios of
van de Ven & Tolias (2019).

* ``domain``: one shared output layer, labels 0..9 for every task (permuted tasks as in Kirkpatrick et al.
  and GEM; for split tasks the label is the position within the pair).
* ``task``: task identity is given -- each task owns its own output units and only those are active when
  training and testing it (a multi-headed network written as one masked output layer).
* ``class``: every task owns its own output units, and all units of the tasks seen so far compete.

Permutations and per-task subsets depend only on the env (a fixed ``DATA_SEED``), never on the run seed, so
every strategy and seed sees the same tasks and results are paired.  Permuted inputs are never materialised
(60000 x 784 x 10 tasks would be 1.9 GB): a task keeps the shared base images and applies its permutation
per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from suite.registry import ENVS, register_env

DATA_SEED = 20170314  # Kirkpatrick et al. PNAS publication date; fixed for every run and strategy


@dataclass(frozen=True)
class Task:
    """One task: base inputs (N, D), labels in the network's output space, an optional input permutation."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    units: Tensor  # output units this task's labels live in
    perm: Tensor | None = None

    def inputs(self, x: Tensor) -> Tensor:
        return x if self.perm is None else x[:, self.perm]


@dataclass(frozen=True)
class TaskStream:
    tasks: list[Task]
    n_outputs: int
    in_features: int
    scenario: str  # domain | task | class

    def active(self, trained: int, task: int) -> Tensor | None:
        """Output-unit mask for ``task`` after ``trained`` tasks (0-indexed ids; ``trained`` may be -1)."""
        if self.scenario == "domain":
            return None
        mask = torch.zeros(self.n_outputs, dtype=torch.bool)
        if self.scenario == "task":
            mask[self.tasks[task].units] = True
        else:  # class-incremental: everything seen so far, plus the task itself when testing ahead
            for t in range(max(trained, task) + 1):
                mask[self.tasks[t].units] = True
        return mask


class Batches:
    """Shuffled mini-batches over the union of ``task_ids`` (one task for sequential training, all tasks seen
    so far for the multi-task upper bound); yields ``(x, y, mask)`` with a per-sample output mask or None.

    An explicit generator keeps the order independent of global RNG consumption (model init, Fisher sampling).
    """

    def __init__(self, stream: TaskStream, task_ids: list[int], batch_size: int, generator: torch.Generator,
                 trained: int) -> None:
        self.stream, self.task_ids, self.batch_size, self.generator = stream, task_ids, batch_size, generator
        sizes = [len(stream.tasks[t].y_train) for t in task_ids]
        self.owner = torch.repeat_interleave(torch.arange(len(task_ids)), torch.tensor(sizes))
        self.offset = torch.cat([torch.zeros(1, dtype=torch.long), torch.tensor(sizes).cumsum(0)[:-1]])
        masks = [stream.active(trained, t) for t in task_ids]
        self.masks = None if masks[0] is None else torch.stack(masks)
        # each task's inputs as the network sees them (permuted) once, not once per minibatch: the same values
        self.inputs = [stream.tasks[t].inputs(stream.tasks[t].x_train) for t in task_ids]

    def __len__(self) -> int:
        return -(-len(self.owner) // self.batch_size)

    def __iter__(self):  # noqa: ANN204 (generator of tuples)
        order = torch.randperm(len(self.owner), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(self.task_ids) == 1:
                x, y = self.inputs[0][idx], self.stream.tasks[self.task_ids[0]].y_train[idx]
                owner = torch.zeros(len(idx), dtype=torch.long)
            else:
                owner = self.owner[idx]
                local = idx - self.offset[owner]
                x = torch.empty(len(idx), self.stream.in_features)
                y = torch.empty(len(idx), dtype=torch.long)
                for k, t in enumerate(self.task_ids):
                    rows = (owner == k).nonzero().squeeze(1)
                    x[rows] = self.inputs[k][local[rows]]
                    y[rows] = self.stream.tasks[t].y_train[local[rows]]
            yield x, y, None if self.masks is None else self.masks[owner]


def permuted_stream(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, n_tasks: int, *,
                    scenario: str = "domain", samples_per_task: int | None = None,
                    first_identity: bool = True) -> TaskStream:
    """Tasks = fixed pixel permutations of the same images (task 1 unpermuted when ``first_identity``)."""
    gen = torch.Generator().manual_seed(DATA_SEED)
    x_train, x_test = x_train.flatten(1), x_test.flatten(1)
    dim = x_train.shape[1]
    tasks = []
    for t in range(n_tasks):
        perm = None if (t == 0 and first_identity) else torch.randperm(dim, generator=gen)
        xs, ys = x_train, y_train
        if samples_per_task is not None:
            keep = torch.randperm(len(y_train), generator=gen)[:samples_per_task]
            xs, ys = x_train[keep], y_train[keep]
        offset = 10 * t if scenario in ("task", "class") else 0
        tasks.append(Task(f"perm{t + 1}", xs, ys + offset, x_test, y_test + offset,
                          torch.arange(offset, offset + 10), perm))
    n_out = 10 * n_tasks if scenario in ("task", "class") else 10
    return TaskStream(tasks, n_out, dim, scenario)


def split_stream(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, *,
                 scenario: str = "task", classes_per_task: int = 2) -> TaskStream:
    """Tasks = disjoint groups of digit classes ({0,1}, {2,3}, ...), as in split MNIST."""
    x_train, x_test = x_train.flatten(1), x_test.flatten(1)
    tasks = []
    for t in range(10 // classes_per_task):
        classes = torch.arange(t * classes_per_task, (t + 1) * classes_per_task)
        tr, te = torch.isin(y_train, classes), torch.isin(y_test, classes)
        shift = t * classes_per_task if scenario == "domain" else 0
        units = torch.arange(classes_per_task) if scenario == "domain" else classes
        tasks.append(Task(f"classes{classes.tolist()}", x_train[tr], y_train[tr] - shift, x_test[te],
                          y_test[te] - shift, units))
    n_out = classes_per_task if scenario == "domain" else 10
    return TaskStream(tasks, n_out, x_train.shape[1], scenario)


def _digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from suite.data.digits import load_digits_split

    return load_digits_split()


def _mnist() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from suite.data.vision import load_mnist  # real files under the data root; clear error offline

    x_train, y_train, x_test, y_test = (torch.from_numpy(np.array(a)) for a in load_mnist())
    return x_train.float() / 255.0, y_train.long(), x_test.float() / 255.0, y_test.long()


def make_stream(env: str) -> TaskStream:
    """Build the task stream of a registered continual env."""
    meta = ENVS[env].meta
    data = _digits() if meta["dataset"] == "digits" else _mnist()
    if meta["kind"] == "permuted":
        return permuted_stream(*data, meta["n_tasks"], scenario=meta["scenario"],
                               samples_per_task=meta.get("samples_per_task"))
    return split_stream(*data, scenario=meta["scenario"])


def protocol(env: str) -> dict[str, Any]:
    """The env's training recipe (network, optimiser, budget); hyperparameters left at None take these."""
    return dict(ENVS[env].meta["protocol"])


# Recipes.  Digits: tuned here for the offline profiles.  MNIST: Kirkpatrick et al. 2017 (MLP 2x400, SGD) and
# the GEM protocol (Lopez-Paz & Ranzato 2017: 20 tasks x 1000 samples, MLP 2x100, one pass, batch 10, lr 0.1).
_DIGITS = {"hidden": [100, 100], "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 32, "epochs": 3}
_KIRKPATRICK = {"hidden": [400, 400], "optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "batch_size": 100, "epochs": 5}
_GEM = {"hidden": [100, 100], "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 10, "epochs": 1}

for _n in (2, 3, 5, 10):
    register_env(f"permuted-digits-{_n}", "continual", f"{_n} fixed pixel permutations of the 8x8 digits",
                 dataset="digits", kind="permuted", n_tasks=_n, scenario="domain", protocol=_DIGITS)
for _scenario in ("task", "class"):
    register_env(f"permuted-digits-5-{_scenario}-IL", "continual", f"permuted digits, {_scenario}-incremental",
                 dataset="digits", kind="permuted", n_tasks=5, scenario=_scenario, protocol=_DIGITS)
    register_env(f"split-digits-{_scenario}-IL", "continual", f"digits split into 5 class pairs, {_scenario}-IL",
                 dataset="digits", kind="split", scenario=_scenario, protocol=_DIGITS)
    register_env(f"permuted-MNIST-{_scenario}-IL", "continual", f"10 permuted MNIST tasks, {_scenario}-IL",
                 dataset="mnist", kind="permuted", n_tasks=10, scenario=_scenario, protocol=_KIRKPATRICK)
    register_env(f"split-MNIST-{_scenario}-IL", "continual", f"MNIST split into 5 class pairs, {_scenario}-IL",
                 dataset="mnist", kind="split", scenario=_scenario, protocol=_KIRKPATRICK)
register_env("permuted-MNIST", "continual", "10 permuted MNIST tasks, shared head (Kirkpatrick et al. 2017)",
             dataset="mnist", kind="permuted", n_tasks=10, scenario="domain", protocol=_KIRKPATRICK)
register_env("permuted-MNIST-GEM", "continual", "20 permuted MNIST tasks x 1000 samples (GEM protocol)",
             dataset="mnist", kind="permuted", n_tasks=20, scenario="domain", samples_per_task=1000,
             protocol=_GEM)
