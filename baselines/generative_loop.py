"""The run driver shared by the GAN and the VAE: ``train_steps`` minibatches, FID along the way, final FID/IS/KID.

The Lightning ``Trainer`` drives the module by default (``driver: trainer``); ``driver: loop`` runs the same
``update`` from a plain PyTorch loop, bit-identical.  Both paths checkpoint mid-run (``ctx.checkpoint``: weights,
batch-norm statistics, optimiser moments, torch's global random stream, the data stream's seed and position,
curves so far) and resume from the last checkpoint to the same record as an uninterrupted run
(tests/test_resume.py).

The data stream is torch's ``RandomSampler(replacement=True)``'s, drawn by :class:`StreamSampler`, which can also
start mid-stream (a resumed run) and hand each DDP rank its share of every global minibatch.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from suite.api import Diverged, RunContext, RunOutput, Throttle, check_finite
from suite.checkpoint import rng_state, set_rng_state
from suite.distributed import rank_and_world, rank_seed, replica_checksums

_BLOCK = 32  # RandomSampler(replacement=True) draws its indices 32 at a time


class StreamSampler(torch.utils.data.Sampler[int]):
    """``RandomSampler(data, replacement=True, num_samples=total)``'s index stream, from position ``start`` on.

    The draws are RandomSampler's exactly (a seed taken from torch's global stream when the iteration starts, then
    blocks of 32 from a generator of its own), so a run's data order does not depend on whether it resumed.  With
    ``seed`` given, nothing is taken from the global stream (a resumed run; DDP, where every rank must read the
    same stream).  ``rank``/``world``: this rank's ``batch_size / world`` slice of every global minibatch, so W
    ranks make the same updates on the same global batches as one device.
    """

    def __init__(self, n: int, total: int, batch_size: int, start: int = 0, seed: int | None = None,
                 rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world} devices")
        self.n, self.total, self.batch_size, self.start = n, total, batch_size, start
        self.seed, self.rank, self.world = seed, rank, world

    def __len__(self) -> int:
        return (self.total - self.start) // self.world

    def __iter__(self) -> Iterator[int]:
        if self.seed is None:
            self.seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator().manual_seed(self.seed)
        share = self.batch_size // self.world
        position = 0
        for size in [_BLOCK] * (self.total // _BLOCK) + [self.total % _BLOCK]:
            block = torch.randint(high=self.n, size=(size,), dtype=torch.int64, generator=generator).tolist()
            for index in block:
                if position >= self.start and (position % self.batch_size) // share == self.rank:
                    yield index
                position += 1


def fit_generative(ctx: RunContext, build: Callable[[dict[str, Any], tuple[int, ...]], pl.LightningModule],
                   search_keys: tuple[str, ...]) -> RunOutput:
    """Train ``build(hparams, data_shape)`` on ``ctx.env`` for ``train_steps`` minibatches, evaluate FID/IS/KID.

    ``ctx.hparams`` has the search setting resolved (``generative_nets.search_resolver``).  Tracks FID on a fixed
    evaluation noise ``n_evals`` times (curve ``fid``) and returns the final metrics on ``eval_samples`` samples
    against the held-out real set.  The module is a ``generative_nets.GenerativeModule``: ``generate(z)``,
    ``hparams.z_dim`` and ``update(batch, batch_idx, *optimizers, backward)`` returning a dict of detached losses.
    """
    from suite.envs.generative import load_generative_data
    from suite.metrics.generative import GenerativeEvaluator

    hp = dict(ctx.hparams)
    data = load_generative_data(ctx.env)
    module = build(hp, data.shape)
    evaluator = GenerativeEvaluator(data)
    # a fixed evaluation noise of its own keeps the training RNG stream independent of how often we evaluate
    z_eval = torch.randn(hp["eval_samples"], module.hparams.z_dim, generator=torch.Generator().manual_seed(ctx.seed))
    steps, batch_size, world = int(hp["train_steps"]), int(hp["batch_size"]), ctx.world_size
    eval_at = {int(round(s)) for s in np.linspace(0, steps, int(hp["n_evals"]) + 1)[1:]}
    log_every = max(1, steps // 50)
    progress = Throttle(ctx.progress)

    # Mid-run checkpoints are single-device: under DDP every rank's latent-noise stream would have to be saved
    saved = ctx.checkpoint.load() if world == 1 else None
    if world > 1 and ctx.checkpoint.enabled:
        print(f"{ctx.env}: GAN/VAE runs on {world} devices save no mid-run checkpoints", file=sys.stderr)
    curves: dict[str, list[tuple[float, float]]] = {"fid": [], "d_loss": [], "g_loss": []}
    done, prior_train_s = 0, 0.0
    if saved is not None:
        module.load_state_dict(saved["module"])
        curves, done, prior_train_s = saved["curves"], int(saved["step"]), float(saved["train_time_s"])
    module.steps_before = done
    optimizers: list[torch.optim.Optimizer] = []
    start, start_cpu = time.perf_counter(), time.process_time()

    def generate() -> torch.Tensor:
        was_training = module.training
        module.eval()
        with torch.no_grad():
            samples = torch.cat([module.generate(z) for z in torch.split(z_eval, 1000)])
        module.train(was_training)
        check_finite(samples.sum(), step, "generated samples")
        return samples

    def resume_state() -> dict[str, Any]:
        return {"module": module.state_dict(), "optimizers": [opt.state_dict() for opt in optimizers],
                "rng": rng_state(), "sampler_seed": sampler.seed, "step": step, "curves": copy.deepcopy(curves),
                "train_time_s": prior_train_s + time.perf_counter() - start}

    def before_first_step(opts: list[torch.optim.Optimizer]) -> None:
        """Once the loader has drawn what it draws from the global stream: restore the interrupted run's state."""
        optimizers[:] = opts
        if saved is not None:
            for optimizer, state in zip(optimizers, saved["optimizers"], strict=True):
                optimizer.load_state_dict(state)
            set_rng_state(saved["rng"])

    def after_step(outputs: dict[str, torch.Tensor], index: int) -> None:
        nonlocal step
        step = done + index + 1
        for name, value in outputs.items():
            check_finite(value, step, name)
            if step % log_every == 0:
                curves.setdefault(name, []).append((step, float(value)))
                ctx.log(step, **{name: curves[name][-1][1]})
        if step in eval_at:
            curves["fid"].append((step, evaluator(generate(), fid_only=True)["fid"]))
            ctx.log(step, fid=curves["fid"][-1][1])
        progress(step, steps)
        if step < steps:
            ctx.checkpoint.maybe_save(step, resume_state)

    step = done
    if world > 1:  # every rank reads the same stream, so its seed cannot come from a rank's own noise stream
        rank, seed = rank_and_world()[0], ctx.seed
    else:
        rank, seed = 0, None if saved is None else saved["sampler_seed"]
    sampler = StreamSampler(len(data.train), steps * batch_size, batch_size, done * batch_size, seed, rank, world)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.train), batch_size=batch_size // world,
                                         sampler=sampler)
    if hp.get("driver", "trainer") == "trainer":
        hooks = _Hooks(ctx.seed, before_first_step, after_step)
        trainer = pl.Trainer(**ctx.trainer_kwargs(max_epochs=1, num_sanity_val_steps=0, callbacks=[hooks],
                                                  find_unused_parameters=True, use_distributed_sampler=False,
                                                  sync_batchnorm=world > 1 and ctx.accelerator != "cpu"))
        trainer.fit(module, loader)
        replica_sums = hooks.replica_sums
    elif world > 1:
        raise ValueError("driver: loop is single-device; use driver: trainer with several devices")
    else:
        _plain_loop(module, loader, before_first_step, after_step)
        replica_sums = []
    train_time = prior_train_s + time.perf_counter() - start
    train_cpu = time.process_time() - start_cpu

    samples = generate()
    metrics = evaluator(samples)
    if not all(math.isfinite(v) for v in metrics.values()):
        raise Diverged(steps, f"non-finite metric in {metrics}")
    shown = samples[:64] if data.is_image else samples[:1000]
    extras = dict(
        **({"replica_param_sums": replica_sums} if replica_sums else {}),
        hparams_search={k: hp[k] for k in ("hp_index", *search_keys)}, num_samples=len(samples),
        train_time_s=train_time, train_cpu_s=train_cpu, sample_shape=list(data.shape),
        samples=np.round(shown.flatten(1).numpy(), 3).tolist(), **evaluator.info,
    )
    return RunOutput(metrics=metrics, curves={k: v for k, v in curves.items() if v}, steps=steps,
                     step_unit="minibatches", extras=extras)


class _Hooks(pl.Callback):
    """The driver's hooks into the Trainer: restore state before the first step, record after each step; under
    DDP a rank-specific torch stream (ranks draw different latent noise) and the replica check at the end."""

    def __init__(self, seed: int, before_first_step: Callable[[list[torch.optim.Optimizer]], None],
                 after_step: Callable[[dict[str, torch.Tensor], int], None]) -> None:
        self.seed, self.before_first_step, self.after_step = seed, before_first_step, after_step
        self.replica_sums: list[float] = []
        self._started = False

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(rank_seed(self.seed, trainer.global_rank))

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if not self._started:
            self._started = True
            self.before_first_step(list(trainer.optimizers))

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.after_step(outputs, batch_idx)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.replica_sums = replica_checksums(module, trainer.world_size, module.all_gather)


def _plain_loop(module: pl.LightningModule, loader: Any,
                before_first_step: Callable[[list[torch.optim.Optimizer]], None],
                after_step: Callable[..., None]) -> None:
    """Run ``module.update`` over ``loader`` with the module's own optimisers and ``Tensor.backward``: plain
    PyTorch, no Trainer and no Fabric (whose optimiser and backward wrappers cost ~2-7% of a 2-D GAN step here).

    Same maths and RNG use as the Trainer (bit-identical, tests/test_gan.py).  Measured (benchmarks/bench_fid.py,
    1 thread, shared CPU): the Trainer adds ~2.3 ms to a ~17.7 ms digits conv-GAN step (13%) and ~0.9 ms to a
    ~4.9 ms 2-D MLP step (18%), so it does not dominate and stays the default; this loop is for when it would,
    e.g. far smaller nets.
    """
    optimizers = module.configure_optimizers()
    optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
    module.train()
    for index, batch in enumerate(loader):
        if index == 0:
            before_first_step(optimizers)
        after_step(module.update(batch, module.steps_before + index, *optimizers, backward=torch.Tensor.backward),
                   index)
