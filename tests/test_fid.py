"""FID wrapper and asset staging: clean-fid's real loader/resizer/Fréchet path, toy extractor.

Fast, CPU only, no network: every download entry point raises. Numbers from `test-proj16` are
Fréchet distances in a 16-D toy feature space, never FID.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from replication.evaluation import assets as A
from replication.evaluation import fid as F
from replication.evaluation import images as I

N = 40  # images per set: enough for a full-rank 16-D covariance


def images(seed: int = 0, n: int = N, c: int = 3, hw: int = 32) -> np.ndarray:
    """uint8 [n, c, hw, hw] with structure at the 4x4-pool scale (so the toy features vary)."""
    rng = np.random.RandomState(seed)
    coarse = rng.uniform(40, 215, size=(n, c, 4, 4))
    fine = rng.normal(0, 12, size=(n, c, hw, hw))
    x = np.kron(coarse, np.ones((hw // 4, hw // 4))) + fine
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def proj16():
    return F.get_extractor("test-proj16", "cpu")


def features(folder, extractor, mode="legacy_tensorflow", **kw):
    return F.folder_features(folder, extractor, mode, "cpu", num_workers=0, batch_size=16, **kw)


# --------------------------------------------------------------------------------------------------
# uint8 conversion and PNG export.


def test_to_uint8_rounds_to_nearest_and_clips():
    x = np.array([0.0, 0.49 / 255, 0.51 / 255, 127.6 / 255, 254.49 / 255, 1.0, -0.3, 1.7])
    want = np.array([0, 0, 1, 128, 254, 255, 0, 255], dtype=np.uint8)
    np.testing.assert_array_equal(I.to_uint8(x), want)
    got_t = I.to_uint8(torch.tensor(x, dtype=torch.float32))
    assert got_t.dtype == torch.uint8
    np.testing.assert_array_equal(got_t.numpy(), want)
    with pytest.raises(ValueError, match="non-finite"):
        I.to_uint8(np.array([0.5, np.nan]))


@pytest.mark.parametrize("c", [1, 3])
def test_png_round_trip_is_exact(tmp_path, c):
    x = images(seed=1, n=5, c=c, hw=28)
    out = I.export_pngs(x, tmp_path / "png")
    assert sorted(os.listdir(out)) == [f"{i:06d}.png" for i in range(5)]
    assert os.listdir(tmp_path) == ["png"]  # no partial folder left behind
    for i in range(5):
        back = np.asarray(Image.open(out / f"{i:06d}.png"))
        np.testing.assert_array_equal(back, x[i, 0] if c == 1 else x[i].transpose(1, 2, 0))

    # What clean-fid reads (convert("RGB") in its dataset): grayscale is replicated exactly.
    from cleanfid.utils import ResizeDataset

    ds = ResizeDataset(sorted(str(p) for p in out.iterdir()), mode="legacy_tensorflow")
    seen = ds[2].numpy()  # [3, H, W] float in [0, 255]
    np.testing.assert_allclose(
        seen, np.broadcast_to(x[2], (3, 28, 28)).astype(np.float32), atol=1e-4
    )


def test_export_refuses_to_mix_and_replaces_on_request(tmp_path):
    I.export_pngs(images(n=4), tmp_path / "png")
    with pytest.raises(FileExistsError):
        I.export_pngs(images(n=3), tmp_path / "png")
    I.export_pngs(images(n=3), tmp_path / "png", overwrite=True)
    assert I.count_images(tmp_path / "png") == 3
    assert os.listdir(tmp_path) == ["png"]
    with pytest.raises(ValueError, match="uint8"):
        I.export_pngs(images(n=2).astype(np.float32), tmp_path / "other")


# --------------------------------------------------------------------------------------------------
# Fréchet distance through clean-fid's get_folder_features, with test-proj16.


@pytest.fixture(scope="module")
def x_dir(tmp_path_factory):
    return I.export_pngs(images(seed=0), tmp_path_factory.mktemp("x") / "png")


def test_features_are_the_pooled_projection_of_each_image_in_file_order(x_dir, proj16):
    """test-proj16 through clean-fid's folder reader (legacy_tensorflow: no resize; PNGs lossless): the 8x8 block means
    of x/255 (a 4x4 pool of 32x32) times the fixed 48x16 matrix, one row per image in export order."""
    feats = features(x_dir, proj16)
    pooled = (images(seed=0).astype(np.float64) / 255).reshape(N, 3, 4, 8, 4, 8).mean((3, 5)).reshape(N, 48)
    w = np.random.RandomState(F.TEST_PROJ_SEED).standard_normal((48, 16)) / np.sqrt(48)
    np.testing.assert_allclose(feats, pooled @ w, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="expected exactly 41"):
        features(x_dir, proj16, expected_n=41)


def test_fd_of_a_set_with_itself_is_zero(tmp_path, x_dir, proj16):
    again = I.export_pngs(images(seed=0), tmp_path / "again")  # a second export, read independently
    mu1, s1 = F.stats(features(x_dir, proj16))
    mu2, s2 = F.stats(features(again, proj16))
    assert abs(F.frechet(mu1, s1, mu2, s2)) < 1e-6
    # A different draw of the same distribution is near, but not at, zero.
    mu3, s3 = F.stats(features(I.export_pngs(images(seed=7), tmp_path / "other"), proj16))
    assert F.frechet(mu1, s1, mu3, s3) > 1e-4


def test_fd_increases_monotonically_with_noise(tmp_path, x_dir, proj16):
    mu, sigma = F.stats(features(x_dir, proj16))
    x = images(seed=0).astype(np.float64)
    z = np.kron(
        np.random.RandomState(3).normal(size=(N, 3, 8, 8)), np.ones((4, 4))
    )  # same noise, scaled
    values = []
    for level in (0, 8, 24, 64):
        noisy = np.clip(np.rint(x + level * z), 0, 255).astype(np.uint8)
        folder = I.export_pngs(noisy, tmp_path / f"noise{level}")
        values.append(F.frechet(*F.stats(features(folder, proj16)), mu, sigma))
    assert abs(values[0]) < 1e-6
    assert all(a < b for a, b in itertools.pairwise(values)), values


def test_fd_is_invariant_to_file_order(tmp_path, x_dir, proj16):
    ref = F.stats(features(I.export_pngs(images(seed=5), tmp_path / "ref"), proj16))
    perm = np.random.RandomState(0).permutation(N)
    shuffled = I.export_pngs(images(seed=0)[perm], tmp_path / "shuffled")
    f_orig, f_perm = features(x_dir, proj16), features(shuffled, proj16)
    np.testing.assert_allclose(f_perm, f_orig[perm], rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        F.frechet(*F.stats(f_perm), *ref), F.frechet(*F.stats(f_orig), *ref), rtol=1e-9
    )


def test_ref_stats_round_trip(tmp_path):
    rng = np.random.RandomState(0)
    mu, a = rng.normal(size=16), rng.normal(size=(16, 16))
    sigma = a @ a.T
    meta = {"dataset": "mnist", "split": "train", "extractor": "test-proj16", "mode": "clean"}
    F.save_ref_stats(tmp_path / "ref.npz", mu, sigma, meta)
    mu2, sigma2 = F.load_ref_stats(tmp_path / "ref.npz")
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    assert F.load_ref_meta(tmp_path / "ref.npz") == meta
    # clean-fid's own stats files have only mu/sigma: they load, with empty meta.
    np.savez(tmp_path / "plain.npz", mu=mu, sigma=sigma)
    assert F.load_ref_meta(tmp_path / "plain.npz") == {}
    assert [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".")
    ] == []  # atomic: no temp left


def test_make_ref_stats_then_score_folder(tmp_path, x_dir):
    meta = F.make_ref_stats(
        images(seed=0),
        tmp_path / "refs" / "x.npz",
        "test-proj16",
        "legacy_tensorflow",
        "cpu",
        meta={"dataset": "synthetic"},
    )
    assert meta["n"] == N and meta["extractor"] == "test-proj16" and meta["dataset"] == "synthetic"
    assert os.listdir(tmp_path / "refs") == ["x.npz"]  # the temporary PNGs are gone
    rec = F.score_folder(
        x_dir, tmp_path / "refs" / "x.npz", "test-proj16", "legacy_tensorflow", "cpu", expected_n=N
    )
    assert rec["status"] == "ok" and abs(rec["value"]) < 1e-6
    assert rec["metric"] == "FD_test-proj16 (NOT FID)" and rec["n"] == N
    assert rec["mode"] == "legacy_tensorflow" and rec["extractor"] == "test-proj16"
    assert rec["clean_fid_version"] == "0.1.35" and len(rec["ref_sha256"]) == 64
    json.dumps(rec)  # JSON-ready
    with pytest.raises(ValueError, match="expected exactly"):
        F.score_folder(
            x_dir,
            tmp_path / "refs" / "x.npz",
            "test-proj16",
            "legacy_tensorflow",
            "cpu",
            expected_n=N + 1,
        )
    # A reference made in another mode is refused, not silently compared.
    with pytest.raises(ValueError, match="mode"):
        F.score_folder(x_dir, tmp_path / "refs" / "x.npz", "test-proj16", "clean", "cpu")


def test_clean_mode_resizes_through_pil_and_scores(tmp_path, x_dir, proj16):
    """One run of mode "clean": clean-fid PIL-bicubic-resizes to 299 before the extractor."""
    shapes = []
    probe = F.Extractor(
        "test-proj16",
        proj16.metric_name,
        proj16.modes,
        16,
        lambda x: (shapes.append(tuple(x.shape)), proj16(x))[1],
    )
    F.make_ref_stats(images(seed=0), tmp_path / "x_clean.npz", probe, "clean", "cpu")
    assert shapes[0][1:] == (3, 299, 299)
    rec = F.score_folder(
        x_dir, tmp_path / "x_clean.npz", "test-proj16", "clean", "cpu", expected_n=N
    )
    assert rec["status"] == "ok" and abs(rec["value"]) < 1e-6


# --------------------------------------------------------------------------------------------------
# Inception without assets, and metric labels.


@pytest.mark.parametrize(
    "name,mode", [("inception-legacy-tf", "legacy_tensorflow"), ("inception-clean", "clean")]
)
def test_score_folder_without_assets_is_not_computed(tmp_path, x_dir, name, mode):
    ref = tmp_path / "assets" / "refs" / f"cifar10_{mode}_train_32.npz"
    rec = F.score_folder(x_dir, ref, name, mode, "cpu", assets=tmp_path / "assets", expected_n=N)
    assert rec["value"] is None and rec["status"] == "not computed"
    assert rec["metric"] == "FID" and rec["extractor"] == name and rec["mode"] == mode
    assert rec["reason"].startswith(
        "FID not computed: assets not staged; run `python replicate.py --stage-assets"
    )
    json.dumps(rec)


def test_inception_without_assets_raises_typed_error_naming_the_fix(tmp_path):
    with pytest.raises(A.AssetsNotStaged, match=r"python replicate\.py --stage-assets"):
        F.get_extractor("inception-clean", "cpu", assets=tmp_path)
    assert issubclass(A.AssetsNotStaged, FileNotFoundError)


def test_test_extractor_is_never_labelled_fid(proj16):
    assert proj16.metric_name != "FID" and "NOT FID" in proj16.metric_name
    assert {n: m for n, (m, _) in F.EXTRACTORS.items() if m == "FID"} == {
        "inception-legacy-tf": "FID",
        "inception-clean": "FID",
    }
    with pytest.raises(ValueError, match="unknown extractor"):
        F.get_extractor("inception", "cpu")
    with pytest.raises(ValueError, match="mode"):
        F.score_folder("unused", "unused.npz", "inception-clean", "legacy_tensorflow", "cpu")


def test_inception_is_built_from_staged_assets_without_download(tmp_path, monkeypatch):
    """With weights staged, get_extractor builds InceptionV3W(path, download=False, ...)."""
    _serve(monkeypatch, {A.ASSETS[A.INCEPTION].url: _fake_torchscript()})
    A.stage_assets(tmp_path, [A.INCEPTION])
    calls = []

    class FakeInceptionV3W(torch.nn.Module):
        def __init__(self, path, download=True, resize_inside=False):
            super().__init__()
            calls.append({"path": path, "download": download, "resize_inside": resize_inside})

        def forward(self, x):
            return torch.zeros(x.shape[0], 2048)

    import cleanfid.inception_torchscript as its

    monkeypatch.setattr(its, "InceptionV3W", FakeInceptionV3W)
    ext = F.get_extractor("inception-legacy-tf", "cpu", assets=tmp_path)
    assert calls == [{"path": str(tmp_path), "download": False, "resize_inside": True}]
    assert ext.metric_name == "FID" and ext.modes == ("legacy_tensorflow",) and not ext.fn.training
    F.get_extractor("inception-clean", "cpu", assets=tmp_path)
    assert calls[-1]["resize_inside"] is False


# --------------------------------------------------------------------------------------------------
# Asset staging.


def _fake_torchscript() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"not really a network")
    return buf.getvalue()


class _Response(io.BytesIO):
    def __init__(self, data: bytes, fail_after: int | None = None):
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset mid-download")
        return super().read(min(size, self.fail_after or size) if size and size > 0 else size)


def _serve(monkeypatch, files: dict[str, bytes], fail_after: int | None = None):
    def urlopen(url, timeout=None):
        if url not in files:
            raise OSError(f"unreachable: {url}")
        return _Response(files[url], fail_after)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_stage_assets_unreachable_fails_cleanly(tmp_path):
    with pytest.raises(A.AssetDownloadError, match=r"python replicate\.py --stage-assets --assets"):
        A.stage_assets(tmp_path)
    assert list(tmp_path.rglob("*")) == []  # no partial file, no temp file, no manifest


def test_stage_assets_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    _serve(monkeypatch, {A.ASSETS[A.INCEPTION].url: _fake_torchscript()}, fail_after=16)
    with pytest.raises(A.AssetDownloadError, match="ConnectionResetError"):
        A.stage_assets(tmp_path, [A.INCEPTION])
    assert list(tmp_path.rglob("*")) == []


def test_stage_assets_records_and_verifies_sha256(tmp_path, monkeypatch):
    payload = _fake_torchscript()
    _serve(monkeypatch, {A.ASSETS[A.INCEPTION].url: payload})
    manifest = A.stage_assets(tmp_path, [A.INCEPTION])
    entry = manifest["assets"][A.INCEPTION]
    assert entry["provenance"] == "trust-on-first-use" and entry["size"] == len(payload)
    assert json.loads((tmp_path / "MANIFEST.json").read_text()) == manifest
    assert A.verify_assets(tmp_path)[A.INCEPTION] == "ok"
    assert [n for n, state in A.verify_assets(tmp_path).items() if state == "missing"] == [
        "cifar10_legacy_tensorflow_train_32.npz",
        "cifar10_clean_train_32.npz",
    ]

    # A changed file fails verification and makes the Inception path "not staged".
    (tmp_path / A.INCEPTION).write_bytes(payload + b"x")
    assert A.verify_assets(tmp_path, [A.INCEPTION])[A.INCEPTION].startswith("sha256 mismatch")
    with pytest.raises(A.AssetsNotStaged):
        A.require_assets([A.INCEPTION], tmp_path)
    # Re-staging replaces it; a server now sending other bytes is refused against the recorded hash.
    A.stage_assets(tmp_path, [A.INCEPTION])
    assert A.verify_assets(tmp_path, [A.INCEPTION])[A.INCEPTION] == "ok"
    (tmp_path / A.INCEPTION).unlink()
    _serve(monkeypatch, {A.ASSETS[A.INCEPTION].url: _fake_torchscript() + b"tampered"})
    with pytest.raises(A.AssetDownloadError, match="sha256 mismatch"):
        A.stage_assets(tmp_path, [A.INCEPTION])
    assert not (tmp_path / A.INCEPTION).exists()


def test_stage_assets_adopts_hand_copied_files_offline(tmp_path):
    (tmp_path / A.INCEPTION).write_bytes(_fake_torchscript())
    assert A.verify_assets(tmp_path, [A.INCEPTION])[A.INCEPTION] == "unrecorded"
    manifest = A.stage_assets(tmp_path, [A.INCEPTION])  # no network needed
    assert manifest["assets"][A.INCEPTION]["how"] == "adopted existing file"
    assert A.verify_assets(tmp_path, [A.INCEPTION])[A.INCEPTION] == "ok"
    # A malformed stats file is refused, not recorded.
    bad = tmp_path / "refs" / "cifar10_clean_train_32.npz"
    bad.parent.mkdir()
    np.savez(bad, mu=np.zeros(16), sigma=np.eye(16))
    with pytest.raises(A.AssetDownloadError, match="2048"):
        A.stage_assets(tmp_path, ["cifar10_clean_train_32.npz"])
    assert "cifar10_clean_train_32.npz" not in A.read_manifest(tmp_path)["assets"]


def test_assets_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("REPLICATION_ASSETS", raising=False)
    assert A.assets_dir() == Path(A.__file__).resolve().parents[2] / "assets"
    monkeypatch.setenv("REPLICATION_ASSETS", str(tmp_path / "env"))
    assert A.assets_dir() == tmp_path / "env"
    assert A.assets_dir(tmp_path / "cli") == tmp_path / "cli"
    assert (
        A.ref_stats_name("CIFAR10", "legacy_tensorflow", "train", 32)
        == "cifar10_legacy_tensorflow_train_32.npz"
    )
    assert set(A.ASSETS) == {
        A.INCEPTION,
        "cifar10_legacy_tensorflow_train_32.npz",
        "cifar10_clean_train_32.npz",
    }
