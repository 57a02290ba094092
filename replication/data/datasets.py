"""Loading any registered dataset as uint8 tensors, seeded batching, and the 2-D Gaussian mixtures of the toy experiment.

Every image dataset is returned as uint8 (N, C, H, W) and scaled to [0,1] by /255 only when a batch is
made (docs/official-settings.md §2: "All data are scaled to [0,1]"; sigma is in units of that range). Nothing here downloads
unless `download()` is called, and that is meant for users' machines only. What each dataset is (shape, splits,
source, how to get it) is its entry in the registry: data/registry.py, one module per dataset in data/sets/.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import ReplicationError, UsageError
from . import registry


class DatasetMissing(ReplicationError, FileNotFoundError):
    """A dataset is not on disk; the message is one line saying exactly how to get it."""


def default_root() -> Path:
    """`$REPLICATION_DATA` if set, else `data/` in the repository root."""
    env = os.environ.get("REPLICATION_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def download_fix(dataset: str, root: Path) -> str:
    return f"run `python replicate.py --download {dataset} --data-root {root}`"


def _files(dataset: str) -> registry.Dataset:
    """The entry of a dataset that is loaded from files (UsageError for an unknown or a generated one)."""
    entry = registry.get(dataset)
    if entry.load is None:
        raise UsageError(f"{dataset}: {entry.get}")
    return entry


# ---------------------------------------------------------------------------------------------------
# Loading.


def load_images(
    dataset: str, root: str | os.PathLike | None = None, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load a whole split into memory.

    :param dataset: a registered dataset (data/registry.py).
    :param root: data folder; None means `default_root()` (and, for fashion-mnist, the Debian folder first).
    :param split: one of the dataset's splits ("train" and "test"; "train" only for ffhq256, which has no labels).
    :return: (images, labels): images a uint8 [N x C x H x W] tensor, labels an int64 [N] tensor or None.
    :raises DatasetMissing: the files are not there; the message names the fix.
    """
    entry = _files(dataset)
    if split not in entry.splits:
        raise UsageError(f"{dataset}: unknown split {split!r}; known: {', '.join(entry.splits)}")
    return entry.load(Path(root) if root is not None else None, split)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzipped if the name ends in .gz) as a uint8 array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise UsageError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UsageError(f"{path}: truncated ({data.size} bytes of data for shape {shape})")
    return data.reshape(shape)


def find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def download(dataset: str, root: str | os.PathLike | None = None) -> None:
    """Fetch a dataset into `root` (users' machines only: needs internet; never called by the tests), with its
    entry's `download` (torchvision's download=True for MNIST, Fashion-MNIST and CIFAR-10, into the layout that
    `load_images` reads; FFHQ-256 is 13.8 GB: it prints where to get it instead)."""
    entry = _files(dataset)
    if entry.download is None:
        raise UsageError(f"{dataset} cannot be downloaded by the suite: {entry.get}")
    entry.download(Path(root) if root is not None else default_root())


def torchvision_split(class_name: str, dataset: str, title: str, root: Path | None, split: str):
    """A split of the torchvision dataset `class_name` (e.g. "MNIST") that is in `root` already (download=False);
    DatasetMissing, naming the fix, when it is not."""
    from torchvision import datasets  # heavy: torchvision (about 4 s), only to read or download its datasets

    root = root or default_root()
    try:
        return getattr(datasets, class_name)(str(root), train=split == "train", download=False)
    except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True ..."
        raise DatasetMissing(f"{title} not found under {root}: {download_fix(dataset, root)}") from e


def torchvision_download(class_name: str, root: Path) -> None:
    """Both splits of a torchvision dataset (e.g. "MNIST") into `root`."""
    from torchvision import datasets  # heavy: as in torchvision_split

    cls = getattr(datasets, class_name)
    for train in (True, False):
        cls(str(root), train=train, download=True)


# ---------------------------------------------------------------------------------------------------
# Batching.


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 in {0..255} -> float32 in [0,1] (docs/official-settings.md §2)."""
    return torch.as_tensor(x).to(torch.float32) / 255.0


def epoch_permutation(n: int, generator: torch.Generator) -> torch.Tensor:
    """The order of one epoch: randperm(n) drawn from `generator` (a CPU generator)."""
    return torch.randperm(n, generator=generator)


def batches(
    images: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    drop_last: bool = True,
    hflip: bool = False,
    skip: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[torch.Tensor]:
    """One shuffled epoch of float32 [B x C x H x W] batches in [0,1].

    All the epoch's randomness comes from `generator` and is drawn when the epoch starts (at the first
    `next()`): first `epoch_permutation(N, generator)`, then, if hflip, one coin per image
    (`torch.rand(N, generator=generator) < 0.5`, flipping the width axis). Nothing else touches any RNG.
    So to resume an epoch bit-exactly, save `generator.get_state()` *before* the epoch, then restore it
    and pass `skip=` the number of batches already consumed (those are not materialized).

    :param images: uint8 [N x C x H x W] (CPU or device).
    :param drop_last: drop the final partial batch (docs/official-settings.md §2: CIFAR-10 uses 195 steps/epoch).
    :param device: where batches go (converted to float there); default images.device.
    """
    n = images.shape[0]
    perm = epoch_permutation(n, generator)
    flips = torch.rand(n, generator=generator) < 0.5 if hflip else None
    device = images.device if device is None else torch.device(device)
    stop = n - n % batch_size if drop_last else n
    for start in range(skip * batch_size, stop, batch_size):
        idx = perm[start : start + batch_size]
        x = to_unit(images[idx.to(images.device)].to(device))
        if flips is not None:
            f = flips[idx].to(device)
            x = torch.where(f[:, None, None, None], x.flip(-1), x)
        yield x


# ---------------------------------------------------------------------------------------------------
# Toy 2-D Gaussian mixtures (the `toy` experiment: exact scores and exact mode weights).


class Mixture(NamedTuple):
    """An isotropic Gaussian mixture sum_k w_k N(mu_k, s_k^2 I)."""

    means: torch.Tensor  # [K x d] float64
    stds: torch.Tensor  # [K] float64
    weights: torch.Tensor  # [K] float64, sums to 1


def _ring(k: int, radius: float) -> torch.Tensor:
    angle = 2 * torch.pi * torch.arange(k, dtype=torch.float64) / k
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)


TOY_MIXTURES = {
    # 8 equal modes of std 0.2 on a ring of radius 2.5: neighbours 1.91 apart (~10 std), so at
    # sigma = 1 the smoothed density is one blurred ring and the walk must hop between modes.
    "ring8": lambda: Mixture(_ring(8, 2.5), torch.full((8,), 0.2, dtype=torch.float64),
                             torch.full((8,), 1 / 8, dtype=torch.float64)),
    # Same geometry, weights proportional to 1..8 (1/36 .. 8/36): tests that mode *weights* are right.
    "ring8-unequal": lambda: Mixture(_ring(8, 2.5), torch.full((8,), 0.2, dtype=torch.float64),
                                     torch.arange(1, 9, dtype=torch.float64) / 36),
    # Two modes 4 apart with weights 3:1 and different widths.
    "pair-unequal": lambda: Mixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64),
                                    torch.tensor([0.3, 0.15], dtype=torch.float64),
                                    torch.tensor([0.75, 0.25], dtype=torch.float64)),
}


def toy_mixture(name: str = "ring8") -> Mixture:
    """Parameters (means [K x 2], stds [K], weights [K], all float64) of a named toy mixture."""
    if name not in TOY_MIXTURES:
        raise UsageError(f"unknown toy mixture {name!r}; known: {', '.join(TOY_MIXTURES)}")
    return TOY_MIXTURES[name]()
