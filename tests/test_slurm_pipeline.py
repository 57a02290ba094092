"""The pipeline on a real SLURM (the one-node cluster of ``slurm/local-cluster.sh``) and DDP via submitit.

SLURM tests (``@pytest.mark.slurm``; skipped unless ``scontrol ping`` answers, as in test_launch.py):
  * the toy smoke pipeline submitted with ``--launcher slurm --cluster local --wait`` (one job per stage,
    ``afterok`` dependencies, code snapshot) equals an inline run; a second run submits nothing;
  * a chain job requeued mid-way with ``scontrol requeue`` finishes byte-identical to an inline chain;
  * a failing stage is reported as failed, with its log, by ``--status`` and by ``submit.wait``;
  * a re-run while jobs are queued submits nothing, and ``--cancel`` cancels them.
Training with 2 gloo processes as one submitit job with 2 tasks matches one process with the same global
batch: through the LocalExecutor (slow, not SLURM-gated) and through sbatch/srun (SLURM). Plus a unit test of
``submit.wait``'s failure reporting.

Every wait is bounded. The jobs (SLURM and local) run with OMP_NUM_THREADS=1, as the in-process inline
runs do (conftest sets torch.set_num_threads(1)), so floating-point results are comparable bit for bit.
With the cluster up the file takes about 3 minutes, most of it SLURM scheduling and the ~30 s a
requeued job waits before it restarts (cred_expire in our slurm.conf).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from launch_jobs import finished_job

from replication.cli import main, parse_args
from replication.data.storage import atomic_write_json, load_checked
from replication.pipeline import executors, submit
from replication.pipeline import ledger as job_ledger
from replication.pipeline.chain import read_shards
from replication.pipeline.clusters import Resources
from replication.pipeline.stages import ChainStage, TrainStage
from replication.runs import experiments
from replication.runs.folders import STAGES, run_dir, stage_dir, stage_key, stage_status, train_dir
from replication.runs.models import build_model

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE = ["--table", "toy", "--profile", "smoke", "--no-progress"]
SLURM = ["--launcher", "slurm", "--cluster", "local"]
WAIT_S = 240.0  # bound on any wait for a whole pipeline
JOB_WAIT_S = 150.0  # bound on any wait for one job
CHAIN_SHARD_ARRAYS = ("float", "step", "mean", "std", "dist_prev")


def _slurm_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    try:
        return subprocess.run(["scontrol", "ping"], check=False, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


slurm = pytest.mark.skipif(not _slurm_up(), reason="no SLURM here (start one with slurm/local-cluster.sh start)")

_wait = submit.wait


@pytest.fixture
def job_env(monkeypatch):
    """Jobs use one torch thread like the inline runs; local jobs import replication from the repo (SLURM jobs
    from the code snapshot that executors.make_executor puts first on PYTHONPATH); submit.wait is bounded."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(submit, "wait", functools.partial(_wait, poll_s=2.0, timeout_s=WAIT_S))


@pytest.fixture
def slurm_env(job_env, tmp_path):
    """As job_env; afterwards cancel whatever a failed test left queued or running."""
    yield
    for ledger in tmp_path.rglob("jobs.jsonl"):
        job_ledger.cancel_jobs(ledger.parent)


@pytest.fixture(scope="module")
def inline_smoke(tmp_path_factory) -> Path:
    """The toy smoke pipeline run inline (the reference); its trained model is reused by later tests."""
    results = tmp_path_factory.mktemp("inline")
    assert main([*SMOKE, "--results", str(results)]) == 0
    return results


def _smoke(*overrides: str) -> experiments.Experiment:
    (e,) = experiments.resolve("toy", "smoke", dict(o.split("=", 1) for o in overrides))
    return e


def _copy_model(e, src: Path, dst: Path) -> None:
    """Share the inline run's trained model (train is deterministic; this saves a SLURM job)."""
    shutil.copytree(train_dir(e, src), train_dir(e, dst))
    assert stage_status(e, "train", dst) == "done"


def _until(cond, timeout_s: float, what: str, poll_s: float = 0.5):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if out := cond():
            return out
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _assert_same_chain(a: Path, b: Path) -> None:
    ra, rb = read_shards(a, CHAIN_SHARD_ARRAYS), read_shards(b, CHAIN_SHARD_ARRAYS)
    assert set(ra) == set(rb) == set(CHAIN_SHARD_ARRAYS)
    for name in CHAIN_SHARD_ARRAYS:
        assert ra[name].dtype == rb[name].dtype and ra[name].shape == rb[name].shape, name
        assert ra[name].tobytes() == rb[name].tobytes(), f"{name} differs"


# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.slurm
@slurm
def test_slurm_smoke_pipeline_equals_inline(tmp_path, inline_smoke, slurm_env, capsys):
    res = tmp_path / "slurm"
    e = _smoke()
    t0 = time.time()
    assert main([*SMOKE, "--results", str(res), *SLURM, "--wait"]) == 0
    took = time.time() - t0
    out = capsys.readouterr().out
    assert all(f"{s}: submitted SLURM job" in out for s in STAGES), out
    rd = run_dir(e, res)

    # Job ids in the run folder; their states come from squeue, then the result pickles there.
    ledger = job_ledger.read_ledger(rd)
    assert [x["stage"] for x in ledger] == list(STAGES) and {x["launcher"] for x in ledger} == {"slurm"}
    assert {s: st.state for s, st in job_ledger.job_states(rd).items()} == {s: "done" for s in STAGES}
    for x in ledger:  # each job ran the code snapshot, after its predecessor (afterok)
        script = Path(x["folder"], f"{x['job_id']}_submission.sh").read_text()
        assert f"export PYTHONPATH={rd / 'submitit' / 'code'}" in script and " -P -u -m submitit" in script
    assert "--dependency=afterok:" + ledger[0]["job_id"] in Path(
        ledger[1]["folder"], f"{ledger[1]['job_id']}_submission.sh").read_text()

    ref = json.loads((inline_smoke / "records" / f"{e.run_name}.json").read_text())
    rec = json.loads((res / "records" / f"{e.run_name}.json").read_text())
    assert rec["metrics"] == ref["metrics"]
    assert rec["train"]["final_loss"] == ref["train"]["final_loss"] and rec["train"]["history"] == ref["train"]["history"]
    assert rec["provenance"]["hardware"] == ref["provenance"]["hardware"]  # same thread count
    _assert_same_chain(run_dir(e, inline_smoke) / "chain" / "run", rd / "chain" / "run")
    assert (res / "REPORT.md").exists()  # --wait ends with the report

    # Running the command again submits nothing.
    assert main([*SMOKE, "--results", str(res), *SLURM, "--wait"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "submitted" not in out
    assert len(job_ledger.read_ledger(rd)) == len(STAGES)
    print(f"slurm smoke pipeline with --wait: {took:.0f} s")


@pytest.mark.slow
@pytest.mark.slurm
@slurm
def test_slurm_rerun_while_queued_submits_nothing_and_cancel(tmp_path, slurm_env, capsys):
    res = tmp_path / "slurm"
    e = _smoke()
    rd = run_dir(e, res)
    assert main([*SMOKE, "--results", str(res), *SLURM]) == 0
    capsys.readouterr()
    ledger = job_ledger.read_ledger(rd)
    ids = [x["job_id"] for x in ledger]
    assert [x["stage"] for x in ledger] == list(STAGES)
    assert all(st.active for st in job_ledger.job_states(rd).values())  # the last 3 wait for afterok at least

    assert main([*SMOKE, "--results", str(res), *SLURM]) == 0
    out = capsys.readouterr().out
    assert "submitted SLURM job" not in out and out.count("not resubmitted") >= len(STAGES) - 1, out
    assert job_ledger.read_ledger(rd) == ledger

    assert main([*SMOKE, "--results", str(res), "--cancel"]) == 0
    out = capsys.readouterr().out
    cancelled = [i for i in ids if f"'{i}'" in out]
    assert len(cancelled) >= len(STAGES) - 1, out  # train may have finished in the meantime
    _until(lambda: not any(st.active for st in job_ledger.job_states(rd).values()), 60, "the jobs to leave the queue")
    states = job_ledger.job_states(rd)
    assert all(states[s].state == "failed" and "CANCELLED" in states[s].detail for s in STAGES[1:]), states
    squeue = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    assert not any(state in squeue.stdout for state in ("PENDING", "RUNNING")), squeue.stdout
    assert main([*SMOKE, "--results", str(res), "--status"]) == 0
    assert "chain   pending" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.slurm
@slurm
def test_slurm_chain_requeued_midway_is_byte_identical(tmp_path, inline_smoke, slurm_env):
    """`scontrol requeue` kills the job as a preemption or node failure would (SIGTERM, which submitit ignores,
    then SIGKILL after KillWait=5 s, possibly mid-write); SLURM restarts it under the same id and the chain resumes
    from its newest checkpoint on disk."""
    # Long enough that the requeued job cannot finish within KillWait (5 s) after SIGTERM, even on an idle machine
    # (at 30,000 steps an idle machine finished the smoke chain inside that window: one attempt, no requeue).
    overrides = ("chain.steps=150000", "chain.ckpt_every=500")
    e = _smoke(*overrides)
    res = tmp_path / "slurm"
    _copy_model(e, inline_smoke, res)
    args = parse_args([*SMOKE, *SLURM, "--results", str(res), *(x for o in overrides for x in ("--set", o))])
    (job_id,) = submit.submit_slurm(e, ["chain"], args, res)
    rd = run_dir(e, res)
    chain = rd / "chain" / "run"

    def checkpointed():
        st = job_ledger.job_states(rd)["chain"]
        assert st.state != "done", "the chain finished before it could be interrupted: make it longer"
        return sorted((chain / "state").glob("step_*.pt"))

    _until(checkpointed, JOB_WAIT_S, "the chain's first checkpoint", poll_s=0.2)
    subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True, timeout=30)
    t0 = time.time()

    # The reference, computed while SLURM holds the requeued job (same model, same thread count).
    ChainStage(e.to_dict(), str(inline_smoke), None, "cpu", False)()

    def finished():
        st = job_ledger.job_states(rd)["chain"]
        assert st.state != "failed", f"the requeued chain was reported failed: {st}"  # also while requeued
        return st.state == "done"

    _until(finished, WAIT_S, "the requeued chain", poll_s=1.0)
    print(f"requeue -> done in {time.time() - t0:.0f} s")
    assert stage_status(e, "chain", res) == "done"
    attempts = [json.loads(line) for line in (chain / "attempts.jsonl").read_text().splitlines()]
    assert len(attempts) >= 2 and attempts[0]["start_step"] == 0 and attempts[-1]["start_step"] > 0, attempts
    assert {a["job_id"] for a in attempts} == {job_id}  # requeued, not resubmitted
    assert [x["job_id"] for x in job_ledger.read_ledger(rd)] == [job_id]
    _assert_same_chain(run_dir(e, inline_smoke) / "chain" / "run", chain)


@pytest.mark.slow
@pytest.mark.slurm
@slurm
def test_slurm_failed_stage_is_reported_with_its_log(tmp_path, inline_smoke, slurm_env, capsys):
    overrides = ["--set", "chain.delta_over_sigma=6"]  # delta = 6 sigma: the chain diverges within ~30 steps
    e = _smoke("chain.delta_over_sigma=6")
    res = tmp_path / "slurm"
    _copy_model(e, inline_smoke, res)
    assert main([*SMOKE, *SLURM, *overrides, "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "train   done, skip" in out and "chain: submitted SLURM job" in out
    rd = run_dir(e, res)

    def settled():
        states = job_ledger.job_states(rd)
        return states["chain"].state == "failed" and not any(st.active for st in states.values()) and states

    states = _until(settled, JOB_WAIT_S, "the chain job to fail")
    chain = states["chain"]
    assert "ChainDiverged" in chain.detail and Path(chain.log).exists()
    assert "ChainDiverged" in Path(chain.log).read_text()
    assert states["export"].state == states["score"].state == "failed"  # afterok never satisfied: cancelled
    failed = json.loads((rd / "chain" / "run" / "FAILED.json").read_text())  # written by the job
    assert failed["step"] > 0 and "non-finite" in failed["error"]

    assert main([*SMOKE, *overrides, "--results", str(res), "--status"]) == 0
    status = capsys.readouterr().out
    line = next(x for x in status.splitlines() if x.strip().startswith("chain"))
    assert "failed" in line and f"job {chain.job_id} via slurm: failed" in line and chain.log in line, status

    with pytest.raises(RuntimeError, match="stage chain failed") as err:  # --wait's contract
        _wait(e, rd, ["chain", "export", "score"], res, poll_s=0.5, timeout_s=30)
    assert chain.log in str(err.value)


def test_wait_reports_only_failures_of_the_awaited_stages(tmp_path):
    """`submit.wait` (behind --wait) fails on a failed job of a stage it waits for, with the log path, but not on
    an old failed job of a stage that has been done since (e.g. redone inline after a SLURM failure)."""
    e = _smoke()
    rd = run_dir(e, tmp_path)
    job_ledger.record_job(rd, "chain", finished_job(rd / "submitit", "1", _BOOM))
    atomic_write_json(stage_dir(e, "chain", tmp_path) / "DONE.json", {"key": stage_key(e, "chain")})
    with pytest.raises(TimeoutError):
        _wait(e, rd, ["chain", "export"], tmp_path, poll_s=0.05, timeout_s=0.3)
    job_ledger.record_job(rd, "export", finished_job(rd / "submitit", "2", _BOOM))
    with pytest.raises(RuntimeError, match="stage export failed"):
        _wait(e, rd, ["chain", "export"], tmp_path, poll_s=0.05, timeout_s=5)


_BOOM = ("error", "Traceback (most recent call last):\nRuntimeError: boom")  # submitit's result pickle of a failure


# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local", pytest.param("slurm", marks=[pytest.mark.slurm, slurm])])
def test_ddp_two_gloo_processes_via_submitit_match_one_process(tmp_path, inline_smoke, slurm_env, launcher):
    """TrainStage as one submitit job with 2 tasks (gloo on CPU; each rank draws the global batch of 16 and trains
    on its 8) vs the inline single-process run with batch 16. `local`: LocalExecutor, tasks_per_node=2 (always
    run); `slurm`: sbatch --ntasks-per-node=2 + srun on the one-node cluster (2 CPUs), as on a GPU cluster.

    Tolerance: max |w_ddp - w_1| < 1e-5 over all weights after the smoke profile's 30 Adam steps; gradients
    differ only by the order of floating-point reductions (the allreduce averages two half-batch means).
    Measured on the development machine: 3.0e-8 with both launchers (float32; training moves weights by up to
    1.6e-2).
    """
    e = _smoke()
    ex = executors.make_executor(launcher, tmp_path / "jobs", Resources(name="ddp", tasks_per_node=2, timeout_min=5),
                              "local" if launcher == "slurm" else None)
    job = ex.submit(TrainStage(e.to_dict(), str(tmp_path), None, "cpu", False))
    job_ledger.record_job(tmp_path, "train", job)  # so that slurm_env cancels it if the test fails
    outs = job_ledger.wait_result(job, timeout_s=JOB_WAIT_S, poll_s=0.5)
    assert len(outs) == 2 and outs[1] == {"rank": 1, "final_loss": outs[1]["final_loss"]}
    assert outs[0]["summary"]["steps"] == e.train.steps

    one = load_checked(train_dir(e, inline_smoke) / "model.pt")["state_dict"]
    (path,) = (tmp_path / "runs").rglob("model.pt")  # not train_dir(e, ...): the job imported the live tree
    two = load_checked(path)["state_dict"]
    assert one.keys() == two.keys()
    diff = max((one[k].double() - two[k].double()).abs().max().item() for k in one)
    torch.manual_seed(e.train.seed)  # the initial weights, as TrainStage draws them
    init = build_model(e.model, e.image_shape).state_dict()
    moved = max((one[k].double() - init[k].double()).abs().max().item() for k in one)
    print(f"DDP (2 gloo processes via {launcher}) vs 1 process: max |dw| = {diff:.2e} (training moved weights by up to {moved:.2e})")
    assert moved > 1e-3 and diff < 1e-5
    # Each rank logs the loss of its half batch; their mean is the one-process (whole batch) loss.
    ref = json.loads((inline_smoke / "records" / f"{e.run_name}.json").read_text())["train"]["final_loss"]
    assert (outs[0]["summary"]["final_loss"] + outs[1]["final_loss"]) / 2 == pytest.approx(ref, rel=1e-5)
