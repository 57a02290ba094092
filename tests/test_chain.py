"""The chain stage (replication/pipeline/chain.py): one long chain, checkpointed, bit-exact after any interruption.

Every interrupted run is compared byte for byte with an uninterrupted run of the same experiment (same
model file, CPU, one thread: tests/conftest.py here, tests/chain_worker.py in subprocesses):

  stop/resume       stop_after at checkpoints, resumed in-process; progress bar with steps/s and ETA
  corrupt           the newest state file truncated or bit-flipped: detected, set aside, previous one used
  orphan shard      a shard written after the last good checkpoint is deleted on resume
  SIGKILL           a real subprocess killed with kill -9 at seeded random moments, rerun until DONE
  LocalExecutor     (slow) USR2 to a submitit local task -> checkpoint() -> requeue -> completes
  divergence        delta = 5 sigma: ChainDiverged with the step, FAILED.json, last good checkpoint kept
  guards            a second process on the same folder, DONE.json of another config, the requeue pickle

Models have random weights (build_model under a fixed torch seed): the chain only needs to be a chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import submitit
import torch

from replication.sampling.integrators import ChainDiverged
from replication.data.storage import load_checked
from replication.pipeline import chain as chain_mod
from replication.pipeline.chain import ChainJob, read_shards
from replication.runs.experiments import resolve
from replication.runs.models import build_model, save_model

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "chain_worker.py"
NAMES = ("images", "float", "step", "mean", "dist_prev")

CASES = {
    # vector data, MLP: 600 steps, 60 jumps, a checkpoint (and a shard of 5 jumps) every 50 steps
    "toy": ("toy", {"chain.steps": "600", "chain.ckpt_every": "50", "chain.jump_every": "10"}),
    # images, SmallUNet (M = 16): uint8 images in the shards
    "image": ("fashion-mnist", {"chain.steps": "200", "chain.ckpt_every": "50", "chain.jump_every": "10",
                                "score.classifier": "false"}),
    # the cpu recipe's walk: BAOAB carries its score across segments; a resume re-evaluates it
    "toy_baoab": ("toy", {"chain.steps": "600", "chain.ckpt_every": "50", "chain.jump_every": "10",
                          "chain.scheme": "baoab"}),
    # the CLMC sampler: the walk moves y_1 alone, every jump walks y_2..y_16 (inner walks from the same generators)
    "image_clmc": ("fashion-mnist-clmc", {"chain.steps": "200", "chain.ckpt_every": "50", "chain.jump_every": "10",
                                          "score.classifier": "false", "chain.clmc_inner_steps": "2",
                                          "chain.scheme": "baoab"}),
    # MUVB (docs/method.md §2.4): a stochastic score (z redrawn from the chain's generators at every evaluation) under
    # BAOAB, whose carried score the checkpoint saves: without it a resume would draw one z too many
    "toy_muvb": ("toy-schemes", {"chain.steps": "600", "chain.ckpt_every": "50", "chain.jump_every": "10",
                                 "chain.scheme": "baoab"}),
    # long enough to be killed and timed out mid-run: about 3 s on one thread of a 2026 CPU (2,000 steps took 0.2 s,
    # so a kill after the last threshold could land after the chain had finished)
    "toy_long": ("toy", {"chain.steps": "30000", "chain.ckpt_every": "1500", "chain.jump_every": "10"}),
}


class Case:
    """An experiment, a random-weight model file for it, and (lazily) its uninterrupted reference run."""

    def __init__(self, root: Path, table: str, overrides: dict[str, str]):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.e = resolve(table, "smoke", overrides)[0]
        self.exp = self.e.to_dict()
        self.model = str(root / "model.pt")
        torch.manual_seed(0)
        scheme = build_model(self.e.model, self.e.image_shape)
        save_model(self.model, scheme, self.exp["model"], self.e.key("dataset", "model", "train"))
        self._ref = None

    def job(self, out, **kwargs) -> ChainJob:
        kwargs.setdefault("progress", False)
        return ChainJob(self.exp, self.model, str(out), **kwargs)

    @property
    def ref_dir(self) -> Path:
        self.reference()
        return self.root / "ref"

    def reference(self) -> dict[str, np.ndarray]:
        if self._ref is None:
            summary = self.job(self.root / "ref")()
            assert summary["attempts"] == 1
            self._ref = read_shards(self.root / "ref", NAMES)
        return self._ref


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    made: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in made:
            made[name] = Case(root / name, *CASES[name])
        return made[name]

    return get


def assert_identical(out: Path, case: Case) -> None:
    """Same arrays as the uninterrupted run, byte for byte, and a clean shard layout."""
    ref = case.reference()
    got = read_shards(out, NAMES)
    assert sorted(got) == sorted(ref)
    for name in ref:
        assert got[name].dtype == ref[name].dtype and got[name].shape == ref[name].shape, name
        assert got[name].tobytes() == ref[name].tobytes(), f"{name} differs from the uninterrupted run"
    assert_layout(out, case)


def assert_layout(out: Path, case: Case) -> None:
    c = case.e.chain
    shards = sorted(int(p.stem.split("_")[1]) for p in (out / "shards").glob("shard_*.npz"))
    assert shards == list(range(len(shards))), f"missing or extra shard indices: {shards}"
    steps = read_shards(out, ("step",))["step"]
    np.testing.assert_array_equal(steps, np.arange(c.burn_in + c.jump_every, c.steps + 1, c.jump_every))
    assert (out / "DONE.json").exists() and not (out / "FAILED.json").exists()
    assert not list((out / "shards").glob(".*tmp*")) and not list((out / "state").glob(".*tmp*"))


def attempts(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "attempts.jsonl").read_text().splitlines()]


def state_steps(out: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (out / "state").glob("step_*.pt"))


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


# ----------------------------------------------------------------------------------------------
# Reference runs.


@pytest.mark.parametrize("name", ["toy", "image", "image_clmc"])
def test_reference_run(cases, name):
    case = cases(name)
    ref = case.reference()
    e, out = case.e, case.ref_dir
    image = name.startswith("image")
    assert ("images" in ref) == image and ("float" in ref) == (not image)
    samples = ref["images"] if image else ref["float"]
    assert samples.shape == (e.n_samples, 1, *e.image_shape)
    assert np.isfinite(ref["mean"]).all() and np.isfinite(ref["dist_prev"][1:]).all()
    assert_layout(out, case)
    done = json.loads((out / "DONE.json").read_text())
    assert done["key"] == e.key("dataset", "model", "train", "chain") and done["n_jumps"] == e.n_samples
    per_jump = 1 + 15 * (1 + 2) if name == "image_clmc" else 1  # CLMC: x_hat(y_1), then per level start + 2 BAOAB steps
    assert done["score_evals"] == e.chain.steps + e.n_samples * per_jump
    # a finished chain is a no-op: same record, nothing rewritten
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert case.job(out)() == done
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before


# ----------------------------------------------------------------------------------------------
# In-process interruptions.


@pytest.mark.slow
def test_compiled_walk_resumes_bit_exactly_and_tracks_eager(cases, tmp_path, monkeypatch):
    """`replicate.py --compile`: torch.compile'd net, stopped and resumed = uninterrupted compiled run, byte for
    byte; its first jumps match the eager chain's (the scores differ by ~1e-6, which the walk then amplifies)."""
    case = cases("image")
    eager = case.reference()  # before the setting: the uninterrupted eager chain
    monkeypatch.setenv(chain_mod.COMPILE_ENV, "1")
    whole = case.job(tmp_path / "whole")()
    assert case.job(tmp_path / "split", stop_after=100)() == {"stopped_at": 100}
    assert case.job(tmp_path / "split")()["n_jumps"] == whole["n_jumps"]
    a, b = read_shards(tmp_path / "whole", NAMES), read_shards(tmp_path / "split", NAMES)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), f"{name}: compiled chain not bit-exact after resume"
    assert a["mean"].tobytes() != eager["mean"].tobytes(), "the compiled net did not run (same bytes as eager)"
    early = slice(0, 3)  # jumps 1-3 (steps 10-30): before chaos amplifies the ~1e-6 score differences
    np.testing.assert_allclose(a["mean"][early], eager["mean"][early], atol=1e-3)
    assert np.abs(a["images"][early].astype(int) - eager["images"][early].astype(int)).max() <= 1


@pytest.mark.parametrize("name, stops", [("toy", (120, 400)), ("image", (50, 120)), ("toy_baoab", (120, 400)),
                                         ("image_clmc", (50, 120)), ("toy_muvb", (120, 400))])
def test_stop_and_resume_is_identical(cases, tmp_path, capsys, name, stops):
    case = cases(name)
    ckpt = case.e.chain.ckpt_every
    expected = [-(-s // ckpt) * ckpt for s in stops]  # the checkpoint at or after each stop
    assert case.job(tmp_path, stop_after=stops[0])() == {"stopped_at": expected[0]}
    assert not (tmp_path / "DONE.json").exists()
    capsys.readouterr()
    assert case.job(tmp_path, stop_after=stops[1], progress=True)() == {"stopped_at": expected[1]}
    err = capsys.readouterr()
    assert f"resuming at step {expected[0]}" in err.out
    # (e) the progress bar: position, steps/s and ETA
    assert f"{expected[1]}/{case.e.chain.steps}" in err.err and "step/s" in err.err and "<" in err.err
    summary = case.job(tmp_path)()
    assert summary["attempts"] == 3
    assert [a["start_step"] for a in attempts(tmp_path)] == [0, *expected]
    assert state_steps(tmp_path) == [case.e.chain.steps - ckpt, case.e.chain.steps]  # the two newest kept
    assert_identical(tmp_path, case)
    # killed after the final checkpoint but before DONE.json: the rerun only writes the summary
    (tmp_path / "DONE.json").unlink()
    assert case.job(tmp_path)()["n_jumps"] == summary["n_jumps"]
    assert attempts(tmp_path)[-1]["start_step"] == case.e.chain.steps
    assert_identical(tmp_path, case)


@pytest.mark.parametrize("name, stop, damage", [("toy", 300, "truncate"), ("toy", 300, "flip"), ("image", 100, "truncate")])
def test_corrupt_newest_checkpoint_falls_back(cases, tmp_path, capsys, name, stop, damage):
    case = cases(name)
    ckpt = case.e.chain.ckpt_every
    assert case.job(tmp_path, stop_after=stop)() == {"stopped_at": stop}
    newest = tmp_path / "state" / f"step_{stop:010d}.pt"
    raw = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(raw[: len(raw) // 2])
    else:  # one flipped bit in the payload: only the checksum can tell
        i = len(raw) - 100
        newest.write_bytes(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :])
    case.job(tmp_path)()
    assert "set aside" in capsys.readouterr().out
    assert (tmp_path / "state" / f"step_{stop:010d}.pt.corrupt").exists()
    assert [a["start_step"] for a in attempts(tmp_path)] == [0, stop - ckpt]
    assert_identical(tmp_path, case)


def test_orphan_shard_is_deleted_on_resume(cases, tmp_path):
    case = cases("toy")
    ref_dir = case.ref_dir
    assert case.job(tmp_path, stop_after=300)() == {"stopped_at": 300}
    assert state_steps(tmp_path) == [250, 300]
    # A kill after the shard write and before its state (the state at 300 never landed, so the shard of
    # 250..300 is an orphan), plus a garbage shard and a half-written temporary of a later kill.
    (tmp_path / "state" / "step_0000000300.pt").unlink()
    (tmp_path / "shards" / "shard_000006.npz").write_bytes(b"half a shard")
    (tmp_path / "shards" / ".shard_000007.npz.tmp4242").write_bytes(b"never renamed")
    assert load_checked(tmp_path / "state" / "step_0000000250.pt")["n_shards"] == 5
    assert case.job(tmp_path, stop_after=300)() == {"stopped_at": 300}
    shards = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert shards == [f"shard_{i:06d}.npz" for i in range(6)]  # orphan 5 redone, 6 and the temporary gone
    for shard in shards:  # same arrays as the uninterrupted run's shards (the zip headers hold a time stamp)
        with np.load(tmp_path / "shards" / shard) as got, np.load(ref_dir / "shards" / shard) as ref:
            assert sorted(got.files) == sorted(ref.files)
            assert all(got[k].tobytes() == ref[k].tobytes() for k in ref.files)
    case.job(tmp_path)()
    assert_identical(tmp_path, case)


# ----------------------------------------------------------------------------------------------
# Real processes.


def _worker(spec: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, str(WORKER), str(spec)], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)


def _wait(cond, proc: subprocess.Popen, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the worker exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_identical(cases, tmp_path):
    case = cases("toy_long")
    c = case.e.chain
    out, log = tmp_path / "run", tmp_path / "worker.log"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"exp": case.exp, "model": case.model, "out": str(out)}))
    rng = random.Random(20220425)
    # each kill: a random delay after the chain passed a random checkpoint, so it lands anywhere in a walk
    # segment, a jump or a checkpoint write (a shard written, its state not yet); every restart costs a torch
    # import (2-7 s on 2 busy cores), hence two kills
    thresholds = sorted(rng.sample(range(c.ckpt_every, int(0.7 * c.steps), c.ckpt_every), 2))
    killed_at = []
    for threshold in thresholds:
        start = state_steps(out)[-1] if (out / "state").exists() and state_steps(out) else 0
        proc = _worker(spec, log)
        _wait(lambda: (s := state_steps(out)) and s[-1] >= max(threshold, start + c.ckpt_every), proc, f"step {threshold}")
        time.sleep(rng.uniform(0.0, 0.15))
        assert proc.poll() is None, f"the worker finished before the kill at step {threshold}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        assert not (out / "DONE.json").exists()
        killed_at.append(state_steps(out)[-1])
    assert killed_at == sorted(killed_at) and killed_at[-1] >= thresholds[-1]
    proc = _worker(spec, log)
    assert proc.wait(120) == 0, log.read_text()[-3000:]
    assert_identical(out, case)
    starts = [a["start_step"] for a in attempts(out)]
    assert len(starts) == 3 and starts[0] == 0 and 0 < starts[1] < starts[2] == killed_at[-1]


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the local controller's tasks), from /proc."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.slow
def test_local_executor_usr2_requeues_and_completes(cases, tmp_path, monkeypatch):
    """The real submitit path, as on SLURM: pickled job, subprocess task, USR2 -> checkpoint() -> requeue
    (exit code 3, the local controller restarts the task) -> resume from disk -> identical samples.

    USR2 goes to the task itself once its chain is past a checkpoint, as SLURM's `--signal=USR2@S` or a
    preemption does. Waiting for submitit's local time limit instead (`timeout_min=4/60, signal_delay_s=1`)
    cannot be sized for busy 2-core machines: the torch import alone takes 1.5-6 s there, and a USR2 that
    arrives before submitit has installed its handler (after unpickling, i.e. after the import) kills the task
    (docs/on-disk.md §6.4)."""
    case = cases("toy_long")
    c = case.e.chain
    case.reference()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    ex = submitit.LocalExecutor(tmp_path / "jobs", max_num_timeout=10)
    ex.update_parameters(timeout_min=3, signal_delay_s=1)
    out = tmp_path / "run"
    job = ex.submit(case.job(out, progress=True))
    controller = int(job.job_id)
    for at in (c.steps // 3,):  # one interruption (each restart costs a torch import)
        done_before = state_steps(out)[-1] if (out / "state").exists() and state_steps(out) else 0
        deadline = time.monotonic() + 90
        while not ((s := state_steps(out) if (out / "state").exists() else []) and s[-1] >= max(at, done_before + c.ckpt_every)):
            assert not job.done(), "the job ended before it was interrupted:\n" + (job.stderr() or "")[-3000:]
            assert time.monotonic() < deadline, "the chain did not advance:\n" + (job.stderr() or "")[-3000:]
            time.sleep(0.005)
        (task,) = _children(controller)
        os.kill(task, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while task in _children(controller):  # the task checkpoints, requeues and exits; a new one starts
            assert time.monotonic() < deadline, "the task did not exit on USR2"
            time.sleep(0.01)
    deadline = time.monotonic() + 120
    while not job.done():
        if time.monotonic() > deadline:
            job.cancel()
            pytest.fail("the local job did not finish in 120 s:\n" + (job.stderr() or "")[-3000:])
        time.sleep(0.1)
    summary = job.result()
    logs = (job.stdout() or "") + (job.stderr() or "")
    assert logs.count("Requeued job") == 1 and logs.count("Calling checkpoint method") == 1, logs[-3000:]
    starts = [a["start_step"] for a in attempts(out)]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= c.steps // 3, starts
    assert all(a["job_id"] == job.job_id for a in attempts(out))
    assert summary["attempts"] == 2
    assert_identical(out, case)


# ----------------------------------------------------------------------------------------------
# Divergence.


def test_divergence_stops_with_step_and_keeps_last_good_checkpoint(cases, tmp_path):
    case = cases("toy")
    bad = resolve("toy", "smoke", {**CASES["toy"][1], "chain.delta_over_sigma": "5", "chain.ckpt_every": "10",
                                   "chain.jump_every": "5"})[0]
    bad_key = bad.key("dataset", "model", "train", "chain")
    old = tmp_path / f"run-{bad_key[:8]}"
    with pytest.raises(ChainDiverged) as info:
        ChainJob(bad.to_dict(), case.model, str(old), progress=False)()
    step = info.value.step
    assert f"step {step}" in str(info.value)
    failed = json.loads((old / "FAILED.json").read_text())
    assert failed["step"] == step and failed["key"] == bad_key
    good = failed["last_good_step"]
    assert 0 < good < step and good % 10 == 0 and Path(failed["last_good_checkpoint"]).name == f"step_{good:010d}.pt"
    assert not (old / "DONE.json").exists()
    state = load_checked(failed["last_good_checkpoint"])  # intact and finite
    assert state["chain"]["step"] == good and state["key"] == bad_key
    assert torch.isfinite(state["chain"]["y"]).all() and torch.isfinite(state["chain"]["v"]).all()
    assert read_shards(old, ("step",))["step"][-1] == good  # no jump after the last good checkpoint kept

    # the same config again: resumes from the last good checkpoint and fails at the same step
    with pytest.raises(ChainDiverged) as again:
        ChainJob(bad.to_dict(), case.model, str(old), progress=False)()
    assert again.value.step == step and json.loads((old / "FAILED.json").read_text())["step"] == step
    assert attempts(old)[-1]["start_step"] == good
    # the fixed config is another chain: it refuses the old folder and runs in its own
    fixed = case.e
    fixed_key = fixed.key("dataset", "model", "train", "chain")
    assert fixed_key != bad_key
    snapshot = {k: v for k, v in tree_digest(old).items() if k != "attempts.jsonl"}
    with pytest.raises(ValueError, match="another chain configuration"):
        ChainJob(fixed.to_dict(), case.model, str(old), progress=False)()
    new = tmp_path / f"run-{fixed_key[:8]}"
    ChainJob(fixed.to_dict(), case.model, str(new), progress=False)()
    assert_identical(new, case)
    assert {k: v for k, v in tree_digest(old).items() if k != "attempts.jsonl"} == snapshot  # old state untouched


# ----------------------------------------------------------------------------------------------
# Guards.


def test_guards(cases, tmp_path, monkeypatch):
    case = cases("toy")
    # one process per folder: a second one waits for the lock, then gives up with a clear message
    out = tmp_path / "busy"
    out.mkdir()
    monkeypatch.setattr(chain_mod, "LOCK_WAIT_S", 0.3)
    with chain_mod._exclusive(out):
        with pytest.raises(RuntimeError, match="in use by another chain process"):
            case.job(out)()
    assert not (out / "state").exists()
    # a DONE.json of another configuration is never returned nor overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "DONE.json").write_text(json.dumps({"key": "0" * 64}))
    with pytest.raises(ValueError, match="another chain configuration"):
        case.job(other)()
    # a committed shard that went missing is an error, not a silent gap
    damaged = tmp_path / "damaged"
    shutil.copytree(case.ref_dir, damaged)
    (damaged / "DONE.json").unlink()
    (damaged / "shards" / "shard_000003.npz").unlink()
    with pytest.raises(RuntimeError, match="not contiguous"):
        read_shards(damaged, ("step",))
    with pytest.raises(RuntimeError, match=r"shard\(s\) \[3\] are missing"):
        case.job(damaged)()
    # the requeue pickle holds a fresh job: paths and config, no tensors
    job = case.job(tmp_path / "x", stop_after=7)
    delayed = job.checkpoint()
    assert isinstance(delayed.function, ChainJob) and delayed.function is not job
    assert vars(delayed.function) == vars(job)
    assert len(pickle.dumps(delayed)) < 20_000
