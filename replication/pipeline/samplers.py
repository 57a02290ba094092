"""The experiment's sampler as every consumer walks it (the chain stage, the drift measurement, the score stage's
CLMC diagnostics, the benchmarks): its score, jump and walked state, and what one chain costs in score evaluations.

chain.sampler = "walk_jump" is the paper's walk-jump on the M-density (core/schemes.py); "clmc" the chain of
log-concave Markov chains on top of the same loop (sampling/clmc.py, docs/method.md §6), whose walk moves y_1, or
ybar_{m0} from chain.clmc_start_level = m0.
"""

from __future__ import annotations

import torch

from ..runs.experiments import Experiment
from ..sampling.clmc import CLMC, evals_per_jump as clmc_evals_per_jump


def sampler_functions(scheme, e: Experiment, generator, check_every: int = 1):
    """(score, jump, M of the walked state) of experiment e's sampler for the walk-jump loop: the scheme's own, or
    for chain.sampler = clmc the CLMC sampler's, whose walk moves y_1 alone (sampling/clmc.py)."""
    c = e.chain
    if c.sampler != "clmc":
        return scheme.score, scheme.jump, e.model.M
    sampler = CLMC(scheme.denoise, e.model.sigma, e.model.M, e.inner_walk, c.clmc_inner_steps, generator, check_every,
                   start_level=c.clmc_start_level)
    return sampler.score, sampler.jump, 1


def walked_state(e: Experiment, y: torch.Tensor) -> torch.Tensor:
    """The sampler's walked state from M measurements y (N, M, *S) of the same x: y itself (walk-jump), or for CLMC
    ybar_{m0} (N, 1, *S), the mean of the first m0 = chain.clmc_start_level (y_1 at m0 = 1): an exact draw of the
    outer walk's density when y is."""
    if e.chain.sampler != "clmc":
        return y
    return y[:, : e.chain.clmc_start_level].mean(1, keepdim=True)


def evals_per_jump(e: Experiment) -> int:
    """Score evaluations one jump costs beyond the walk's one per step: the plain jump x_hat(y) one; a CLMC jump
    its inner walks (sampling.clmc.CLMC.evals_per_jump)."""
    c = e.chain
    if c.sampler != "clmc":
        return 1
    return clmc_evals_per_jump(e.model.M, c.clmc_inner_steps, c.clmc_start_level)


def score_evals(e: Experiment, n_jumps: int) -> int:
    """Score evaluations of one chain: a walk step each, plus the jumps' (what samplers are compared at)."""
    return e.chain.steps + n_jumps * evals_per_jump(e)
