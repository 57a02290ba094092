"""The poster's qualitative claims, measured on the toy 2-D Gaussian mixture (beyond the paper).

    python -m replication.claims toy [--quick] [--sweeps large_m,smoothing,stability] [--out results]

Every number comes from a run recorded here; none is a paper number. The toy is `ring8` (8 equal modes of
std 0.2 on a ring of radius 2.5), where the M-density, its score and the Bayes jump are exact
(`mnm.GaussianMixture`), so the sampler can be judged against the truth. Three sweeps:

- `large_m`   "This sampling scheme is exact for large M" [P]. sigma = 1, M in {1, 2, 4, 8, 16}:
              the jump's MSE E|X - x_hat(Y)|^2 for the naive mean y_bar (exactly d sigma^2 / M), the exact
              Bayes jump, and MLP MDAEs trained with the same budget for every M (the paper's
              parametrization and the beyond-paper `ybar` one); then samples from jumps of i.i.d. Y ~ p(y)
              (a perfectly mixed walk) and from walk-jump chains driven by the exact score and by the
              learned ones: mode-weight TV, on-manifold fraction, energy distance to exact samples.
- `smoothing` "Smoothing is key for good mixing" [P]. Exact-score chains at fixed sigma_eff = sigma/sqrt(M)
              (0.5 and 0.25, sigma from sigma_eff to 2), the paper's delta = sigma/2, gamma = 0.5, u = 1,
              the same number of walk steps: mode-switch rate of consecutive jumps, integrated
              autocorrelation time of cos(angle of the jump), modes visited by one chain, per-chain mode
              TV; one torch.Generator per chain, error bars over chains. Control rows: M = 1 at
              sigma = sigma_eff with friction gamma * sqrt(M) (see below); and one fixed-M row set.
- `stability` "Stable chains with 1 million steps" [P], scaled down: one 200k-step chain at the `toy`
              experiment's (sigma, M) = (1, 4) with the exact score and with the learned MDAE; the
              per-jump statistics of the first and the last 10% of the chain.

Why fixed sigma_eff isolates friction (SPEC §1.4, derived here [D]): for equal noise, log p(y) =
log p_{sigma_eff}(y_bar) - sum_m |y_m - y_bar|^2 / (2 sigma^2) + const, and an orthonormal change of
coordinates z = sqrt(M) y_bar, plus (M-1)d orthogonal ones, decouples the underdamped walk exactly (also
after discretization, since u and gamma are isotropic). In units where the y_bar-potential is fixed, the
y_bar-walk of (sigma, M, gamma, delta = sigma/2) is the walk of (sigma_eff, 1, gamma * sqrt(M),
delta = sigma_eff/2) on p_{sigma_eff}, and the Bayes jump depends on y_bar only. So with the exact score,
all configurations with the same sigma_eff differ only by an effective friction gamma * sqrt(M); the
control rows test this.

Outputs (`out` = results/ by default): records/claims_toy_<sweep>.json (config, seeds, provenance, wall
time, rows), tables/claims_toy_<sweep>.{csv,md} (large_m also tables/claims_toy_large_m_samples.{csv,md}),
figures/claims_toy_<sweep>.png. `--quick` runs everything
in seconds (for the tests) and names its outputs claims_toy_<sweep>_quick.*.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import seeding
from .data import toy_mixture
from .metrics import class_switch_rate, energy_distance, mode_weights
from .mnm import GaussianMixture, GaussianMNM
from .storage import atomic_write_bytes, atomic_write_json
from .walk_jump import ChainDiverged, init_chains, walk

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ("large_m", "smoothing", "stability")
MIXTURE = "ring8"
SCOPE = ("Beyond-paper measurement on a toy distribution (2-D Gaussian mixture `ring8`: 8 modes of std 0.2 on a "
         "ring of radius 2.5), with exact scores and metrics; these are not paper numbers.")
CLAIMS = {
    "large_m": "This sampling scheme is exact for large M [poster]",
    "smoothing": "Smoothing is key for good mixing [poster]",
    "stability": "Stable chains with 1 million steps on MNIST and CIFAR-10 [poster]; here 200k steps on a toy",
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
}


@dataclass(frozen=True)
class Profile:
    """Sizes of every sweep (the paper's walk settings delta = sigma/2, gamma = 0.5, u = 1 are fixed)."""

    name: str
    seed: int = 0
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

    @property
    def suffix(self) -> str:
        return "" if self.name == "full" else f"_{self.name}"


FULL = Profile("full")
QUICK = Profile("quick", Ms=(1, 4, 16), mc_n=20_000, n_eval=200, train_steps=30, hidden=16, parametrizations=("mdae",),
                lm_chains=4, lm_burn_in=100, lm_jump_every=10, sigma_effs=(0.5,), sigmas=(0.5, 1.0, 2.0),
                sm_chains=8, sm_steps=1200, sm_burn_in=200, sm_jump_every=10, sm_controls=False,
                st_steps=1500, st_learned=True)
PROFILES = {"full": FULL, "quick": QUICK}


# --------------------------------------------------------------------------------------------------
# The truth: the prior, the closed-form jump and score of the equal-noise M-density.


def ring_prior() -> GaussianMixture:
    mix = toy_mixture(MIXTURE)
    return GaussianMixture(mix.means, mix.stds, mix.weights)


class ExactMDensity:
    """Exact jump and score of the equal-noise M-density of a mixture, through y_bar only (SPEC §1.4.3-4).

    x_hat(y) = E[X | y_bar] with y_bar ~ p_X * N(0, sigma_eff^2 I); score_m(y) = (x_hat - y_m) / sigma^2. It
    equals `GaussianMixture.x_hat` / `.score` (tested) with a few times fewer tensor operations per step.
    """

    def __init__(self, prior: GaussianMixture, sigma: float, M: int):
        self.prior, self.mnm = prior, GaussianMNM(sigma, M)
        self.sigma, self.M = float(sigma), int(M)
        se2 = self.mnm.sigma_eff**2
        s2 = prior.stds**2
        self.var = s2 + se2  # (K,) variance of y_bar given component k
        self.log_c = torch.log(prior.weights) - 0.5 * prior.d * torch.log(self.var)
        self.shrink = s2 / self.var  # posterior mean = mu_k (1 - shrink) + shrink * y_bar
        self.offset = prior.means * (se2 / self.var)[:, None]  # (K, d)

    def x_hat_bar(self, y_bar: torch.Tensor) -> torch.Tensor:
        y_bar = y_bar.to(torch.float64)
        d2 = ((y_bar[:, None, :] - self.prior.means[None]) ** 2).sum(-1)  # (N, K)
        r = torch.softmax(self.log_c - d2 / (2 * self.var), dim=1)
        post = self.offset[None] + self.shrink[None, :, None] * y_bar[:, None, :]  # (N, K, d)
        return (r[..., None] * post).sum(1)

    def x_hat(self, y: torch.Tensor) -> torch.Tensor:
        """(N, M, d) -> (N, d)."""
        return self.x_hat_bar(y.mean(1))

    def score(self, y: torch.Tensor) -> torch.Tensor:
        return (self.x_hat(y)[:, None] - y) / self.sigma**2


def oracle_mse(prior: GaussianMixture, sigma_eff: float) -> float:
    """E|X - E[X | y_bar, k]|^2 = d s^2 sigma_eff^2 / (s^2 + sigma_eff^2): the risk when the mode is known,
    a lower bound on the Bayes risk (equal mode stds)."""
    s2 = float(prior.stds[0]) ** 2
    return prior.d * s2 * sigma_eff**2 / (s2 + sigma_eff**2)


# --------------------------------------------------------------------------------------------------
# Chains.


def run_chains(score_fn, jump_fn, y, v, *, sigma: float, steps: int, burn_in: int, jump_every: int,
               gamma: float = 0.5, u: float = 1.0, generator) -> dict:
    """Walk `steps` steps (delta = sigma/2) and jump every `jump_every` steps after `burn_in`.

    Returns jumps (chains, n_jumps, d) float64, and per jump and chain: |v|^2 / (Md), the spread
    sum_m |y_m - y_bar|^2 / ((M-1) d) (NaN for M = 1), and y_bar; `diverged_at` is the step of a
    ChainDiverged (then the arrays hold the jumps before it).
    """
    delta = sigma / 2
    jumps, kin, spread, ybars = [], [], [], []
    step, diverged = 0, None
    with torch.no_grad():
        while step + jump_every <= steps:
            try:
                y, v = walk(score_fn, y, v, steps=jump_every, delta=delta, gamma=gamma, u=u, generator=generator,
                            start_step=step)
            except ChainDiverged as err:
                diverged = err.step
                break
            step += jump_every
            if step <= burn_in:
                continue
            jumps.append(jump_fn(y).to(torch.float64))
            kin.append(v.to(torch.float64).pow(2).flatten(1).mean(1))
            yb = y.to(torch.float64).mean(1)
            M = y.shape[1]
            spread.append(((y.to(torch.float64) - yb[:, None]) ** 2).flatten(1).sum(1) / ((M - 1) * y.shape[2])
                          if M > 1 else torch.full((y.shape[0],), float("nan"), dtype=torch.float64))
            ybars.append(yb)
    stack = lambda xs, shape: torch.stack(xs, 1).numpy() if xs else np.zeros(shape)  # noqa: E731
    n = y.shape[0]
    return {"jumps": stack(jumps, (n, 0, 2)), "kinetic": stack(kin, (n, 0)), "spread": stack(spread, (n, 0)),
            "y_bar": stack(ybars, (n, 0, 2)), "diverged_at": diverged, "steps_done": step}


def chain_generators(*parts, n: int) -> list[torch.Generator]:
    return [seeding.generator(*parts, i) for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Statistics.


def sample_stats(x: np.ndarray, prior: GaussianMixture) -> dict:
    st = mode_weights(x, prior.means, prior.stds, prior.weights)
    return {"mode_tv": float(0.5 * np.abs(st.weights - prior.weights.numpy()).sum()), "on_manifold": st.on_manifold}


def labels_of(x: np.ndarray, prior: GaussianMixture) -> np.ndarray:
    return mode_weights(x, prior.means, prior.stds, prior.weights).labels


def iat_known_mean(series: np.ndarray, mean: float = 0.0, c: float = 5.0) -> tuple[float, bool]:
    """Integrated autocorrelation time (in samples) centring at the known stationary mean, Sokal window.

    Unlike `metrics.integrated_autocorr_time` (which centres at the chain's own mean), a chain stuck in
    one mode gets rho ~ 1 and a large tau here, not a small one. Returns (tau, censored): censored means
    no window W >= c tau(W) exists, so tau is a lower bound.
    """
    x = np.asarray(series, dtype=np.float64) - mean
    n = x.size
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, size)
    acov = np.fft.irfft(f * np.conj(f), size)[:n]
    if acov[0] <= 0:
        return float("nan"), True
    taus = 2 * np.cumsum(acov / acov[0]) - 1
    ok = np.arange(n) >= c * taus
    return (float(taus[int(np.argmax(ok))]), False) if ok.any() else (float(taus[-1]), True)


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
# Learned models (the suite's MDAE + MLP + `train`), cached per process so sweeps can share them.

_MODELS: dict[tuple, tuple] = {}


def data_std(prior: GaussianMixture) -> float:
    """Per-coordinate std of the toy data (1.78 for ring8); the MDAE input scale uses it instead of the
    image default 0.225 so the MLP sees unit-scale inputs."""
    second = (prior.weights[:, None] * (prior.means**2 + prior.stds[:, None] ** 2)).sum(0)
    mean = (prior.weights[:, None] * prior.means).sum(0)
    return float((second - mean**2).mean().sqrt())


def train_cfg(p: Profile, M: int, parametrization: str):
    from .training import TrainConfig

    return TrainConfig(steps=p.train_steps, batch_size=p.batch_size, lr=p.lr,
                       seed=seeding.derive_seed("claims", p.seed, "train", parametrization, M) % 2**31,
                       lr_schedule="cosine", warmup_steps=min(50, p.train_steps // 10), ckpt_every=10**9, ckpt_secs=1e12,
                       log_every=max(1, p.train_steps // 40))


def learned_model(p: Profile, prior: GaussianMixture, sigma: float, M: int, parametrization: str):
    """An MLP MDAE trained with `training.train` for the profile's fixed budget: (model, summary)."""
    from .nets import MLP
    from .schemes import MDAE
    from .training import train

    cfg = train_cfg(p, M, parametrization)
    key = (p, sigma, M, parametrization)
    if key in _MODELS:
        return _MODELS[key]
    torch.manual_seed(cfg.seed)  # the MLP's default init draws from the global generator
    width = prior.d if parametrization == "ybar" else M * prior.d
    model = MDAE(MLP(width, width, hidden=p.hidden, depth=p.depth), sigma, M, data_std=data_std(prior),
                 parametrization=parametrization)
    x, _ = prior.sample(50_000, seeding.generator("claims", p.seed, "train-data"))
    with tempfile.TemporaryDirectory(prefix="claims-train-") as tmp:
        summary = train(model, x.float(), cfg, tmp, progress=False)
    model.eval()
    info = {"parametrization": parametrization, "M": M, "sigma": sigma, "steps": summary["steps"],
            "final_loss": summary["final_loss"], "wall_s": summary["wall_s"], "train_seed": cfg.seed,
            "n_params": sum(t.numel() for t in model.parameters()), "config": asdict(cfg)}
    _MODELS[key] = (model, info)
    return model, info


def _model_fns(model):
    score = lambda y: model.score(y.float())  # noqa: E731
    jump = lambda y: model.jump(y.float())  # noqa: E731
    return score, jump


# --------------------------------------------------------------------------------------------------
# Sweep 1: jump quality and sample quality against M at fixed sigma.


def sweep_large_m(p: Profile, prior: GaussianMixture) -> tuple[list[dict], dict]:
    sigma, d = p.sigma, prior.d
    g = seeding.generator("claims", p.seed, "large_m", "mc")
    x_mc, _ = prior.sample(p.mc_n, g)
    eps = torch.randn(p.mc_n, max(p.Ms), d, generator=g, dtype=torch.float64)  # common random numbers over M
    rows, models = [], []
    for M in p.Ms:
        exact = ExactMDensity(prior, sigma, M)
        se = exact.mnm.sigma_eff
        y = x_mc[:, None] + sigma * eps[:, :M]
        base = {"claim": "exact for large M", "sigma": sigma, "M": M, "sigma_eff": se}

        def mse_row(source, est, **extra):
            err = ((est - x_mc) ** 2).sum(1)
            return {**base, "source": source, "jump_mse": float(err.mean()),
                    "jump_mse_se": float(err.std() / math.sqrt(p.mc_n)), **extra}

        rows.append(mse_row("y_bar (naive mean)", y.mean(1), mse_theory=d * sigma**2 / M))
        rows.append(mse_row("Bayes x_hat (exact)", exact.x_hat(y), mse_theory=None,
                            mse_lower_bound=oracle_mse(prior, se), mse_upper_bound=d * se**2))
        learned = {}
        for par in p.parametrizations:
            model, info = learned_model(p, prior, sigma, M, par)
            learned[par] = model
            models.append(info)
            with torch.no_grad():
                est = torch.cat([model.jump(y[i : i + 20_000].float()).double() for i in range(0, p.mc_n, 20_000)])
            rows.append(mse_row(f"{_label(par)} x_hat (learned)", est, train_final_loss=info["final_loss"]))

        # Samples: i.i.d. Y ~ p(y) (a perfectly mixed walk) and walk-jump chains, against fresh exact samples.
        gs = seeding.generator("claims", p.seed, "large_m", "samples", M)
        ref, _ = prior.sample(p.n_eval, gs)
        ref2, _ = prior.sample(p.n_eval, gs)
        x_iid, _ = prior.sample(p.n_eval, gs)
        y_iid = exact.mnm.measure(x_iid, gs)
        ed_ref = energy_distance(ref2.numpy(), ref.numpy())
        samples = {"y_bar, Y ~ p(y)": (y_iid.mean(1).numpy(), None),
                   "Bayes x_hat, Y ~ p(y) (perfect walk)": (exact.x_hat(y_iid).numpy(), None)}
        jumps_per_chain = p.n_eval // p.lm_chains
        steps = p.lm_burn_in + jumps_per_chain * p.lm_jump_every
        walk_kw = dict(sigma=sigma, steps=steps, burn_in=p.lm_burn_in, jump_every=p.lm_jump_every)
        t0 = time.perf_counter()
        gc = seeding.generator("claims", p.seed, "large_m", "chain-exact", M)
        y0, v0 = init_chains(p.lm_chains, M, (d,), sigma, gc, dtype=torch.float64)
        res = run_chains(exact.score, exact.x_hat, y0, v0, generator=gc, **walk_kw)
        samples["Bayes x_hat, exact-score chain"] = (res["jumps"].reshape(-1, d), _chain_info(res, steps, t0))
        for par, model in learned.items():
            with torch.no_grad():
                samples[f"{_label(par)} x_hat, Y ~ p(y) (perfect walk)"] = (model.jump(y_iid.float()).double().numpy(), None)
            t0 = time.perf_counter()
            gc = seeding.generator("claims", p.seed, "large_m", "chain", par, M)
            y0, v0 = init_chains(p.lm_chains, M, (d,), sigma, gc)
            score, jump = _model_fns(model)
            res = run_chains(score, jump, y0, v0, generator=gc, **walk_kw)
            samples[f"{_label(par)} x_hat, {_label(par)} chain"] = (res["jumps"].reshape(-1, d), _chain_info(res, steps, t0))
        for source, (xs, info) in samples.items():
            row = {**base, "source": source, "n": len(xs)}
            if len(xs):
                row |= sample_stats(xs, prior) | {"energy_distance": energy_distance(xs, ref.numpy()),
                                                  "energy_distance_exact_vs_exact": ed_ref}
            if info is not None:
                row |= info
            rows.append(row)
    extra = {"models": models, "mc_n": p.mc_n, "common_random_numbers": True}
    return rows, extra


def _label(parametrization: str) -> str:
    return {"mdae": "MDAE", "ybar": "ybar-MDAE"}[parametrization]


def _chain_info(res: dict, steps: int, t0: float) -> dict:
    return {"chains_x_steps": f"{res['jumps'].shape[0]} x {steps}", "diverged_at": res["diverged_at"],
            "chain_wall_s": round(time.perf_counter() - t0, 2)}


# --------------------------------------------------------------------------------------------------
# Sweep 2: mixing at fixed sigma_eff (and at fixed M), exact score, one generator per chain.


def smoothing_configs(p: Profile) -> list[dict]:
    configs = []
    for se in p.sigma_effs:
        Ms = []
        for sigma in p.sigmas:
            M = round((sigma / se) ** 2)
            if sigma >= se and abs(math.sqrt(M) * se - sigma) < 1e-9:
                configs.append({"set": f"fixed sigma_eff={se:g}", "sigma": sigma, "M": M, "gamma": 0.5})
                Ms.append(M)
        if p.sm_controls:
            for M in Ms:
                if M > 1:
                    configs.append({"set": f"fixed sigma_eff={se:g}", "sigma": se, "M": 1, "gamma": 0.5 * math.sqrt(M),
                                    "control_for": f"sigma={se * math.sqrt(M):g}, M={M}"})
    done = {(c["sigma"], c["M"], c["gamma"]) for c in configs}
    for sigma in p.sigmas:
        if (sigma, p.fixed_M, 0.5) not in done and sigma >= 0.5:
            configs.append({"set": f"fixed M={p.fixed_M}", "sigma": sigma, "M": p.fixed_M, "gamma": 0.5})
    return configs


def sweep_smoothing(p: Profile, prior: GaussianMixture, configs: list[dict] | None = None) -> tuple[list[dict], dict]:
    d, K = prior.d, len(prior.weights)
    rows = []
    n_jumps = (p.sm_steps - p.sm_burn_in) // p.sm_jump_every
    configs = smoothing_configs(p) if configs is None else configs
    for c in configs:
        sigma, M, gamma = c["sigma"], c["M"], c["gamma"]
        exact = ExactMDensity(prior, sigma, M)
        tag = ("smoothing", sigma, M, gamma)
        gens = chain_generators("claims", p.seed, *tag, n=p.sm_chains)
        y0, v0 = init_chains(p.sm_chains, M, (d,), sigma, gens, dtype=torch.float64)
        t0 = time.perf_counter()
        res = run_chains(exact.score, exact.x_hat, y0, v0, sigma=sigma, steps=p.sm_steps, burn_in=p.sm_burn_in,
                         jump_every=p.sm_jump_every, gamma=gamma, generator=gens)
        wall = time.perf_counter() - t0
        jumps = res["jumps"]
        switch, iat, cens, iat_lib, visited, tv, cover = [], [], [], [], [], [], []
        for ch in jumps:
            lab = labels_of(ch, prior)
            switch.append(class_switch_rate(lab))
            cos = ch[:, 0] / np.linalg.norm(ch, axis=1)
            tau, censored = iat_known_mean(cos, 0.0)
            iat.append(tau * p.sm_jump_every)
            cens.append(censored)
            iat_lib.append(_iat_library(cos) * p.sm_jump_every)
            visited.append(len(np.unique(lab)))
            tv.append(0.5 * np.abs(np.bincount(lab, minlength=K) / len(lab) - prior.weights.numpy()).sum())
            first = {}
            for i, l in enumerate(lab):
                first.setdefault(int(l), i)
            cover.append((max(first.values()) + 1) * p.sm_jump_every if len(first) == K else np.inf)
        # Reference for the per-chain TV: i.i.d. exact jumps (a perfect walk) of the same length.
        gr = seeding.generator("claims", p.seed, *tag, "iid-reference")
        tv_iid = []
        for _ in range(p.sm_chains):
            x, _ = prior.sample(n_jumps, gr)
            tv_iid.append(sample_stats(exact.x_hat(exact.mnm.measure(x, gr)).numpy(), prior)["mode_tv"])
        pooled = sample_stats(jumps.reshape(-1, d), prior) if jumps.size else {}
        sw, sw_se = mean_se(switch)
        ia, ia_se = mean_se(iat)
        vi, vi_se = mean_se(visited)
        tvm, tv_se = mean_se(tv)
        cover_a = np.asarray(cover)
        rows.append({
            "claim": "smoothing is key for good mixing", "set": c.get("set", ""), "sigma": sigma, "M": M,
            "sigma_eff": exact.mnm.sigma_eff, "gamma": gamma, "gamma_eff": gamma * math.sqrt(M),
            "delta": sigma / 2, "control_for": c.get("control_for", ""), "chains": p.sm_chains, "steps": p.sm_steps,
            "jumps_per_chain": jumps.shape[1], "switch_rate": sw, "switch_rate_se": sw_se,
            "iat_cos_steps": ia, "iat_cos_steps_se": ia_se, "iat_censored_chains": int(np.sum(cens)),
            "iat_cos_steps_library": mean_se(iat_lib)[0], "modes_visited": vi, "modes_visited_se": vi_se,
            "chains_visiting_all": int(np.isfinite(cover_a).sum()),
            "cover_steps_median": float(np.median(cover_a)) if np.isfinite(np.median(cover_a)) else None,
            "chain_mode_tv": tvm, "chain_mode_tv_se": tv_se, "iid_mode_tv": mean_se(tv_iid)[0],
            "pooled_mode_tv": pooled.get("mode_tv"), "pooled_on_manifold": pooled.get("on_manifold"),
            "diverged_at": res["diverged_at"], "wall_s": round(wall, 2),
        })
    return rows, {"configs": configs}


def _iat_library(series: np.ndarray) -> float:
    from .metrics import integrated_autocorr_time

    try:
        return integrated_autocorr_time(series)
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------------------------------
# Sweep 3: one long chain, first vs last 10%.


def sweep_stability(p: Profile, prior: GaussianMixture) -> tuple[list[dict], dict]:
    d, sigma, M = prior.d, p.st_sigma, p.st_M
    exact = ExactMDensity(prior, sigma, M)
    runs = {"exact score": (exact.score, exact.x_hat, torch.float64)}
    extra = {}
    if p.st_learned:
        model, info = learned_model(p, prior, sigma, M, "mdae")
        score, jump = _model_fns(model)
        runs["MDAE (learned)"] = (score, jump, torch.float32)
        extra["model"] = info
    rows, traces = [], {}
    for name, (score, jump, dtype) in runs.items():
        g = seeding.generator("claims", p.seed, "stability", name)
        y0, v0 = init_chains(1, M, (d,), sigma, g, dtype=dtype)
        t0 = time.perf_counter()
        res = run_chains(score, jump, y0, v0, sigma=sigma, steps=p.st_steps, burn_in=0, jump_every=p.st_jump_every,
                         generator=g)
        wall = time.perf_counter() - t0
        x, kin, spread, yb = res["jumps"][0], res["kinetic"][0], res["spread"][0], res["y_bar"][0]
        traces[name] = x
        n = len(x)
        w = max(n // 10, 2)
        for window, sl in (("first 10%", slice(0, w)), ("last 10%", slice(n - w, n)), ("all", slice(0, n))):
            xs = x[sl]
            radius = np.linalg.norm(xs, axis=1)
            rows.append({"claim": "stable long chains", "score": name, "sigma": sigma, "M": M, "steps": p.st_steps,
                         "jump_every": p.st_jump_every, "window": window,
                         "steps_from": sl.start * p.st_jump_every, "steps_to": sl.stop * p.st_jump_every,
                         "n_jumps": len(xs), **sample_stats(xs, prior),
                         "switch_rate": class_switch_rate(labels_of(xs, prior)),
                         "jump_radius": float(radius.mean()), "jump_radius_se": batch_means_se(radius),
                         "kinetic_per_coord": float(kin[sl].mean()), "kinetic_per_coord_se": batch_means_se(kin[sl]),
                         "spread_per_coord": float(spread[sl].mean()),
                         "y_bar_radius": float(np.linalg.norm(yb[sl], axis=1).mean()),
                         "diverged_at": res["diverged_at"], "wall_s": round(wall, 2)})
    # Reference: i.i.d. exact jumps (a perfectly mixed walk) with the window's size; stationary targets.
    g = seeding.generator("claims", p.seed, "stability", "iid-reference")
    xr, _ = prior.sample(max(len(traces["exact score"]) // 10, 2), g)
    xs = exact.x_hat(exact.mnm.measure(xr, g)).numpy()
    rows.append({"claim": "stable long chains", "score": "reference: i.i.d. Y ~ p(y), exact jump", "sigma": sigma, "M": M,
                 "window": "stationary target", "n_jumps": len(xs), **sample_stats(xs, prior),
                 "switch_rate": class_switch_rate(labels_of(xs, prior)),
                 "jump_radius": float(np.linalg.norm(xs, axis=1).mean()),
                 "kinetic_per_coord": 1 / (1 - (sigma / 2) ** 2 / (4 * sigma**2)),
                 "spread_per_coord": sigma**2})
    extra["traces"] = traces
    extra["reference_notes"] = ("kinetic target: ABOBA's stationary Var(v) = u / (1 - u delta^2 / (4 sigma^2)) along the "
                                "(M-1)d directions of curvature 1/sigma^2 (tests/test_walk_jump.py); spread target sigma^2")
    return rows, extra


# --------------------------------------------------------------------------------------------------
# Figures.


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_large_m(df: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    mse = df[df["jump_mse"].notna()]
    for source, sub in mse.groupby("source", sort=False):
        ax.errorbar(sub["M"], sub["jump_mse"], yerr=sub["jump_mse_se"], marker="o", ms=4, label=source)
    b = mse[mse["source"] == "Bayes x_hat (exact)"]
    ax.plot(b["M"], b["mse_lower_bound"], "k:", lw=1, label="known-mode bound d s²σe²/(s²+σe²)")
    ax.plot(b["M"], b["mse_upper_bound"], "k--", lw=1, label="d σ_eff² (= E|y_bar - X|²)")
    ax.set(xscale="log", yscale="log", xlabel="M (σ = 1)", ylabel="jump MSE E|X - x̂|²", title="jump error vs M")
    ax.legend(fontsize=6)
    ax = axes[1]
    smp = df[df["energy_distance"].notna()]
    for source, sub in smp.groupby("source", sort=False):
        ax.plot(sub["M"], sub["energy_distance"], marker="o", ms=4, label=source)
    ref = smp.groupby("M")["energy_distance_exact_vs_exact"].first()
    ax.plot(ref.index, ref.values, "k--", lw=1, label="exact vs exact (noise floor)")
    ax.set(xscale="log", yscale="log", xlabel="M (σ = 1)", ylabel="energy distance to exact samples",
           title="sample quality vs M")
    ax.legend(fontsize=6)
    fig.suptitle("Beyond-paper toy (ring8): 'exact for large M'", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def figure_smoothing(df: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for (s, control), sub in df.groupby(["set", df["control_for"] != ""], sort=False):
        label = f"{s}" + (" (M=1 controls, γ=0.5√M)" if control else "")
        mk = "x" if control else "o"
        x = sub["gamma_eff"] if s.startswith("fixed sigma_eff") else sub["sigma"]
        if s.startswith("fixed M"):
            continue
        axes[0].errorbar(x, sub["switch_rate"], yerr=sub["switch_rate_se"], marker=mk, ls="" if control else "-", label=label)
        axes[1].errorbar(x, sub["iat_cos_steps"], yerr=sub["iat_cos_steps_se"], marker=mk, ls="" if control else "-",
                         label=label)
    ticks = sorted(df.loc[df["set"].str.startswith("fixed sigma_eff"), "gamma_eff"].unique())
    for ax, yl in zip(axes[:2], ("mode-switch rate per jump", "IAT of cos(angle) [walk steps]")):
        ax.set(xlabel="effective friction γ√M (= γσ/σ_eff)", ylabel=yl, xscale="log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.legend(fontsize=6)
    axes[1].set_yscale("log")
    axes[1].set_title("σ_eff=0.25: most chains censored (IAT = lower bound)" if (df["iat_censored_chains"] > df["chains"] / 2).any()
                      else "IAT (Sokal window, known mean 0)", fontsize=8)
    fm = df[df["set"].str.startswith("fixed M")]
    if len(fm):
        M = int(fm["M"].iloc[0])
        sub = df[(df["M"] == M) & (df["gamma"] == 0.5)].sort_values("sigma")
        axes[2].errorbar(sub["sigma"], sub["switch_rate"], yerr=sub["switch_rate_se"], marker="o", label="switch rate")
        axes[2].plot(sub["sigma"], sub["pooled_on_manifold"], marker="s", label="on-manifold (pooled jumps)")
        axes[2].set(xlabel=f"σ at M={M}", ylabel="rate / fraction", xscale="log", title="fixed M: smoothing vs jump blur")
        axes[2].set_xticks(list(sub["sigma"]), [f"{t:g}" for t in sub["sigma"]])
        axes[2].minorticks_off()
        axes[2].legend(fontsize=6)
    fig.suptitle("Beyond-paper toy (ring8), exact score: 'smoothing is key for good mixing'", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def figure_stability(traces: dict, jump_every: int, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 1.8 * len(traces) + 0.6), squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], traces.items()):
        n = len(x)
        stride = max(1, n // 4000)
        t = np.arange(n)[::stride] * jump_every
        ax.plot(t, np.degrees(np.arctan2(x[::stride, 1], x[::stride, 0])), ",", color="C0")
        ax.plot(t, 60 * np.linalg.norm(x[::stride], axis=1) - 180, lw=0.3, color="C1")
        for a, b in ((0, n // 10), (n - n // 10, n)):
            ax.axvspan(a * jump_every, b * jump_every, color="0.85", zorder=0)
        ax.set(ylabel="angle [deg]", title=f"{name}: jump angle (dots), 60·radius−180 (line)", ylim=(-190, 190))
        ax.title.set_fontsize(8)
    axes[-1, 0].set_xlabel("walk step (shaded: first / last 10%)")
    fig.suptitle("Beyond-paper toy (ring8), σ=1, M=4: one long chain", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# Outputs.


def _clean(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_outputs(out: Path, name: str, rows: list[dict], record: dict, figure, split=None) -> dict:
    """The record (all rows), one table per part (`split` maps a row to a table-name suffix, "" = `name`;
    REPORT.md embeds only the first 40 rows of a table) and the figure."""
    out = Path(out)
    for sub in ("records", "tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    paths = {"figure": out / "figures" / f"{name}.png", "record": out / "records" / f"{name}.json"}
    parts: dict[str, list[dict]] = {}
    for r in rows:
        parts.setdefault(split(r) if split else "", []).append(r)
    notes = "".join(f"- {n}\n" for n in record.get("notes", []))
    for suffix, part in parts.items():
        t = pd.DataFrame(part).dropna(axis=1, how="all")
        csv, md = out / "tables" / f"{name}{suffix}.csv", out / "tables" / f"{name}{suffix}.md"
        atomic_write_bytes(csv, t.to_csv(index=False, float_format="%.5g", lineterminator="\n").encode())
        text = (f"# {name}{suffix}\n\n{SCOPE}\n\nClaim: {record['claim']}\n\n{notes}\n"
                f"{t.to_markdown(index=False, floatfmt='.4g')}\n\nRecord: `records/{name}.json`; figure: `figures/{name}.png`.\n")
        atomic_write_bytes(md, text.encode())
        paths[f"table_csv{suffix}"], paths[f"table_md{suffix}"] = csv, md
    figure(df, paths["figure"])
    try:
        fig_rel = paths["figure"].resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        fig_rel = str(paths["figure"])
    record = {**record, "rows": [{k: _clean(v) for k, v in r.items()} for r in rows], "figures": {"claims": fig_rel}}
    atomic_write_json(paths["record"], record)
    return {k: str(v) for k, v in paths.items()}


def run_sweep(sweep: str, p: Profile, out: Path, prior: GaussianMixture | None = None) -> dict:
    from .pipeline import provenance

    prior = prior or ring_prior()
    prov = provenance()  # at the start: the code this process imported (the working tree may change meanwhile)
    t0, c0 = time.perf_counter(), time.process_time()
    fn = {"large_m": sweep_large_m, "smoothing": sweep_smoothing, "stability": sweep_stability}[sweep]
    rows, extra = fn(p, prior)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    name = f"claims_toy_{sweep}{p.suffix}"
    traces = extra.pop("traces", None)
    record = {
        # run / table / experiment / profile: the fields report.read_records needs (listed under unknown tables).
        "run": name, "table": "claims", "experiment": f"claims-toy-{sweep}", "profile": p.name,
        "claim": CLAIMS[sweep], "scope": SCOPE,
        "config": {"claims": asdict(p), "mixture": MIXTURE, "walk": {"delta": "sigma/2", "gamma": 0.5, "u": 1.0,
                                                                     "scheme": "aboba", "init": "uniform_shared"}},
        "seeds": {"base": p.seed, "rule": "seeding.generator('claims', base, <sweep>, <config...>[, chain index])"},
        "provenance": prov, "git_sha_at_end": provenance()["git_sha"], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "torch_threads": torch.get_num_threads(), "notes": NOTES[sweep], **extra,
    }
    if sweep == "stability":
        figure = lambda df, path: figure_stability(traces, p.st_jump_every, path)  # noqa: E731
    else:
        figure = {"large_m": figure_large_m, "smoothing": figure_smoothing}[sweep]
    split = (lambda r: "" if r.get("jump_mse") is not None else "_samples") if sweep == "large_m" else None  # noqa: E731
    paths = write_outputs(out, name, rows, record, figure, split)
    return {"sweep": sweep, "wall_s": wall, "cpu_s": cpu, "rows": rows, "paths": paths}


def run_all(out: str | Path | None = None, quick: bool = False, sweeps=SWEEPS, profile: Profile | None = None) -> dict:
    p = profile or (QUICK if quick else FULL)
    out = Path(out) if out is not None else REPO_ROOT / "results"
    prior = ring_prior()
    return {s: run_sweep(s, p, out, prior) for s in sweeps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m replication.claims", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=["toy"], help="the distribution (only the toy mixture has exact metrics)")
    ap.add_argument("--quick", action="store_true", help="seconds-sized run (outputs named *_quick)")
    ap.add_argument("--sweeps", default=",".join(SWEEPS), help=f"comma-separated subset of {', '.join(SWEEPS)}")
    ap.add_argument("--out", default=str(REPO_ROOT / "results"), help="results folder (records/, tables/, figures/)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sweeps = [s.strip() for s in args.sweeps.split(",") if s.strip()]
    unknown = [s for s in sweeps if s not in SWEEPS]
    if unknown:
        ap.error(f"unknown sweep(s) {unknown}; known: {', '.join(SWEEPS)}")
    p = QUICK if args.quick else FULL
    prior = ring_prior()
    for s in sweeps:
        r = run_sweep(s, p, Path(args.out), prior)
        print(f"{s}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU -> {r['paths']['record']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
