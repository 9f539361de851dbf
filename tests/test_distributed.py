"""DDP runs (--devices N) on CPU ranks with the gloo backend: the same record format, replicas in sync, and
a meta-batch split whose averaged gradient equals the one-device gradient over all tasks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from baselines.maml import MAML, maml_loss
from baselines.meta_common import SINE_DEFAULTS, split_meta_batch, weighted
from suite.distributed import world_size_of
from suite.envs.sinusoid import SineTasks, sample_tasks
from suite.runner import Job, run_one
from suite.store import RunKey, config_hash


def test_world_size_parsing() -> None:
    assert [world_size_of(d) for d in (1, 4, "2", "0,1,3", "[0, 1]", "auto", 0)] == [1, 4, 2, 3, 2, 1, 1]


def test_uneven_meta_batch_split_averages_to_the_full_meta_gradient() -> None:
    """5 tasks over 2 ranks (3 + 2): DDP's mean of the weighted rank gradients is the 5-task mean gradient."""
    hp = dict(SINE_DEFAULTS, meta_batch=5)
    tasks = sample_tasks(5, 5, 5, torch.Generator().manual_seed(0))

    def grad_of(module: MAML, idx: slice, weight: float) -> list[torch.Tensor]:
        part = SineTasks(**{f.name: getattr(tasks, f.name)[idx] for f in dataclasses.fields(tasks)})
        loss = weighted(maml_loss(module.params(), part, hp["inner_lr"], 1), weight)
        return torch.autograd.grad(loss, module.params())

    module = MAML(k_shot=5, seed=0, **hp)
    full = grad_of(module, slice(0, 5), 1.0)
    shares, grads = [], []
    for rank in (0, 1):
        share, weight = split_meta_batch(rank, world=2, meta_batch=5)
        shares.append(share)
        grads.append(grad_of(module, slice(0, 3) if rank == 0 else slice(3, 5), weight))
    assert shares == [3, 2]
    assert split_meta_batch(0, world=1, meta_batch=5) == (5, 1.0)
    for g_full, g0, g1 in zip(full, *grads):
        torch.testing.assert_close((g0 + g1) / 2, g_full, rtol=1e-5, atol=1e-7)


def _job(baseline: str, env: str, hparams: dict, devices: int) -> Job:
    return Job(RunKey("ddp_test", baseline, env, 0, "smoke"), baseline, hparams,
               config_hash(baseline, env, hparams), timeout=300, devices=devices)


@pytest.mark.timeout(300)
def test_maml_on_two_cpu_ranks_keeps_replicas_in_sync(tmp_path) -> None:
    hparams = dict(SINE_DEFAULTS, first_order=False, meta_batch=5, meta_iterations=40, iters_per_step=10, eval_tasks=50,
                   eval_query=20, eval_points=2)
    record = run_one(_job("maml", "sinusoid-K5", hparams, devices=2), run_dir=tmp_path)
    assert record.status == "ok", record.reason
    assert record.provenance.world_size == 2
    assert record.steps == 40  # every rank ran every meta-iteration (no sampler sharding of the chunk loader)
    sums = record.extras["replica_param_sums"]
    assert len(sums) == 2 and sums[0] == sums[1]


def test_single_device_baseline_refuses_several_devices(tmp_path) -> None:
    record = run_one(_job("dqn", "CartPole-v1", {}, devices=2), run_dir=tmp_path)
    assert record.status == "failed" and "single-device" in record.reason


@pytest.mark.timeout(300)
def test_continual_on_two_cpu_ranks_matches_one_device(tmp_path) -> None:
    """Each rank trains on half of every minibatch; the averaged gradient is the full minibatch's, so EWC's
    accuracy matrix matches the one-device run up to float summation order."""
    from suite.spec import load_spec

    baseline, hparams = load_spec("tasks/ewc_permuted_digits.yaml").resolve("ewc", "smoke")
    one = run_one(_job(baseline, "permuted-digits-3", hparams, devices=1), run_dir=tmp_path / "one")
    two = run_one(_job(baseline, "permuted-digits-3", hparams, devices=2), run_dir=tmp_path / "two")
    assert one.status == two.status == "ok", two.reason
    sums = two.extras["replica_param_sums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    for metric in ("acc", "bwt"):
        assert abs(one.metrics[metric] - two.metrics[metric]) < 0.02, metric


@pytest.mark.timeout(300)
def test_gan_on_two_cpu_ranks_makes_every_update_of_the_one_device_run() -> None:
    """Each rank takes half of every global minibatch of the run's one index stream (not Lightning's
    DistributedSampler over the data set, whose epoch would be len(data) / batch updates, not train_steps)."""
    from suite.registry import get_baseline

    hparams = dict(get_baseline("gan").defaults, train_steps=60, batch_size=32, n_evals=1, eval_samples=200,
                   width=4, z_dim=4)
    record = run_one(_job("gan", "gaussian-grid", hparams, devices=2))
    assert record.status == "ok", record.reason
    assert record.provenance.world_size == 2
    assert record.curves["d_loss"][-1][0] == 60 and record.curves["fid"][-1][0] == 60
    sums = record.extras["replica_param_sums"]
    assert len(sums) == 2 and sums[0] == sums[1]


def test_stream_sampler_shards_each_global_batch_and_resumes_mid_stream() -> None:
    from baselines.generative_loop import StreamSampler

    stream = list(StreamSampler(50, 100, batch_size=10, seed=3))
    ranks = [list(StreamSampler(50, 100, batch_size=10, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert [i for b in range(10) for i in ranks[0][5 * b:5 * b + 5] + ranks[1][5 * b:5 * b + 5]] == stream
    assert list(StreamSampler(50, 100, batch_size=10, start=37, seed=3)) == stream[37:]
    torch.manual_seed(0)
    reference = list(torch.utils.data.RandomSampler(range(50), replacement=True, num_samples=100))
    torch.manual_seed(0)
    assert list(StreamSampler(50, 100, batch_size=10)) == reference  # RandomSampler's own draws
