"""Closed-form checks of the M-density, its score and the Bayes estimators (docs/method.md §1)."""

import math

import pytest
import torch

from replication.core.mnm import GaussianMixture, GaussianMNM, PoissonMNM
from replication.data.datasets import toy_mixture


def gaussian(mean, std: float) -> GaussianMixture:
    """An isotropic Gaussian prior N(mean, std^2 I) as a one-component mixture."""
    mean = torch.as_tensor(mean, dtype=torch.float64).reshape(1, -1)
    return GaussianMixture(mean, torch.tensor([float(std)], dtype=torch.float64), torch.ones(1, dtype=torch.float64))


@pytest.fixture
def mixture():
    means = torch.tensor([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0], [0.0, -2.0, 0.5]])
    return GaussianMixture(means, torch.tensor([0.3, 0.5, 0.4]), torch.tensor([0.5, 0.3, 0.2]))


def autograd_score(prior, y, mnm):
    y = y.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(prior.log_prob(y, mnm).sum(), y)
    return g


@pytest.mark.parametrize("sigma", [0.7, [0.5, 0.8, 1.0, 1.3]])
def test_score_and_x_hat_agree_across_measurements(mixture, sigma):
    mnm = GaussianMNM(sigma, 4)
    x, _ = mixture.sample(64, torch.Generator().manual_seed(0))
    y = mnm.measure(x, torch.Generator().manual_seed(1))
    score = autograd_score(mixture, y, mnm)
    torch.testing.assert_close(mixture.score(y, mnm), score, rtol=1e-9, atol=1e-9)
    per_m = mnm.x_hat_from_score(y, score)  # y_m + sigma_m^2 grad_{y_m} log p(y), one per m
    for m in range(1, 4):
        torch.testing.assert_close(per_m[:, m], per_m[:, 0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(per_m[:, 0], mixture.x_hat(y, mnm), rtol=1e-9, atol=1e-9)


def test_x_hat_is_single_measurement_tweedie_at_sigma_eff(mixture):
    """x_hat(y) = y_bar + sigma_eff^2 grad log p_{sigma_eff}(y_bar), sigma_eff = sigma/sqrt(M).

    docs/method.md §1.3, Eq. 5.
    """
    sigma, M = 1.0, 8
    mnm = GaussianMNM(sigma, M)
    assert mnm.sigma_eff == pytest.approx(sigma / math.sqrt(M))
    y = mnm.measure(mixture.sample(32, torch.Generator().manual_seed(2))[0], torch.Generator().manual_seed(3))
    y_bar = mnm.y_bar(y)
    single = GaussianMNM(mnm.sigma_eff, 1)
    tweedie = y_bar + mnm.sigma_eff**2 * autograd_score(mixture, y_bar[:, None], single)[:, 0]
    torch.testing.assert_close(mixture.x_hat(y, mnm), tweedie, rtol=1e-9, atol=1e-9)


def test_x_hat_bar_equals_x_hat_under_equal_noise():
    """The equal-noise estimator through y_bar alone (docs/method.md §1.3) is the general one, on and off the data."""
    mix = toy_mixture("ring8")
    prior = GaussianMixture(mix.means, mix.stds, mix.weights)
    g = torch.Generator().manual_seed(0)
    for sigma, M in ((1.0, 1), (1.0, 4), (2.0, 16), (0.5, 3)):
        mnm = GaussianMNM(sigma, M)
        x, _ = prior.sample(64, g)
        y = mnm.measure(x, g) + torch.randn(64, M, 2, generator=g, dtype=torch.float64)  # off the data too
        torch.testing.assert_close(prior.x_hat_bar(y.mean(1), mnm.sigma_eff), prior.x_hat(y, mnm), rtol=1e-10, atol=1e-10)


def test_x_hat_matches_monte_carlo_posterior_mean(mixture):
    """Self-normalised importance sampling with the prior as proposal: E[X|y] = E_p[X l(y|X)] / E_p[l(y|X)]."""
    mnm = GaussianMNM([0.9, 1.1], 2)
    g = torch.Generator().manual_seed(4)
    y = mnm.measure(mixture.sample(5, g)[0], g)
    xs, _ = mixture.sample(400_000, g)
    for i in range(5):
        log_lik = sum(-0.5 * ((y[i, m] - xs) ** 2).sum(1) / s**2 for m, s in enumerate(mnm.sigmas))
        w = torch.softmax(log_lik, 0)
        ess = 1 / (w**2).sum()
        mc = (w[:, None] * xs).sum(0)
        se = ((w[:, None] * (xs - mc) ** 2).sum(0) / ess).sqrt()
        assert ess > 1000
        assert ((mc - mixture.x_hat(y[i : i + 1], mnm)[0]).abs() < 5 * se + 1e-3).all()


def test_log_prob_matches_dense_gaussian_for_one_component():
    """One component: y is N(mu 1, diag(sigma_m^2) + s^2 11^T) per coordinate, checked with a dense covariance."""
    prior = gaussian([0.3, -0.2], 0.6)
    mnm = GaussianMNM([0.5, 1.0, 2.0], 3)
    y = mnm.measure(prior.sample(10, torch.Generator().manual_seed(5))[0], torch.Generator().manual_seed(6))
    cov = torch.diag(torch.tensor([0.25, 1.0, 4.0], dtype=torch.float64)) + 0.36 * torch.ones(3, 3, dtype=torch.float64)
    expected = sum(
        torch.distributions.MultivariateNormal(torch.full((3,), float(prior.means[0, j]), dtype=torch.float64), cov).log_prob(y[:, :, j])
        for j in range(2)
    )
    torch.testing.assert_close(prior.log_prob(y, mnm), expected, rtol=1e-10, atol=1e-10)


def test_poisson_robbins_formula_matches_gamma_posterior_mean():
    """Gamma(a, b) prior on the rate: E[X|y] = (a + sum_m y_m)/(M + b) for every m (docs/method.md §1.6)."""
    a, b, M = 3.0, 0.5, 4

    def log_p(y):  # exact Poisson-Gamma M-density per coordinate, summed over coordinates
        S = y.sum(1)
        return (a * math.log(b) + torch.lgamma(a + S) - math.lgamma(a) - (a + S) * math.log(M + b)
                - torch.lgamma(y + 1).sum(1)).sum(-1)

    g = torch.Generator().manual_seed(7)
    rates = torch.distributions.Gamma(a, b).sample((6, 3)).double()
    y = PoissonMNM(M).measure(rates, g)
    expected = (a + y.sum(1)) / (M + b)
    for m in range(M):
        torch.testing.assert_close(PoissonMNM(M).x_hat(log_p, y, m=m), expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("sigma,M", [(0.0, 4), (-1.0, 4), (float("nan"), 2), (1.0, 0)])
def test_bad_noise_settings_name_the_fix(sigma, M):
    with pytest.raises(ValueError, match="sigma|M must"):
        GaussianMNM(sigma, M)
