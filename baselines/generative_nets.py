"""Networks shared by the GAN and the VAE: Lucic et al. (2018)'s InfoGAN-style architecture, sized to the data.

Lucic et al., "Are GANs Created Equal?" (NeurIPS 2018), Table 7 (the InfoGAN architecture of Chen et al. 2016):

    generator      z -> FC 1024, BN, ReLU -> FC (H/4)(W/4)128, BN, ReLU -> deconv 64 4x4/2, BN, ReLU
                     -> deconv C 4x4/2, sigmoid
    discriminator  x -> conv 64 4x4/2, lReLU -> conv 128 4x4/2, (BN), lReLU -> FC 1024, (BN), lReLU -> FC 1

``width`` scales every layer (64 reproduces the paper: FC 16*width, convs width and 2*width); the spatial
plan (two stride-2 stages) holds for any image side divisible by 4: 28x28 MNIST, 32x32 CIFAR-10 and the 8x8
digits (2x2 -> 4x4 -> 8x8).  The discriminator's batch norm is a hyperparameter of the search, as in
compare_gan's wide range.  The VAE encoder *is* the discriminator network with ``2 * z_dim`` outputs, and its
decoder is the generator, so both model families share weights' shapes and capacity.

For 2-D point data (ring / grid of Gaussians) both networks are MLPs with two hidden layers of 8 * width units
(width 16 gives Metz et al. 2017's 128-unit mixture-of-Gaussians setup); the generator's output is linear.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn


def _maybe_bn1d(features: int, enabled: bool) -> nn.Module:
    return nn.BatchNorm1d(features) if enabled else nn.Identity()


class Generator(nn.Module):
    """z (N, z_dim) -> samples (N, *data_shape); ``forward(z, logits=True)`` skips the output sigmoid (VAE loss)."""

    def __init__(self, z_dim: int, data_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.data_shape = tuple(data_shape)
        self.is_image = len(self.data_shape) == 3
        if self.is_image:
            channels, height, side = self.data_shape
            if height % 4 or side % 4:
                raise ValueError(f"image side must be divisible by 4, got {height}x{side}")
            self._start = (2 * width, height // 4, side // 4)
            self.body = nn.Sequential(
                nn.Linear(z_dim, 16 * width), nn.BatchNorm1d(16 * width), nn.ReLU(),
                nn.Linear(16 * width, math.prod(self._start)), nn.BatchNorm1d(math.prod(self._start)), nn.ReLU(),
            )
            self.head = nn.Sequential(
                nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.ConvTranspose2d(width, channels, 4, 2, 1),
            )
        else:
            hidden = 8 * width
            self.body = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
            self.head = nn.Linear(8 * width, math.prod(self.data_shape))

    def forward(self, z: torch.Tensor, logits: bool = False) -> torch.Tensor:
        hidden = self.body(z)
        if self.is_image:
            out = self.head(hidden.view(-1, *self._start))
            return out if logits else torch.sigmoid(out)
        return self.head(hidden).view(-1, *self.data_shape)


class Discriminator(nn.Module):
    """samples (N, *data_shape) -> (N, out_features) scores (GAN: 1 logit / critic value; VAE encoder: 2 z_dim)."""

    def __init__(self, data_shape: tuple[int, ...], width: int = 64, batchnorm: bool = True,
                 out_features: int = 1) -> None:
        super().__init__()
        data_shape = tuple(data_shape)
        if len(data_shape) == 3:
            channels, height, side = data_shape
            flat = 2 * width * (height // 4) * (side // 4)
            self.net = nn.Sequential(
                nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width) if batchnorm else nn.Identity(),
                nn.LeakyReLU(0.2), nn.Flatten(),
                nn.Linear(flat, 16 * width), _maybe_bn1d(16 * width, batchnorm), nn.LeakyReLU(0.2),
                nn.Linear(16 * width, out_features),
            )
        else:
            self.net = nn.Sequential(
                nn.Flatten(), nn.Linear(math.prod(data_shape), 8 * width), _maybe_bn1d(8 * width, batchnorm),
                nn.LeakyReLU(0.2), nn.Linear(8 * width, 8 * width), _maybe_bn1d(8 * width, batchnorm),
                nn.LeakyReLU(0.2), nn.Linear(8 * width, out_features),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """``net`` takes no gradients inside the block: the other network's update of a two-player step (what
    Lightning's ``toggle_optimizer`` does, with no Trainer needed; ``net`` is trainable again after it)."""
    net.requires_grad_(False)
    try:
        yield
    finally:
        net.requires_grad_(True)


# ------------------------------------------------------------------------------------- Lucic et al.'s search
def sample_search_setting(index: int, search_seed: int = 2018) -> dict[str, float | int | bool]:
    """Hyperparameter setting ``index`` of Lucic et al.'s *wide* random search (compare_gan's wide ranges).

    Drawn from ``numpy.random.default_rng([search_seed, index])``, so setting k is the same in every process and
    for every model (common random numbers: NS GAN and WGAN setting k share lr, beta1, n_critic, batch norm; only
    the model-specific constant differs in meaning).  Ranges: Adam lr 10^U[-5,-2], beta1 U[0,1], n_critic
    U{1..5}, discriminator batch norm U{on, off}, WGAN-GP/DRAGAN penalty lambda 10^U[-1,2], WGAN clip 10^U[-3,0].
    """
    rng = np.random.default_rng([search_seed, index])
    return dict(
        lr=float(10 ** rng.uniform(-5, -2)), beta1=float(rng.uniform(0, 1)), n_critic=int(rng.integers(1, 6)),
        d_batchnorm=bool(rng.random() < 0.5), gp_lambda=float(10 ** rng.uniform(-1, 2)),
        clip=float(10 ** rng.uniform(-3, 0)),
    )


def resolve_search(hparams: dict[str, Any], seed: int, keys: tuple[str, ...]) -> dict[str, Any]:
    """``hparams`` with ``keys`` replaced by search setting ``seed % n_hparam_settings`` (if that is > 0).

    The harness gives each run one seed; with H = n_hparam_settings, seed s trains setting s % H with seed s,
    so ``seeds: H * R`` in a profile yields R seeds per setting and every (model, setting, seed) its own record.
    Returns the resolved hyperparameters plus ``hp_index`` (-1 when no search).
    """
    resolved = dict(hparams)
    settings = int(hparams.get("n_hparam_settings", 0))
    resolved["hp_index"] = -1
    if settings > 0:
        resolved["hp_index"] = seed % settings
        sampled = sample_search_setting(resolved["hp_index"], int(hparams.get("search_seed", 2018)))
        resolved.update({key: sampled[key] for key in keys})
    return resolved


# issue #16: counts are n_*; the config hash keeps the former names, so committed records stay current
RENAMED = {"n_evals": "num_evals", "n_hparam_settings": "num_hparam_settings"}


def search_resolver(keys: tuple[str, ...]) -> Callable[[dict[str, Any], str, int], dict[str, Any]]:
    """The registry's resolve hook of a baseline searching over ``keys``: the harness applies it before ``fit``, so
    the record holds the setting this seed trained (``resolved``), not only the search's declaration."""
    return lambda hparams, env, seed: resolve_search(hparams, seed, keys)


# ------------------------------------------------------------------------------------------- the module contract
class GenerativeModule(pl.LightningModule):
    """What the driver (baselines.generative_loop) trains: ``update(batch, batch_idx, *optimizers, backward)`` is one
    step with explicit optimisers and backward, run by the Trainer (``training_step``, Lightning's optimisers and
    ``manual_backward``) or by a plain PyTorch loop; ``generate(z)`` maps latent noise to samples."""

    steps_before = 0  # minibatches trained before this fit (a resumed run): batch_idx counts from there

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        return self.update(batch, self.steps_before + batch_idx, *optimizers, backward=self.manual_backward)
