"""The toy-claims study's fourth sweep: the walk's own bias on mode weights, by integrator and step, with the exact
score and energy (docs/method.md §3.2-3.6; docs/deviations.md §4.10).

The mixture is `ring8-unequal` (8 modes on a ring, weights 1..8 / 36), so a walk that reweights modes shows it:
the exact share of the four lightest modes is 10/36 = 0.278. For each integrator (all one score per step) and
delta/sigma, independent chains (one generator each) from the paper's initialisation walk to stationarity; the
estimate of a mode weight is the mean over jumps of the exact posterior p(k | y) (lower variance than
counting jumps), its standard error is over chains. The Metropolis-adjusted walk (ghmc) is exact at every step;
what the others add is their discretisation bias.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from ..core import seeding
from ..core.mnm import GaussianMixture, GaussianMNM
from ..data.datasets import toy_mixture
from ..evaluation.metrics import total_variation
from ..sampling.chains import init_chains
from ..sampling.integrators import ChainDiverged
from ..sampling.loop import walk_jump
from .profiles import Profile

MIXTURE_UNEQUAL = "ring8-unequal"
LIGHT = slice(0, 4)  # the four lightest modes of ring8-unequal (weights 1..4 / 36)


def sweep_integrators(p: Profile, prior: GaussianMixture | None = None) -> tuple[list[dict], dict]:
    mix = toy_mixture(MIXTURE_UNEQUAL)
    prior = GaussianMixture(mix.means, mix.stds, mix.weights)
    sigma, M = p.st_sigma, p.st_M
    mnm = GaussianMNM(sigma, M)
    exact_light = float(prior.weights[LIGHT].sum())
    score = lambda y: prior.score(y, mnm)  # noqa: E731
    energy = lambda y: (-prior.log_prob(y, mnm), prior.score(y, mnm))  # noqa: E731
    jump = lambda y: prior.x_hat(y, mnm)  # noqa: E731
    rows = []
    for ratio in p.in_deltas:
        for integrator in p.in_integrators:
            chain = replace(p.chain, scheme=integrator, delta_over_sigma=ratio)
            walk = replace(p, chain=chain).walk(sigma)
            gens = [seeding.generator("claims", p.seed, "integrators", integrator, ratio, i) for i in range(p.in_chains)]
            y, v = init_chains(p.in_chains, M, (prior.d,), sigma, gens, dtype=torch.float64)
            resp, kin, diverged, accept = [], [], None, None
            t0 = time.perf_counter()
            try:
                for stop in walk_jump(score, jump, y, v, walk=walk, steps=p.in_steps, jump_every=p.in_jump_every,
                                      burn_in=p.in_burn_in, generator=gens, energy_fn=energy):
                    if stop.x_hat is not None:
                        resp.append(prior.responsibilities(stop.y, mnm))
                        kin.append(stop.v.pow(2).flatten(1).mean(1))
                        accept = stop.accepted / stop.proposed if stop.proposed else None
            except ChainDiverged as err:
                diverged = err.step
            row = {"claim": "the walk's discretisation bias", "mixture": MIXTURE_UNEQUAL, "integrator": integrator,
                   "delta_over_sigma": ratio, "sigma": sigma, "M": M, "gamma": walk.gamma, "chains": p.in_chains,
                   "steps": p.in_steps, "diverged_at": diverged, "wall_s": round(time.perf_counter() - t0, 2),
                   "light_share_exact": exact_light}
            if resp and diverged is None:  # a diverged walk's jumps before the blow-up are not its stationary law
                per_chain = torch.stack(resp, 1).mean(1).numpy()  # (chains, K): each chain's mean posterior weights
                light = per_chain[:, LIGHT].sum(1)
                w = per_chain.mean(0)
                row |= {"light_share": float(light.mean()), "light_share_se": float(light.std(ddof=1) / math.sqrt(len(light))),
                        "mode_weight_tv": total_variation(w, prior.weights),
                        "v_var": float(torch.stack(kin).mean() / walk.u), "accept_rate": accept}
                se = row["light_share_se"]
                row["light_share_z"] = (row["light_share"] - exact_light) / se if se > 0 else None
            rows.append(row)
    return rows, {"mixture": MIXTURE_UNEQUAL, "light_modes": "modes 1-4 (weights 1..4 / 36)"}
