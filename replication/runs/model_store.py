"""Trained models committed to the repository (`results/models/`): publish a finished train stage, adopt it later.

The suite's Fashion-MNIST classifier (the feature space of FD_classifier) is committed the same way, as
`classifier-<dataset>.pt`, so every machine scores in the same features.

A committed model is `results/models/<dataset>-<profile>-<train key 8>.pt` (the train stage's model.pt, weights
and EMA weights, checksummed) beside `<same>.json`: the train stage's DONE.json (config key, summary with the
loss history and wall time, provenance: code version, hardware, load) plus the held-out loss measured when it
was published. The train stage adopts a committed model whose train key matches its own (same dataset, model
and train config) instead of training, and says so; `replicate.py --retrain` trains from scratch instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from ..data import registry
from ..data.datasets import load_images, to_unit
from ..data.storage import atomic_write_json, read_json
from ..errors import UsageError
from .experiments import Experiment
from .folders import REPO_ROOT
from .models import load_model

MODELS = REPO_ROOT / "results" / "models"


def models_dir() -> Path:
    """results/models/ of the repository, or $REPLICATION_MODELS (tests, a shared model store)."""
    return Path(os.environ.get("REPLICATION_MODELS", MODELS))
MAX_BYTES = 10 * 2**20  # a committed model stays small (issue 11: at most 10 MB)


def committed_name(e: Experiment, key: str) -> str:
    return f"{e.dataset.replace(':', '-')}-{e.profile}-{key[:8]}"


def committed_model(name: str, data_shape: tuple[int, ...]):
    """The committed model `results/models/<name>.pt` (its EMA weights when it has them), to start a training from
    (train.init_from)."""
    path = models_dir() / f"{name}.pt"
    if not path.is_file():
        known = sorted(p.stem for p in models_dir().glob("*.pt") if not p.stem.startswith("classifier"))
        raise UsageError(f"train.init_from={name!r}: no committed model {path}; committed: {', '.join(known) or 'none'}")
    return load_model(path, data_shape, use_ema=True)


def find_committed(e: Experiment, key: str) -> Path | None:
    """The committed model file for this train config, or None."""
    path = models_dir() / f"{committed_name(e, key)}.pt"
    return path if path.exists() and (path.with_suffix(".json")).exists() else None


def adopt(e: Experiment, key: str, committed: Path, train_dir: Path) -> dict:
    """Copy the committed model into the train stage's folder and mark the stage done from its record."""
    meta = read_json(committed.with_suffix(".json"))
    if meta.get("key") != key:
        raise UsageError(f"{committed} records train key {str(meta.get('key'))[:12]}, not {key[:12]}: the file was "
                         f"renamed or edited; restore it with git checkout or train with --retrain")
    train_dir.mkdir(parents=True, exist_ok=True)
    tmp = train_dir / f".model.pt.tmp{os.getpid()}"
    shutil.copyfile(committed, tmp)
    tmp.replace(train_dir / "model.pt")
    done = dict(meta, adopted_from=str(committed))
    atomic_write_json(train_dir / "DONE.json", done)
    return done


def heldout_loss(e: Experiment, model_path: Path, data_root: str | None, n: int = 1000) -> dict:
    """The training loss (poster Eq. 3) on n held-out test images with fixed noise, raw and EMA weights."""
    x = to_unit(load_images(e.dataset, data_root, "test")[0][:n])
    out = {"n": n, "split": "test"}
    for name, use_ema in (("raw", False), ("ema", True)):
        scheme = load_model(model_path, e.image_shape, use_ema=use_ema, spec=e.model)
        g = torch.Generator().manual_seed(0)
        with torch.inference_mode() if e.model.scheme == "mdae" else torch.no_grad():  # MEM, MUVB: score by autograd
            losses = [scheme.loss(x[i : i + 250], g).item() * len(x[i : i + 250]) for i in range(0, n, 250)]
        out[name] = sum(losses) / n
    return out


def publish(e: Experiment, key: str, train_dir: Path, data_root: str | None) -> Path:
    """Commit-ready copy of a finished train stage: model file + JSON record (never overwrites a different model)."""
    done = read_json(train_dir / "DONE.json")
    if done.get("key") != key:
        raise UsageError(f"{train_dir} is not a finished train stage of this config: run the train stage first")
    src = train_dir / "model.pt"
    if src.stat().st_size > MAX_BYTES:
        raise UsageError(f"{src} is {src.stat().st_size / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit "
                         f"for a committed model")
    models = models_dir()
    dest = models / f"{committed_name(e, key)}.pt"
    if dest.exists() and dest.read_bytes() != src.read_bytes():
        raise FileExistsError(f"{dest} exists with other weights: move it aside first")
    models.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    meta = dict(done, config=e.to_dict(), heldout_loss=heldout_loss(e, src, data_root),
                load_avg_at_publish=list(os.getloadavg()), file_bytes=src.stat().st_size)
    atomic_write_json(dest.with_suffix(".json"), meta)
    return dest


def classifier_name(dataset: str) -> str:
    return registry.get(dataset).classifier_file


def adopt_classifier(dataset: str, dest: Path) -> Path | None:
    """Copy the committed classifier of `dataset` to `dest`; None when there is none."""
    committed = models_dir() / classifier_name(dataset)
    if not committed.exists():
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.copyfile(committed, tmp)
    tmp.replace(dest)
    return committed


def publish_classifier(dataset: str, path: Path) -> Path:
    """Commit-ready copy of a trained classifier (refuses to replace a different committed one)."""
    dest = models_dir() / classifier_name(dataset)
    if dest.exists() and dest.read_bytes() != path.read_bytes():
        raise FileExistsError(f"{dest} exists with other weights: every recorded FD_classifier uses it; move it aside first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return dest
