"""The toy-claims study's three sweeps: exact for large M, smoothing and mixing, one long stable chain."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..core import seeding
from ..core.mnm import GaussianMixture
from ..evaluation.metrics import class_switch_rate, energy_distance, iat_sokal, integrated_autocorr_time, total_variation
from ..sampling.chains import init_chains
from .chains import (ExactMDensity, batch_means_se, chain_generators, labels_of, learned_model, mean_se, model_fns,
                     needs_autograd, oracle_mse, run_chains, sample_stats)
from .profiles import Profile


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
        for par in p.learned:
            model, info = learned_model(p, prior, sigma, M, par)
            learned[par] = model
            models.append(info)
            _, jump = model_fns(model, seeding.generator("claims", p.seed, "large_m", "mse-z", par, M), p.chain.muvb_z)
            with torch.no_grad():
                est = torch.cat([jump(y[i : i + 20_000]).double() for i in range(0, p.mc_n, 20_000)])
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
        walk_kw = dict(walk=p.walk(sigma), steps=steps, burn_in=p.lm_burn_in, jump_every=p.lm_jump_every)
        t0 = time.perf_counter()
        gc = seeding.generator("claims", p.seed, "large_m", "chain-exact", M)
        y0, v0 = init_chains(p.lm_chains, M, (d,), sigma, gc, dtype=torch.float64)
        res = run_chains(exact.score, exact.x_hat, y0, v0, generator=gc, **walk_kw)
        samples["Bayes x_hat, exact-score chain"] = (res["jumps"].reshape(-1, d), _chain_info(res, steps, t0))
        for par, model in learned.items():
            _, jump = model_fns(model, seeding.generator("claims", p.seed, "large_m", "iid-z", par, M), p.chain.muvb_z)
            with torch.no_grad():
                samples[f"{_label(par)} x_hat, Y ~ p(y) (perfect walk)"] = (jump(y_iid).double().numpy(), None)
            t0 = time.perf_counter()
            gc = seeding.generator("claims", p.seed, "large_m", "chain", par, M)
            y0, v0 = init_chains(p.lm_chains, M, (d,), sigma, gc)
            score, jump = model_fns(model, gc, p.chain.muvb_z)  # a MUVB's z from the chain's generator
            res = run_chains(score, jump, y0, v0, generator=gc, autograd=needs_autograd(model), **walk_kw)
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
    return {"mdae": "MDAE", "ybar": "ybar-MDAE", "muvb": "MUVB"}[parametrization]


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
                configs.append({"set": f"fixed sigma_eff={se:g}", "sigma": sigma, "M": M, "gamma": p.chain.gamma})
                Ms.append(M)
        if p.sm_controls:
            for M in Ms:
                if M > 1:
                    configs.append({"set": f"fixed sigma_eff={se:g}", "sigma": se, "M": 1, "gamma": p.chain.gamma * math.sqrt(M),
                                    "control_for": f"sigma={se * math.sqrt(M):g}, M={M}"})
    done = {(c["sigma"], c["M"], c["gamma"]) for c in configs}
    for sigma in p.sigmas:
        if (sigma, p.fixed_M, p.chain.gamma) not in done and sigma >= 0.5:
            configs.append({"set": f"fixed M={p.fixed_M}", "sigma": sigma, "M": p.fixed_M, "gamma": p.chain.gamma})
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
        res = run_chains(exact.score, exact.x_hat, y0, v0, walk=p.walk(sigma, gamma), steps=p.sm_steps,
                         burn_in=p.sm_burn_in, jump_every=p.sm_jump_every, generator=gens)
        wall = time.perf_counter() - t0
        jumps = res["jumps"]
        switch, iat, cens, iat_lib, visited, tv, cover = [], [], [], [], [], [], []
        for ch in jumps:
            lab = labels_of(ch, prior)
            switch.append(class_switch_rate(lab))
            cos = ch[:, 0] / np.linalg.norm(ch, axis=1)
            tau, censored = iat_sokal(cos, mean=0.0)
            iat.append(tau * p.sm_jump_every)
            cens.append(censored)
            iat_lib.append(_iat_library(cos) * p.sm_jump_every)
            visited.append(len(np.unique(lab)))
            tv.append(total_variation(np.bincount(lab, minlength=K) / len(lab), prior.weights))
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
            "delta": p.walk(sigma).delta, "control_for": c.get("control_for", ""), "chains": p.sm_chains, "steps": p.sm_steps,
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
    try:
        return integrated_autocorr_time(series)
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------------------------------
# Sweep 3: one long chain, first vs last 10%.


def sweep_stability(p: Profile, prior: GaussianMixture) -> tuple[list[dict], dict]:
    d, sigma, M = prior.d, p.st_sigma, p.st_M
    exact = ExactMDensity(prior, sigma, M)
    runs, extra = {"exact score": None}, {}
    for par in (("mdae",) + p.schemes) if p.st_learned else ():
        model, info = learned_model(p, prior, sigma, M, par)
        runs[f"{_label(par)} (learned)"] = model
        extra["model" if par == "mdae" else f"model_{par}"] = info
    rows, traces = [], {}
    for name, model in runs.items():
        g = seeding.generator("claims", p.seed, "stability", name)
        if model is None:
            score, jump, dtype, autograd = exact.score, exact.x_hat, torch.float64, False
        else:  # a MUVB's z from the chain's generator
            (score, jump), dtype, autograd = model_fns(model, g, p.chain.muvb_z), torch.float32, needs_autograd(model)
        y0, v0 = init_chains(1, M, (d,), sigma, g, dtype=dtype)
        t0 = time.perf_counter()
        res = run_chains(score, jump, y0, v0, walk=p.walk(sigma), steps=p.st_steps, burn_in=0,
                         jump_every=p.st_jump_every, generator=g, autograd=autograd)
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
                 "kinetic_per_coord": p.chain.u / (1 - p.chain.u * p.walk(sigma).delta ** 2 / (4 * sigma**2)),
                 "spread_per_coord": sigma**2})
    extra["traces"] = traces
    extra["reference_notes"] = ("kinetic target: ABOBA's stationary Var(v) = u / (1 - u delta^2 / (4 sigma^2)) along the "
                                "(M-1)d directions of curvature 1/sigma^2 (tests/test_walk_jump.py); spread target sigma^2")
    return rows, extra
