"""The walk: exact stationary moments on a Gaussian, divergence reporting, mode weights, bit-exact resume."""

import math

import pytest
import torch

from replication.core.mnm import GaussianMixture, GaussianMNM
from replication.sampling.chains import ChainState, init_chains
from replication.sampling.integrators import INTEGRATORS, ChainDiverged, Walk, Walker, walk
from replication.data.storage import load_checked, save_checked


def gaussian_moments(s, delta, gamma, u, integrator="aboba", chains=4000, burn=300, steps=1500):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(chains, 1, 1, generator=g, dtype=torch.float64) * s
    v = torch.zeros_like(y)
    score = lambda y: -y / s**2
    y, v = walk(score, y, v, steps=burn, delta=delta, gamma=gamma, u=u, generator=g, integrator=integrator)
    ys, vs = [], []
    for _ in range(steps // 10):
        y, v = walk(score, y, v, steps=10, delta=delta, gamma=gamma, u=u, generator=g, integrator=integrator)
        ys.append(y.flatten())
        vs.append(v.flatten())
    return torch.cat(ys).var().item(), torch.cat(vs).var().item()


@pytest.mark.parametrize("s,delta,gamma,u", [(1.0, 0.5, 0.5, 1.0), (1.0, 1.0, 0.5, 1.0), (4.0, 2.0, 0.5, 1.0), (1.0, 0.5, 1.0, 2.0)])
def test_aboba_stationary_moments_on_gaussian(s, delta, gamma, u):
    """docs/method.md §3.4: Var(y) = s^2 exactly, Var(v) = u / (1 - u delta^2 / (4 s^2))."""
    var_y, var_v = gaussian_moments(s, delta, gamma, u)
    assert var_y == pytest.approx(s**2, rel=0.03)
    assert var_v == pytest.approx(u / (1 - u * delta**2 / (4 * s**2)), rel=0.03)


def cheng_stationary_covariance(s, delta, gamma, u):
    """Fixed point of S = A S A^T + Q for the frozen-gradient linear SDE step of docs/method.md §3.3 on N(0, s^2)."""
    z1, z2 = math.exp(-gamma * delta), math.exp(-2 * gamma * delta)
    c = (1 - z1) / gamma
    A = torch.tensor([[1 - u / gamma * (delta - c) / s**2, c], [-u * c / s**2, z1]], dtype=torch.float64)
    var_y = u / gamma * (2 * delta - 4 * c + (1 - z2) / gamma)
    cov = u / gamma * (1 - 2 * z1 + z2)
    Q = torch.tensor([[var_y, cov], [cov, u * (1 - z2)]], dtype=torch.float64)
    return fixed_point(A, Q)


def fixed_point(A, Q):
    S = torch.zeros(2, 2, dtype=torch.float64)
    for _ in range(5000):
        S = A @ S @ A.T + Q
    return S


def integrator_stationary_covariance(name, s, delta, gamma, u):
    """On N(0, s^2) one step of any integrator is linear: (y', v') = A (y, v) + B eps. Read A and B off the
    library's own step (unit inputs, unit noise) and solve S = A S A^T + B B^T."""
    integ = INTEGRATORS[name](Walk(delta, gamma, u, name))
    score = lambda y: -y / s**2
    n_noise = 2 if name == "cheng" else 1

    class Given:  # the noise the step asks for, in order
        def __init__(self, eps):
            self.it = iter(eps)

        def normal(self):
            return torch.tensor([[next(self.it)]], dtype=torch.float64)

    def apply(y0, v0, eps):
        y, v = torch.tensor([[y0]], dtype=torch.float64), torch.tensor([[v0]], dtype=torch.float64)
        integ.step(score, y, v, integ.start(score, y), Given(eps))
        return [y.item(), v.item()]

    zero = [0.0] * n_noise
    A = torch.tensor([apply(1.0, 0.0, zero), apply(0.0, 1.0, zero)], dtype=torch.float64).T
    B = torch.tensor([apply(0.0, 0.0, [float(j == i) for j in range(n_noise)]) for i in range(n_noise)],
                     dtype=torch.float64).T
    return fixed_point(A, B @ B.T)


@pytest.mark.parametrize("delta", [0.25, 0.5])
def test_cheng_discretization_matches_its_exact_stationary_covariance(delta):
    """Cheng et al. is first order: its stationary Var(y) is biased (1.33 s^2 at delta = s/4), and the sampler
    must reproduce exactly that bias, which shrinks as delta -> 0."""
    S = cheng_stationary_covariance(1.0, delta, 0.5, 1.0)
    var_y, var_v = gaussian_moments(1.0, delta, 0.5, 1.0, integrator="cheng")
    assert var_y == pytest.approx(S[0, 0].item(), rel=0.04)
    assert var_v == pytest.approx(S[1, 1].item(), rel=0.04)
    assert cheng_stationary_covariance(1.0, 0.01, 0.5, 1.0)[0, 0] == pytest.approx(1.0, rel=0.02)
    torch.testing.assert_close(integrator_stationary_covariance("cheng", 1.0, delta, 0.5, 1.0), S)


@pytest.mark.parametrize("s,delta,gamma,u", [(1.0, 0.5, 0.5, 1.0), (4.0, 2.0, 0.5, 1.0), (1.0, 0.5, 1.0, 2.0)])
def test_baoab_stationary_moments_on_gaussian(s, delta, gamma, u):
    """docs/method.md §3.5: BAOAB samples y exactly on a Gaussian too, with the velocity variance deflated where
    ABOBA's is inflated: Var(v) = u (1 - u delta^2 / (4 s^2)). Closed form, the library step's own linear map,
    and a Monte Carlo walk agree."""
    S = integrator_stationary_covariance("baoab", s, delta, gamma, u)
    assert S[0, 0].item() == pytest.approx(s**2, rel=1e-9)
    assert S[1, 1].item() == pytest.approx(u * (1 - u * delta**2 / (4 * s**2)), rel=1e-9)
    S_aboba = integrator_stationary_covariance("aboba", s, delta, gamma, u)
    assert S_aboba[1, 1].item() == pytest.approx(u / (1 - u * delta**2 / (4 * s**2)), rel=1e-9)
    var_y, var_v = gaussian_moments(s, delta, gamma, u, integrator="baoab")
    assert var_y == pytest.approx(s**2, rel=0.03)
    assert var_v == pytest.approx(S[1, 1].item(), rel=0.03)


def test_baoab_spends_one_score_per_step_across_segments_and_resumes_bit_exactly():
    """The Walker carries BAOAB's last score: k segments of n steps cost k*n + 1 scores, give the same numbers as
    one walk of k*n steps, and a fresh Walker from the saved state (which re-evaluates the score once) too."""
    calls = []

    def score(y):
        calls.append(1)
        return 0.5 * torch.tanh(y) - y

    w = Walk(0.5, 0.5, 1.0, "baoab")
    y0, v0 = init_chains(2, 3, (4,), 1.0, torch.Generator().manual_seed(0))
    y_full, v_full = Walker(score, w, torch.Generator().manual_seed(1)).run(y0, v0, 30)
    calls.clear()
    g = torch.Generator().manual_seed(1)
    walker, (y, v) = Walker(score, w, g), (y0, v0)
    for k in range(3):
        y, v = walker.run(y, v, 5, start_step=5 * k)
    assert len(calls) == 15 + 1
    state = ChainState.capture(y, v, 15, g)
    g2 = torch.Generator()
    y, v = state.restore(g2)
    y, v = Walker(score, w, g2).run(y, v, 15, start_step=15)
    assert torch.equal(y, y_full) and torch.equal(v, v_full)


def test_step_past_stability_raises_with_step_number():
    """delta > 2 s / sqrt(u) diverges: a ChainDiverged naming the step, never NaN output."""
    g = torch.Generator().manual_seed(1)
    y = torch.ones(2, 1, 3)
    with pytest.raises(ChainDiverged) as info:
        walk(lambda y: -y, y, torch.zeros_like(y), steps=10_000, delta=2.2, gamma=0.5, u=1.0, generator=g, start_step=100)
    assert 100 < info.value.step < 10_100
    assert "step" in str(info.value) and "delta" in str(info.value)


def test_bad_parameters_are_refused():
    y = torch.zeros(1, 1, 1)
    with pytest.raises(ValueError, match="delta"):
        walk(lambda y: -y, y, y, steps=1, delta=0.0, gamma=0.5, generator=torch.Generator())
    with pytest.raises(ValueError, match="integrator"):
        walk(lambda y: -y, y, y, steps=1, delta=0.5, gamma=0.5, generator=torch.Generator(), integrator="leapfrog")


def test_exact_score_chain_visits_every_mode_with_the_right_weights():
    """Chains on the exact M-density of a 2-D mixture: E_y[p(k|y)] = w_k, and jumps land on every mode."""
    prior = GaussianMixture(torch.tensor([[-1.2, -1.2], [1.2, -1.2], [-1.2, 1.2], [1.2, 1.2]]),
                            torch.full((4,), 0.2), torch.tensor([0.4, 0.3, 0.2, 0.1]))
    mnm = GaussianMNM(1.0, 2)
    g = torch.Generator().manual_seed(2)
    y, v = init_chains(64, 2, (2,), 1.0, g, dtype=torch.float64)
    score = lambda y: prior.score(y, mnm)
    y, v = walk(score, y, v, steps=200, delta=0.5, gamma=0.5, generator=g)
    resp, nearest = [], []
    for _ in range(300):
        y, v = walk(score, y, v, steps=5, delta=0.5, gamma=0.5, generator=g)
        resp.append(prior.responsibilities(y, mnm))
        x_hat = prior.x_hat(y, mnm)
        k = torch.cdist(x_hat, prior.means).argmin(1)
        nearest.append(k)
    resp, nearest = torch.stack(resp), torch.stack(nearest)
    torch.testing.assert_close(resp.mean((0, 1)), prior.weights, atol=0.03, rtol=0)
    freq = torch.bincount(nearest.flatten(), minlength=4).double() / nearest.numel()
    torch.testing.assert_close(freq, prior.weights, atol=0.04, rtol=0)
    assert set(nearest[:, 0].tolist()) == {0, 1, 2, 3}  # a single chain visits every mode


@pytest.mark.parametrize("per_chain", [False, True])
def test_save_restore_continue_is_bit_exact(tmp_path, per_chain):
    net = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(12, 12), torch.nn.Tanh(), torch.nn.Linear(12, 12))
    torch.manual_seed(0)
    score = lambda y: (net(y).reshape(y.shape) - y) / 0.5**2

    def gens():
        return [torch.Generator().manual_seed(10 + i) for i in range(3)] if per_chain else torch.Generator().manual_seed(9)

    with torch.no_grad():
        g = gens()
        y0, v0 = init_chains(3, 4, (3,), 0.5, g)
        y_full, v_full = walk(score, y0, v0, steps=50, delta=0.25, gamma=0.5, generator=g)

        g = gens()
        y, v = init_chains(3, 4, (3,), 0.5, g)
        y, v = walk(score, y, v, steps=20, delta=0.25, gamma=0.5, generator=g)
        save_checked(ChainState.capture(y, v, 20, g).to_dict(), tmp_path / "state.pt")
        del y, v, g

        g = gens()  # fresh generators, as a new process would have
        state = ChainState.from_dict(load_checked(tmp_path / "state.pt"))
        y, v = state.restore(g)
        y, v = walk(score, y, v, steps=30, delta=0.25, gamma=0.5, generator=g, start_step=state.step)
    assert torch.equal(y, y_full) and torch.equal(v, v_full)


def test_per_chain_generators_make_a_chain_independent_of_its_batch():
    score = lambda y: -y
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    y, v = init_chains(3, 2, (5,), 1.0, gens)
    y3, _ = walk(score, y, v, steps=10, delta=0.5, gamma=0.5, generator=gens)
    g1 = [torch.Generator().manual_seed(2)]
    y1, v1 = init_chains(1, 2, (5,), 1.0, g1)
    y1, _ = walk(score, y1, v1, steps=10, delta=0.5, gamma=0.5, generator=g1)
    assert torch.equal(y3[1], y1[0])


def test_init_replicates_one_uniform_image_across_measurements():
    """y_0 = u + sigma eps with one U(0, 1) image u per chain shared by the M blocks (the generator's draws in order:
    chain 1's u and eps, then chain 2's), v_0 = 0."""
    sigma = 0.1
    y, v = init_chains(2, 8, (1, 4, 4), sigma, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    want = []
    for _ in range(2):
        u = torch.rand((1, 4, 4), generator=g)
        want.append(u.expand(8, 1, 4, 4) + sigma * torch.randn((8, 1, 4, 4), generator=g))
    torch.testing.assert_close(y, torch.stack(want), rtol=0, atol=0)
    assert not v.any() and v.shape == y.shape


def test_deferred_divergence_check_reports_the_same_step():
    """check_every > 1 (no host sync per step, for GPUs) names the same first non-finite step."""
    steps = []
    for check_every in (1, 7, 100):
        y = torch.ones(2, 1, 3)
        with pytest.raises(ChainDiverged) as info:
            walk(lambda y: -y, y, torch.zeros_like(y), steps=2000, delta=2.2, gamma=0.5, u=1.0,
                 generator=torch.Generator().manual_seed(1), check_every=check_every)
        steps.append(info.value.step)
    assert steps[0] == steps[1] == steps[2]


def test_ghmc_is_exact_at_a_step_where_aboba_flattens_the_mode_weights():
    """docs/method.md §3.6: with the exact energy of a 2-D mixture's M-density (M = 2, sigma = 1) at delta = 1.5 sigma,
    the Metropolis-adjusted walk keeps E_y[p(k|y)] = w_k and E|y|^2 exact; ABOBA at the same step moves weight from
    the likely modes to the unlikely ones (0.36 / 0.13 for 0.4 / 0.1), which is what makes the test able to fail."""
    prior = GaussianMixture(torch.tensor([[-1.2, -1.2], [1.2, -1.2], [-1.2, 1.2], [1.2, 1.2]], dtype=torch.float64),
                            torch.full((4,), 0.2, dtype=torch.float64), torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64))
    mnm = GaussianMNM(1.0, 2)
    m2 = float((prior.weights * ((prior.means**2).sum(1) + 2 * prior.stds**2)).sum()) + 2 * 1.0  # E|y_m|^2

    def run(integrator):
        g = torch.Generator().manual_seed(2)
        y, v = init_chains(256, 2, (2,), 1.0, g, dtype=torch.float64)
        walker = Walker(lambda y: prior.score(y, mnm), Walk(1.5, 0.5, 1.0, integrator), g,
                        energy_fn=lambda y: (-prior.log_prob(y, mnm), prior.score(y, mnm)))
        y, v = walker.run(y, v, 200)
        resp, sq = [], []
        for _ in range(200):
            y, v = walker.run(y, v, 5)
            resp.append(prior.responsibilities(y, mnm).mean(0))
            sq.append((y**2).sum(-1).mean())
        sq = torch.stack(sq)
        return torch.stack(resp).mean(0), float(sq.mean()), float(sq.std() / len(sq) ** 0.5), walker.integrator

    resp, mean_sq, se, ghmc = run("ghmc")
    torch.testing.assert_close(resp, prior.weights, atol=0.015, rtol=0)
    assert abs(mean_sq - m2) < 3 * se
    assert 0.3 < int(ghmc.accepted) / ghmc.proposed < 0.8
    resp_aboba, mean_sq_aboba, _, _ = run("aboba")
    assert (resp_aboba - prior.weights).abs().max() > 0.025 and resp_aboba[3] > prior.weights[3]


def test_ghmc_without_an_energy_is_refused():
    with pytest.raises(ValueError, match="energy"):
        Walker(lambda y: -y, Walk(0.5, 0.5, 1.0, "ghmc"), torch.Generator())
