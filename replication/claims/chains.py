"""The toy-claims study's tools: the exact M-density of the ring, chains that record per-jump statistics,
sample statistics against the truth, and the learned MLP MDAEs and MUVBs (trained with `training.train`)."""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, replace

import numpy as np
import torch

from ..core import seeding
from ..core.mnm import GaussianMixture, GaussianMNM
from ..core.nets import MLP
from ..core.schemes import MDAE, MUVB
from ..data.datasets import toy_mixture
from ..evaluation.metrics import mode_weights, total_variation
from ..sampling.integrators import ChainDiverged, Walk
from ..sampling.loop import walk_jump
from ..train.spec import TrainSpec
from ..train.training import train
from .profiles import MIXTURE, Profile


def ring_prior() -> GaussianMixture:
    mix = toy_mixture(MIXTURE)
    return GaussianMixture(mix.means, mix.stds, mix.weights)


class ExactMDensity:
    """The exact jump and score of the equal-noise M-density of `prior` at (sigma, M), as the walk wants them.

    x_hat(y) = E[X | y_bar] (`GaussianMixture.x_hat_bar`, through y_bar only, docs/method.md §1.3-1.4);
    score_m(y) = (x_hat - y_m) / sigma^2.
    """

    def __init__(self, prior: GaussianMixture, sigma: float, M: int):
        self.prior, self.mnm = prior, GaussianMNM(sigma, M)
        self.sigma, self.M = float(sigma), int(M)

    def x_hat(self, y: torch.Tensor) -> torch.Tensor:
        """(N, M, d) -> (N, d)."""
        return self.prior.x_hat_bar(y.mean(1), self.mnm.sigma_eff)

    def score(self, y: torch.Tensor) -> torch.Tensor:
        return (self.x_hat(y)[:, None] - y) / self.sigma**2


def oracle_mse(prior: GaussianMixture, sigma_eff: float) -> float:
    """E|X - E[X | y_bar, k]|^2 = d s^2 sigma_eff^2 / (s^2 + sigma_eff^2): the risk when the mode is known,
    a lower bound on the Bayes risk (equal mode stds)."""
    s2 = float(prior.stds[0]) ** 2
    return prior.d * s2 * sigma_eff**2 / (s2 + sigma_eff**2)


# --------------------------------------------------------------------------------------------------
# Chains.


def run_chains(score_fn, jump_fn, y, v, *, walk: Walk, steps: int, burn_in: int, jump_every: int, generator,
               autograd: bool = False) -> dict:
    """Walk-jump (sampling.loop) `steps` steps with `walk`, jumping every `jump_every` steps after `burn_in`
    (`autograd`: the score needs it, as a MUVB's does: `needs_autograd`).

    Returns jumps (chains, n_jumps, d) float64, and per jump and chain: |v|^2 / (Md), the spread
    sum_m |y_m - y_bar|^2 / ((M-1) d) (NaN for M = 1), and y_bar; `diverged_at` is the step of a
    ChainDiverged (then the arrays hold the jumps before it).
    """
    jumps, kin, spread, ybars = [], [], [], []
    step, diverged = 0, None
    n, M = y.shape[0], y.shape[1]
    steps = burn_in + (steps - burn_in) // jump_every * jump_every  # whole jump intervals only
    try:
        for stop in walk_jump(score_fn, jump_fn, y, v, walk=walk, steps=steps, jump_every=jump_every, burn_in=burn_in,
                              generator=generator, autograd=autograd):
            step = stop.step
            if stop.x_hat is None:
                continue
            y64 = stop.y.to(torch.float64)
            jumps.append(stop.x_hat.to(torch.float64))
            kin.append(stop.v.to(torch.float64).pow(2).flatten(1).mean(1))
            yb = y64.mean(1)
            spread.append(((y64 - yb[:, None]) ** 2).flatten(1).sum(1) / ((M - 1) * y.shape[2])
                          if M > 1 else torch.full((n,), float("nan"), dtype=torch.float64))
            ybars.append(yb)
    except ChainDiverged as err:
        diverged = err.step
    stack = lambda xs, shape: torch.stack(xs, 1).numpy() if xs else np.zeros(shape)  # noqa: E731
    return {"jumps": stack(jumps, (n, 0, 2)), "kinetic": stack(kin, (n, 0)), "spread": stack(spread, (n, 0)),
            "y_bar": stack(ybars, (n, 0, 2)), "diverged_at": diverged, "steps_done": step}


def chain_generators(*parts, n: int) -> list[torch.Generator]:
    return [seeding.generator(*parts, i) for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Statistics.


def sample_stats(x: np.ndarray, prior: GaussianMixture) -> dict:
    st = mode_weights(x, prior.means, prior.stds, prior.weights)
    return {"mode_tv": total_variation(st.weights, prior.weights), "on_manifold": st.on_manifold}


def labels_of(x: np.ndarray, prior: GaussianMixture) -> np.ndarray:
    return mode_weights(x, prior.means, prior.stds, prior.weights).labels


def mean_se(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan")


def batch_means_se(x: np.ndarray, batches: int = 10) -> float:
    """Standard error of the mean of a correlated series by non-overlapping batch means."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size // batches * batches
    if n < batches * 2:
        return float("nan")
    means = x[:n].reshape(batches, -1).mean(1)
    return float(means.std(ddof=1) / math.sqrt(batches))


# --------------------------------------------------------------------------------------------------
# Learned models (the suite's MDAE or MUVB + MLPs + `train`), cached per process so sweeps can share them.

_MODELS: dict[tuple, tuple] = {}


def data_std(prior: GaussianMixture) -> float:
    """Per-coordinate std of the toy data (1.78 for ring8); the MDAE input scale uses it instead of the
    image default 0.225 so the MLP sees unit-scale inputs."""
    second = (prior.weights[:, None] * (prior.means**2 + prior.stds[:, None] ** 2)).sum(0)
    mean = (prior.weights[:, None] * prior.means).sum(0)
    return float((second - mean**2).mean().sqrt())


def train_cfg(p: Profile, M: int, parametrization: str) -> TrainSpec:
    """The profile's training (`Profile.train`) with the model's own seed and no checkpoints (a throwaway folder)."""
    return replace(p.train, seed=seeding.derive_seed("claims", p.seed, "train", parametrization, M) % 2**31,
                   ckpt_every=10**9)


def build_learned(p: Profile, prior: GaussianMixture, sigma: float, M: int, parametrization: str) -> MDAE | MUVB:
    """The untrained scheme of a learned row: an MDAE of `parametrization` ("mdae", "ybar") on one MLP, or "muvb": a
    MUVB (docs/method.md §2.4) whose encoder y -> (mu, logvar) and decoder z -> nu(z) are MLPs of the same width and
    depth, latent `Profile.muvb_zdim` and KL weight `Profile.muvb_beta` (the registry's toy-muvb-1x4)."""
    Md = M * prior.d
    if parametrization == "muvb":
        mlp = lambda n_in, n_out: MLP(n_in, n_out, hidden=p.hidden, depth=p.depth)  # noqa: E731
        return MUVB(mlp(Md, 2 * p.muvb_zdim), mlp(p.muvb_zdim, Md), sigma, M, beta=p.muvb_beta, data_std=data_std(prior))
    width = prior.d if parametrization == "ybar" else Md
    return MDAE(MLP(width, width, hidden=p.hidden, depth=p.depth), sigma, M, data_std=data_std(prior),
                parametrization=parametrization)


def learned_model(p: Profile, prior: GaussianMixture, sigma: float, M: int, parametrization: str):
    """The scheme of `build_learned` trained with `training.train` for the profile's fixed budget, from its own seed
    (`train_cfg`): (model, summary)."""
    cfg = train_cfg(p, M, parametrization)
    key = (p, sigma, M, parametrization)
    if key in _MODELS:
        return _MODELS[key]
    torch.manual_seed(cfg.seed)  # the MLP's default init draws from the global generator
    model = build_learned(p, prior, sigma, M, parametrization)
    x, _ = prior.sample(50_000, seeding.generator("claims", p.seed, "train-data"))
    with tempfile.TemporaryDirectory(prefix="claims-train-") as tmp:
        summary = train(model, x.float(), cfg, tmp, progress=False, log_every=max(1, cfg.steps // 40), ckpt_secs=1e12)
    model.eval()
    info = {"parametrization": parametrization, "scheme": type(model).__name__, "M": M, "sigma": sigma,
            "steps": summary["steps"], "final_loss": summary["final_loss"], "wall_s": summary["wall_s"], "train_seed": cfg.seed,
            "n_params": sum(t.numel() for t in model.parameters()), "config": asdict(cfg)}
    _MODELS[key] = (model, info)
    return model, info


def model_fns(model, generator=None, z_mode: str = "sample"):
    """(score, jump) of a learned model in float32. A MUVB's energy draws z by `z_mode` (chain.muvb_z: "sample" redraws
    it at every evaluation, so score and jump are random) from `generator`: the chain's, or a jump's own."""
    if isinstance(model, MUVB):
        model.z_mode, model.z_generator = z_mode, generator
    score = lambda y: model.score(y.float())  # noqa: E731
    jump = lambda y: model.jump(y.float())  # noqa: E731
    return score, jump


def needs_autograd(model) -> bool:
    """Whether the model's score is a gradient taken by autograd (MEM, MUVB): its chain walks under no_grad."""
    return not isinstance(model, MDAE)
