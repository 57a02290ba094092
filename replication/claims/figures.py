"""The toy-claims study's figures, one per sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluation.images import pyplot


def figure_large_m(df: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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


def figure_integrators(df, path: Path) -> None:
    """Share of the light modes (+- 2 SE over chains) against delta/sigma, one line per integrator; exact share dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, sub in df.groupby("integrator", sort=False):
        sub = sub.sort_values("delta_over_sigma")
        ax.errorbar(sub["delta_over_sigma"], sub["light_share"], yerr=2 * sub["light_share_se"], marker="o", ms=3,
                    capsize=2, label=name)
    ax.axhline(df["light_share_exact"].iloc[0], color="k", ls="--", lw=0.8, label="exact")
    ax.set(xlabel="delta / sigma", ylabel="share of the 4 light modes", xscale="log")
    ax.set_title("Toy (ring8-unequal), exact score: the walk's bias on mode weights", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def figure_clmc(df, path: Path) -> None:
    """Mode switches per 10^4 score evaluations and the per-chain mode-weight TV (+- 2 SE), walk-jump vs CLMC, per
    (sigma_eff, sigma, M); the i.i.d. TV of the same jump count as a tick."""
    plt = pyplot()
    df = df[df["sampler"].isin(["walk-jump", "clmc"])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    rows = list(df[df.sampler == "clmc"].itertuples())
    labels = [f"{r.M}\n{r.sigma:.2g}\n{r.sigma_eff:g}" for r in rows]
    x = np.arange(len(labels))
    splits = [i - 0.45 for i in range(1, len(rows)) if rows[i].sigma_eff != rows[i - 1].sigma_eff]
    for i, (name, sub) in enumerate(df.groupby("sampler", sort=False)):
        axes[0].errorbar(x + 0.1 * i, sub["switches_per_1e4_evals"], yerr=2 * sub["switches_per_1e4_evals_se"], fmt="o",
                         ms=3, capsize=2, label=name)
        axes[1].errorbar(x + 0.1 * i, sub["chain_mode_tv"], yerr=2 * sub["chain_mode_tv_se"], fmt="o", ms=3, capsize=2,
                         label=name)
        axes[1].plot(x + 0.1 * i, sub["iid_mode_tv"], "_", ms=10, color="k")
    axes[0].set(ylabel="mode switches / 1e4 score evals", yscale="log")
    axes[1].set(ylabel="per-chain mode TV (tick: i.i.d.)")
    for ax in axes:
        ax.set_xticks(x, labels, fontsize=6)
        ax.set_xlabel("M / sigma / sigma_eff", fontsize=7)
        for s in splits:
            ax.axvline(s, color="0.7", lw=0.8, ls="--")
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle("Toy (ring8), exact denoiser: CLMC vs walk-jump at equal score evaluations, sigma = sigma_eff sqrt(M)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
