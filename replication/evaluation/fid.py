"""FID with clean-fid 0.1.35's own code path, over project-staged assets (docs/on-disk.md §7).

    d² = ||mu_1 - mu_2||² + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})    (Fréchet distance of 2 Gaussians)

Pipeline: samples in [0,1] -> `to_uint8` (round to nearest) -> `export_pngs` (a dedicated folder of
exactly N PNGs) -> `folder_features` (`cleanfid.fid.get_folder_features`: clean-fid's loader, its
resizer for the mode, its quantization) -> `stats` (mean, covariance as `fid_from_feats` does) ->
`frechet` (`metrics.frechet_distance`: `cleanfid.fid.frechet_distance`) against a reference `.npz` (mu, sigma).

Extractors (`get_extractor`):

| name                  | network                                 | mode              | metric  |
|-----------------------|-----------------------------------------|-------------------|---------|
| `inception-legacy-tf` | clean-fid `InceptionV3W`, resize in net | legacy_tensorflow | FID     |
| `inception-clean`     | clean-fid `InceptionV3W`, no resize     | clean             | FID     |
| `test-proj16`         | fixed random projection of 4x4 avg pool | either            | NOT FID |

(both Inception ones with `path=<assets>, download=False`)

The Inception ones are exactly what `cleanfid.features.build_feature_extractor(mode, device,
use_dataparallel=False)` builds, but loaded from the staged assets folder, never downloaded.
(`get_folder_features` in 0.1.35 has no `use_dataparallel` argument; the DataParallel wrapper only
exists in `build_feature_extractor`, which is bypassed, so there is none.) `test-proj16` is for
tests and the tiny profile: its numbers are Fréchet distances in a 16-D toy feature space, labelled
`FD_test-proj16 (NOT FID)` so they can never pass for FID.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.storage import atomic_write_bytes, sha256_file
from .assets import ASSETS, INCEPTION, AssetsNotStaged, assets_dir, fix_command, require_assets
from .images import export_pngs
from .metrics import frechet_distance

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "folder_features",
    "frechet",
    "get_extractor",
    "load_ref_meta",
    "load_ref_stats",
    "make_ref_stats",
    "save_ref_stats",
    "score_folder",
    "stats",
]

MODES = ("legacy_tensorflow", "clean")
NOT_STAGED_REASON = "FID not computed: assets not staged; run `{cmd}`"


def clean_fid_version() -> str:
    return metadata.version("clean-fid")


# --------------------------------------------------------------------------------------------------
# Feature extractors.


@dataclass
class Extractor:
    """Callable [B, 3, H, W] float in [0,255] -> [B, D] tensor: clean-fid's `model` argument."""

    name: str  # registry name, recorded next to every number
    metric_name: str  # "FID" only for Inception
    modes: tuple[str, ...]  # clean-fid modes this extractor is valid for
    dim: int
    fn: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    description: str = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


# name -> (metric name, valid modes); known without building anything (so without assets).
EXTRACTORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "inception-legacy-tf": ("FID", ("legacy_tensorflow",)),
    "inception-clean": ("FID", ("clean",)),
    "test-proj16": ("FD_test-proj16 (NOT FID)", MODES),
}


def _check_name_mode(name: str, mode: str | None = None) -> None:
    if name not in EXTRACTORS:
        raise ValueError(f"unknown extractor {name!r}; known: {', '.join(EXTRACTORS)}")
    if mode is not None and mode not in EXTRACTORS[name][1]:
        raise ValueError(f"extractor {name} is for mode {EXTRACTORS[name][1]}, not {mode!r}")


TEST_PROJ_SEED = 20220425  # fixed; changing it changes every test-proj16 number


def _test_proj16(device: torch.device) -> Extractor:
    """Deterministic toy extractor: 4x4 average pool of x/255 (48 values) @ a fixed 48x16 matrix.

    The matrix comes from numpy's legacy RandomState, whose stream numpy keeps frozen.
    """
    w = np.random.RandomState(TEST_PROJ_SEED).standard_normal((48, 16)) / np.sqrt(48)
    weight = torch.tensor(w, dtype=torch.float32, device=device)
    pool = torch.nn.AdaptiveAvgPool2d(4)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return pool(x.float() / 255).flatten(1) @ weight  # [B, 48] @ [48, 16]

    return Extractor(
        "test-proj16",
        *EXTRACTORS["test-proj16"],
        16,
        fn,
        "test only: fixed random projection of a 4x4 average pool; not Inception, not FID",
    )


def _inception(name: str, device: torch.device, assets: str | os.PathLike | None) -> Extractor:
    from cleanfid.inception_torchscript import InceptionV3W  # heavy: clean-fid imports torchvision (about 4 s)

    root = require_assets([INCEPTION], assets)
    resize_inside = name == "inception-legacy-tf"
    net = (
        InceptionV3W(path=str(root), download=False, resize_inside=resize_inside).to(device).eval()
    )
    return Extractor(
        name,
        *EXTRACTORS[name],
        2048,
        net,
        f"clean-fid InceptionV3W (TorchScript {INCEPTION}), resize_inside={resize_inside}",
    )


def get_extractor(
    name: str, device: str | torch.device, assets: str | os.PathLike | None = None
) -> Extractor:
    """A registered extractor on `device`; Inception needs staged weights (else AssetsNotStaged)."""
    _check_name_mode(name)
    device = torch.device(device)
    if name == "test-proj16":
        return _test_proj16(device)
    return _inception(name, device, assets)


# --------------------------------------------------------------------------------------------------
# Features, statistics, distance.


def folder_features(
    folder: str | os.PathLike,
    extractor: Extractor,
    mode: str,
    device: str | torch.device,
    num_workers: int = 0,
    batch_size: int = 64,
    expected_n: int | None = None,
) -> np.ndarray:
    """Features [N, D] of every image in `folder`, through `cleanfid.fid.get_folder_features`."""
    from cleanfid import fid as cfid  # heavy: clean-fid imports torchvision (about 4 s)

    folder = str(folder)
    if mode not in extractor.modes:
        raise ValueError(f"extractor {extractor.name} is for mode {extractor.modes}, not {mode!r}")
    if ".zip" in folder and not (os.path.isfile(folder) and folder.endswith(".zip")):
        raise ValueError(f"{folder}: clean-fid treats any path containing '.zip' as a zip archive")
    feats = cfid.get_folder_features(
        folder,
        model=extractor,
        num_workers=num_workers,
        batch_size=batch_size,
        device=torch.device(device),
        mode=mode,
        verbose=False,
    )
    if expected_n is not None and len(feats) != expected_n:
        raise ValueError(f"{folder}: {len(feats)} images, expected exactly {expected_n}")
    return feats


def stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu [D], sigma [D, D]) exactly as clean-fid's `fid_from_feats` computes them."""
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


frechet = frechet_distance  # the suite's one Fréchet distance (`metrics`): `cleanfid.fid.frechet_distance`


# --------------------------------------------------------------------------------------------------
# Reference statistics files: npz with mu, sigma (clean-fid / EDM convention) and our meta as JSON.


def save_ref_stats(
    path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray, meta: dict | None = None
) -> None:
    """Write an npz with `mu`, `sigma` and `meta_json` (a JSON string), atomically."""
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, meta_json=np.array(json.dumps(meta or {}, sort_keys=True)))
    atomic_write_bytes(path, buf.getvalue())


def load_ref_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from an npz: ours, clean-fid's stats or EDM's fid-refs (no pickles loaded)."""
    with np.load(path, allow_pickle=False) as f:
        return f["mu"], f["sigma"]


def load_ref_meta(path: str | os.PathLike) -> dict:
    """Our meta dict, or {} for files without one (clean-fid's own stats)."""
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["meta_json"])) if "meta_json" in f else {}


def make_ref_stats(
    images_uint8: torch.Tensor | np.ndarray,
    out_path: str | os.PathLike,
    extractor: Extractor | str,
    mode: str,
    device: str | torch.device = "cpu",
    assets: str | os.PathLike | None = None,
    num_workers: int = 0,
    batch_size: int = 64,
    meta: dict | None = None,
) -> dict:
    """Reference statistics of a uint8 dataset [N, C, H, W], by the samples' PNG + clean-fid path.

    The PNGs go to a temporary folder next to `out_path` (FFHQ-256 is too big for /tmp) and are
    deleted afterwards. Returns the meta written into the file.
    """
    out_path = Path(out_path)
    if isinstance(extractor, str):
        extractor = get_extractor(extractor, device, assets)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_path.stem}.refpngs-", dir=out_path.parent))
    try:
        folder = export_pngs(images_uint8, work / "png")
        feats = folder_features(
            folder, extractor, mode, device, num_workers, batch_size, expected_n=len(images_uint8)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mu, sigma = stats(feats)
    full_meta = {
        **(meta or {}),
        "extractor": extractor.name,
        "metric": extractor.metric_name,
        "mode": mode,
        "n": len(feats),
        "dim": int(feats.shape[1]),
        "clean_fid_version": clean_fid_version(),
    }
    save_ref_stats(out_path, mu, sigma, full_meta)
    return full_meta


# --------------------------------------------------------------------------------------------------
# Scoring a sample folder.


def _check_ref(ref_path: Path, extractor: Extractor, mode: str, mu: np.ndarray) -> None:
    """Refuse a reference made with another extractor or mode (the numbers would be meaningless)."""
    meta = load_ref_meta(ref_path)
    if meta:
        made_with = (meta.get("extractor", extractor.name), meta.get("mode", mode))
        if made_with != (extractor.name, mode):
            raise ValueError(
                f"{ref_path} was made with extractor {meta.get('extractor')!r}, mode "
                f"{meta.get('mode')!r}; scoring uses {extractor.name!r}, {mode!r}"
            )
    else:
        asset = ASSETS.get(ref_path.name)
        if asset is not None and asset.mode is not None and asset.mode != mode:
            raise ValueError(
                f"{ref_path} is clean-fid's {asset.mode} reference; scoring uses mode {mode!r}"
            )
    if mu.shape != (extractor.dim,):
        raise ValueError(
            f"{ref_path}: mu has shape {mu.shape}; {extractor.name} gives {extractor.dim}-D"
        )


def score_folder(
    sample_dir: str | os.PathLike,
    ref_path: str | os.PathLike,
    extractor_name: str,
    mode: str,
    device: str | torch.device,
    assets: str | os.PathLike | None = None,
    expected_n: int | None = None,
    num_workers: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Fréchet distance of a PNG folder to reference statistics, as a JSON-ready record.

    Returns {metric, value, status, mode, extractor, n, ref, ref_sha256, clean_fid_version, ...}. If
    the Inception weights or a clean-fid reference file are not staged, returns the same record with
    `value: None, status: "not computed"` and a `reason` naming the fix, instead of raising, so the
    other stages carry on. A wrong image count or a mismatched reference still raises.
    """
    ref_path = Path(ref_path)
    _check_name_mode(extractor_name, mode)
    record: dict[str, Any] = {
        "metric": EXTRACTORS[extractor_name][0],
        "value": None,
        "status": "not computed",
        "mode": mode,
        "extractor": extractor_name,
        "n": expected_n,
        "ref": str(ref_path),
        "sample_dir": str(sample_dir),
        "clean_fid_version": clean_fid_version(),
        "device": str(device),
    }
    not_staged = NOT_STAGED_REASON.format(cmd=fix_command(assets))
    try:
        extractor = get_extractor(extractor_name, device, assets)
    except AssetsNotStaged as e:
        return {**record, "reason": not_staged, "detail": str(e)}
    if not ref_path.is_file():
        if ref_path.name in ASSETS:
            return {**record, "reason": not_staged, "detail": f"{ref_path} missing"}
        raise FileNotFoundError(
            f"reference statistics {ref_path} not found (make them with make_ref_stats)"
        )
    if (
        ref_path.name in ASSETS
        and ref_path.resolve() == (assets_dir(assets) / ASSETS[ref_path.name].relpath).resolve()
    ):
        try:
            require_assets([ref_path.name], assets)
        except AssetsNotStaged as e:
            return {**record, "reason": not_staged, "detail": str(e)}

    ref_mu, ref_sigma = load_ref_stats(ref_path)
    _check_ref(ref_path, extractor, mode, ref_mu)
    feats = folder_features(
        sample_dir, extractor, mode, device, num_workers, batch_size, expected_n
    )
    mu, sigma = stats(feats)
    return {
        **record,
        "metric": extractor.metric_name,
        "value": frechet(mu, sigma, ref_mu, ref_sigma),
        "status": "ok",
        "n": len(feats),
        "ref_sha256": sha256_file(ref_path),
        "ref_meta": load_ref_meta(ref_path),
        "extractor_description": extractor.description,
    }
