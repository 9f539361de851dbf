"""Speed of the generative metrics and models (pytest-benchmark; ratios measured in the same process).

- FID/IS/KID of 10k digits-sized samples through GenerativeEvaluator (feature extraction + statistics).
- The Frechet distance's matrix-square-root path (symmetric ``eigh``) against torchmetrics' own
  (``eigvals(S1 @ S2)``) at the Inception feature size, 2048: ours must not be slower.
- Generator sampling throughput (samples/s) of the digits generator.
- The Lightning Trainer's per-step overhead over the plain loop driver (`driver: loop`, same ``update``).

Run: ``OMP_NUM_THREADS=1 flock /tmp/suite-heavy.lock .venv/bin/python -m pytest benchmarks/bench_fid.py``
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning
import torch
from timing import best_time
from torchmetrics.image.fid import _compute_fid

from baselines.gan import GAN
from suite.api import RunContext
from suite.envs.generative import load_generative_data
from suite.metrics.generative import GenerativeEvaluator, frechet_distance
from suite.registry import get_baseline


def _covariances(dim: int, n: int = 6000) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim**0.5
    a = torch.randn(n, dim, generator=gen, dtype=torch.float64) @ mix
    b = (torch.randn(n, dim, generator=gen, dtype=torch.float64) @ mix) * 1.1 + 0.1
    return a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T)


def test_metrics_of_10k_samples(benchmark) -> None:
    torch.set_num_threads(1)
    data = load_generative_data("digits")
    evaluator = GenerativeEvaluator(data)
    gen = torch.Generator().manual_seed(0)
    samples = (data.train[torch.randint(0, len(data.train), (10_000,), generator=gen)]
               + 0.05 * torch.randn(10_000, 1, 8, 8, generator=gen)).clamp(0, 1)
    metrics = benchmark.pedantic(evaluator, args=(samples,), rounds=3, iterations=1)
    benchmark.extra_info.update(metrics)
    assert metrics["fid"] < 50


def test_sqrtm_path_not_slower_than_torchmetrics(benchmark) -> None:
    torch.set_num_threads(1)
    mu1, s1, mu2, s2 = _covariances(2048)
    ours = best_time(lambda: frechet_distance(mu1, s1, mu2, s2))
    theirs = best_time(lambda: _compute_fid(mu1, s1, mu2, s2))
    value = benchmark.pedantic(frechet_distance, args=(mu1, s1, mu2, s2), rounds=1, iterations=1)
    benchmark.extra_info.update(ours_s=ours, torchmetrics_s=theirs, ratio=ours / theirs)
    assert abs(float(value) - float(_compute_fid(mu1, s1, mu2, s2))) < 1e-6 * abs(float(value))
    assert ours <= 1.1 * theirs, f"eigh path {ours:.3f}s vs torchmetrics eigvals {theirs:.3f}s"


def test_generator_sampling_throughput(benchmark) -> None:
    torch.set_num_threads(1)
    gan = GAN((1, 8, 8), z_dim=32, width=16).eval()
    z = torch.randn(10_000, 32)

    def sample() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([gan.generate(chunk) for chunk in torch.split(z, 1000)])

    benchmark.pedantic(sample, rounds=3, iterations=1)
    benchmark.extra_info["samples_per_s"] = 10_000 / best_time(sample)  # also under --benchmark-disable


def test_trainer_overhead_per_step(benchmark, tmp_path: Path) -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    entry = get_baseline("gan")
    per_step = {}
    for env in ("digits", "gaussian-grid"):
        for driver in ("trainer", "loop"):
            lightning.seed_everything(0, verbose=False)
            hp = dict(entry.defaults, width=16, z_dim=32, train_steps=300, eval_samples=200, n_evals=1,
                      driver=driver)
            out = entry.fit(RunContext("bench", "ns", env, 0, "bench", "gan", entry.resolved(hp, env, 0), tmp_path))
            per_step[f"{env}_{driver}_ms"] = 1e3 * out.extras["train_cpu_s"] / 300
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(per_step)
    for env in ("digits", "gaussian-grid"):
        benchmark.extra_info[f"{env}_trainer_overhead_ms"] = per_step[f"{env}_trainer_ms"] - per_step[f"{env}_loop_ms"]
