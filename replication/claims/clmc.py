"""The toy-claims study's fifth sweep (beyond the paper): the chain of log-concave Markov chains against the plain
walk-jump at equal score evaluations, with the exact denoiser at every level (docs/method.md §6).

For each sigma_eff of the smoothing sweep and each M of cl_Ms (sigma = sigma_eff sqrt(M)), both
samplers run `sm_chains` independent chains (one generator each) on the ring mixture, each chain spending the same
number of score evaluations as the smoothing sweep's chains (sm_steps walk steps and a jump every sm_jump_every):
the plain walk-jump on the joint M-density, and CLMC (its outer walk on y_1 at sigma, inner walks on y_2..y_M). Both
jump to x_hat(ybar_M) at sigma_eff, so their exact stationary laws are the same; what differs is mixing and bias.
Rows: mode switches per 10^4 score evaluations, the per-chain mode-weight TV against i.i.d. exact jumps of the same
count, and the energy distance of the pooled jumps to exact jumps. Where it stops working, per (sigma, M) and level m
(rows with `level`, table `_inner`): the inner walk's statistic r = |y_m - x_hat(ybar_m)|^2 / (d sigma^2) over
cl_inner_trace_steps inner steps from exact y_1 draws, and the step at which it settles (sampling.clmc.settling_steps).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..core import seeding
from ..core.mnm import GaussianMixture
from ..evaluation.metrics import class_switch_rate, energy_distance, total_variation
from ..sampling.chains import init_chains
from ..sampling.clmc import CLMC, evals_per_jump, settling_steps
from ..sampling.integrators import Walk
from .chains import ExactMDensity, chain_generators, labels_of, mean_se, run_chains, sample_stats
from .profiles import Profile


def clmc_configs(p: Profile) -> list[dict]:
    """Per sigma_eff of the smoothing sweep, the outer level sigma = sigma_eff sqrt(M) for M in cl_Ms: at M = 1 CLMC
    is the plain walk at sigma_eff, so the rows show from which sigma on the outer walk's smoothing pays."""
    return [{"sigma_eff": se, "sigma": se * math.sqrt(M), "M": M} for se in p.sigma_effs for M in p.cl_Ms]


def _rows_of(jumps: np.ndarray, prior: GaussianMixture, evals: int, exact: np.ndarray, tv_iid: list[float]) -> dict:
    """Per-chain mode switches and mode TV, pooled energy distance: jumps (chains, n, d)."""
    K = len(prior.weights)
    switch, tv = [], []
    for ch in jumps:
        lab = labels_of(ch, prior)
        switch.append(class_switch_rate(lab) * (len(lab) - 1))
        tv.append(total_variation(np.bincount(lab, minlength=K) / len(lab), prior.weights))
    sw, sw_se = mean_se(np.asarray(switch) / evals * 1e4)
    tvm, tv_se = mean_se(tv)
    pooled = jumps.reshape(-1, jumps.shape[-1])
    m = min(len(pooled), len(exact))
    return {"jumps_per_chain": jumps.shape[1], "switches_per_1e4_evals": sw, "switches_per_1e4_evals_se": sw_se,
            "chain_mode_tv": tvm, "chain_mode_tv_se": tv_se, "iid_mode_tv": mean_se(tv_iid)[0],
            "pooled_mode_tv": sample_stats(pooled, prior)["mode_tv"],
            "energy_distance": energy_distance(pooled[-m:], exact[:m])}


def sweep_clmc(p: Profile, prior: GaussianMixture) -> tuple[list[dict], dict]:
    d = prior.d
    c = p.chain
    rows = []
    for cfg in clmc_configs(p):
        sigma, M, se = cfg["sigma"], cfg["M"], cfg["sigma_eff"]
        exact_density = ExactMDensity(prior, sigma, M)
        budget = p.sm_steps + (p.sm_steps - p.sm_burn_in) // p.sm_jump_every  # the smoothing sweep's evaluations
        per_sample = p.sm_jump_every + evals_per_jump(M, c.clmc_inner_steps)
        plans = {
            "walk-jump": (p.sm_steps, p.sm_jump_every, M),
            "clmc": (p.sm_burn_in + (budget - p.sm_burn_in) // per_sample * p.sm_jump_every, p.sm_jump_every, 1),
        }
        g_exact = seeding.generator("claims", p.seed, "clmc", sigma, M, "exact")
        x, _ = prior.sample(p.n_eval, g_exact)
        exact = exact_density.x_hat(exact_density.mnm.measure(x, g_exact)).numpy()
        for sampler, (steps, k, walked_M) in plans.items():
            gens = chain_generators("claims", p.seed, "clmc", sampler, sigma, M, n=p.sm_chains)
            y0, v0 = init_chains(p.sm_chains, walked_M, (d,), sigma, gens, dtype=torch.float64)
            if sampler == "clmc":
                inner = Walk(c.clmc_inner_delta_over_sigma * sigma, c.clmc_inner_gamma, c.u, c.scheme)
                s = CLMC(lambda ybar, m: prior.x_hat_bar(ybar, sigma / math.sqrt(m)), sigma, M, inner,
                         c.clmc_inner_steps, gens)
                score, jump, evals = s.score, s.jump, steps + (steps - p.sm_burn_in) // k * s.evals_per_jump
            else:
                score, jump, evals = exact_density.score, exact_density.x_hat, steps + (steps - p.sm_burn_in) // k
            t0 = time.perf_counter()
            res = run_chains(score, jump, y0, v0, walk=p.walk(sigma), steps=steps, burn_in=p.sm_burn_in,
                             jump_every=k, generator=gens)
            wall = time.perf_counter() - t0
            n = res["jumps"].shape[1]
            gr = seeding.generator("claims", p.seed, "clmc", sampler, sigma, M, "iid-reference")
            tv_iid = [sample_stats(exact_density.x_hat(exact_density.mnm.measure(prior.sample(n, gr)[0], gr)).numpy(),
                                   prior)["mode_tv"] for _ in range(p.sm_chains)]
            rows.append({"claim": "one chain mixing with sharp jumps (CLMC)", "sampler": sampler, "sigma": sigma, "M": M,
                         "sigma_eff": se, "walk_steps": steps, "jump_every": k,
                         "inner_steps": c.clmc_inner_steps if sampler == "clmc" else None,
                         "score_evals_per_chain": evals, "chains": p.sm_chains, "diverged_at": res["diverged_at"],
                         **_rows_of(res["jumps"], prior, evals, exact, tv_iid), "wall_s": round(wall, 2)})
        rows += inner_rows(p, prior, sigma, M, se)
    return rows, {"configs": clmc_configs(p)}


def inner_rows(p: Profile, prior: GaussianMixture, sigma: float, M: int, se: float) -> list[dict]:
    """Per level m, how many inner steps the conditional walk needs: CLMC jumps with cl_inner_trace_steps inner steps
    from cl_inner_chains exact draws of y_1, traced (sampling.clmc.settling_steps)."""
    c = p.chain
    g = seeding.generator("claims", p.seed, "clmc", "inner", sigma, M)
    x, _ = prior.sample(p.cl_inner_chains, g)
    y1 = (x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).unsqueeze(1)
    trace: list = []
    inner = Walk(c.clmc_inner_delta_over_sigma * sigma, c.clmc_inner_gamma, c.u, c.scheme)
    CLMC(lambda ybar, m: prior.x_hat_bar(ybar, sigma / math.sqrt(m)), sigma, M, inner, p.cl_inner_trace_steps, g,
         trace=trace).jump(y1)
    return [{"claim": "one chain mixing with sharp jumps (CLMC)", "sampler": "clmc inner walk", "sigma": sigma, "M": M,
             "sigma_eff": se, "level": m, "level_sigma": sigma / math.sqrt(m), "chains": st["chains"],
             "inner_steps_traced": st["steps"], "r_first_step": st["r_first"], "r_settled": st["r_inf"],
             "settle_step": st["settle_step"]} for m, st in settling_steps(trace).items()]
