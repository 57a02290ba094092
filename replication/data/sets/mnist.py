"""MNIST, through torchvision's `MNIST(root, download=False)`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..datasets import torchvision_download, torchvision_split
from ..registry import Dataset


def load(root: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = torchvision_split("MNIST", "mnist", "MNIST", root, split)
    return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)


DATASET = Dataset(
    name="mnist", title="MNIST", shape=(1, 28, 28), splits={"train": 60000, "test": 10000}, load=load,
    get="`python replicate.py --download mnist` (torchvision)", download=lambda root: torchvision_download("MNIST", root),
    class_names=tuple(str(d) for d in range(10)),
)
