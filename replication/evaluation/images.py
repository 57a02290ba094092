"""Sample images on disk: floats in [0,1] -> uint8 (round to nearest), PNG folders for clean-fid, sample grids
(torchvision's make_grid), chain strips and the toy chain's scatter plot; the 3x3 box blur of the calibration point."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from glob import glob
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

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
    from torchvision.utils import make_grid  # heavy: torchvision (about 4 s), only for grids and strips

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


def to_uint8(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Float images in [0,1] -> uint8 in [0,255]: clip, then round to nearest (never truncate).

    Truncation would bias every pixel by -0.5 levels (docs/deviations.md §3.1). Non-finite values raise: a
    diverged chain must not silently become black images. Returns the same array type it is given.
    """
    if isinstance(x, torch.Tensor):
        if not torch.isfinite(x).all():
            raise ValueError("to_uint8: non-finite values in images")
        return (x.double().clamp(0, 1) * 255).round().to(torch.uint8)
    x = np.asarray(x)
    if not np.isfinite(x).all():
        raise ValueError("to_uint8: non-finite values in images")
    return np.rint(np.clip(x.astype(np.float64), 0, 1) * 255).astype(np.uint8)


def count_images(folder: str | os.PathLike) -> int:
    """Number of files clean-fid's `get_folder_features` would read (its extensions, recursive)."""
    from cleanfid.utils import EXTENSIONS  # heavy: clean-fid imports torchvision (about 4 s), only for FID folders

    return len(
        {f for ext in EXTENSIONS for f in glob(os.path.join(folder, f"**/*.{ext}"), recursive=True)}
    )


def export_pngs(
    images_uint8: torch.Tensor | np.ndarray, out_dir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write images [N, C, H, W] uint8 (C = 1 or 3) as `{i:06d}.png` into a dedicated `out_dir`.

    Grayscale (C=1) is saved as 8-bit "L" PNGs: lossless and a third of the size, and clean-fid's
    `Image.open(path).convert("RGB")` replicates the channel exactly, so it sees the same pixels an
    RGB export would give. The folder is built under a temporary sibling name, its count is checked,
    then it is renamed into place: a folder at `out_dir` is always complete. An existing `out_dir`
    raises unless `overwrite`.
    """
    out_dir = Path(out_dir)
    if isinstance(images_uint8, torch.Tensor):
        images_uint8 = images_uint8.detach().cpu().numpy()
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"export_pngs wants uint8 [N, C, H, W] with C in (1, 3); got {images.dtype} "
            f"{images.shape} (use to_uint8 first)"
        )
    if ".zip" in str(out_dir):
        raise ValueError(f"{out_dir}: clean-fid treats any path containing '.zip' as a zip archive")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")

    # Write into a temporary sibling folder.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        for i, img in enumerate(images):
            hwc = img.transpose(1, 2, 0)
            pil = Image.fromarray(hwc[:, :, 0]) if hwc.shape[2] == 1 else Image.fromarray(hwc)
            pil.save(tmp / f"{i:06d}.png", compress_level=1)
        n = count_images(tmp)
        if n != len(images):
            raise RuntimeError(f"export_pngs: wrote {n} images, expected {len(images)}")

        # Swap it into place.
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def box_blur(images: torch.Tensor) -> torch.Tensor:
    """3x3 box blur (replicate padding) of float images (N, C, H, W)."""
    c = images.shape[1]
    kernel = torch.full((c, 1, 3, 3), 1 / 9, dtype=images.dtype)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def pyplot():
    """matplotlib.pyplot on the headless Agg backend: the suite's one way to get it (figures here, evaluation/traces.py,
    report/figures.py, claims/figures.py)."""
    import matplotlib  # heavy: matplotlib (about a second), only for figures; the CLI's help and plans skip it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: as above; after use("Agg")

    return plt


def toy_scatter(x: np.ndarray, means: np.ndarray, path: str | os.PathLike) -> Path:
    """The 2-D chain's jumps (points) over the mixture's modes (crosses), saved as a PNG."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.3, label="chain jumps")
    ax.scatter(means[:, 0], means[:, 1], marker="x", c="k", label="modes")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
