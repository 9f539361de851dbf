"""Multi-device runs: one run as N DDP ranks under ``torchrun``.

``--devices N`` (N > 1) turns each run into N processes started by ``torch.distributed.run``; inside
them Lightning's DDP strategy (Fabric's or the Trainer's) finds the torchrun environment and does not
launch processes itself.
Why torchrun and not Lightning's own launchers: the ``ddp`` launcher re-executes ``sys.argv`` (here
the sweep command, not the run), and ``ddp_spawn``/``ddp_fork`` hand back only rank 0's weights, not
the curves and metrics a baseline keeps on its module.  With torchrun every rank runs the ordinary
``fit(ctx)``; rank 0 pickles its :class:`~suite.api.RunOutput` (or the exception it raised) to a file
the sweep worker reads, so records, timeouts and failure isolation are the same as a one-device run.

What a rank does differently is the baseline's business, through its Fabric's (or Trainer's)
``global_rank`` and ``world_size``: meta-learners split the meta-batch across ranks with rank-specific
task streams, generative models get a ``DistributedSampler`` from the Trainer, the continual MLPs train
on a slice of every minibatch.
In every case the global batch and the number of updates are those of the one-device run.  Baselines
that cannot use several devices (the RL agents run vectorised envs on one device) register without
``distributed=True`` and a multi-device run of them fails with a one-line error.

Works on CPUs too (gloo backend), which is how the test suite checks it without GPUs.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from suite import numerics, registry
from suite.api import RunContext, RunOutput, world_size_of
from suite.jobs import Job, run_context
from suite.process import quiet_lightning, seed_everything, set_parent_death_signal

__all__ = ["average_gradients", "launch", "rank_and_world", "rank_seed", "replica_checksums", "world_size_of"]


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a distributed run.

    Before Lightning has set up the process group, torchrun's environment variables answer.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s own random stream (task sampling, latent noise) in a run seeded ``seed``."""
    return seed * 1_000_003 + rank + 1


def average_gradients(fabric: Any, params: Iterable[Any]) -> None:
    """Mean of the parameters' ``.grad`` over the ranks of ``fabric``, in one all-reduce of the flattened gradients;
    a no-op on one device.

    Baselines that own their loop call it between ``fabric.backward`` and the optimiser step instead of letting
    DDP's backward hooks average: those only fire when every forward goes through Fabric's module wrapper, whose
    per-call bookkeeping costs more than the collective saves on these small networks (2-4% of a step).  Also
    for updates that set ``.grad`` without a backward (Reptile).
    """
    import torch

    if fabric.world_size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    mean = fabric.all_reduce(torch.cat([g.flatten() for g in grads]), reduce_op="mean")
    for g, averaged in zip(grads, mean.split([g.numel() for g in grads]), strict=True):
        g.copy_(averaged.view_as(g))


def replica_checksums(module: Any, world_size: int, all_gather: Callable[[Any], Any]) -> list[float]:
    """Sum of all weights on every rank (a collective; call on every rank): equal entries = replicas in sync.

    ``world_size`` and ``all_gather`` are the run's driver's: ``fabric.world_size`` and ``fabric.all_gather``, or a
    Trainer's ``trainer.world_size`` and ``module.all_gather``.  One rank: ``[]``.
    """
    import torch

    if world_size == 1:
        return []
    local = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum()
    return all_gather(local).flatten().tolist()


def launch(job: Job, ctx: RunContext, world: int) -> RunOutput:
    """Run ``job`` as ``world`` DDP ranks; return rank 0's output or re-raise the exception it raised."""
    with tempfile.TemporaryDirectory(prefix="suite-ddp-") as tmp:
        job_file, out_file = Path(tmp) / "job.pkl", Path(tmp) / "out.pkl"
        job_file.write_bytes(pickle.dumps((job, str(ctx.run_dir))))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}",
               "-m", "suite.distributed", str(job_file), str(out_file)]
        env = dict(os.environ, OMP_NUM_THREADS=str(job.threads), PYTHONUNBUFFERED="1")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=set_parent_death_signal)
        if out_file.exists():
            result = pickle.loads(out_file.read_bytes())
            if isinstance(result, BaseException):
                raise result
            return result
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        culprit = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no output")
        raise RuntimeError(f"DDP run with {world} ranks exited {proc.returncode} without a result: {culprit.strip()}")


def _rank_main(job_file: str, out_file: str) -> None:
    """Body of one rank: the same context and seeding as :func:`suite.runner.run_one`, then ``fit``."""
    job, run_dir = pickle.loads(Path(job_file).read_bytes())
    rank = int(os.environ.get("RANK", "0"))
    ctx = run_context(job, Path(run_dir), rank=rank)  # rank 0 alone writes checkpoints and live logs
    seed_everything(job.key.seed, job.threads)  # same init on every rank; DDP also broadcasts rank 0's weights
    quiet_lightning()
    try:
        numerics.check_in_effect(job.numerics)  # ranks inherit the sweep worker's pinning environment
        result: Any = registry.get_baseline(job.baseline).fit(ctx)
    except Exception as error:  # noqa: BLE001 - handed to the sweep worker, which records it
        result = error
    if rank == 0:
        tmp = Path(out_file + ".tmp")
        try:
            tmp.write_bytes(pickle.dumps(result))
        except Exception as error:  # an unpicklable exception still reaches the record, as text
            tmp.write_bytes(pickle.dumps(RuntimeError(f"{type(result).__name__}: {result} ({error})")))
        tmp.replace(out_file)


if __name__ == "__main__":
    _rank_main(sys.argv[1], sys.argv[2])
