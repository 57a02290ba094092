"""The report's figures: sample grids and chain strips (written by the score stage) and the per-table summary
figures (loss, metrics against n, chain diagnostics) written by `report.write_report`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from . import paper
from .report_tables import load_records, record_sort_key

TILE_MIN_PX = 56  # grids and strips are upscaled (nearest neighbour) until one image is at least this wide


def _images01(images: Any) -> torch.Tensor:
    """uint8 [N, C, H, W] or float in [0, 1] -> float [N, C, H, W] in [0, 1] (NaN -> 0)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    x = x.detach().cpu()
    if x.ndim == 3:  # [N, H, W]
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(x.shape)}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return torch.nan_to_num(x, nan=0.0).clamp(0, 1)


def _save_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int, max_side: int) -> Path:
    from PIL import Image
    from torchvision.utils import make_grid

    channels = x.shape[1]
    grid = make_grid(x, nrow=nrow, padding=2, pad_value=1.0)  # [3 or C, H', W']
    grid = grid[:1] if channels == 1 else grid  # make_grid repeats grey to RGB; keep one channel (smaller PNG)
    scale = max(1, math.ceil(TILE_MIN_PX / x.shape[-1]))  # upscale small images (28x28 -> 56x56)
    if scale > 1:
        grid = grid.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    shrink = max_side / max(grid.shape[1:])
    if shrink < 1:  # Downsample large grids (FFHQ-256) so the PNG stays small.
        size = (max(1, round(grid.shape[1] * shrink)), max(1, round(grid.shape[2] * shrink)))
        grid = torch.nn.functional.interpolate(grid[None], size=size, mode="bilinear", antialias=True)[0]
    arr = grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(arr[..., 0] if channels == 1 else arr)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
    return path


def sample_grid(images: Any, path: str | os.PathLike, nrow: int = 10, max_side: int = 768) -> Path:
    """Save the first nrow² images as an nrow-wide grid PNG (torchvision make_grid), upscaled so one image
    is at least TILE_MIN_PX wide.

    Args:
        images: uint8 [N, C, H, W] (0..255) or float [N, C, H, W] in [0, 1].
        path: the PNG to write.
        nrow: images per row; at most nrow * nrow images are shown (the report wants at least 8x8).
        max_side: the grid is downsampled to at most this many pixels per side.
    Returns:
        The path written.
    """
    x = _images01(images)[: nrow * nrow]
    return _save_grid(x, path, nrow, max_side)


def chain_strip(images: Any, path: str | os.PathLike, n: int = 20, start: int = 0,
                max_side: int = 1280) -> Path:
    """Save `n` consecutive jumps x̂ of one chain as one row (the poster's chain figures).

    Args:
        images: the jumps of one chain in chain order, uint8 or float [T, C, H, W].
        n: how many consecutive jumps to show, from index `start`.
    """
    x = _images01(images)[start : start + n]
    return _save_grid(x, path, max(1, len(x)), max_side)


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
    df = df[(df["status"] == "ok") & df["value"].notna() & df["n"].notna()]
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
