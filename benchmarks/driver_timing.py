"""CPU seconds of one baseline's training at two budgets, printed as JSON: the subprocess side of
bench_fabric_drivers.py.

Run as ``python benchmarks/driver_timing.py CASE SMALL LARGE`` with ``PYTHONPATH`` naming the source tree to time
(this checkout, or an older one extracted by the benchmark).  It only calls what the code before and after issue
#16 shares (``train_meta_learner(module)`` and the registered ``fit(ctx)``), so the same file times both.  CPU
time of this single-threaded process, not wall time: on a machine shared with other jobs it leaves out the time
spent waiting for a core.  A warm-up run at the small budget comes first (first-call caches, lazy imports).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# isort: off
import suite  # noqa: F401  (first: it pins the CPU kernels, which only works before torch is imported)
import torch
# isort: on

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
torch.set_num_threads(1)


def meta_seconds(learner: str, iterations: int) -> float:
    """CPU seconds of ``train_meta_learner`` (Trainer or Fabric, set-up included) for sinusoid MAML or Reptile."""
    from baselines.meta_common import SINE_DEFAULTS, train_meta_learner

    if learner == "maml":
        from baselines.maml import MAML as cls  # noqa: N813

        hp: dict[str, Any] = dict(SINE_DEFAULTS, first_order=False)
    else:
        from baselines.reptile import REPTILE_DEFAULTS
        from baselines.reptile import Reptile as cls  # noqa: N813

        hp = dict(REPTILE_DEFAULTS)
    hp.update(meta_iterations=iterations, eval_points=0)
    torch.manual_seed(0)
    module = cls(k_shot=10, seed=0, **hp)
    start = time.process_time()
    train_meta_learner(module)
    return time.process_time() - start


def fit_seconds(baseline: str, env: str, hparams: dict[str, Any]) -> float:
    """CPU seconds of a registered baseline's whole ``fit`` (data, evaluation: the same at both budgets)."""
    from suite.api import RunContext
    from suite.registry import get_baseline

    entry = get_baseline(baseline)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        full = {**entry.defaults, **hparams}
        # the hyperparameters the harness would pass (the resolve hook, where the tree has one)
        full = entry.resolved(full, env, 0) if hasattr(entry, "resolved") else full
        ctx = RunContext("bench", "v", env, 0, "bench", baseline, full, Path(tmp))
        start = time.process_time()
        entry.fit(ctx)
        return time.process_time() - start


def seconds(case: str, budget: int) -> float:
    if case in ("maml", "reptile"):
        return meta_seconds(case, budget)
    if case == "continual":  # EWC on 5 permuted-digit tasks, `budget` epochs each (42 minibatches of 32 per epoch)
        return fit_seconds("continual", "permuted-digits-5", dict(strategy="ewc", lam=30.0, epochs=budget,
                                                                  eval_every=0))
    if case == "gan_loop":  # NS GAN, 2-D MLPs on the Gaussian grid, `budget` minibatches, driver: loop
        return fit_seconds("gan", "gaussian-grid", dict(loss="ns", width=16, z_dim=32, train_steps=budget,
                                                        eval_samples=200, n_evals=1, driver="loop"))
    raise ValueError(f"unknown case {case!r}")


def main(case: str, small: int, large: int) -> None:
    seconds(case, small)  # warm-up
    print(json.dumps({"small": seconds(case, small), "large": seconds(case, large)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
