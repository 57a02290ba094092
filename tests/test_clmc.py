"""The chain of log-concave Markov chains (sampling/clmc.py, docs/method.md §6) against closed forms, and the
noise-conditional denoiser it needs (core/schemes.py YbarLevels)."""

from __future__ import annotations

import math

import pytest
import torch

from replication.core.nets import build_net
from replication.core.schemes import MDAE, YbarLevels
from replication.errors import UsageError
from replication.runs.experiments import resolve
from replication.sampling.clmc import CLMC, settling_steps
from replication.sampling.integrators import Walk

MU, TAU, SIGMA = 0.3, 1.0, 1.0  # prior x ~ N(MU, TAU^2 I)


def gaussian_denoise(ybar: torch.Tensor, m: int) -> torch.Tensor:
    """The exact x_hat(ybar; sigma/sqrt(m)) of the Gaussian prior: MU + TAU^2/(TAU^2 + s^2) (ybar - MU)."""
    s2 = SIGMA**2 / m
    return MU + TAU**2 / (TAU**2 + s2) * (ybar - MU)


def clmc_jumps(M: int, inner_steps: int, n: int = 6000, d: int = 2, integrator: str = "baoab",
               start_level: int = 1) -> torch.Tensor:
    """Jumps of n independent CLMC samples whose outer state ybar_{m0} (y_1 at m0 = 1) is drawn exactly from its
    density N(MU, (TAU^2 + SIGMA^2 / m0) I)."""
    g = torch.Generator().manual_seed(0)
    ybar = MU + math.sqrt(TAU**2 + SIGMA**2 / start_level) * torch.randn(n, 1, d, generator=g)
    sampler = CLMC(gaussian_denoise, SIGMA, M, Walk(0.5 * SIGMA, 2.0, 1.0, integrator), inner_steps, g,
                   start_level=start_level)
    with torch.inference_mode():
        return sampler.jump(ybar)


@pytest.mark.parametrize("integrator", ["baoab", "aboba"])
def test_clmc_jump_has_the_exact_law_of_x_hat_at_level_M(integrator):
    """y_1..y_M drawn one at a time have the M-density's law, so x_hat(ybar_M) ~ N(MU, TAU^4 / (TAU^2 + SIGMA^2/M)).
    With too short inner walks (K = 1) the draws start from x_hat(ybar_{m-1}) + sigma eps, which lacks the
    posterior's spread: the jumps come out visibly too narrow (the check below can fail)."""
    M = 8
    exact_var = TAU**4 / (TAU**2 + SIGMA**2 / M)
    x = clmc_jumps(M, inner_steps=30, integrator=integrator)
    se_var = exact_var * math.sqrt(2 / x.numel())
    assert abs(x.mean().item() - MU) < 4 * math.sqrt(exact_var / x.numel())
    assert abs(x.var().item() - exact_var) < 4 * se_var, (x.var().item(), exact_var)
    short = clmc_jumps(M, inner_steps=1, integrator=integrator)
    assert exact_var - short.var().item() > 5 * se_var, (short.var().item(), exact_var)


def test_clmc_from_a_later_level_has_the_same_exact_law():
    """chain.clmc_start_level m0: the outer state ybar_{m0} is sufficient for x given y_1..y_{m0}, so inner walks on
    y_{m0+1}..y_M from an exact ybar_{m0} give the same law of x_hat(ybar_M); the outer walk's score is that of the
    data smoothed at sigma/sqrt(m0) (closed form of the Gaussian prior)."""
    M, m0 = 8, 4
    exact_var = TAU**4 / (TAU**2 + SIGMA**2 / M)
    x = clmc_jumps(M, inner_steps=30, start_level=m0)
    se_var = exact_var * math.sqrt(2 / x.numel())
    assert abs(x.mean().item() - MU) < 4 * math.sqrt(exact_var / x.numel())
    assert abs(x.var().item() - exact_var) < 4 * se_var, (x.var().item(), exact_var)
    sampler = CLMC(gaussian_denoise, SIGMA, M, Walk(0.5), 3, torch.Generator(), start_level=m0)
    ybar = torch.randn(5, 1, 2, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(sampler.score(ybar), -(ybar - MU) / (TAU**2 + SIGMA**2 / m0))  # grad log N(MU, s^2)
    with pytest.raises(ValueError, match="start level"):
        CLMC(gaussian_denoise, SIGMA, M, Walk(0.5), 3, torch.Generator(), start_level=M + 1)


def test_clmc_counts_its_score_evaluations():
    calls = []

    def counting(ybar, m):
        calls.append(m)
        return gaussian_denoise(ybar, m)

    g = torch.Generator().manual_seed(1)
    for integrator in ("baoab", "aboba"):
        calls.clear()
        sampler = CLMC(counting, SIGMA, 4, Walk(0.5, 2.0, 1.0, integrator), 3, g)
        with torch.inference_mode():
            sampler.jump(torch.randn(5, 1, 2, generator=g))
        assert len(calls) == sampler.evals_per_jump == 1 + 3 * (3 + 1)
        assert sorted(set(calls)) == [1, 2, 3, 4]
        calls.clear()  # from start level 3: x_hat(ybar_3), then level 4 alone
        sampler = CLMC(counting, SIGMA, 4, Walk(0.5, 2.0, 1.0, integrator), 3, g, start_level=3)
        with torch.inference_mode():
            sampler.jump(torch.randn(5, 1, 2, generator=g))
        assert len(calls) == sampler.evals_per_jump == 1 + 1 * (3 + 1) and sorted(set(calls)) == [3, 4]


def test_ybar_levels_denoiser_trains_every_level_and_serves_the_walk_at_level_M():
    torch.manual_seed(0)
    scheme = YbarLevels(build_net("small_unet", 1, 1, width=8, noise_conditional=True), sigma=1.0, M=4, sigmoid=True)
    x = torch.rand(8, 1, 6, 6)
    y = scheme.mnm.measure(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        # the loss: example i at level m = 1 + (i mod M), on the mean of its first m measurements
        by_hand = torch.stack([((x[i] - scheme.denoise(y[i : i + 1, : i % 4 + 1].mean(1), i % 4 + 1)[0]) ** 2).sum()
                               for i in range(8)]).mean()
        torch.testing.assert_close(scheme.loss(x, y=y), by_hand)
        # as a walk-jump model: the ybar MDAE at level M, score (x_hat(ybar_M) - y) / sigma^2
        x_hat = scheme.denoise(y.mean(1), 4)
        torch.testing.assert_close(scheme.jump(y), x_hat)
        torch.testing.assert_close(scheme.score(y), (x_hat.unsqueeze(1) - y) / 1.0)
        # the level reaches the net: the same input at another level gives another output
        assert (scheme.denoise(y.mean(1), 1) - x_hat).abs().max() > 1e-4
        # levels as a tensor (training) and as an int (sampling) agree
        torch.testing.assert_close(scheme.denoise(y.mean(1), torch.full((8,), 4)), x_hat)


def test_clmc_settings_are_checked():
    with pytest.raises(UsageError, match="model.parametrization=ybar-levels"):
        resolve("fashion-mnist", "smoke", {"chain.sampler": "clmc"})
    with pytest.raises(UsageError, match="unknown chain.sampler"):
        resolve("fashion-mnist-clmc", "smoke", {"chain.sampler": "gibbs"})
    with pytest.raises(UsageError, match="clmc_inner_steps"):
        resolve("fashion-mnist-clmc", "smoke", {"chain.clmc_inner_steps": "0"})
    for m0 in ("0", "17"):
        with pytest.raises(UsageError, match="clmc_start_level must be in"):
            resolve("fashion-mnist-clmc", "smoke", {"chain.clmc_start_level": m0})
    e = resolve("fashion-mnist-clmc", "smoke", {"chain.clmc_start_level": "4"})[0]  # the walk's step scales with its level
    assert e.walk_sigma == e.model.sigma / 2 and e.walk.delta == e.chain.delta_over_sigma * e.model.sigma / 2
    with pytest.raises(ValueError, match="M >= 2"):
        CLMC(gaussian_denoise, 1.0, 1, Walk(0.5), 3, torch.Generator())


def test_warm_start_from_a_paper_mdae_gives_its_output_at_every_level():
    """train.init_from: before training, the ybar-levels net is the source MDAE fed ybar in every slot (the mean of
    its M output maps before the sigmoid) at every level; a source at another sigma is refused."""
    torch.manual_seed(0)
    M = 4
    source = MDAE(build_net("small_unet", M, M, width=8), sigma=1.0, M=M, sigmoid=True).eval()
    target = YbarLevels(build_net("small_unet", 1, 1, width=8, noise_conditional=True), sigma=1.0, M=M, sigmoid=True)
    target.warm_start(source)
    ybar = torch.rand(3, 1, 10, 10) + 0.3 * torch.randn(3, 1, 10, 10)
    with torch.no_grad():
        expected = torch.sigmoid(source.net(ybar.repeat(1, M, 1, 1) / source.s).mean(1, keepdim=True))
        for m in (1, 2, M):
            torch.testing.assert_close(target.denoise(ybar, m), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="sigma = 1"):
        target.warm_start(MDAE(build_net("small_unet", M, M, width=8), sigma=0.5, M=M, sigmoid=True))


def test_settling_step_of_a_trace_with_a_known_transient():
    """r = 0.5 for the first 3 inner steps, then 1 (+ noise of SE 0.01): settles at step 4; a flat trace at step 1."""
    g = torch.Generator().manual_seed(0)
    r = 1 + 0.2 * torch.randn(12, 400, generator=g)
    r[:3] = 0.5
    flat = 1 + 0.2 * torch.randn(12, 400, generator=g)
    st = settling_steps([(2, r[:, :200]), (2, r[:, 200:]), (3, flat)])
    assert st[2]["settle_step"] == 4 and st[2]["chains"] == 400 and abs(st[2]["r_first"] - 0.5) < 1e-6
    assert abs(st[2]["r_inf"] - 1) < 0.02 and st[3]["settle_step"] <= 2
