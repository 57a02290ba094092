"""CIFAR-10, through torchvision's `CIFAR10(root, download=False)`; FID against clean-fid's staged statistics."""

from __future__ import annotations

from pathlib import Path

import torch

from ..datasets import torchvision_download, torchvision_split
from ..registry import Dataset


def load(root: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = torchvision_split("CIFAR10", "cifar10", "CIFAR-10", root, split)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.int64)


DATASET = Dataset(
    name="cifar10", title="CIFAR-10", shape=(3, 32, 32), splits={"train": 50000, "test": 10000}, load=load,
    get="`python replicate.py --download cifar10` (torchvision)", download=lambda root: torchvision_download("CIFAR10", root),
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    fid_stats="cifar10", fid_res=32,
)
