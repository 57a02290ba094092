"""Fashion-MNIST: IDX .gz files from Debian's `dataset-fashion-mnist` or torchvision's layout (beyond the paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..datasets import DatasetMissing, default_root, download_fix, find_idx, read_idx, torchvision_download
from ..registry import Dataset

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def load(root: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    # Candidate folders: the root itself, torchvision's layout under it, and the Debian package (first unless a
    # root is given).
    explicit = root is not None
    root = root if explicit else default_root()
    local = [root, root / "FashionMNIST" / "raw"]
    folders = local + [DEBIAN_FASHION_MNIST] if explicit else [DEBIAN_FASHION_MNIST] + local
    prefix = "train" if split == "train" else "t10k"
    for folder in folders:
        images = find_idx(folder, f"{prefix}-images-idx3-ubyte")
        labels = find_idx(folder, f"{prefix}-labels-idx1-ubyte")
        if images and labels:
            x, y = read_idx(images), read_idx(labels)
            return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))
    raise DatasetMissing(
        f"Fashion-MNIST not found under {root} or {DEBIAN_FASHION_MNIST}: "
        f"`apt-get install dataset-fashion-mnist` or {download_fix('fashion-mnist', root)}"
    )


DATASET = Dataset(
    name="fashion-mnist", title="Fashion-MNIST", shape=(1, 28, 28), splits={"train": 60000, "test": 10000},
    load=load, get="`apt-get install dataset-fashion-mnist` (Debian) or `python replicate.py --download fashion-mnist`",
    download=lambda root: torchvision_download("FashionMNIST", root),
    section="Fashion-MNIST (beyond the paper)", needs_gpu=True,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
    class_groups={"footwear": (5, 7, 9), "clothing": (0, 1, 2, 3, 4, 6), "bag": (8,)},
)
