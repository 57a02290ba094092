"""The toy-claims study's settings: the sweeps, the claims they test, the notes under their tables, the sizes (profiles)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import UsageError
from ..runs.experiments import ChainSpec, resolve
from ..sampling.integrators import Walk

SWEEPS = ("large_m", "smoothing", "stability", "integrators", "clmc")
WALK_SETTINGS = ("chain.delta_over_sigma", "chain.gamma", "chain.u", "chain.scheme")  # what --set may change here
MIXTURE = "ring8"
SCOPE = ("Beyond-paper measurement on a toy distribution (2-D Gaussian mixture `ring8`: 8 modes of std 0.2 on a "
         "ring of radius 2.5), with exact scores and metrics; these are not paper numbers.")
CLAIMS = {
    "large_m": "This sampling scheme is exact for large M [poster]",
    "smoothing": "Smoothing is key for good mixing [poster]",
    "stability": "Stable chains with 1 million steps on MNIST and CIFAR-10 [poster]; here 200k steps on a toy",
    "integrators": "The walk samples the M-density [poster: walk-jump sampling]; here its discretisation bias on mode weights",
    "clmc": "Beyond the paper: the chain of log-concave Markov chains (Saremi, Park & Bach 2024) keeps one chain mixing at a "
            "small sigma_eff, against the plain walk-jump at equal score evaluations",
}
NOTES = {
    "large_m": [
        "sigma = 1; MSEs by Monte Carlo over fresh (X, Y) with common random numbers across M (`jump_mse_se`: standard error)",
        "mse_theory = d sigma^2 / M exactly for y_bar; the Bayes risk lies between d s^2 sigma_eff^2 / (s^2 + sigma_eff^2) "
        "(mode known, `mse_lower_bound`) and d sigma_eff^2 (`mse_upper_bound`)",
        "learned: MLP MDAE trained with `training.train` for the same budget at every M; `ybar-MDAE` is the beyond-paper "
        "shared denoiser of y_bar",
        "samples (table _samples): 'Y ~ p(y)' = jumps of i.i.d. exact measurements (a perfectly mixed walk); 'chain' = "
        "walk-jump chains (delta = sigma/2, gamma = 0.5, u = 1, paper init) after burn-in, jumps every lm_jump_every steps; "
        "energy distance to fresh exact samples of the same size, next to exact-vs-exact at that size (noise floor); "
        f"on_manifold of exact samples: {1 - math.exp(-4.5):.3f}",
    ],
    "smoothing": [
        "exact score; gamma_eff = gamma sqrt(M): at fixed sigma_eff the exact walk of y_bar is the M = 1 walk at sigma_eff "
        "with friction gamma_eff (module docstring); `control_for` rows run that M = 1 walk",
        "per chain (one torch.Generator each), mean and standard error over chains: switch_rate = fraction of consecutive "
        "jumps assigned to different modes; iat_cos_steps = integrated autocorrelation time of cos(angle of the jump) "
        "centred at its known stationary mean 0, in walk steps (censored chains: no Sokal window, value is a lower bound; "
        "`_library` = metrics.integrated_autocorr_time, centred at each chain's own mean); modes_visited of 8; "
        "cover_steps_median = post-burn-in steps until all 8 modes were visited (median over chains, empty if most never did); "
        "chain_mode_tv vs iid_mode_tv = the same for i.i.d. exact jumps of the same count",
    ],
    "stability": [
        "one chain each, sigma = 1, M = 4 (the `toy` experiment), jumps every 20 steps; windows = first / last 10% of the jumps",
        "jump_radius_se, kinetic_per_coord_se: batch means (10 batches); kinetic target u / (1 - delta^2 / (4 sigma^2)) = 1.067 "
        "in the (M-1)d directions of curvature 1/sigma^2 (slightly lower in the y_bar directions); spread target sigma^2",
        "reference row: i.i.d. exact jumps of a window's size (what a perfectly mixed walk would give)",
    ],
    "integrators": [
        "ring8-unequal (weights 1..8 / 36), sigma = 1, M = 4, exact score and energy; gamma = 0.5, u = 1; one score per step "
        "for every integrator (ghmc: one energy-and-score)",
        "light_share = mean over jumps and chains of the exact posterior weight of the 4 lightest modes (exact 10/36 = 0.278); "
        "light_share_se over independent chains; light_share_z = (light_share - exact) / se",
        "ghmc: generalized HMC with a Metropolis test, exact for every delta; v_var = mean v^2 / u (continuous dynamics: 1)",
    ],
    "clmc": [
        "exact denoiser x_hat(ybar; sigma/sqrt(m)) at every level; both samplers jump to x_hat(ybar_M) at sigma_eff, so their "
        "exact stationary laws agree; each chain spends the smoothing sweep's score evaluations (walk steps + jumps; a CLMC "
        "jump costs 1 + (M - 1)(K + 1)); the walk is the toy experiment's (chain.*), the inner walks chain.clmc_inner_*",
        "per chain, mean and standard error over chains: switches_per_1e4_evals = mode changes between consecutive jumps per "
        "10^4 score evaluations; chain_mode_tv vs iid_mode_tv = the same for i.i.d. exact jumps of the same count; "
        "energy_distance of all chains' jumps to exact jumps (n_eval)",
        "_inner: per level m, r = |y_m - x_hat(ybar_m)|^2 / (d sigma^2) of the inner walk after its first step and settled "
        "(mean over the second half of cl_inner_trace_steps steps, cl_inner_chains chains from exact y_1); settle_step = "
        "the first inner step from which the mean stays within 3 SE of the settled value: K = chain.clmc_inner_steps "
        "below it leaves the conditional unconverged",
    ],
}


def toy_chain(overrides: dict[str, str] | None = None) -> ChainSpec:
    """The registry's `toy` experiment's chain settings, with the walk's settings (WALK_SETTINGS) overridden and
    checked by the registry."""
    other = sorted(set(overrides or {}) - set(WALK_SETTINGS))
    if other:
        raise UsageError(f"--set {', '.join(other)}: the claims study's --set takes the walk's settings only: "
                         f"{', '.join(WALK_SETTINGS)}")
    return resolve("toy", "paper", overrides)[0].chain


@dataclass(frozen=True)
class Profile:
    """Sizes of every sweep. The walk (delta/sigma, gamma, u, integrator) is `chain`'s, the registry's `toy`
    experiment's (`--set chain.delta_over_sigma=...` changes it); the sweeps set their own lengths and sigma."""

    name: str
    seed: int = 0
    chain: ChainSpec = field(default_factory=toy_chain)
    # large_m
    Ms: tuple[int, ...] = (1, 2, 4, 8, 16)
    sigma: float = 1.0
    mc_n: int = 200_000  # Monte Carlo samples for the MSEs (common random numbers across M)
    n_eval: int = 4000  # samples per sampler row (and per exact reference set)
    train_steps: int = 3000  # = the `toy` experiment's quick profile: MLP width 128, batch 256, lr 1e-3 cosine
    batch_size: int = 256
    lr: float = 1e-3
    hidden: int = 128
    depth: int = 3
    parametrizations: tuple[str, ...] = ("mdae", "ybar")
    lm_chains: int = 40
    lm_burn_in: int = 1000
    lm_jump_every: int = 20  # the paper's FID protocol spacing (1M steps / 50k samples)
    # smoothing
    sigma_effs: tuple[float, ...] = (0.5, 0.25)
    sigmas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    fixed_M: int = 4  # the fixed-M rows: sigma in `sigmas` at this M
    sm_chains: int = 16
    sm_steps: int = 10_000
    sm_burn_in: int = 1000
    sm_jump_every: int = 10
    sm_controls: bool = True
    # stability
    st_sigma: float = 1.0
    st_M: int = 4
    st_steps: int = 200_000
    st_jump_every: int = 20
    st_learned: bool = True
    # integrators
    in_deltas: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5)
    in_integrators: tuple[str, ...] = ("aboba", "baoab", "cheng", "ghmc")
    in_chains: int = 64
    in_steps: int = 6000
    in_burn_in: int = 1000
    in_jump_every: int = 10
    # clmc (the chain's sizes are the smoothing sweep's; the inner walks are chain.clmc_inner_*)
    cl_max_M: int = 16
    cl_inner_chains: int = 400  # the inner-walk trace: chains (one batch), steps per level
    cl_inner_trace_steps: int = 16

    def walk(self, sigma: float, gamma: float | None = None) -> Walk:
        """The walk at noise level sigma (delta = chain.delta_over_sigma * sigma), optionally at another friction."""
        c = self.chain
        return Walk(c.delta_over_sigma * sigma, c.gamma if gamma is None else gamma, c.u, c.scheme)

    @property
    def suffix(self) -> str:
        """Output-name suffix: the profile (none for full) and any walk setting that is not the toy experiment's."""
        default = toy_chain()
        walk = [f"{k}{getattr(self.chain, k)}" for k in ("scheme", "delta_over_sigma", "gamma", "u")
                if getattr(self.chain, k) != getattr(default, k)]
        return "".join(f"_{part}" for part in ([] if self.name == "full" else [self.name]) + walk)


FULL = Profile("full")
QUICK = Profile("quick", Ms=(1, 4, 16), mc_n=20_000, n_eval=200, train_steps=30, hidden=16, parametrizations=("mdae",),
                lm_chains=4, lm_burn_in=100, lm_jump_every=10, sigma_effs=(0.5,), sigmas=(0.5, 1.0, 2.0),
                sm_chains=8, sm_steps=1200, sm_burn_in=200, sm_jump_every=10, sm_controls=False, cl_inner_chains=50,
                st_steps=1500, st_learned=True, in_deltas=(0.5, 1.5), in_chains=8, in_steps=600, in_burn_in=100)
PROFILES = {"full": FULL, "quick": QUICK}
