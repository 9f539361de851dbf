"""GAN / VAE baselines: each loss trains its discriminator, NS GAN spreads over the grid's modes, runs are
deterministic, and the hyperparameter search is reproducible."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning
import pytest
import torch

from baselines.gan import GAN, LOSSES
from baselines.generative_nets import resolve_search, sample_search_setting
from suite.api import RunContext
from suite.registry import get_baseline


def _run(baseline: str, env: str, seed: int, tmp_path: Path, **overrides) -> object:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    lightning.seed_everything(seed, verbose=False)
    torch.use_deterministic_algorithms(True)
    entry = get_baseline(baseline)
    hp = dict(entry.defaults, width=16, z_dim=32, eval_samples=400, n_evals=1)
    hp.update(overrides)
    return entry.fit(RunContext("gan_fid", "test", env, seed, "smoke", baseline, entry.resolved(hp, env, seed), tmp_path))


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_decreases_its_discriminator_loss_on_a_fixed_batch(loss: str) -> None:
    torch.manual_seed(0)
    gan = GAN((1, 8, 8), loss=loss, z_dim=16, width=8, lr=1e-3, d_batchnorm=False, gp_lambda=1.0, clip=0.05)
    real = torch.rand(64, 1, 8, 8) ** 3  # digit-like: mostly dark
    with torch.no_grad():
        fake = gan.sample(64)
    _, opt_d = gan.configure_optimizers()
    losses = []
    for _ in range(30):
        value = gan.discriminator_loss(real, fake)
        opt_d.zero_grad()
        value.backward()
        opt_d.step()
        if loss == "wgan":
            with torch.no_grad():
                for parameter in gan.discriminator.parameters():
                    parameter.clamp_(-0.05, 0.05)
        losses.append(float(value))
    assert losses[-1] < losses[0] - 0.05 * abs(losses[0]) - 1e-3, losses[::5]


def test_generator_step_lowers_generator_loss_for_fixed_discriminator() -> None:
    torch.manual_seed(0)
    gan = GAN((2,), loss="ns", z_dim=8, width=8, lr=1e-3, d_batchnorm=False)
    opt_g, _ = gan.configure_optimizers()
    z = torch.randn(256, 8)
    before = float(gan.generator_loss(gan.generate(z)))
    for _ in range(30):
        value = gan.generator_loss(gan.generate(z))
        opt_g.zero_grad()
        value.backward()
        opt_g.step()
    assert float(gan.generator_loss(gan.generate(z))) < before


def test_ns_gan_on_grid_covers_more_modes_than_at_init(tmp_path: Path) -> None:
    common = dict(loss="ns", lr=1e-3, beta1=0.5, d_batchnorm=False, driver="loop", eval_samples=2000)
    init = _run("gan", "gaussian-grid", 0, tmp_path, train_steps=1, **common)
    trained = _run("gan", "gaussian-grid", 0, tmp_path, train_steps=600, **common)
    assert trained.metrics["modes_covered"] >= init.metrics["modes_covered"] + 10, (init.metrics, trained.metrics)
    assert trained.metrics["fid"] < 0.2 * init.metrics["fid"]
    assert trained.metrics["inception_score"] > init.metrics["inception_score"] + 5


def test_short_runs_are_deterministic_and_drivers_agree(tmp_path: Path) -> None:
    kwargs = dict(loss="wgan_gp", train_steps=12, n_hparam_settings=3)
    first = _run("gan", "digits", 4, tmp_path, **kwargs)
    second = _run("gan", "digits", 4, tmp_path, **kwargs)
    loop = _run("gan", "digits", 4, tmp_path, driver="loop", **kwargs)
    assert first.metrics == second.metrics == loop.metrics
    assert first.extras["hparams_search"]["hp_index"] == 1
    assert first.extras["feature_extractor"] == "digits-classifier-v1" and first.extras["num_samples"] == 400
    assert first.extras["feature_extractor_accuracy"] > 0.95
    vae = [_run("vae", "digits", 1, tmp_path, train_steps=12, driver=driver).metrics for driver in ("trainer", "loop")]
    assert vae[0] == vae[1]


def test_vae_learns_digits(tmp_path: Path) -> None:
    start = _run("vae", "digits", 0, tmp_path, train_steps=1, lr=1e-3)
    trained = _run("vae", "digits", 0, tmp_path, train_steps=150, lr=1e-3)
    assert trained.metrics["fid"] < 0.7 * start.metrics["fid"]
    loss = [v for _, v in trained.curves["loss"]]
    assert loss[-1] < 0.8 * loss[0]


def test_search_settings_are_fixed_and_in_lucic_ranges() -> None:
    settings = [sample_search_setting(k) for k in range(50)]
    assert settings[7] == sample_search_setting(7)
    assert all(1e-5 <= s["lr"] <= 1e-2 and 0 <= s["beta1"] <= 1 and 1 <= s["n_critic"] <= 5 for s in settings)
    assert all(0.1 <= s["gp_lambda"] <= 100 and 1e-3 <= s["clip"] <= 1 for s in settings)
    assert {s["n_critic"] for s in settings} == {1, 2, 3, 4, 5}
    hp = resolve_search(dict(lr=0.1, beta1=0.5, n_hparam_settings=4), seed=6, keys=("lr",))
    assert hp["hp_index"] == 2 and hp["lr"] == settings[2]["lr"] and hp["beta1"] == 0.5
    assert resolve_search(dict(lr=0.1, n_hparam_settings=0), seed=6, keys=("lr",))["lr"] == 0.1
