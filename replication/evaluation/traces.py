"""A chain's trace: the class shares and the mean pixel of its jumps in consecutive windows along the chain.

A chain that mixes well has the same class shares in every window, up to sampling noise; a chain that
alternates slowly between groups of classes (say, footwear and clothing) shows it as blocks of colour. The
summary number is the mean, over the windows, of the total variation between a window's class shares and
the whole chain's: about sqrt((K - 1) / (2 pi n)) for K equally likely classes and n independent jumps per
window (0.07 at K = 10, n = 300), and far above it for a metastable chain.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .images import pyplot

N_WINDOWS = 20


def window_stats(labels: np.ndarray, means: np.ndarray, n_classes: int = 10, n_windows: int = N_WINDOWS) -> dict:
    """Class shares (n_windows, n_classes), mean pixel (n_windows,) and the mean window-vs-chain TV."""
    labels, means = np.asarray(labels).ravel(), np.asarray(means, dtype=np.float64).ravel()
    if len(labels) != len(means) or len(labels) < n_windows:
        raise ValueError(f"need >= {n_windows} jumps with one label and one mean each, got {len(labels)}, {len(means)}")
    edges = np.linspace(0, len(labels), n_windows + 1).astype(int)
    shares = np.stack([np.bincount(labels[a:b], minlength=n_classes)[:n_classes] / (b - a)
                       for a, b in zip(edges[:-1], edges[1:])])
    whole = np.bincount(labels, minlength=n_classes)[:n_classes] / len(labels)
    tv = 0.5 * np.abs(shares - whole).sum(1)
    return {"shares": shares, "mean_pixel": np.array([means[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]),
            "edges": edges, "tv_mean": float(tv.mean())}


def trace_figure(stats: dict, steps: np.ndarray, names: tuple[str, ...], path: str | os.PathLike,
                 data_mean_pixel: float | None = None) -> Path:
    """Stacked class shares per window (bars) with the windows' mean pixel (line, right axis)."""
    plt = pyplot()
    shares, edges = stats["shares"], stats["edges"]
    steps = np.asarray(steps).ravel()
    mid = np.array([steps[min(len(steps) - 1, (a + b) // 2)] for a, b in zip(edges[:-1], edges[1:])], dtype=float)
    width = 0.9 * (mid[1] - mid[0]) if len(mid) > 1 else 1.0
    fig, ax = plt.subplots(figsize=(10, 3.2))
    colors = plt.get_cmap("tab10").colors
    bottom = np.zeros(len(mid))
    for k in range(shares.shape[1]):
        ax.bar(mid, shares[:, k], width, bottom=bottom, color=colors[k % 10],
               label=names[k] if k < len(names) else str(k))
        bottom += shares[:, k]
    ax.set_xlabel("walk step (window centre)")
    ax.set_ylabel("class share in window")
    ax.set_ylim(0, 1)
    right = ax.twinx()
    right.plot(mid, stats["mean_pixel"], "k.-", label="mean pixel (jumps)")
    if data_mean_pixel is not None:
        right.axhline(data_mean_pixel, color="k", ls="--", lw=0.8, label="mean pixel (data)")
    right.set_ylabel("mean pixel")
    right.set_ylim(0, max(0.5, float(np.max(stats["mean_pixel"])) * 1.1))
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.82, 0.5), fontsize=7, frameon=False)
    ax.set_title(f"class shares along the chain ({len(mid)} windows; mean TV to the whole chain {stats['tv_mean']:.2f})",
                 fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.75, bottom=0.16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
