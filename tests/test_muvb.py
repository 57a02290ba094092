"""MUVB (docs/method.md §2.4) against known answers: a linear-Gaussian VAE whose encoder is the exact posterior.

With decoder nu(z) = A z + b, prior z ~ N(0, I_k) and the Gaussian noise model, the M-density is
p(y) = N(b, A A^T + sigma^2 I) and the exact posterior is q(z|y) = N(Sigma A^T (y - b) / sigma^2, Sigma) with
Sigma = (I + A^T A / sigma^2)^{-1}. For beta = 1 the ELBO is then log p(y) exactly, so the MUVB energy f (the
negative ELBO with the Gaussian's normalizer (D/2) log(2 pi sigma^2) dropped) has E_eps f(y) = -log p(y) - (D/2)
log(2 pi sigma^2), and E_eps[-grad f] is the true score. A has orthogonal columns so that Sigma is diagonal, as the
encoder's factorized q needs.
"""

import math

import pytest
import torch

from replication.core.schemes import MUVB
from replication.core.vdvae import vae_resnets
from replication.runs.experiments import ModelSpec, resolve
from replication.runs.models import build_model
from replication.sampling.chains import ChainState, init_chains
from replication.sampling.integrators import Walk
from replication.sampling.loop import walk_jump
from replication.errors import UsageError

SIGMA, M, d, k = 0.8, 2, 3, 2
D = M * d


def linear_gaussian(beta: float = 1.0) -> tuple[MUVB, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(MUVB with the exact posterior as its encoder, A, b, Sigma) in float64."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D, k, generator=g, dtype=torch.float64))
    A = q * torch.tensor([1.5, 0.7], dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64) * 0.3
    var = 1 / (1 + (A**2).sum(0) / SIGMA**2)  # diag Sigma
    muvb = MUVB.linear_gaussian(A, b, SIGMA, M, beta=beta)
    return muvb, A, b, var


def exact(A, b, y):
    """(log p(y), grad log p(y)) of the M-density N(b, A A^T + sigma^2 I); y (N, M, d)."""
    cov = A @ A.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    flat = y.reshape(len(y), D)
    logp = torch.distributions.MultivariateNormal(b, cov).log_prob(flat)
    return logp, (-(flat - b) @ torch.linalg.inv(cov)).reshape(y.shape)


def test_kl_term_is_the_closed_form_gaussian_kl():
    mu, logvar = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(MUVB.kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1))


def test_elbo_of_the_exact_posterior_is_log_p_up_to_the_dropped_constant():
    """E_eps f(y) = -log p(y) - (D/2) log(2 pi sigma^2): in closed form (f is quadratic in eps) and by Monte Carlo."""
    muvb, A, b, var = linear_gaussian()
    y = torch.randn(4, M, d, dtype=torch.float64) * 1.5
    logp, _ = exact(A, b, y)
    const = D / 2 * math.log(2 * math.pi * SIGMA**2)
    # f(y, eps) = f(y, 0) + |A diag(sqrt var) eps|^2/(2 sigma^2) - linear in eps: E f = f(y, 0) + tr(A Sigma A^T)/(2 sigma^2)
    e_f = muvb.energy(y, eps=torch.zeros(4, k, dtype=torch.float64)) + (A**2 * var).sum() / (2 * SIGMA**2)
    torch.testing.assert_close(e_f, -logp - const, rtol=1e-10, atol=1e-10)
    muvb.z_generator = torch.Generator().manual_seed(1)
    draws = torch.stack([muvb.energy(y) for _ in range(4000)])  # the scheme's own z resampling
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - (-logp - const)).abs() < 4 * se).all(), (draws.mean(0), -logp - const, se)
    assert (draws.std(0) > 0.1).all()  # the energy is stochastic: the test can tell a missing resampling


def test_expected_score_is_the_true_score():
    """E_eps[-grad_y f(y, eps)] = grad log p(y): exactly with antithetic eps (the gradient is affine in eps), and
    by averaging the stochastic score over z draws; z = mu (z_mode "mean") also gives it, since here the two
    energies differ by a constant."""
    muvb, A, b, _ = linear_gaussian()
    y = torch.randn(3, M, d, dtype=torch.float64)
    _, true = exact(A, b, y)

    def score_at(eps):
        y_ = y.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(muvb.energy(y_, eps=eps).sum(), y_)
        return -g

    eps = torch.randn(3, k, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close((score_at(eps) + score_at(-eps)) / 2, true, rtol=1e-10, atol=1e-10)
    assert (score_at(eps) - true).abs().max() > 0.05  # one draw is not the score
    muvb.z_generator = torch.Generator().manual_seed(3)
    draws = torch.stack([muvb.score(y) for _ in range(3000)])
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - true).abs() < 4.5 * se + 1e-12).all()
    muvb.z_mode = "mean"
    torch.testing.assert_close(muvb.score(y), true, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(muvb.x_hat(y), y + SIGMA**2 * true, rtol=1e-10, atol=1e-10)  # Eq. 12


@pytest.mark.parametrize("z_mode", ["sample", "mean"])
def test_chain_reaches_the_exact_m_density_moments(z_mode):
    """BAOAB chains driven by the MUVB score (stochastic or z = mu) sample the linear-Gaussian M-density: mean and
    covariance within the mixture tests' absolute tolerance (0.03-0.04, tests/test_walk_jump.py) of the exact ones."""
    muvb, A, b, _ = linear_gaussian()
    muvb.z_mode = z_mode
    gens = [torch.Generator().manual_seed(10 + i) for i in range(200)]
    muvb.z_generator = gens
    y, v = init_chains(200, M, (d,), SIGMA, gens, dtype=torch.float64)
    ys = []
    for stop in walk_jump(muvb.score, muvb.jump, y, v, walk=Walk(0.25 * SIGMA, 0.5, 1.0, "baoab"), steps=3000,
                          jump_every=20, burn_in=600, generator=gens, autograd=True):
        ys.append(stop.y.reshape(200, D))
    ys = torch.cat(ys)
    cov = A @ A.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    torch.testing.assert_close(ys.mean(0), b, atol=0.04, rtol=0)
    torch.testing.assert_close(torch.cov(ys.T), cov, atol=0.04 * cov.diagonal().max().item(), rtol=0)


def test_stochastic_score_chain_resumes_bit_exactly():
    """A BAOAB chain with z resampled at every evaluation, stopped, saved (state + carried score) and resumed in a
    fresh walk, equals the uninterrupted chain bit for bit: the z draws come from the checkpointed generators."""
    muvb, _, _, _ = linear_gaussian()
    walk = Walk(0.5 * SIGMA, 0.5, 1.0, "baoab")

    def run(start, steps, state=None):
        gens = [torch.Generator().manual_seed(5 + i) for i in range(3)]
        muvb.z_generator = gens
        carry = None
        if state is None:
            y, v = init_chains(3, M, (d,), SIGMA, gens, dtype=torch.float64)
        else:
            cs, carry = state
            y, v = cs.restore(gens)
        for stop in walk_jump(muvb.score, muvb.jump, y, v, walk=walk, steps=steps, jump_every=7, generator=gens,
                              start_step=start, autograd=True, carry=carry):
            pass
        return stop, gens

    full, _ = run(0, 50)
    half, gens = run(0, 23)
    state = (ChainState.capture(half.y, half.v, half.step, gens), half.carry.clone())
    resumed, _ = run(23, 50, state)
    assert torch.equal(resumed.y, full.y) and torch.equal(resumed.v, full.v)
    again, _ = run(23, 50, (state[0], None))  # without the carried score, the resumed chain draws an extra z
    assert not torch.equal(again.y, full.y)


def test_paper_resnets_have_the_official_parameter_counts():
    """docs/official-settings.md §2: 10,703,296 (encoder) + 9,291,972 (decoder) at M = 4, zdim = 2048, width 128."""
    e = next(x for x in resolve("mnist", "paper") if x.id == "mnist-muvb-1x4")
    with torch.device("meta"):
        enc, dec = vae_resnets(e.model.M, e.model.zdim, e.model.width)
    assert sum(p.numel() for p in enc.parameters()) == 10_703_296
    assert sum(p.numel() for p in dec.parameters()) == 9_291_972


def test_narrow_resnets_map_shapes_and_train_by_double_backprop():
    torch.manual_seed(0)
    muvb = build_model(ModelSpec("muvb", "vdvae_resnet", 4, 1.0, 4, zdim=8), (1, 28, 28))
    y = torch.randn(2, 4, 1, 28, 28)
    mu, logvar = muvb.encode(y)
    assert mu.shape == logvar.shape == (2, 8, 1, 1)
    assert muvb.score(y).shape == y.shape and muvb.jump(y).shape == (2, 1, 28, 28)
    loss = muvb.loss(torch.rand(2, 1, 28, 28), torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None for p in muvb.parameters())
    g = torch.Generator().manual_seed(4)
    muvb.z_generator = g
    assert not torch.equal(muvb.score(y), muvb.score(y))  # resampled per evaluation
    muvb.z_mode = "mean"
    assert torch.equal(muvb.score(y), muvb.score(y))


def test_bad_muvb_settings_name_the_fix():
    with pytest.raises(UsageError, match="chain.muvb_z=mean"):
        resolve("toy-schemes", "smoke", {"chain.scheme": "ghmc"})
    resolve("toy-schemes", "smoke", {"chain.scheme": "ghmc", "chain.muvb_z": "mean"})  # deterministic energy: allowed
    with pytest.raises(UsageError, match="muvb_z"):
        resolve("toy-schemes", "smoke", {"chain.muvb_z": "mode"})
    with pytest.raises(UsageError, match="model.sigmoid=false"):
        resolve("toy-schemes", "smoke", {"model.sigmoid": "true"})
    with pytest.raises(ValueError, match="z mode"):
        linear_gaussian()[0].z_mode = "median"

