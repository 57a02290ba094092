"""replicate.py end to end at the smoke profile: inline and through submitit, idempotent, resumable, strict."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replication.cli import main
from replication.report.run_summary import recorded_spread_line
from replication.runs.experiments import resolve
from replication.runs.folders import STAGES, run_dir, stage_status, train_dir

REPO = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")


def replicate(tmp_path, *args):
    return main(["--results", str(tmp_path), "--no-progress", *args])


def mtimes(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_toy_smoke_inline_then_second_run_does_nothing(tmp_path, capsys):
    assert replicate(tmp_path, "--table", "toy", "--profile", "smoke") == 0
    (e,) = resolve("toy", "smoke")
    assert all(stage_status(e, s, tmp_path) == "done" for s in STAGES)
    record = json.loads((tmp_path / "records" / f"{e.run_name}.json").read_text())
    assert record["profile"] == "smoke" and record["provenance"]["git_sha"]
    assert {m["metric"] for m in record["metrics"]} >= {"mode_weight_tv", "energy_distance"}
    before = mtimes(tmp_path / "runs")
    capsys.readouterr()
    assert replicate(tmp_path, "--table", "toy", "--profile", "smoke") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert mtimes(tmp_path / "runs") == before


@pytest.mark.slow
@needs_fashion
def test_fashion_mnist_smoke_inline(tmp_path, capsys):
    """With --seeds 3: three chains of one trained model, each recorded, and the spread of the summary's numbers;
    the recorded seeds then give the note a later run of the same config prints."""
    assert replicate(tmp_path, "--table", "fashion-mnist", "--profile", "smoke", "--seeds", "3") == 0
    (e,) = resolve("fashion-mnist", "smoke")
    out = capsys.readouterr().out
    assert "Spread over 3 chain seeds (0, 1, 2) of fashion-mnist-mdae-1x16" in out and "footwear share: " in out
    (note,) = recorded_spread_line(e.run_name, tmp_path, tmp_path / "records", REPO)
    assert "over 3 recorded chain seeds" in note and "footwear share " in note
    seed1 = resolve("fashion-mnist", "smoke", {"chain.seed": "1"})[0]
    assert (tmp_path / "records" / f"{seed1.run_name}.json").exists() and seed1.run_name != e.run_name
    assert out.count("train: done") == 1 or "train   done, skip" in out  # one model for both seeds
    record = json.loads((tmp_path / "records" / f"{e.run_name}.json").read_text())
    names = {m["metric"] for m in record["metrics"]}
    assert "FD_classifier" in names and any("NOT FID" in n for n in names)
    fid = [m for m in record["metrics"] if m["metric"] == "FID"]
    assert fid and all(m["status"] == "not computed" and "--stage-assets" in m["reason"] for m in fid)
    assert (tmp_path / record["figures"]["grid"].removeprefix("results/")).exists()


@pytest.mark.slow
@needs_fashion
def test_clmc_table_smoke_inline(tmp_path):
    """The fashion-mnist-clmc table end to end (its CLMC row, without the classifier metrics): the CLMC chain counts its
    score evaluations; the score stage records the ybar-levels model's jump quality at every level and the inner
    walks' settling per level."""
    assert replicate(tmp_path, "--table", "fashion-mnist-clmc", "--profile", "smoke", "--only", "fmnist-clmc-M16",
                     "--set", "score.classifier=false") == 0
    e = resolve("fashion-mnist-clmc", "smoke", {"score.classifier": "false"})[0]
    r = json.loads((tmp_path / "records" / f"{e.run_name}.json").read_text())
    assert r["chain"]["score_evals"] == e.chain.steps + r["chain"]["n_jumps"] * (1 + 15 * (4 + 1))
    names = {m["metric"]: m["value"] for m in r["metrics"]}
    assert [k for k in names if k.startswith("denoise_mse[m=")] == [f"denoise_mse[m={m}]" for m in (1, 2, 4, 8, 16)]
    assert names["denoise_mse[m=16]"] == pytest.approx(names["denoise_mse"], rel=1e-5)  # level M: the walk-jump's jump
    settle = [v for k, v in names.items() if k.startswith("clmc_inner_settle_step")]
    assert len(settle) == 15 and all(1 <= v <= 16 for v in settle)
    # the drift measurement walks the experiment's sampler: CLMC chains walk y_1 and jump through the inner walks
    from replication.pipeline.drift import measure_drift
    from replication.runs.model_store import adopt_classifier

    clf = tmp_path / "classifier" / "classifier.pt"
    assert adopt_classifier(e.dataset, clf) is not None
    out = measure_drift(e, train_dir(e, tmp_path) / "model.pt", clf, None, n_chains=3, steps=10, every=5)
    assert out["sampler"] == "clmc" and [row["step"] for row in out["rows"]] == [0, 5, 10]
    assert out["rows"][0]["v_var"] == 0 and out["rows"][-1]["v_var"] > 0 and all(row["r"] > 0 for row in out["rows"])


@pytest.mark.slow
def test_toy_smoke_through_submitit_local_executor_equals_inline(tmp_path):
    assert replicate(tmp_path / "local", "--table", "toy", "--profile", "smoke", "--launcher", "local") == 0
    assert replicate(tmp_path / "inline", "--table", "toy", "--profile", "smoke") == 0
    (e,) = resolve("toy", "smoke")
    a = json.loads((tmp_path / "local" / "records" / f"{e.run_name}.json").read_text())
    b = json.loads((tmp_path / "inline" / "records" / f"{e.run_name}.json").read_text())
    assert a["metrics"] == b["metrics"] and a["train"]["final_loss"] == b["train"]["final_loss"]
    ledger = (run_dir(e, tmp_path / "local") / "jobs.jsonl").read_text()
    assert all(f'"stage": "{s}"' in ledger for s in STAGES)


@pytest.mark.slow
@pytest.mark.parametrize("stage,marker", [("train", "ckpt.pt"), ("chain", "chain/run/state")])
def test_killed_run_completes_when_run_again(tmp_path, stage, marker):
    """SIGKILL the whole command once the stage has checkpointed; running it again finishes the table."""
    sets = ["--set", "train.steps=400", "--set", "chain.steps=4000"]
    (e,) = resolve("toy", "smoke", {"train.steps": "400", "chain.steps": "4000"})
    cmd = [sys.executable, str(REPO / "replicate.py"), "--table", "toy", "--profile", "smoke", "--results", str(tmp_path),
           "--no-progress", *sets]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    target = (train_dir(e, tmp_path) if stage == "train" else run_dir(e, tmp_path)) / marker
    deadline = time.time() + 120
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert stage_status(e, "score", tmp_path) != "done"
    assert subprocess.run(cmd, cwd=REPO, capture_output=True).returncode == 0
    assert all(stage_status(e, s, tmp_path) == "done" for s in STAGES)


@pytest.mark.parametrize("args,message", [
    (["--table", "imagenet"], "unknown table"),
    (["--table", "toy", "--set", "model.depth=3"], "unknown setting"),
    (["--table", "toy", "--set", "model.sigma=0"], "sigma must be > 0"),
    (["--table", "toy", "--set", "model.sigma=-1"], "sigma must be > 0"),
    (["--table", "toy", "--set", "model.M=0"], "M must be >= 1"),
    (["--table", "toy", "--set", "sigma=1"], "section.key"),
    (["--table", "toy", "--seeds", "0"], "--seeds must be >= 1"),
    (["--table", "toy", "--set", "chain.scheme=leapfrog"], "unknown walk integrator"),
    (["--table", "toy", "--set", "chain.scheme=ghmc"], "needs an energy"),
    (["--table", "cifar10", "--set", "score.classifier=true"], "needs 28x28 grayscale images"),
    (["--table", "cifar10", "--profile", "smoke", "--data-root", "EMPTY"], "replicate.py --download cifar10"),
    # the drift measurement and the claims study: the same parser and --set checker
    (["--drift", "--table", "toy", "--set", "chain.gamma"], "--set needs SECTION.KEY=VALUE"),
    (["--drift", "--table", "toy", "--set", "chain.gamma=0"], "must be > 0"),
    (["--drift", "--table", "toy", "--only", "nope"], "--only: no experiment"),
    (["--claims", "toy", "--set", "chain.gamma"], "--set needs SECTION.KEY=VALUE"),
    (["--claims", "toy", "--set", "model.M=3"], "the walk's settings only"),
    (["--claims", "toy", "--set", "chain.scheme=leapfrog"], "unknown walk integrator"),
    (["--claims", "toy", "--sweeps", "large_m,nope"], "unknown sweep"),
    (["--claims", "cifar10"], "--claims toy"),
    (["--claims", "toy", "--profile", "paper"], "the claims study has no 'paper' sizes"),
    (["--table", "toy", "--sweeps", "large_m"], "--sweeps goes with --claims toy"),
    (["--table", "toy", "--drift-steps", "10"], "go with --drift"),
])
def test_bad_input_exits_nonzero_with_one_clear_line(tmp_path, capsys, args, message):
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    assert replicate(tmp_path, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.rglob("DONE.json"))


@pytest.mark.slow
@needs_fashion
def test_drift_walks_the_experiments_walk_from_noisy_test_images(tmp_path):
    """pipeline.drift: chains from noised test images, walked with the experiment's own walk (here BAOAB)."""
    import dataclasses

    from replication.pipeline.drift import measure_drift
    from replication.runs.folders import classifier_path

    assert replicate(tmp_path, "--table", "fashion-mnist", "--profile", "smoke") == 0
    e = resolve("fashion-mnist", "smoke", {"chain.scheme": "baoab"})[0]
    out = measure_drift(e, train_dir(e, tmp_path) / "model.pt", classifier_path(e, tmp_path), None,
                        n_chains=6, steps=20, every=10)
    assert out["walk"] == dataclasses.asdict(e.walk) and out["walk"]["integrator"] == "baoab"
    assert [r["step"] for r in out["rows"]] == [0, 10, 20]
    assert out["rows"][0]["v_var"] == 0 and out["rows"][-1]["v_var"] > 0
    for r in out["rows"]:
        assert abs(sum(r["class_shares"]) - 1) < 1e-3 and 0 <= r["mean_pixel"] <= 1 and r["r"] > 0
    # the old entry point, an alias of `replicate.py --drift` with its defaults (--table fashion-mnist --profile cpu)
    from replication.cli import drift_alias

    assert drift_alias(["--profile", "smoke", "--results", str(tmp_path), "--chains", "3", "--steps", "250"]) == 0
    record = json.loads((tmp_path / "drift" / f"{resolve('fashion-mnist', 'smoke')[0].run_name}.json").read_text())
    assert record["n_chains"] == 3 and [r["step"] for r in record["rows"]] == [0, 250]
