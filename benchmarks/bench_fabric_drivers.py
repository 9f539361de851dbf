"""Per-update cost of the drivers of issue #16 against those they replaced: must not be slower.

Before (git ref ``BENCH_DRIVERS_BASELINE``, default 6a565a5, the commit before the change): the meta-learners ran
under a Lightning Trainer whose every ``training_step`` did a chunk of meta-iterations fed by a ``DataLoader``
over chunk indices; continual learning called the module's Lightning hooks from a plain loop; the GANs' fast
``driver: loop`` ran ``training_step`` with a stand-in trainer.  After: the meta-learners and continual learning
on Fabric, the GANs' loop calling their ``update`` with explicit optimisers from plain PyTorch.

Each side runs in its own process on its own source tree (the old one extracted with ``git archive``) through
benchmarks/driver_timing.py, which takes the CPU time (not wall time: the machine may be shared) of the same
training at two budgets; the per-update cost is the slope between them, so one-off set-up (Trainer or Fabric
construction, data, evaluators) drops out.  Rounds alternate
old and new (``timing.interleaved_medians``) so drifts of a loaded machine hit both alike; the medians' ratio
new / old must be at most ``1 + NOISE``.

Cases: second-order MAML and Reptile on sinusoids (1-40-40-1 MLP, meta-batch 25: the fastest updates, where
driver overhead shows most), EWC on 5 permuted-digit tasks (sub-millisecond minibatch steps), NS GAN on the
Gaussian grid with ``driver: loop``.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/bench_fabric_drivers.py -q -s``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from timing import interleaved_medians

ROOT = Path(__file__).resolve().parent.parent
HELPER = Path(__file__).resolve().parent / "driver_timing.py"
BASELINE_REF = os.environ.get("BENCH_DRIVERS_BASELINE", "6a565a5")
ROUNDS = 5
NOISE = 0.03  # allowed ratio above 1: the spread of medians of 5 interleaved rounds on a shared 2-core machine
CASES = {  # case: (small budget, large budget, unit of the budget)
    "maml": (100, 600, "meta-iteration"),
    "reptile": (100, 600, "meta-iteration"),
    "continual": (1, 4, "epoch of 5 tasks x 42 minibatches"),
    "gan_loop": (100, 400, "minibatch"),
}


@pytest.fixture(scope="module")
def old_tree() -> Iterator[Path]:
    """``suite/`` and ``baselines/`` as of ``BASELINE_REF``, extracted into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bench-drivers-") as tmp:
        archive = Path(tmp) / "old.tar"
        done = subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), BASELINE_REF, "suite",
                               "baselines"], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"git archive {BASELINE_REF} failed: {done.stderr.strip()}")
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "tree", filter="data")
        yield Path(tmp) / "tree"


def _per_update(tree: Path, case: str) -> float:
    small, large, _ = CASES[case]
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, str(HELPER), case, str(small), str(large)], env=env, cwd=tree,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{case} on {tree}: {done.stderr.strip()[-2000:]}")
    times = json.loads(done.stdout.strip().splitlines()[-1])
    return (times["large"] - times["small"]) / (large - small)


@pytest.mark.parametrize("case", list(CASES))
def test_new_driver_is_not_slower_per_update(benchmark, old_tree: Path, case: str) -> None:
    medians = interleaved_medians({"old": lambda: _per_update(old_tree, case), "new": lambda: _per_update(ROOT, case)},
                                  rounds=ROUNDS)
    ratio = medians["new"] / medians["old"]
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(old_ms=1e3 * medians["old"], new_ms=1e3 * medians["new"], ratio=ratio,
                                unit=CASES[case][2], baseline_ref=BASELINE_REF)
    print(f"\n{case}: per {CASES[case][2]} {1e3 * medians['old']:.3f} ms before ({BASELINE_REF}), "
          f"{1e3 * medians['new']:.3f} ms now: ratio {ratio:.3f} "
          f"(CPU time, medians of {ROUNDS} interleaved rounds)")
    assert ratio <= 1 + NOISE, f"{case}: the new driver is {ratio:.3f}x the old one per {CASES[case][2]}"
