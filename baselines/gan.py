"""GANs with the six losses compared by Lucic et al. 2018 ("Are GANs Created Equal?"), one LightningModule.

Losses (Lucic et al. Table 1; D outputs a logit / critic value ``d``, ``x~`` = G(z)):

    mm       L_D = -log s(d(x)) - log(1 - s(d(x~)))      L_G = log(1 - s(d(x~)))       (Goodfellow et al. 2014)
    ns       L_D as mm                                  L_G = -log s(d(x~))            (non-saturating)
    lsgan    L_D = (d(x) - 1)^2 + d(x~)^2               L_G = (d(x~) - 1)^2            (Mao et al. 2017)
    wgan     L_D = d(x~) - d(x), weights clipped to [-c, c]        L_G = -d(x~)         (Arjovsky et al. 2017)
    wgan_gp  L_D = wgan + lambda (||grad d(x^)|| - 1)^2, x^ on lines between x and x~  (Gulrajani et al. 2017)
    dragan   L_D = mm + lambda (||grad d(x^)|| - 1)^2, x^ near the data: x + a * 0.5 std(x) U[0,1]
             L_G as ns                                                             (Kodali et al. 2017)

Training follows compare_gan: the budget ``train_steps`` counts discriminator updates (one minibatch each); the
generator is updated after every ``n_critic``-th one.  Both use Adam(lr, (beta1, 0.999)).  With
``n_hparam_settings`` H > 0 the run's seed picks setting ``seed % H`` of the wide random search
(baselines.generative_nets.sample_search_setting), which overrides lr, beta1, n_critic, d_batchnorm and the
loss's constant (gp_lambda / clip).

Driving: one step is ``update(batch, batch_idx, opt_g, opt_d, backward)`` (manual optimisation, the network not
being updated ``frozen``).  By default the Lightning ``Trainer`` runs it (``training_step`` passes its optimisers
and ``manual_backward``); its per-step overhead, measured in benchmarks/bench_fid.py, is ~2.3 ms of a ~17.7 ms
digits step and ~0.9 ms of a ~4.9 ms 2-D MLP step (CPU, 1 thread): noticeable, not dominant.  ``driver: loop``
runs the same ``update`` from a plain PyTorch loop with the module's own optimisers and ``Tensor.backward``
(baselines.generative_loop._plain_loop), bit-identical to the Trainer run, for nets where the overhead would
dominate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from baselines.generative_loop import fit_generative
from baselines.generative_nets import RENAMED, Discriminator, GenerativeModule, Generator, frozen, search_resolver
from suite.api import RunContext, RunOutput
from suite.registry import register_baseline

LOSSES = ("mm", "ns", "lsgan", "wgan", "wgan_gp", "dragan")


class GAN(GenerativeModule):
    """Generator + discriminator trained with one of :data:`LOSSES`; ``training_step`` does one D update and,
    every ``n_critic``-th step, one G update."""

    def __init__(self, data_shape: tuple[int, ...], loss: str = "ns", z_dim: int = 64, width: int = 64,
                 lr: float = 2e-4, beta1: float = 0.5, n_critic: int = 1, d_batchnorm: bool = True,
                 gp_lambda: float = 10.0, clip: float = 0.01) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(z_dim, data_shape, width)
        self.discriminator = Discriminator(data_shape, width, batchnorm=d_batchnorm)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def sample(self, count: int) -> torch.Tensor:
        return self.generator(torch.randn(count, self.hparams.z_dim, device=self.device))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = (self.hparams.beta1, 0.999)
        return [torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)]

    # --- losses -----------------------------------------------------------------------------------------------
    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = self.hparams.loss
        # separate passes, as in compare_gan: with batch norm, D then scores fakes exactly as in the G step
        d_real, d_fake = self.discriminator(real).squeeze(1), self.discriminator(fake).squeeze(1)
        if loss in ("mm", "ns", "dragan"):
            value = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        elif loss == "lsgan":
            value = (d_real - 1).square().mean() + d_fake.square().mean()
        else:
            value = d_fake.mean() - d_real.mean()
        if loss == "wgan_gp":
            alpha = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
            value = value + self.hparams.gp_lambda * self._gradient_penalty(real + alpha * (fake - real))
        elif loss == "dragan":
            alpha = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
            perturbed = real + 0.5 * real.std() * torch.rand_like(real)
            value = value + self.hparams.gp_lambda * self._gradient_penalty(real + alpha * (perturbed - real))
        return value

    def _gradient_penalty(self, points: torch.Tensor) -> torch.Tensor:
        points = points.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(points).sum(), points, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).square().mean()

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        d_fake = self.discriminator(fake).squeeze(1)
        loss = self.hparams.loss
        if loss == "mm":
            return -F.softplus(d_fake).mean()  # log(1 - sigmoid(d)) = -softplus(d): the saturating minimax loss
        if loss in ("ns", "dragan"):
            return F.softplus(-d_fake).mean()
        if loss == "lsgan":
            return (d_fake - 1).square().mean()
        return -d_fake.mean()

    # --- one step -----------------------------------------------------------------------------------------------
    def update(self, batch: Any, batch_idx: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               backward: Callable[[torch.Tensor], None]) -> dict[str, torch.Tensor]:
        """The step with explicit optimisers and backward: the Trainer's (``training_step``) or plain PyTorch's."""
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        with frozen(self.generator):
            with torch.no_grad():
                fake = self.sample(len(real))
            d_loss = self.discriminator_loss(real, fake)
            opt_d.zero_grad(set_to_none=True)
            backward(d_loss)
            opt_d.step()
            if self.hparams.loss == "wgan":
                with torch.no_grad():
                    for parameter in self.discriminator.parameters():
                        parameter.clamp_(-self.hparams.clip, self.hparams.clip)
        out = {"d_loss": d_loss.detach()}

        if (batch_idx + 1) % self.hparams.n_critic == 0:
            with frozen(self.discriminator):
                g_loss = self.generator_loss(self.sample(len(real)))
                opt_g.zero_grad(set_to_none=True)
                backward(g_loss)
                opt_g.step()
            out["g_loss"] = g_loss.detach()
        return out


SEARCH_KEYS = ("lr", "beta1", "n_critic", "d_batchnorm", "gp_lambda", "clip")
DEFAULTS: dict[str, Any] = dict(
    loss="ns",  # mm | ns | lsgan | wgan | wgan_gp | dragan (see the module docstring)
    z_dim=64,  # latent dimension
    width=64,  # network width scale (64 = the paper's nets; 2-D data: 8 x width hidden units)
    lr=2e-4,  # Adam learning rate of both networks
    beta1=0.5,  # Adam beta1 of both networks
    n_critic=1,  # discriminator updates per generator update
    d_batchnorm=True,  # batch norm in the discriminator
    gp_lambda=10.0,  # gradient-penalty weight lambda (wgan_gp, dragan)
    clip=0.01,  # weight clip c of the critic (wgan)
    batch_size=64,  # minibatch size
    train_steps=2000,  # discriminator updates (one minibatch each)
    eval_samples=2000,  # generated samples for the final FID / IS / KID
    n_evals=4,  # FID evaluations over training (curve fid)
    n_hparam_settings=0,  # H > 0: seed s trains setting s % H of the random search (overrides lr, beta1, ...)
    search_seed=2018,  # seed of the random hyperparameter search
    driver="trainer",  # trainer (Lightning Trainer) | loop (plain PyTorch loop, same numbers, less overhead)
)


@register_baseline("gan", defaults=DEFAULTS, env_families=("images", "points2d"), module_class=GAN,
                   distributed=True, resolve=search_resolver(SEARCH_KEYS), renamed=RENAMED)
def fit(ctx: RunContext) -> RunOutput:
    """GAN (mm / ns / lsgan / wgan / wgan_gp / dragan) on an image set or a 2-D mixture; FID / IS / KID."""

    def build(hp: dict[str, Any], data_shape: tuple[int, ...]) -> GAN:
        return GAN(data_shape, **{k: hp[k] for k in ("loss", "z_dim", "width", *SEARCH_KEYS)})

    return fit_generative(ctx, build, SEARCH_KEYS)
