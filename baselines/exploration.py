"""Exploration noise shared by PPO and SAC: isotropic Gaussian, gSDE and Lattice.

With ``x`` the last hidden layer of the policy and ``W, b`` its action layer:

* ``gaussian``  a = W x + b + eps,                eps ~ N(0, diag(s^2)), fresh every step (SB3's default).
* ``gsde``      a = W x + b + x P_a,              (P_a)_ij ~ N(0, s_ij^2)                 (Raffin et al. 2021).
* ``lattice``   a = W x + b + alpha W (x P_x) + x P_a (+ std_reg eps)                   (Chiappa et al. 2023).

The perturbation matrices ``P_a`` (latent x action) and ``P_x`` (latent x latent) are drawn once per env and held
for ``sde_sample_freq`` steps, which makes the noise smooth in time (the algorithm calls :meth:`reset_noise`).
Given ``x`` the action is Gaussian.  gSDE's covariance is diagonal, diag(x^2 s^2); Lattice's is full:

    Sigma(x) = alpha^2 W diag(x^2 s_corr^2) W^T + diag(x^2 s_ind^2 + std_reg^2)

so its log-probabilities and entropies come from one batched Cholesky factor of Sigma(x).  As in both reference
implementations the noise only sees ``x.detach()`` (``learn_features=False``): exploring must not reshape the
features.  Lattice clips log-std to ``log(std_clip)`` and divides the std by sqrt(latent_dim) so the action
variance does not grow with the width of the layer (as amathislab/lattice does).

Two deliberate differences from the Lattice reference: the sampled action adds ``std_reg * eps`` so that samples
follow the very distribution whose log-probability is used (the reference puts std_reg^2 into Sigma only), and the
mean path of a sample keeps its gradient to the policy body (the reference feeds the detached latent through W,
which cuts the SAC actor's path from Q to the hidden layers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from suite.api import RunOutput

NOISE_TYPES = ("gaussian", "gsde", "lattice")
_LOG_2PI = math.log(2 * math.pi)


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool(info.any()):  # numerically singular Sigma only: jitter once
        chol = torch.linalg.cholesky(cov + 1e-6 * torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device))
    return chol


def _logdet(chol: torch.Tensor) -> torch.Tensor:
    return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)


class _GaussianQuadLogdet(torch.autograd.Function):
    """(d^T Sigma^-1 d, log det Sigma) for a batch of SPD ``cov``, from one Cholesky factor C.

    The forward keeps C^-1 (one batched triangular solve against the identity) and z = C^-1 d; the backward is the
    closed form dSigma = g_l Sigma^-1 - g_q a a^T, dd = 2 g_q a with a = Sigma^-1 d = C^-T z and Sigma^-1 = C^-T C^-1:
    two batched products.  On a batch of 6 x 6 matrices this is about half the work of ``cholesky_solve`` plus a
    ``cholesky_inverse`` in the backward (LAPACK's per-matrix calls dominate), and far less than differentiating
    through ``cholesky`` and a triangular solve.
    """

    @staticmethod
    def forward(ctx: object, diff: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chol = _cholesky(cov)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        inv_chol = torch.linalg.solve_triangular(chol, eye, upper=False)
        z = torch.bmm(inv_chol, diff.unsqueeze(-1))
        ctx.save_for_backward(inv_chol, z)
        return z.square().sum((1, 2)), _logdet(chol)

    @staticmethod
    def backward(ctx: object, g_quad: torch.Tensor | None,
                 g_logdet: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        inv_chol, z = ctx.saved_tensors
        inv_t = inv_chol.mT
        g_diff = g_cov = None
        if g_logdet is not None:
            g_cov = torch.bmm(inv_t, inv_chol).mul_(g_logdet[:, None, None])  # g_l Sigma^-1
        if g_quad is not None:
            sol = torch.bmm(inv_t, z)  # a = Sigma^-1 d, (B, A, 1)
            g_sol = sol * g_quad[:, None, None]
            g_cov = -g_sol * sol.mT if g_cov is None else torch.baddbmm(g_cov, g_sol, sol.mT, alpha=-1.0)
            g_diff = 2.0 * g_sol.squeeze(-1)
        return g_diff, g_cov


@dataclass
class ActionGaussian:
    """N(mean, diag(std^2)) when ``cov`` is None, else N(mean, cov); batched over the first dim."""

    mean: torch.Tensor
    std: torch.Tensor | None = None
    cov: torch.Tensor | None = None
    _logdet: torch.Tensor | None = None

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        diff = actions - self.mean
        if self.cov is None:
            z = diff / self.std
            quad, logdet = (z * z).sum(-1), 2.0 * self.std.log().sum(-1)
        else:
            if torch.is_grad_enabled() and (diff.requires_grad or self.cov.requires_grad):
                quad, logdet = _GaussianQuadLogdet.apply(diff, self.cov)
            else:  # no gradient wanted (old log-probs, SAC's next actions): one triangular solve, no autograd node
                chol = _cholesky(self.cov)
                z = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False)
                quad, logdet = z.square().sum((1, 2)), _logdet(chol)
            self._logdet = logdet
        return -0.5 * (quad + logdet + self.mean.shape[-1] * _LOG_2PI)

    def entropy(self) -> torch.Tensor:
        if self.cov is None:
            logdet = 2.0 * self.std.log().sum(-1)
        elif self._logdet is not None:  # reuse the factorisation of the preceding log_prob
            logdet = self._logdet
        else:
            logdet = torch.linalg.slogdet(self.cov)[1]
        return 0.5 * (logdet + self.mean.shape[-1] * (1.0 + _LOG_2PI))

    def covariance(self) -> torch.Tensor:
        return torch.diag_embed(self.std**2) if self.cov is None else self.cov


class ExplorationHead(nn.Module):
    """The policy's action layer plus its exploration noise; the same module serves PPO and SAC.

    ``state_dependent_std`` (gaussian only) predicts log-std from ``x`` as SB3's SAC does, clamped to [-20, 2];
    otherwise gaussian uses one learned log-std per action (SB3's PPO).  ``use_expln`` is SB3's gSDE option that
    keeps the std from growing exponentially (the references turn it on for SAC).  ``clip_mean``: see
    :meth:`action_mean`.
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        noise: str = "gaussian",
        log_std_init: float = 0.0,
        alpha: float = 1.0,
        std_clip: tuple[float, float] = (1e-3, 1.0),
        std_reg: float = 0.0,
        use_expln: bool = False,
        state_dependent_std: bool = False,
        epsilon: float = 1e-6,
        clip_mean: float = 0.0,
    ) -> None:
        super().__init__()
        if noise not in NOISE_TYPES:
            raise ValueError(f"noise must be one of {NOISE_TYPES}, got {noise!r}")
        self.noise, self.latent_dim, self.action_dim = noise, latent_dim, action_dim
        self.alpha, self.std_reg, self.use_expln, self.epsilon = alpha, std_reg, use_expln, epsilon
        self.clip_mean = clip_mean
        self.log_std_min, self.log_std_max = math.log(std_clip[0]), math.log(std_clip[1])
        self.state_dependent_std = state_dependent_std and noise == "gaussian"
        self.mean_net = nn.Linear(latent_dim, action_dim)
        if self.state_dependent_std:
            self.log_std_net = nn.Linear(latent_dim, action_dim)
        else:
            shape = {"gaussian": (action_dim,), "gsde": (latent_dim, action_dim),
                     "lattice": (latent_dim, latent_dim + action_dim)}[noise]
            self.log_std = nn.Parameter(torch.full(shape, float(log_std_init)))
        if noise == "lattice":  # maps the independent variances onto the diagonal of the flattened covariance
            selector = torch.zeros(action_dim, action_dim * action_dim)
            selector[torch.arange(action_dim), torch.arange(action_dim) * (action_dim + 1)] = 1.0
            self.register_buffer("_diag_selector", selector, persistent=False)
        # the held draw: gSDE's P_a (n, latent, action); Lattice's [P_x | P_a] (n, latent, latent + action) in one
        # tensor, so that acting multiplies x by both matrices in one product (see forward)
        self.perturbation: torch.Tensor | None = None
        self._memo: dict[str, torch.Tensor] | None = None  # see shared_terms

    @contextmanager
    def shared_terms(self) -> Iterator[None]:
        """Compute Lattice's weight-only terms (its clipped std, 256 x 262 for SAC, the covariance basis and the
        action mixing matrix) once for every ``reset_noise``/``forward``/``distribution`` call inside the block.
        Only for a block in which the head's weights do not change (SAC: one gradient step up to the actor's
        optimizer step; PPO: one rollout); the backward pass then sums their gradients once instead of
        differentiating three copies."""
        self._memo = {}
        try:
            yield
        finally:
            self._memo = None

    @property
    def p_a(self) -> torch.Tensor | None:
        """(n, latent, action) perturbation of W, or None before the first draw."""
        pert = self.perturbation
        return pert if pert is None or self.noise == "gsde" else pert[..., self.latent_dim:]

    @property
    def p_x(self) -> torch.Tensor | None:
        """(n, latent, latent) perturbation of x (Lattice only)."""
        pert = self.perturbation
        return None if pert is None or self.noise != "lattice" else pert[..., : self.latent_dim]

    def noise_state(self) -> dict[str, torch.Tensor | None]:
        """The held perturbation, detached (for checkpoints)."""
        pert = self.perturbation
        return {"perturbation": None if pert is None else pert.detach()}

    def load_noise_state(self, state: dict[str, torch.Tensor | None]) -> None:
        """Restore :meth:`noise_state`; also takes the former ``{"p_a", "p_x"}`` checkpoint layout."""
        if "perturbation" in state:
            self.perturbation = state["perturbation"]
        elif state.get("p_x") is not None:
            self.perturbation = torch.cat([state["p_x"], state["p_a"]], -1)
        else:
            self.perturbation = state.get("p_a")

    def _shared(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        memo = self._memo
        if memo is None:
            return compute()
        value = memo.get(key)
        if value is None or (torch.is_grad_enabled() and not value.requires_grad):  # never reuse a graph-less copy
            value = memo[key] = compute()
        return value

    # ----------------------------------------------------------------------------------------------- std
    @torch.no_grad()
    def match_initial_std(self, latents: torch.Tensor, target: float, iterations: int = 20) -> float:
        """Shift the (state-independent) log-std so that the action noise's per-joint std, averaged over ``latents``
        and joints, equals ``target``; returns the std reached.

        Makes the three noises start equally wide, whatever their parametrisation: gaussian's std is exp(log_std)
        itself, gSDE's and Lattice's scale with exp(log_std) times the latent's norm (Lattice: also through W and
        its 1/sqrt(latent) factor), so one shared shift of log_std rescales each exactly; ``use_expln`` and Lattice's
        clip make the map nonlinear, hence a few fixed-point steps.
        """
        if self.state_dependent_std:
            raise ValueError("match_initial_std needs a state-independent log-std (PPO's parametrisation)")
        if not target > 0:
            raise ValueError(f"target std must be positive, got {target}")
        reached = float("nan")
        for _ in range(iterations):
            reached = float(self.distribution(latents).covariance().diagonal(dim1=-2, dim2=-1).sqrt().mean())
            if abs(math.log(reached / target)) < 1e-6:
                break
            self.log_std.add_(math.log(target / reached))
        return reached

    def _std(self, log_std: torch.Tensor) -> torch.Tensor:
        if not self.use_expln:
            return log_std.exp()
        # expln (gSDE paper): exp below 0, log1p above, so the std grows only logarithmically
        below = log_std.exp() * (log_std <= 0)
        safe = log_std * (log_std > 0) + self.epsilon
        return below + (torch.log1p(safe) + 1.0) * (log_std > 0)

    def _lattice_std(self) -> torch.Tensor:
        return self._shared("std", lambda: self._std(
            self.log_std.clamp(self.log_std_min, self.log_std_max) - 0.5 * math.log(self.latent_dim)))

    def noise_std(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(s_corr (latent x latent) or None, s_ind (latent x action)) for the state-dependent noises."""
        if self.noise == "gsde":
            return None, self._std(self.log_std)
        std = self._lattice_std()
        return std[:, : self.latent_dim], std[:, self.latent_dim:]

    # ------------------------------------------------------------------------------------------- sampling
    def reset_noise(self, n: int = 1) -> None:
        """Draw ``n`` sets of perturbation matrices (one per env, or one shared when n == 1), differentiably."""
        if self.noise == "gaussian":
            return
        # Lattice: [P_x | P_a] in one draw, elementwise N(0, [s_corr | s_ind]^2)
        std = self._std(self.log_std) if self.noise == "gsde" else self._lattice_std()
        self.perturbation = std * torch.randn((n, *std.shape), dtype=std.dtype, device=std.device)

    @staticmethod
    def _perturb(x: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
        if mats.shape[0] == x.shape[0] and x.shape[0] > 1:  # one matrix per env
            return torch.bmm(x.unsqueeze(1), mats).squeeze(1)
        return x @ mats[0]

    def forward(self, latent: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-squash action, mean).  Uses the held perturbation matrices for gsde/lattice."""
        mean = self.action_mean(latent)
        if deterministic:
            return mean, mean
        if self.noise == "gaussian":
            return mean + self._gaussian_std(latent) * torch.randn_like(mean), mean
        if self.perturbation is None:
            self.reset_noise(1)
        x, pert = latent.detach(), self.perturbation
        if self.noise == "gsde":
            eps = self._perturb(x, pert)
        else:
            mix = self._shared("act_mix", self._act_mix)  # [alpha W^T; I]: x [P_x | P_a] mix = x (P_a + alpha P_x W^T)
            if pert.shape[0] == 1 and x.shape[0] > self.action_dim:
                # one shared draw for a large batch (SAC updates): fold first, one (B, L) @ (L, A) product instead of
                # a (B, L) @ (L, L + A) one.  The fold is built transposed: MKL multiplies by a column-major (L, A)
                # operand ~3x faster than by a row-major one when A is a handful of joints.
                eps = x @ (mix.T @ pert[0].T).T
            else:  # acting: one product with both matrices, one with the mix
                eps = self._perturb(x, pert) @ mix
        if self.noise == "lattice":
            if self.std_reg > 0:
                eps = eps + self.std_reg * torch.randn_like(mean)
        return mean + eps, mean

    def action_mean(self, latent: torch.Tensor) -> torch.Tensor:
        """W x + b, squeezed into +-clip_mean when set (SB3's SAC does so with gSDE to keep tanh out of saturation)."""
        mean = self.mean_net(latent)
        return nn.functional.hardtanh(mean, -self.clip_mean, self.clip_mean) if self.clip_mean > 0 else mean

    def _act_mix(self) -> torch.Tensor:
        """(L + A, A) matrix [alpha W^T; I] taking x [P_x | P_a] to Lattice's action noise x P_a + alpha x P_x W^T."""
        w = self.mean_net.weight
        scaled = w.T if self.alpha == 1 else self.alpha * w.T
        return torch.cat([scaled, torch.eye(self.action_dim, dtype=w.dtype, device=w.device)])

    def _lattice_mix(self) -> torch.Tensor:
        """(L + A, A^2) map from [x^2 s_corr^2, x^2 s_ind^2] to the flattened covariance."""
        a, w = self.action_dim, self.mean_net.weight
        pair = (w.unsqueeze(1) * w.unsqueeze(0)).reshape(a * a, self.latent_dim)
        return torch.cat([pair.T if self.alpha == 1 else (self.alpha**2) * pair.T, self._diag_selector], 0)

    def _gaussian_std(self, latent: torch.Tensor) -> torch.Tensor:
        if self.state_dependent_std:
            return self.log_std_net(latent).clamp(-20.0, 2.0).exp()
        return self.log_std.exp().expand(latent.shape[0], -1)

    # ------------------------------------------------------------------------------------- distribution
    def distribution(self, latent: torch.Tensor, mean: torch.Tensor | None = None) -> ActionGaussian:
        """The Gaussian of the (pre-squash) action given ``latent``, marginalised over the perturbation matrices."""
        mean = self.action_mean(latent) if mean is None else mean
        if self.noise == "gaussian":
            return ActionGaussian(mean, std=self._gaussian_std(latent))
        x2 = latent.detach() ** 2
        if self.noise == "gsde":
            return ActionGaussian(mean, std=torch.sqrt(x2 @ self._std(self.log_std) ** 2 + self.epsilon))
        # Sigma_ij = alpha^2 sum_k W_ik W_jk v_k + [i == j] u_i with (v, u) = x^2 [s_corr^2, s_ind^2]: two matmuls,
        # (B, L) @ (L, L + A) then (B, L + A) @ (L + A, A^2), instead of a (B, A, L) broadcast and a batched matmul
        a, n, lat, width = self.action_dim, x2.shape[0], self.latent_dim, self.latent_dim + self.action_dim
        if n * lat * width + n * width * a * a <= lat * width * a * a + n * lat * a * a:
            cov = ((x2 @ self._lattice_std() ** 2) @ self._lattice_mix()).view(-1, a, a)
        else:  # few actions, many states: contract the std with the mixing matrix once, (L, L + A) @ (L + A, A^2)
            cov = (x2 @ self._shared("basis", lambda: self._lattice_std() ** 2 @ self._lattice_mix())).view(-1, a, a)
        if self.std_reg > 0:
            cov = cov + (self.std_reg**2) * torch.eye(a, dtype=cov.dtype, device=cov.device)
        return ActionGaussian(mean, cov=cov)


def maybe_reset_noise(head: ExplorationHead, step: int, sde_sample_freq: int, n_envs: int) -> None:
    """SB3's schedule: new matrices every ``sde_sample_freq`` env steps (-1 or 0: only when the caller resets)."""
    if sde_sample_freq > 0 and step % sde_sample_freq == 0:
        head.reset_noise(n_envs)


def noise_correlation(head: ExplorationHead, latents: torch.Tensor) -> tuple[float, list[list[float]]]:
    """Correlation of the exploration noise across joints, pooled over the given states.

    The noise is zero-mean given each state, so the pooled covariance is the mean of Sigma(x) over the states;
    returns the mean absolute off-diagonal entry of its correlation matrix and the matrix itself.
    """
    with torch.no_grad():
        cov = head.distribution(latents).covariance().mean(0).double()
        d = cov.diagonal().clamp_min(1e-300).rsqrt()
        corr = d[:, None] * cov * d[None, :]
        n = corr.shape[0]
        off = corr[~torch.eye(n, dtype=torch.bool, device=corr.device)].abs()
        return (float(off.mean()) if n > 1 else 0.0), corr.tolist()


def exploration_output(actor: torch.nn.Module, head: ExplorationHead, tracker: Any, env_steps: int) -> RunOutput:
    """A PPO/SAC result: the last evaluation plus the noise correlation over the states it visited."""
    with torch.no_grad():
        latents = actor(torch.from_numpy(tracker.visited).to(next(actor.parameters()).device))
    corr, matrix = noise_correlation(head, latents)
    return RunOutput(metrics={**tracker.last, "noise_correlation": corr}, curves=tracker.curves, steps=env_steps,
                     step_unit="env_steps", extras={"noise_correlation_matrix": matrix})
