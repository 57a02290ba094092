"""Staged FID assets: clean-fid 0.1.35's Inception TorchScript and CIFAR-10 reference statistics.

clean-fid downloads these on first use, into `/tmp` and `site-packages/cleanfid/stats/`, streaming
straight into the final path (no temporary file, no checksum; clean-fid #9, #24). The suite instead
stages them once into its own assets folder (docs/on-disk.md §7) and never lets clean-fid
download anything:

    <assets>/inception-2015-12-05.pt                      for InceptionV3W(<assets>, download=False)
    <assets>/refs/cifar10_legacy_tensorflow_train_32.npz  mu (2048,), sigma (2048, 2048)
    <assets>/refs/cifar10_clean_train_32.npz
    <assets>/MANIFEST.json                                url, sha256, size, provenance per file

The URLs are the ones in clean-fid 0.1.35's installed source (`downloads_helper.inception_url`,
`features.get_reference_statistics`). No sha256 for these files is published by clean-fid, NVIDIA or
the clean-fid stats site, and none could be checked on the development machines (no internet), so
`EXPECTED_SHA256` is None for all three: the manifest records the hash of the first successful
download (trust on first use, `"provenance": "trust-on-first-use"`) and every later use is checked
against it. To pin a hash, fill in `Asset.sha256` from a download you trust.

The assets folder is `--assets DIR`, else `$REPLICATION_ASSETS`, else `assets/` in the repository
root. Stage them with `python replicate.py --stage-assets`, check them with `python replicate.py --verify-assets`.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ..data import registry
from ..data.storage import atomic_write_json, read_json, sha256_file
from ..errors import ReplicationError

STAGE_COMMAND = "python replicate.py --stage-assets"
MANIFEST = "MANIFEST.json"
INCEPTION = "inception-2015-12-05.pt"
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Asset:
    name: str  # file name, as clean-fid names it
    relpath: str  # where it lives inside the assets folder
    url: str  # canonical download URL (from clean-fid 0.1.35's source)
    kind: str  # "torchscript" | "ref-stats"
    sha256: str | None  # pinned hash; None = trust on first use (see module docstring)
    source: str  # where in clean-fid the URL comes from
    mode: str | None = None  # clean-fid mode the reference statistics were computed in


_STATS_URL = "https://www.cs.cmu.edu/~clean-fid/stats/"
# clean-fid builds f"{base_url}/{rel_path}" with base_url already ending in "/", so the URL it
# requests has a double slash (".../stats//cifar10_clean_train_32.npz"); the canonical single-slash
# form is kept here.


def ref_stats_name(dataset: str, mode: str, split: str, res: int) -> str:
    """clean-fid's reference-statistics file name, e.g. cifar10_legacy_tensorflow_train_32.npz."""
    return f"{dataset}_{mode}_{split}_{res}.npz".lower()


def _train_stats(dataset: registry.Dataset, mode: str) -> Asset:
    """clean-fid's reference statistics of a dataset's training split (its registry entry's `fid_stats` at `fid_res`,
    e.g. CIFAR-10 at 32x32), in one of its modes."""
    name = ref_stats_name(dataset.fid_stats, mode, "train", dataset.fid_res)
    return Asset(name=name, relpath=f"refs/{name}", url=_STATS_URL + name, kind="ref-stats", sha256=None,
                 source=f"cleanfid/features.py: get_reference_statistics('{dataset.fid_stats}', {dataset.fid_res}, "
                        f"mode='{mode}', split='train')",
                 mode=mode)


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            name=INCEPTION,
            relpath=INCEPTION,
            url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            kind="torchscript",
            sha256=None,
            source="cleanfid/downloads_helper.py: inception_url (used by InceptionV3W, modes clean "
            "and legacy_tensorflow); a TorchScript translation of TF's inception-2015-12-05.tgz",
        ),
        *(_train_stats(d, mode) for d in registry.datasets().values() if d.fid_stats
          for mode in ("legacy_tensorflow", "clean")),
    )
}


class AssetsNotStaged(ReplicationError, FileNotFoundError):
    """An asset is missing, unrecorded or fails its checksum; the message names the fix command."""


class AssetDownloadError(ReplicationError, RuntimeError):
    """A download failed or gave a file that fails its checksum; nothing was left behind."""


# --------------------------------------------------------------------------------------------------
# Where the assets live.


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def assets_dir(cli_value: str | os.PathLike | None = None) -> Path:
    """`--assets DIR` if given, else `$REPLICATION_ASSETS`, else `assets/` in the repo root."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("REPLICATION_ASSETS")
    return Path(env) if env else repo_root() / "assets"


def fix_command(dest: str | os.PathLike | None = None) -> str:
    """The command that stages the assets into `dest` (omits `--assets` for the default folder)."""
    if dest is None or Path(dest).resolve() == assets_dir().resolve():
        return STAGE_COMMAND
    return f"{STAGE_COMMAND} --assets {dest}"


def asset_path(name: str, dest: str | os.PathLike | None = None) -> Path:
    return assets_dir(dest) / _asset(name).relpath


def _asset(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}") from None


def _names(names: Iterable[str] | None) -> list[str]:
    names = list(ASSETS) if names is None else list(names)
    for n in names:
        _asset(n)
    return names


def read_manifest(dest: str | os.PathLike | None = None) -> dict:
    path = assets_dir(dest) / MANIFEST
    if not path.exists():
        return {"schema": 1, "assets": {}}
    return read_json(path)


# --------------------------------------------------------------------------------------------------
# Checking.


def _check_content(asset: Asset, path: Path) -> None:
    """Cheap structural check (the hash is the real one): a TorchScript zip, or npz mu/sigma."""
    if asset.kind == "torchscript":
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a TorchScript archive (not a zip file)")
    elif asset.kind == "ref-stats":
        with np.load(path, allow_pickle=False) as f:
            if "mu" not in f or "sigma" not in f:
                raise ValueError(f"{path} has no mu/sigma arrays (keys: {list(f.keys())})")
            mu, sigma = f["mu"], f["sigma"]
        if mu.shape != (2048,) or sigma.shape != (2048, 2048):
            raise ValueError(
                f"{path}: mu {mu.shape}, sigma {sigma.shape}; expected (2048,), (2048, 2048)"
            )


def _expected_sha(asset: Asset, manifest: dict) -> str | None:
    """The pinned hash if there is one, else the one recorded at first download."""
    return asset.sha256 or manifest.get("assets", {}).get(asset.name, {}).get("sha256")


def verify_assets(
    dest: str | os.PathLike | None = None, names: Iterable[str] | None = None
) -> dict[str, str]:
    """sha256-check staged assets.

    Returns {name: "ok" | "missing" | "unrecorded" | "sha256 mismatch: ..."}. "unrecorded" means
    the file is there but neither pinned nor in MANIFEST.json (copied in by hand): run the stage
    command, which checks and records it without downloading.
    """
    root, manifest = assets_dir(dest), read_manifest(dest)
    report = {}
    for name in _names(names):
        asset, path = _asset(name), root / _asset(name).relpath
        expected = _expected_sha(asset, manifest)
        if not path.is_file():
            report[name] = "missing"
        elif expected is None:
            report[name] = "unrecorded"
        else:
            got = sha256_file(path)
            report[name] = (
                "ok" if got == expected else f"sha256 mismatch: expected {expected}, got {got}"
            )
    return report


def require_assets(names: Iterable[str], dest: str | os.PathLike | None = None) -> Path:
    """The assets folder, if every named asset is staged and passes its checksum; else raise."""
    report = verify_assets(dest, names)
    bad = {n: s for n, s in report.items() if s != "ok"}
    if bad:
        root = assets_dir(dest)
        problems = "; ".join(f"{n}: {s}" for n, s in bad.items())
        raise AssetsNotStaged(
            f"FID assets not staged in {root} ({problems}); run `{fix_command(dest)}` on a machine "
            f"with internet, or copy the files there and run it offline to record them"
        )
    return assets_dir(dest)


# --------------------------------------------------------------------------------------------------
# Staging (for a machine with internet).


def _download(url: str, final: Path, timeout_s: float) -> tuple[str, int]:
    """Stream url into a temporary sibling of `final`, hashing as it goes; return (sha256, size).

    The temporary file is removed on any failure, so an interrupted download leaves nothing behind.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.download{os.getpid()}")
    h, size = hashlib.sha256(), 0
    try:
        # Look urlopen up at call time, so tests can replace it.
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as f:
            while block := response.read(1 << 20):
                f.write(block)
                h.update(block)
                size += len(block)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return h.hexdigest(), size


def stage_assets(
    dest: str | os.PathLike | None = None,
    names: Iterable[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict:
    """Download (or adopt) the named assets into `dest` and record them in MANIFEST.json.

    Per asset:
    - already there and matching its pinned or recorded sha256: kept;
    - there but unrecorded (copied in by hand): structurally checked, then recorded (trust on
      first use);
    - otherwise downloaded with urllib to a temporary file, sha256-checked (against the pinned hash,
      or the recorded one if the manifest has one), structurally checked and renamed into place.

    MANIFEST.json is rewritten atomically after each asset. Returns the manifest.
    Raises AssetDownloadError (after removing any temporary file) if a download or check fails.
    """
    root = assets_dir(dest)
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root)
    manifest.setdefault("assets", {})
    for name in _names(names):
        asset = _asset(name)
        path = root / asset.relpath
        expected = _expected_sha(asset, manifest)
        tmp = path.with_name(f".{path.name}.download{os.getpid()}")

        if path.is_file() and expected is not None and sha256_file(path) == expected:
            print(f"[assets] {name}: ok", flush=True)
            continue
        if path.is_file() and expected is None:
            # Adopt a file copied in by hand (offline clusters): check it, record its hash.
            try:
                _check_content(asset, path)
            except Exception as e:
                raise AssetDownloadError(
                    f"{name}: existing file {path} is unusable ({e}); delete it "
                    f"and run `{fix_command(dest)}` again"
                ) from e
            sha, size, how = sha256_file(path), path.stat().st_size, "adopted existing file"
        else:
            print(f"[assets] {name}: downloading {asset.url}", flush=True)
            try:
                sha, size = _download(asset.url, path, timeout_s)
                if expected is not None and sha != expected:
                    raise ValueError(f"sha256 mismatch: expected {expected}, got {sha}")
                _check_content(asset, tmp)
            except Exception as e:
                tmp.unlink(missing_ok=True)
                raise AssetDownloadError(
                    f"{name}: could not stage from {asset.url} ({type(e).__name__}: {e}); nothing "
                    f"was written to {path}. Run `{fix_command(dest)}` on a machine with internet, "
                    f"or copy the file to {path} and run it there offline."
                ) from e
            os.replace(tmp, path)
            how = "downloaded"

        manifest["assets"][name] = {
            "relpath": asset.relpath,
            "url": asset.url,
            "kind": asset.kind,
            "mode": asset.mode,
            "sha256": sha,
            "size": size,
            "provenance": "pinned" if asset.sha256 else "trust-on-first-use",
            "how": how,
            "staged_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "clean_fid_version": _clean_fid_version(),
            "source": asset.source,
        }
        atomic_write_json(root / MANIFEST, manifest)
        print(f"[assets] {name}: {how}, sha256 {sha} ({size} bytes)", flush=True)
    return manifest


def _clean_fid_version() -> str:
    try:
        return metadata.version("clean-fid")
    except metadata.PackageNotFoundError:
        return "not installed"
