"""FFHQ-256: VDVAE's `ffhq-256.npy` (70000x256x256x3 uint8) or a folder of 256x256 PNGs; train = all 70000."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...errors import UsageError
from ..datasets import DatasetMissing, default_root
from ..registry import Dataset

FFHQ_NPY = "ffhq-256.npy"
FFHQ_URL = "https://openaipublic.blob.core.windows.net/very-deep-vaes-assets/vdvae-assets/ffhq-256.npy"


def load(root: Path | None, split: str) -> tuple[torch.Tensor, None]:
    # VDVAE's npy (N, 256, 256, 3): memory-mapped copy-on-write, returned as an [N x 3 x 256 x 256] view.
    root = root or default_root()
    npy = root if root.suffix == ".npy" else root / FFHQ_NPY
    if npy.is_file():
        x = np.load(npy, mmap_mode="c")
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (256, 256, 3):
            raise UsageError(f"{npy}: expected uint8 (N, 256, 256, 3), got {x.dtype} {x.shape}")
        return torch.from_numpy(x).permute(0, 3, 1, 2), None
    for folder in (root / "ffhq256", root):
        pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if pngs:
            return torch.from_numpy(np.stack([_read_png(p) for p in pngs])).permute(0, 3, 1, 2).contiguous(), None
    raise DatasetMissing(
        f"FFHQ-256 not found under {root}: download VDVAE's {FFHQ_NPY} (70000x256x256x3 uint8, 13.8 GB) "
        f"from {FFHQ_URL} to {root / FFHQ_NPY}, or put 256x256 PNGs in {root / 'ffhq256'}/"
    )


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        x = np.asarray(im.convert("RGB"))
    if x.shape != (256, 256, 3):
        raise UsageError(f"{path}: expected a 256x256 image, got {x.shape[1]}x{x.shape[0]}")
    return x


def download(root: Path) -> None:
    """13.8 GB: prints where to get it instead of fetching it."""
    print(f"FFHQ-256: download {FFHQ_URL} (VDVAE's copy, 13.8 GB) to {root / FFHQ_NPY}, e.g.\n"
          f"  mkdir -p {root} && wget -O {root / FFHQ_NPY} {FFHQ_URL}", flush=True)


DATASET = Dataset(
    name="ffhq256", title="FFHQ-256", shape=(3, 256, 256), splits={"train": 70000}, load=load,
    get=f"download VDVAE's {FFHQ_NPY} from {FFHQ_URL} (`python replicate.py --download ffhq256` says how)",
    download=download,
)
