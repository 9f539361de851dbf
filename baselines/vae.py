"""Variational auto-encoder (Kingma & Welling 2014) with the GANs' networks, as in Lucic et al. 2018.

The encoder is the GAN discriminator's network (without batch norm, as compare_gan's VAE) emitting the mean and
log-variance of q(z|x) = N(mu, diag(sigma^2)); the decoder is the GAN generator.  Loss per sample (negative ELBO):

    images:  sum_pixels BCE(x, decoder_logits(z)) + KL(q(z|x) || N(0, I)),   z = mu + sigma * eps
    points:  ||x - decoder(z)||^2 / (2 recon_std^2) + KL(...)                (Gaussian decoder, fixed variance)

Samples for FID/IS/KID are decoder means at z ~ N(0, I).  Adam(lr, (beta1, 0.999)); with ``n_hparam_settings``
H > 0, lr and beta1 come from setting ``seed % H`` of the same wide search as the GANs (Lucic et al. tune the
VAE over learning rate and beta1 only).  Manual optimisation keeps the step driver identical to the GAN's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from baselines.generative_loop import fit_generative
from baselines.generative_nets import RENAMED, Discriminator, GenerativeModule, Generator, search_resolver
from suite.api import RunContext, RunOutput
from suite.registry import register_baseline


class VAE(GenerativeModule):
    """Gaussian-latent VAE; ``training_step`` does one Adam step on the negative ELBO of the batch."""

    def __init__(self, data_shape: tuple[int, ...], z_dim: int = 64, width: int = 64, lr: float = 1e-3,
                 beta1: float = 0.9, recon_std: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.encoder = Discriminator(data_shape, width, batchnorm=False, out_features=2 * z_dim)
        self.decoder = Generator(z_dim, data_shape, width)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(self.hparams.beta1, 0.999))

    def negative_elbo(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean over the batch of (reconstruction term, KL term)."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        if self.decoder.is_image:
            recon = F.binary_cross_entropy_with_logits(self.decoder(z, logits=True), x, reduction="none")
        else:
            recon = (self.decoder(z) - x).square() / (2 * self.hparams.recon_std**2)
        kl = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).sum(dim=1)
        return recon.flatten(1).sum(dim=1).mean(), kl.mean()

    def update(self, batch: Any, batch_idx: int, optimizer: torch.optim.Optimizer,
               backward: Callable[[torch.Tensor], None]) -> dict[str, torch.Tensor]:
        """The step with an explicit optimiser and backward: the Trainer's (``training_step``) or plain PyTorch's."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        recon, kl = self.negative_elbo(x)
        loss = recon + kl
        optimizer.zero_grad(set_to_none=True)
        backward(loss)
        optimizer.step()
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}


SEARCH_KEYS = ("lr", "beta1")
DEFAULTS: dict[str, Any] = dict(
    z_dim=64,  # latent dimension
    width=64,  # network width scale (the GAN generator's; 2-D data: 8 x width hidden units)
    lr=1e-3,  # Adam learning rate
    beta1=0.9,  # Adam beta1
    recon_std=0.1,  # std of the Gaussian decoder on 2-D point data
    batch_size=64,  # minibatch size
    train_steps=2000,  # training minibatches
    eval_samples=2000,  # generated samples for the final FID / IS / KID
    n_evals=4,  # FID evaluations over training (curve fid)
    n_hparam_settings=0,  # H > 0: seed s trains setting s % H of the GANs' random search (lr, beta1)
    search_seed=2018,  # seed of the random hyperparameter search
    driver="trainer",  # trainer (Lightning Trainer) | loop (plain PyTorch loop, same numbers, less overhead)
)


@register_baseline("vae", defaults=DEFAULTS, env_families=("images", "points2d"), module_class=VAE,
                   distributed=True, resolve=search_resolver(SEARCH_KEYS), renamed=RENAMED)
def fit(ctx: RunContext) -> RunOutput:
    """VAE with the GAN generator as decoder; FID / IS / KID of its samples."""

    def build(hp: dict[str, Any], data_shape: tuple[int, ...]) -> VAE:
        return VAE(data_shape, **{k: hp[k] for k in ("z_dim", "width", "recon_std", *SEARCH_KEYS)})

    return fit_generative(ctx, build, SEARCH_KEYS)
