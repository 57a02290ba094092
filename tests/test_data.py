"""Data loading, seeded batching and toy mixtures. CPU, no network; the only real data is Fashion-MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from replication.core.mnm import GaussianMixture
from replication.data import datasets as D
from replication.data import registry
from replication.data.sets import fashion_mnist, ffhq256

needs_fashion = pytest.mark.skipif(
    not fashion_mnist.DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"{fashion_mnist.DEBIAN_FASHION_MNIST} absent (apt-get install dataset-fashion-mnist)",
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format (gzipped if the name ends in .gz)."""
    head = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wb") as f:
        f.write(head + array.astype(np.uint8).tobytes())


def fake_mnist_raw(folder: Path, n: int = 3, gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10
    ext = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
    return x, y


# ---------------------------------------------------------------------------------------------------
# Loading.


@needs_fashion
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_fashion_mnist_debian(split, n):
    x, y = D.load_images("fashion-mnist", split=split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (n,) and y.dtype == torch.int64
    assert torch.equal(torch.bincount(y), torch.full((10,), n // 10))  # Balanced classes 0..9.
    assert x.max() == 255 and x.min() == 0


def test_fashion_mnist_torchvision_layout(tmp_path):
    x, y = fake_mnist_raw(tmp_path / "FashionMNIST" / "raw")
    images, labels = D.load_images("fashion-mnist", root=tmp_path, split="test")
    assert torch.equal(images[:, 0], torch.from_numpy(x)) and torch.equal(labels, torch.from_numpy(y).long())


def test_fashion_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(D.DatasetMissing, match="apt-get install dataset-fashion-mnist"):
        D.load_images("fashion-mnist", root=tmp_path)


def test_mnist_via_torchvision(tmp_path):
    x, y = fake_mnist_raw(tmp_path / "MNIST" / "raw")
    images, labels = D.load_images("mnist", root=tmp_path)
    assert images.shape == (3, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images[:, 0], torch.from_numpy(x)) and labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("dataset, name", [
    ("cifar10", "CIFAR-10"), ("mnist", "MNIST"), ("ffhq256", "FFHQ-256"),
])
def test_missing_names_the_fix(tmp_path, dataset, name):
    with pytest.raises(D.DatasetMissing) as info:
        D.load_images(dataset, root=tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "\n" not in msg
    assert msg.startswith(f"{name} not found under {tmp_path}")
    if dataset == "ffhq256":
        assert ffhq256.FFHQ_URL in msg and str(tmp_path / "ffhq-256.npy") in msg
    else:
        assert f"python replicate.py --download {dataset} --data-root {tmp_path}" in msg


def test_ffhq_npy_and_pngs(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    np.save(tmp_path / "ffhq-256.npy", x)
    images, labels = D.load_images("ffhq256", root=tmp_path)
    assert labels is None and images.shape == (2, 3, 256, 256) and images.dtype == torch.uint8
    assert torch.equal(images, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert torch.equal(D.load_images("ffhq256", root=tmp_path / "ffhq-256.npy")[0], images)

    png_root = tmp_path / "pngs"
    (png_root / "ffhq256").mkdir(parents=True)
    for i, im in enumerate(x):
        Image.fromarray(im).save(png_root / "ffhq256" / f"{i:05d}.png")
    assert torch.equal(D.load_images("ffhq256", root=png_root)[0], images)


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ValueError, match=r"known: cifar10, fashion-mnist, ffhq256, mnist, toy .*replication/data/sets/"):
        D.load_images("imagenet", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        D.load_images("ffhq256", root=tmp_path, split="test")
    with pytest.raises(ValueError, match="drawn from a known mixture"):  # generated, not loaded
        D.load_images("toy", root=tmp_path)


def test_registry_entries_are_complete_and_temporary_ones_go_away():
    """Every registered dataset has a shape, a way to get it, and (when loaded from files) splits and a loader; its
    class groups index its class names. A temporary entry is seen inside its block only, and may not shadow one."""
    for name, d in registry.datasets().items():
        assert d.name == name and d.shape and d.get and d.heading
        assert (d.load is None) == (not d.splits) == (name == "toy")
        assert all(i < len(d.class_names) for group in d.class_groups.values() for i in group), name
    assert registry.get("toy:ring8").shape == (2,) and registry.CLASS_GROUPS["fashion-mnist"]["bag"] == (8,)
    extra = registry.Dataset("extra", "Extra", (1, 4, 4), {"train": 2}, None, "nowhere", class_names=("a", "b"))
    with registry.temporary(extra):
        assert registry.get("extra") is extra and registry.CLASS_NAMES["extra"] == ("a", "b")
        with pytest.raises(ValueError, match="registered already"):
            with registry.temporary(extra):
                pass
    assert "extra" not in registry.datasets() and "extra" not in registry.CLASS_NAMES


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("REPLICATION_DATA", str(tmp_path))
    assert D.default_root() == tmp_path
    monkeypatch.delenv("REPLICATION_DATA")
    assert D.default_root() == Path(D.__file__).resolve().parents[2] / "data"


def test_read_idx_gz_roundtrip(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", x)
    assert np.array_equal(D.read_idx(tmp_path / "a.gz"), x)


# ---------------------------------------------------------------------------------------------------
# Batching.


def test_to_unit():
    x = D.to_unit(torch.tensor([0, 51, 255], dtype=torch.uint8))
    assert x.dtype == torch.float32 and torch.allclose(x, torch.tensor([0.0, 0.2, 1.0]))


def images(n=10):
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 3).contiguous()


def ids(batch):
    return (batch[:, 0, 0, 0] * 255).round().long().tolist()


def test_batches_deterministic_and_cover_epoch():
    x = images(10)
    a = [ids(b) for b in D.batches(x, 3, torch.Generator().manual_seed(5))]
    b = [ids(b) for b in D.batches(x, 3, torch.Generator().manual_seed(5))]
    assert a == b and len(a) == 3  # drop_last: 10 // 3 batches
    perm = D.epoch_permutation(10, torch.Generator().manual_seed(5)).tolist()
    assert sum(a, []) == perm[:9]
    full = [ids(b) for b in D.batches(x, 3, torch.Generator().manual_seed(5), drop_last=False)]
    assert sum(full, []) == perm and len(full[-1]) == 1
    other = [ids(b) for b in D.batches(x, 3, torch.Generator().manual_seed(6))]
    assert other != a


def test_batches_resume_with_skip():
    x = images(20)
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    straight = [b for b in D.batches(x, 4, g, hflip=True)]
    after_epoch = g.get_state()
    g.set_state(state)
    resumed = list(D.batches(x, 4, g, hflip=True, skip=2))
    assert len(resumed) == 3 and all(torch.equal(p, q) for p, q in zip(straight[2:], resumed))
    assert torch.equal(g.get_state(), after_epoch)  # The whole epoch's randomness was drawn up front.


def test_batches_hflip():
    x = torch.arange(6, dtype=torch.uint8).view(1, 1, 1, 6).repeat(64, 1, 1, 1)
    flipped = [b[:, 0, 0, 0] > 0 for b in D.batches(x, 64, torch.Generator().manual_seed(0), hflip=True)][0]
    assert 10 < flipped.sum() < 54  # About half are flipped ...
    batch = next(D.batches(x, 64, torch.Generator().manual_seed(0), hflip=True))
    assert torch.equal(batch[flipped], D.to_unit(x[:1].flip(-1)).expand(int(flipped.sum()), 1, 1, 6))
    plain = next(D.batches(x, 64, torch.Generator().manual_seed(0)))
    assert torch.equal(plain, D.to_unit(x))  # ... and none without hflip.


# ---------------------------------------------------------------------------------------------------
# Toy mixtures.


@pytest.mark.parametrize("name", list(D.TOY_MIXTURES))
def test_toy_mixture_sampling_matches_weights(name):
    means, stds, weights = D.toy_mixture(name)
    assert means.dtype == torch.float64 and means.shape == (len(weights), 2) and stds.shape == weights.shape
    assert torch.isclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    n = 40000
    x, k = GaussianMixture(means, stds, weights).sample(n, torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and x.dtype == torch.float64 and k.dtype == torch.int64
    freq = torch.bincount(k, minlength=len(weights)).double() / n
    assert torch.all((freq - weights).abs() <= 4 * (weights * (1 - weights) / n).sqrt())  # 4 binomial SEs
    for j in range(len(weights)):  # Per-component mean and std.
        xj = x[k == j]
        assert torch.allclose(xj.mean(0), means[j], atol=4 * stds[j].item() / len(xj) ** 0.5)
        assert torch.allclose(xj.std(0), stds[j].expand(2), rtol=0.1)
    again = GaussianMixture(means, stds, weights).sample(n, torch.Generator().manual_seed(0))[0]
    assert torch.equal(x, again)


def test_unknown_toy_mixture():
    with pytest.raises(ValueError, match="ring8"):
        D.toy_mixture("spiral")
