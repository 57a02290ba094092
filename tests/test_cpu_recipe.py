"""The working CPU recipe (issue 11): bf16 training, keys of earlier runs kept, committed models, thinned samples."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from replication.cli import main
from replication.runs import experiments
from replication.runs.experiments import resolve
from replication.runs.folders import run_dir, stage_key, train_dir
from replication.runs.models import build_model
from replication.train.spec import TrainSpec
from replication.train.training import train

REPO = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")


def test_recorded_runs_keep_their_names_after_new_settings():
    """Settings added later (train.precision) leave every recorded run's hash, folder and record name unchanged."""
    records = [json.loads(p.read_text()) for p in sorted((REPO / "results" / "records").glob("*.json"))]
    runs = [r for r in records if "config" in r and "train" in r["config"]]
    assert len(runs) >= 10
    for r in runs:
        assert experiments.from_dict(r["config"]).run_name == r["run"]


def test_precision_enters_the_key_only_when_not_default():
    (e,) = resolve("fashion-mnist", "quick")
    bf16 = experiments.apply_overrides(e, {"train.precision": "bf16"})
    fp32 = experiments.apply_overrides(e, {"train.precision": "fp32"})
    assert fp32.key() == e.key() and bf16.key() != e.key()
    assert resolve("fashion-mnist", "cpu")[0].train.precision == "bf16"
    assert resolve("toy", "cpu")[0].train.precision == "fp32"


def test_cpu_recipe_is_named_and_paper_profile_untouched():
    (paper,) = resolve("fashion-mnist", "paper")
    (cpu,) = resolve("fashion-mnist", "cpu")
    assert not paper.model.sigmoid and paper.train.ema_decay == 0 and paper.chain.delta_over_sigma == 0.5
    assert cpu.model.sigmoid and cpu.train.ema_decay == 0.999 and cpu.train.sample_with_ema
    assert cpu.chain.delta_over_sigma == 0.25 and cpu.chain.steps == 200_000
    assert cpu.chain.scheme == "baoab" and paper.chain.scheme == "aboba"  # the paper profile keeps the official walk
    assert cpu.model.M == 4 and cpu.id == "fashion-mnist-mdae-1x4" and paper.model.M == 16
    levers = {e.id: e for e in resolve("fashion-mnist-levers", "cpu")}
    assert not levers["fmnist-lever-paper"].model.sigmoid and levers["fmnist-lever-paper"].chain.delta_over_sigma == 0.5
    # The sigmoid-ema lever row differs from the M table's M16 row by the walk alone: they share its trained model,
    # and the M4 row shares the fashion-mnist table's.
    rows = {e.id: e for e in resolve("fashion-mnist-M", "cpu")}
    assert stage_key(levers["fmnist-lever-sigmoid-ema"], "train") == stage_key(rows["fmnist-M16"], "train")
    assert stage_key(rows["fmnist-M4"], "train") == stage_key(cpu, "train")


def test_bf16_training_runs_and_matches_fp32_loss_at_start(tmp_path):
    (e,) = resolve("fashion-mnist", "smoke")
    data = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        scheme = build_model(e.model, e.image_shape)
        cfg = TrainSpec(steps=3, batch_size=16, lr=1e-3, seed=0, precision=precision)
        out = train(scheme, data, cfg, tmp_path / precision, progress=False, log_every=1)
        losses[precision] = [loss for _, loss in out["history"]]
        assert all(np.isfinite(losses[precision]))
    assert abs(losses["bf16"][0] - losses["fp32"][0]) / losses["fp32"][0] < 1e-2
    with pytest.raises(ValueError, match="unknown precision"):
        train(build_model(e.model, e.image_shape), data, TrainSpec(steps=1, batch_size=16, lr=1e-3, seed=0,
                                                                      precision="fp8"), tmp_path / "x", progress=False)


@pytest.mark.slow
@needs_fashion
def test_committed_model_is_adopted_and_retrain_trains(tmp_path, monkeypatch, capsys):
    """--publish-model writes model + record; a fresh results folder adopts it (no training); --retrain trains."""
    monkeypatch.setenv("REPLICATION_MODELS", str(tmp_path / "models"))
    args = ["--table", "fashion-mnist", "--profile", "smoke", "--no-progress"]
    assert main(["--results", str(tmp_path / "a"), *args]) == 0
    (e,) = resolve("fashion-mnist", "smoke")
    assert main(["--results", str(tmp_path / "a"), *args, "--publish-model"]) == 0
    published = tmp_path / "models" / f"fashion-mnist-smoke-{stage_key(e, 'train')[:8]}.pt"
    meta = json.loads(published.with_suffix(".json").read_text())
    assert meta["key"] == stage_key(e, "train") and set(meta["heldout_loss"]) >= {"raw", "ema", "n"}
    assert meta["provenance"]["git_sha"] and meta["summary"]["wall_s"] > 0

    capsys.readouterr()
    assert main(["--results", str(tmp_path / "b"), *args]) == 0
    out = capsys.readouterr().out
    assert "using the committed trained model" in out and "--retrain" in out
    assert (train_dir(e, tmp_path / "b") / "model.pt").read_bytes() == published.read_bytes()
    assert not (train_dir(e, tmp_path / "b") / "ckpt.pt").exists()  # adopted, not trained

    assert main(["--results", str(tmp_path / "b"), *args, "--retrain"]) == 0
    assert "using the committed" not in capsys.readouterr().out
    assert (train_dir(e, tmp_path / "b") / "ckpt.pt").exists()
    assert list(train_dir(e, tmp_path / "b").parent.glob("*.replaced-*"))  # the adopted folder is kept aside

    # A record whose key does not match its file name is refused with the fix named.
    meta["key"] = "0" * 64
    published.with_suffix(".json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["--results", str(tmp_path / "c"), *args]) == 2  # one line, no traceback: the suite's own error
    assert "--retrain" in capsys.readouterr().err


@pytest.mark.slow
@needs_fashion
def test_score_commits_thinned_uint8_samples_and_stability(tmp_path):
    assert main(["--results", str(tmp_path), "--no-progress", "--table", "fashion-mnist", "--profile", "smoke"]) == 0
    (e,) = resolve("fashion-mnist", "smoke")
    record = json.loads((tmp_path / "records" / f"{e.run_name}.json").read_text())
    with np.load(tmp_path / record["samples"].removeprefix("results/")) as z:
        images, steps = z["images"], z["step"]
    n_jumps = e.n_samples
    assert images.dtype == np.uint8 and images.shape == (n_jumps, 1, 28, 28)  # smoke: fewer than 1,000 jumps
    assert np.all(np.diff(steps) > 0) and steps[0] > e.chain.burn_in
    names = {m["metric"]: m for m in record["metrics"]}
    # fewer than 1,000 jumps: the thinned set is every jump, so no separate "thinned" metrics
    assert "FD_classifier" in names and not any("thinned" in name for name in names)
    assert names["mean_pixel[first 10% of jumps]"]["ess"] > 0 and names["mean_pixel[first 10% of jumps]"]["mcse"] >= 0
    top = names["top_class_share"]
    assert 0.1 <= top["value"] <= 1 and top["value"] == pytest.approx(max(names["class_coverage"]["histogram"]))
    assert {"mean_pixel[first 10% of jumps]", "mean_pixel[last 10% of jumps]", "mean_pixel[data: test images]",
            "class_shares_tv[first vs last 10% of jumps]"} <= set(names)
    assert names["mean_pixel[data: test images]"]["value"] == pytest.approx(0.286, abs=0.01)
    assert run_dir(e, tmp_path).exists()
    # the chain statistics (docs/statistics.md): every jump of the chain, the reference from the run's own model
    from replication.evaluation import chain_stats as cs

    stats = cs.read_metrics(record["metrics"], ("footwear", "clothing", "bag"))
    assert stats and set(stats["shares"]) == set(stats["reference"]) == {"footwear", "clothing", "bag"}
    assert sum(m["value"] for m in stats["shares"].values()) == pytest.approx(1)
    assert all(m["n"] == n_jumps and m["mcse"] >= 0 and m["ess"] > 0 for m in stats["shares"].values())
    assert sum(m["value"] for m in stats["reference"].values()) == pytest.approx(1)
    assert all(m["n"] == 1000 and 0 <= m["se"] <= 0.016 for m in stats["reference"].values())
    assert not stats["switches"]["lower_bound"] and stats["switches"]["value"] >= 0
    assert stats["verdict"]["label"] in ("undecided", "not stable") and stats["verdict"]["arviz_stats"] == "0.8.0"
