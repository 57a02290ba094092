"""The report's per-table summary figures (loss, metrics against n, chain diagnostics), written by `write_report`
(the sample grids and chain strips are the score stage's: evaluation/images.py)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ..evaluation import chain_stats
from ..evaluation.classifier import CLASS_GROUPS
from ..runs import paper
from .tables import load_records, record_sort_key

# The chain statistics (value ± MCSE, shown in the tables with their errors) are not metrics against n.
CHAIN_STATS = {name for groups in [{}, *CLASS_GROUPS.values()] for name in chain_stats.metric_names(groups)}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # seaborn's whitegrid look via matplotlib's copy of it (importing seaborn itself costs seconds).
    plt.style.use("seaborn-v0_8-whitegrid")
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 6})
    return plt


def _save_fig(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png", metadata={"Software": None})
    _plt().close(fig)
    return path


def _label(record: dict) -> str:
    return f"{record['experiment']} ({record['profile']})"


def loss_curve(records: list[dict], path: str | os.PathLike) -> Path:
    """Training loss against step, one line per run (log scale), from `train.history`."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in sorted(records, key=record_sort_key):
        history = np.asarray([h[:2] for h in (r.get("train") or {}).get("history") or []], dtype=float)
        if len(history):
            ax.plot(history[:, 0], history[:, 1], label=_label(r))
    ax.set(xlabel="training step", ylabel="loss", yscale="log", title="Training loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return _save_fig(fig, path)


def metric_vs_samples(records: list[dict], path: str | os.PathLike,
                      metrics: Iterable[str] | None = None) -> Path:
    """Each computed metric against its number of samples n, one panel per metric.

    Points of one (run, metric, mode) are joined in order of n. In a panel named exactly "FID", the
    paper's FIDs of the same table are dashed lines, labelled with their source (paper.py).
    """
    df = load_records(records)
    df = df[(df["status"] == "ok") & df["value"].notna() & df["n"].notna() & ~df["metric"].isin(CHAIN_STATS)]
    if metrics is not None:
        df = df[df["metric"].isin(list(metrics))]
    names = sorted(df["metric"].unique())
    ncols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, names):
        sub = df[df["metric"] == name]
        for (run, mode), g in sub.groupby(["run", sub["mode"].fillna("")], sort=True):
            g = g.sort_values("n")
            label = f"{g['experiment'].iloc[0]} ({g['profile'].iloc[0]}{', ' + mode if mode else ''})"
            ax.plot(g["n"], g["value"], marker="o", label=label)
        if name == "FID":
            for number in sorted({n for t in sub["table"].unique() for n in paper.numbers_for(t)}, key=str):
                ax.axhline(number.value, ls="--", lw=0.8, color="grey")
                ax.annotate(f"paper {number.value:g}", (0, number.value), xycoords=("axes fraction", "data"),
                            fontsize=6)
        ax.set(xlabel="samples n", title=name)
        ax.legend(fontsize=6)
    if not names:
        axes[0][0].text(0.5, 0.5, "no computed metric yet", ha="center", va="center")
    return _save_fig(fig, path)


def chain_diagnostics(records: list[dict], path: str | os.PathLike) -> Path:
    """Per run: the mean of x̂ over the first vs last 10% of jumps (drift = instability), walk speed, and
    the classes the jumps visit (labelled data)."""
    records = [r for r in sorted(records, key=record_sort_key) if r.get("chain")]
    labelled = [r for r in records if r["chain"].get("class_histogram")]
    plt = _plt()
    fig, axes = plt.subplots(1, 3 if labelled else 2, figsize=(10 if labelled else 7, 3.2))
    labels = [_label(r) for r in records]
    y = np.arange(len(records))
    first = [r["chain"].get("jump_mean_first10pct") or 0.0 for r in records]
    last = [r["chain"].get("jump_mean_last10pct") or 0.0 for r in records]
    axes[0].barh(y - 0.2, first, height=0.4, label="first 10% of jumps")
    axes[0].barh(y + 0.2, last, height=0.4, label="last 10% of jumps")
    axes[0].set(yticks=y, yticklabels=labels, xlabel="mean of x̂ (jump)", title="Chain stability (drift)")
    axes[0].invert_yaxis()  # first run on top
    axes[0].legend(fontsize=6)
    axes[1].barh(y, [r["chain"].get("steps_per_s") or math.nan for r in records])
    axes[1].set(yticks=y, yticklabels=["" for _ in labels], xlabel="walk steps / s", xscale="log", title="Speed")
    axes[1].invert_yaxis()
    if labelled:
        for r in labelled:
            h = np.asarray(r["chain"]["class_histogram"], dtype=float)
            axes[2].plot(np.arange(len(h)), h / max(h.sum(), 1e-12), marker="o", label=_label(r))
            axes[2].axhline(1 / len(h), ls="--", lw=0.8, color="grey")  # uniform over classes
        axes[2].set(xlabel="class", ylabel="share of jumps", title="Classes visited", ylim=(0, None))
        axes[2].legend(fontsize=6)
    return _save_fig(fig, path)
