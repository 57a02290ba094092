"""MNIST, through torchvision's `MNIST(root, download=False)`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..datasets import DatasetMissing, default_root, download_fix, torchvision_download
from ..registry import Dataset


def load(root: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST  # Heavy import, only when needed.

    root = root or default_root()
    try:
        ds = MNIST(str(root), train=split == "train", download=False)
    except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True ..."
        raise DatasetMissing(f"MNIST not found under {root}: {download_fix('mnist', root)}") from e
    return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)


DATASET = Dataset(
    name="mnist", title="MNIST", shape=(1, 28, 28), splits={"train": 60000, "test": 10000}, load=load,
    get="`python replicate.py --download mnist` (torchvision)", download=lambda root: torchvision_download("MNIST", root),
    class_names=tuple(str(d) for d in range(10)),
)
