"""Exploration noises: covariances, log-probabilities, gradients, time correlation (baselines.exploration)."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from baselines.exploration import ExplorationHead, maybe_reset_noise, noise_correlation


def _head(noise: str, latent: int = 6, action: int = 3, **kw: object) -> ExplorationHead:
    torch.manual_seed(0)
    head = ExplorationHead(latent, action, noise, log_std_init=kw.pop("log_std_init", -0.5), **kw).double()
    with torch.no_grad():  # spread the log-stds so the covariance is not a scaled identity
        head.log_std.add_(0.3 * torch.randn_like(head.log_std))
        head.mean_net.weight.mul_(3.0)  # a trained-size W, so Lattice's W-induced correlations are visible
    return head


def _lattice_cov_by_formula(head: ExplorationHead, x: torch.Tensor) -> torch.Tensor:
    """alpha^2 W diag(x^2 s_corr^2) W^T + diag(x^2 s_ind^2 + std_reg^2), written out per state."""
    s_corr, s_ind = head.noise_std()
    w = head.mean_net.weight
    covs = []
    for xi in x:
        corr = torch.diag((xi**2) @ s_corr**2)
        ind = torch.diag((xi**2) @ s_ind**2 + head.std_reg**2)
        covs.append(head.alpha**2 * w @ corr @ w.T + ind)
    return torch.stack(covs)


def test_lattice_log_prob_and_entropy_match_multivariate_normal() -> None:
    head = _head("lattice", latent=7, action=4, alpha=0.8, std_reg=0.05)
    x, a = torch.randn(9, 7, dtype=torch.double), torch.randn(9, 4, dtype=torch.double)
    dist = head.distribution(x)
    ref = torch.distributions.MultivariateNormal(head.mean_net(x), _lattice_cov_by_formula(head, x))
    torch.testing.assert_close(dist.covariance(), ref.covariance_matrix)
    torch.testing.assert_close(dist.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    # gradients of the custom Cholesky backward equal autograd through torch's MultivariateNormal
    params = list(head.parameters())
    ours = torch.autograd.grad((dist.log_prob(a) + 0.3 * dist.entropy()).sum(), params)
    theirs = torch.autograd.grad((ref.log_prob(a) + 0.3 * ref.entropy()).sum(), params)
    for g_ours, g_ref in zip(ours, theirs, strict=True):
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("noise", ["gaussian", "gsde", "lattice"])
def test_sampled_actions_have_the_analytic_covariance(noise: str) -> None:
    """Empirical covariance of the noise over many draws of the perturbation matrices, at one fixed state."""
    head = _head(noise, std_reg=0.1 if noise == "lattice" else 0.0)
    n = 40_000
    x = torch.randn(1, 6, dtype=torch.double).expand(n, -1)
    with torch.no_grad():
        head.reset_noise(n)  # one matrix per row: independent draws at the same state
        actions, mean = head(x)
        analytic = head.distribution(x[:1]).covariance()[0]
    noise_samples = actions - mean
    empirical = noise_samples.T.cov()
    scale = analytic.diagonal().max()
    assert torch.allclose(empirical, analytic, atol=0.04 * float(scale)), (empirical, analytic)
    if noise == "lattice":  # the point of Lattice: correlated across joints
        corr = analytic / torch.sqrt(analytic.diagonal()[:, None] * analytic.diagonal()[None, :])
        assert corr.triu(1).abs().max() > 0.1


def test_monte_carlo_entropy_matches_analytic_for_lattice() -> None:
    head = _head("lattice", latent=5, action=3, std_reg=0.02)
    n = 50_000
    x = torch.randn(1, 5, dtype=torch.double).expand(n, -1)
    with torch.no_grad():
        head.reset_noise(n)
        actions, _ = head(x)
        dist = head.distribution(x)
        mc_entropy = -dist.log_prob(actions).mean()
        sem = dist.log_prob(actions).std() / math.sqrt(n)
    assert abs(float(mc_entropy - dist.entropy()[0])) < 4 * float(sem) + 1e-3


def test_gsde_gradient_matches_analytic_form() -> None:
    """d log pi / d sigma_hat for gSDE equals the closed form of Rueckstiess et al. (as SB3 tests it)."""
    head = ExplorationHead(3, 2, "gsde", log_std_init=0.0, epsilon=0.0).double()
    state = torch.rand(4, 3, dtype=torch.double)
    head.reset_noise(1)
    with torch.no_grad():
        action, mean = head(state)
    noise = action - mean
    loss = head.distribution(state).log_prob(action).mean()
    (grad_log_std,) = torch.autograd.grad(loss, [head.log_std])
    sigma_hat = head.log_std.exp().detach()
    variance = (state**2) @ sigma_hat**2
    expected = torch.zeros_like(sigma_hat)
    for j in range(2):
        sigma_j = variance[:, j].sqrt()
        for i in range(3):
            d_logp_d_sigma = (noise[:, j] ** 2 - sigma_j**2) / sigma_j**3
            d_sigma_d_hat = state[:, i] ** 2 * sigma_hat[i, j] / sigma_j
            expected[i, j] = (d_logp_d_sigma * d_sigma_d_hat).mean()
    # the parameter is log sigma_hat: chain rule multiplies by sigma_hat
    torch.testing.assert_close(grad_log_std, expected * sigma_hat)


@pytest.mark.parametrize("noise", ["gsde", "lattice"])
def test_noise_is_held_between_resamplings_and_changes_at_them(noise: str) -> None:
    head, freq, n_envs = _head(noise), 4, 3
    x = torch.randn(n_envs, 6, dtype=torch.double)
    head.reset_noise(n_envs)
    eps = []
    with torch.no_grad():
        for t in range(12):
            if t > 0:
                maybe_reset_noise(head, t, freq, n_envs)
            action, mean = head(x)
            eps.append(action - mean)
    for t in range(12):
        if t % freq:
            torch.testing.assert_close(eps[t], eps[t - 1])
        elif t:
            assert (eps[t] - eps[t - 1]).abs().min() > 1e-9
    assert (eps[0][0] - eps[0][1]).abs().min() > 1e-9  # each env has its own matrices


def test_gaussian_noise_changes_every_step() -> None:
    head = _head("gaussian")
    x = torch.randn(2, 6, dtype=torch.double)
    with torch.no_grad():
        first, second = head(x)[0], head(x)[0]
    assert (first - second).abs().min() > 0


def test_noise_correlation_is_zero_for_independent_noise_and_positive_for_lattice() -> None:
    x = torch.randn(50, 6, dtype=torch.double)
    for noise in ("gaussian", "gsde"):
        value, matrix = noise_correlation(_head(noise), x)
        assert value == pytest.approx(0.0, abs=1e-12)
        assert len(matrix) == 3
    value, matrix = noise_correlation(_head("lattice"), x)
    assert value > 0.05
    assert matrix[0][0] == pytest.approx(1.0)


def test_shared_and_per_row_code_paths_agree() -> None:
    """The folded shared-matrix product and the per-state covariance orderings are the same maths."""
    head = _head("lattice", std_reg=0.1)
    x = torch.randn(10, 6, dtype=torch.double)
    head.reset_noise(1)
    torch.manual_seed(1)
    with torch.no_grad():
        batched = head(x)[0] - head.mean_net(x)
    head.std_reg = 0.0
    with torch.no_grad():
        rows = torch.cat([head(x[i:i + 1])[0] - head.mean_net(x[i:i + 1]) for i in range(10)])
        head.std_reg = 0.1
        torch.testing.assert_close(head.distribution(x[:1]).covariance()[0], head.distribution(x).covariance()[0])
    assert (batched - rows).abs().max() < 1.0  # std_reg noise differs, the structured part is shared
    head.std_reg = 0.0
    with torch.no_grad():
        torch.testing.assert_close(head(x)[0] - head.mean_net(x), rows)


def test_shared_terms_give_the_same_values_and_gradients() -> None:
    """One SAC-like step (reset, a reparametrised sample and its log-prob, a no-grad next-state log-prob) with
    Lattice's std and covariance basis computed once or at every call: same values, same gradients."""
    def step(shared: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        head = _head("lattice", latent=40, action=3)  # 40 rows > 3 actions: the shared-basis code path
        x, x_next = torch.randn(40, 40, dtype=torch.double), torch.randn(40, 40, dtype=torch.double)
        with head.shared_terms() if shared else contextlib.nullcontext():
            with torch.no_grad():  # a graph-less first use must not be reused where gradients are needed
                head.distribution(x_next)
            head.reset_noise(1)
            u, mean = head(x)
            logp = head.distribution(x, mean).log_prob(u)
            with torch.no_grad():
                u_next, mean_next = head(x_next)
                logp_next = head.distribution(x_next, mean_next).log_prob(u_next)
        (logp.sum() + (u ** 2).sum()).backward()
        return torch.cat([logp, logp_next]), {name: p.grad for name, p in head.named_parameters()}

    torch.manual_seed(3)
    values, grads = step(shared=False)
    torch.manual_seed(3)
    shared_values, shared_grads = step(shared=True)
    torch.testing.assert_close(shared_values, values, rtol=0, atol=0)
    assert shared_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(shared_grads[name], grad)
    assert grads["log_std"].abs().sum() > 0  # the log-std really receives gradient through the shared terms


@pytest.mark.parametrize("noise, use_expln", [("gaussian", False), ("gsde", False), ("gsde", True), ("lattice", False)])
def test_match_initial_std_equalises_the_sampled_action_spread(noise: str, use_expln: bool) -> None:
    torch.manual_seed(0)
    head = ExplorationHead(16, 3, noise, log_std_init=-1.0, std_clip=(1e-3, 10.0), use_expln=use_expln)
    latents = torch.rand(8, 16)
    assert head.match_initial_std(latents, 0.3) == pytest.approx(0.3, rel=1e-5)
    # the empirical spread of sampled actions agrees: many noise draws for each state
    samples = []
    for _ in range(4000):
        head.reset_noise(8)
        with torch.no_grad():
            action, mean = head(latents)
        samples.append(action - mean)
    assert torch.stack(samples).std(0).mean().item() == pytest.approx(0.3, rel=0.05)
    with pytest.raises(ValueError, match="positive"):
        head.match_initial_std(latents, 0.0)


@pytest.mark.parametrize("noise", ["gsde", "lattice"])
def test_noise_state_round_trip_and_former_checkpoint_layout(noise: str) -> None:
    """The held draw survives a checkpoint, in the current layout and in the former separate {p_a, p_x} one."""
    head, x = _head(noise), torch.randn(3, 6, dtype=torch.double)
    head.reset_noise(3)
    with torch.no_grad():
        before = head(x)[0]
    state, former = head.noise_state(), {"p_a": head.p_a.clone(), "p_x": None if head.p_x is None else head.p_x.clone()}
    for saved in (state, former):
        head.reset_noise(3)
        head.load_noise_state(saved)
        with torch.no_grad():
            torch.testing.assert_close(head(x)[0], before)
