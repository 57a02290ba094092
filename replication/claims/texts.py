"""The toy-claims study's words: its scope, the claim each sweep tests (the poster's from runs/paper.py), the notes
under its tables."""

from __future__ import annotations

import math

from ..runs.paper import claim


def _poster(key: str, here: str = "") -> str:
    """The poster's claim `key` (runs/paper.py CLAIMS) as a sweep tests it, and how the toy scales it down."""
    return f"{claim(key).claim} [poster]" + (f"; {here}" if here else "")


SCOPE = ("Beyond-paper measurement on a toy distribution (2-D Gaussian mixture `ring8`: 8 modes of std 0.2 on a "
         "ring of radius 2.5), with exact scores and metrics; these are not paper numbers.")
CLAIMS = {
    "large_m": _poster("exact_large_m"),
    "smoothing": _poster("smoothing"),
    "stability": _poster("stable_1m", "here 200k steps on a toy"),
    "integrators": "The walk samples the M-density [poster: walk-jump sampling]; here its discretisation bias on mode weights",
    "clmc": "Beyond the paper: the chain of log-concave Markov chains (Saremi, Park & Bach 2024) keeps one chain mixing at a "
            "small sigma_eff, against the plain walk-jump at equal score evaluations",
}
MUVB_NOTE = ("MUVB (beyond the paper, docs/method.md §2.4): the `toy-muvb-1x4` scheme (its beta and zdim: config "
             "muvb_*) with MLP encoder and decoder of the MDAE's width and depth, trained with the same TrainSpec (own "
             "seed); its score and jump are stochastic: z is redrawn at every evaluation (chain.muvb_z = sample, the "
             "toy experiment's default), in a chain from the chain's generator")
NOTES = {
    "large_m": [
        "sigma = 1; MSEs by Monte Carlo over fresh (X, Y) with common random numbers across M (`jump_mse_se`: standard error)",
        "mse_theory = d sigma^2 / M exactly for y_bar; the Bayes risk lies between d s^2 sigma_eff^2 / (s^2 + sigma_eff^2) "
        "(mode known, `mse_lower_bound`) and d sigma_eff^2 (`mse_upper_bound`)",
        "learned: MLP MDAE trained with `training.train` for the same budget at every M; `ybar-MDAE` is the beyond-paper "
        "shared denoiser of y_bar",
        MUVB_NOTE + "; the MSE and perfect-walk rows draw z from generators of their own",
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
        "learned rows: the MLP MDAE and MUVB trained as in large_m at (sigma, M) = (1, 4); " + MUVB_NOTE,
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
