"""replication.pipeline: cluster profiles, executors for every launcher, the job ledger, code snapshots.

Tiers:
  default        profiles, the debug executor, ledger, squeue watcher, snapshots (about a second)
  slow           LocalExecutor subprocess jobs, including a real timeout -> checkpoint -> requeue
  slurm          a real SLURM (``slurm/local-cluster.sh start``); skipped unless ``scontrol ping``
                 answers. The requeue test waits for SLURM to restart the job (about cred_expire,
                 30 s with our slurm.conf; 120 s with SLURM's default).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import launch_jobs
import pytest

from replication.pipeline import clusters, executors, ledger, processes, slurm_jobs, snapshots
from replication.errors import RunStateError
from replication.pipeline.clusters import Resources

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


@pytest.fixture
def job_env(monkeypatch):
    """Subprocess jobs (local, SLURM) find launch_jobs in tests/ and replication in the repo."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS_DIR), str(REPO_ROOT)]))
    monkeypatch.chdir(REPO_ROOT)


# ----------------------------------------------------------------------------------------------
# Profiles and resources.


def test_local_profile_drives_the_sbatch_script(tmp_path):
    """A profile is judged by what it does: the `local` profile's settings reach the sbatch script of a job that
    names it (by name or by path), and the resources a job leaves open come from it."""
    from submitit.slurm.test_slurm import mocked_slurm

    assert {"local", "example-gpu"} <= set(clusters.available_profiles())
    for cluster in ("local", str(REPO_ROOT / "slurm" / "local.toml")):
        with mocked_slurm():
            ex = executors.make_executor("slurm", tmp_path / "jobs", Resources(name="probe"), cluster, code_snapshot=False)
            text = Path(ex.submit(launch_jobs.add, 1, 2).paths.submission_file).read_text()
        for flag in ("--partition=debug", "--cpus-per-task=1", "--mem=1GB", "--time=10", "--signal=USR2@30",
                     "--gpus-per-node=0", "--job-name=probe"):
            assert f"#SBATCH {flag}" in text, flag
        assert "--account" not in text and "--qos" not in text  # the profile sets neither
        assert ex.max_num_timeout == 3
    r = clusters.resolve_resources(Resources(cpus_per_task=4), clusters.load_cluster_profile("local"))
    assert (r["cpus_per_task"], r["mem_gb"], r["timeout_min"], r["gpus_per_node"]) == (4, 1, 10, 0)


def test_bad_profile_and_launcher(tmp_path):
    with pytest.raises(ValueError, match="local"):  # the message lists the available profiles
        clusters.load_cluster_profile("no-such-cluster")
    bad = tmp_path / "bad.toml"
    bad.write_text('partition = "x"\npartitoin = "typo"\n')
    with pytest.raises(ValueError, match="partitoin"):
        clusters.load_cluster_profile(bad)
    with pytest.raises(ValueError, match="debug, local, slurm"):
        executors.make_executor("kubernetes", tmp_path, Resources())


def test_resources_merge():
    gpu = clusters.load_cluster_profile("example-gpu")
    r = clusters.resolve_resources(Resources(cpus_per_task=2, timeout_min=10_000), gpu)
    assert r["cpus_per_task"] == 2  # Resources wins
    assert r["gpus_per_node"] == gpu.gpus_per_node and r["mem_gb"] == gpu.mem_gb  # profile fills in
    assert r["timeout_min"] == gpu.max_time_min  # capped to the partition limit
    assert clusters.resolve_resources(Resources())["gpus_per_node"] == 0  # built-in default
    with pytest.raises(ValueError, match="signal_delay_s"):
        clusters.resolve_resources(Resources(timeout_min=1, signal_delay_s=60))


# ----------------------------------------------------------------------------------------------
# In-process launchers and the ledger.


def test_debug_executor_and_ledger(tmp_path):
    ex = executors.make_executor("debug", tmp_path / "jobs", Resources(timeout_min=5))
    assert ex.name() == "debug"
    job = ex.submit(launch_jobs.add, 4, 5)
    ledger.record_job(tmp_path, "chain", job)
    assert ledger.job_states(tmp_path)["chain"].state == "unknown"  # lazy: nothing ran yet
    assert job.result() == 9
    st = ledger.job_states(tmp_path)["chain"]
    assert st.state == "done" and st.launcher == "debug" and ledger.active_job(tmp_path, "chain") is None
    assert isinstance(ex.submit(launch_jobs.fail, "nope").exception(), RuntimeError)
    assert [json.loads(line)["stage"] for line in (tmp_path / "jobs.jsonl").read_text().splitlines()] == ["chain"]


def test_ledger_reads_result_pickles_and_latest_job_wins(tmp_path):
    """Finished jobs as another process sees them (submitit re-creates each from its folder and id): the state and
    the error's last line come from submitit's result pickles; a stage's latest job is its state."""
    folder = tmp_path / "jobs"
    ledger.record_job(tmp_path, "export", launch_jobs.finished_job(folder, "1", ("error", "Traceback\nOSError: first")))
    ledger.record_job(tmp_path, "score", launch_jobs.finished_job(folder, "2", ("error", "Traceback\nRuntimeError: boom")))
    assert ledger.job_states(tmp_path)["export"].detail == "OSError: first"
    ledger.record_job(tmp_path, "export", launch_jobs.finished_job(folder, "3", ("success", 2)))
    with open(tmp_path / "jobs.jsonl", "a") as f:
        f.write('{"stage": "torn')  # a crash mid-append must not break the reader
    states = ledger.job_states(tmp_path)
    assert (states["export"].state, states["export"].job_id, states["export"].launcher) == ("done", "3", "local")
    assert (states["score"].state, states["score"].detail) == ("failed", "RuntimeError: boom")
    assert states["score"].log == str(folder / "2_0_log.err") and ledger.active_job(tmp_path, "export") is None
    assert ledger.job_states(tmp_path / "nothing-here") == {}


def test_squeue_watcher_reads_states_and_gone_jobs():
    """submitit's watcher fed squeue's table: states by job id (array tasks expanded); a watched job squeue no longer
    lists is GONE, hence done; queued, running and not-yet-asked jobs are not done."""
    w = slurm_jobs.SqueueWatcher()
    for job_id in ("45", "46_3", "47", "48"):
        w.register_job(job_id)
    info = w.read_info(b"45|PENDING\n46_[2-4%2]|RUNNING\n48|CANCELLED\n")
    assert {j: info[j]["State"] for j in ("45", "46_3", "47", "48")} == {
        "45": "PENDING", "46_3": "RUNNING", "47": slurm_jobs.GONE, "48": "CANCELLED"}
    w._info_dict.update(info)
    assert [w.is_done(j, mode="cache") for j in ("45", "46_3", "47", "48", "49")] == [False, False, True, True, False]


def test_snapshot_code_is_content_addressed(tmp_path):
    src = tmp_path / "repo"
    (src / "replication").mkdir(parents=True)
    (src / "replication" / "__init__.py").write_text("X = 1\n")
    (src / "replication" / "__pycache__").mkdir()
    (src / "replication" / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    (src / "replicate.py").write_text("print('hi')\n")
    a = snapshots.snapshot_code(src, tmp_path / "code")
    assert snapshots.snapshot_code(src, tmp_path / "code") == a  # same content, same folder
    assert (a / "replication" / "__init__.py").read_text() == "X = 1\n" and (
        a / "replicate.py"
    ).exists()
    assert not (a / "replication" / "__pycache__").exists()
    manifest = json.loads((a / "SNAPSHOT.json").read_text())
    assert a.name == manifest["sha256"][:16]
    (src / "replication" / "__init__.py").write_text("X = 2\n")
    b = snapshots.snapshot_code(src, tmp_path / "code")
    assert b != a and (a / "replication" / "__init__.py").read_text() == "X = 1\n"


def test_slurm_sbatch_text_from_profile(tmp_path, monkeypatch):
    # No cluster needed: submitit's own fake sbatch (private test utility shipped in the wheel).
    from submitit.slurm.test_slurm import mocked_slurm

    gpu = clusters.load_cluster_profile("example-gpu")
    with mocked_slurm():
        ex = executors.make_executor(
            "slurm",
            tmp_path / "jobs",
            Resources(name="chain", timeout_min=90.5, mem_gb=8),
            gpu,
            dependency=["7", "8_1"],
        )
        assert ex.name() == "slurm"
        job = ex.submit(launch_jobs.add, 1, 2)
        text = Path(job.paths.submission_file).read_text()
    for flag in (
        "--partition=gpu",
        "--account=my-project",
        "--qos=normal",
        "--constraint='a100|h100'",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=8GB",
        "--time=91",
        "--signal=USR2@180",
        "--job-name=chain",
        "--requeue",
        "--dependency=afterok:7:8_1",
        "--kill-on-invalid-dep=yes",
    ):
        assert f"#SBATCH {flag}" in text, flag
    assert "module load cuda/12.4" in text
    snaps = list((tmp_path / "jobs" / "code").iterdir())
    assert len(snaps) == 1 and f"export PYTHONPATH={snaps[0]}" in text
    assert (snaps[0] / "replication" / "pipeline" / "executors.py").exists()
    assert " -P -u -m submitit.core._submit" in text
    assert ex.max_num_timeout == gpu.max_num_timeout


# ----------------------------------------------------------------------------------------------
# LocalExecutor: real subprocesses, pickling and the timeout -> checkpoint -> requeue path.


@pytest.mark.slow
def test_local_executor_runs_in_subprocess(tmp_path, job_env):
    ex = executors.make_executor("local", tmp_path / "jobs", Resources(timeout_min=2))
    assert ex.name() == "local"
    job = ex.submit(launch_jobs.whoami)
    ledger.record_job(tmp_path, "probe", job)
    info = ledger.wait_result(job, timeout_s=60, poll_s=0.2)
    assert info["pid"] != os.getpid() and info["executor"] == "local"
    assert ledger.job_states(tmp_path)["probe"].state == "done"

    bad = ex.submit(launch_jobs.fail, "local boom")
    ledger.record_job(tmp_path, "probe", bad)
    with pytest.raises(Exception, match="local boom"):
        ledger.wait_result(bad, timeout_s=60, poll_s=0.2)
    st = ledger.job_states(tmp_path)["probe"]
    assert st.state == "failed" and "local boom" in st.detail
    assert "local boom" in Path(st.log).read_text()


def _wait_for_text(path: Path, text: str, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.2)
    pytest.fail(f"{text!r} never appeared in {path}")


@pytest.mark.slow
def test_local_cancel(tmp_path, job_env):
    ex = executors.make_executor("local", tmp_path / "jobs", Resources(timeout_min=2))
    job = ex.submit(launch_jobs.write_after, str(tmp_path / "never"), "x", 60)
    ledger.record_job(tmp_path, "sleep", job)
    _wait_for_text(job.paths.stdout, "Loading pickle", timeout_s=30)  # the task is running
    workers = processes._children(int(job.job_id))
    assert workers and ledger.active_job(tmp_path, "sleep") == job.job_id
    assert ledger.cancel_jobs(tmp_path) == [job.job_id]
    deadline = time.monotonic() + 15  # on a loaded machine the cancelled processes take a moment to exit
    while (st := ledger.job_states(tmp_path)["sleep"]).state == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert st.state == "failed" and "gone" in st.detail
    family = [int(job.job_id), *workers]  # SIGKILLed by cancel_local; the kernel takes a moment to end them when loaded
    deadline = time.monotonic() + 10
    while any(processes.pid_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(processes.pid_alive(p) for p in family)


@pytest.mark.slow
def test_local_checkpointable_requeue(tmp_path, job_env):
    # 70 steps x 0.05 s = 3.5 s of work; the local time limit is 4 s with USR2 at 3 s, so at least
    # one requeue is certain, and even with 2 s of interpreter start per slice it finishes in
    # 4 slices (the local controller restarts a job at most 6 times).
    n_steps = 70
    ex = executors.make_executor(
        "local",
        tmp_path / "jobs",
        Resources(timeout_min=4 / 60, signal_delay_s=1, max_num_timeout=10),
    )
    job = ex.submit(
        launch_jobs.CounterJob(str(tmp_path / "state"), n_steps, ckpt_every=5, sleep_s=0.05)
    )
    out = ledger.wait_result(job, timeout_s=90, poll_s=0.2)
    assert out["value"] == launch_jobs.counter_value(n_steps)
    starts = [a["start"] for a in out["attempts"]]
    assert len(starts) >= 2 and starts[0] == 0 and starts == sorted(starts) and starts[-1] > 0
    assert "Requeued" in job.stderr() + job.stdout()


# ----------------------------------------------------------------------------------------------
# A real SLURM (slurm/local-cluster.sh start).


def _slurm_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    try:
        return (
            subprocess.run(
                ["scontrol", "ping"], check=False, capture_output=True, timeout=10
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


slurm = pytest.mark.skipif(
    not _slurm_up(), reason="no SLURM here (start one with slurm/local-cluster.sh start)"
)


@pytest.fixture
def slurm_cluster(job_env):
    return clusters.load_cluster_profile("local")


@pytest.mark.slurm
@slurm
def test_slurm_submit_and_result(tmp_path, slurm_cluster):
    ex = executors.make_executor("slurm", tmp_path / "jobs", Resources(name="probe"), slurm_cluster)
    assert ex.name() == "slurm"
    job = ex.submit(launch_jobs.whoami)
    ledger.record_job(tmp_path, "probe", job)
    assert ledger.job_states(tmp_path)["probe"].state in ("queued", "running", "done")
    info = ledger.wait_result(job, timeout_s=120)
    assert info["slurm_job_id"] == job.job_id and info["executor"] == "slurm"
    # The job imported the code snapshot, not the live tree, and kept the submit directory.
    snap = Path(info["snapshot"])
    assert Path(info["replication_file"]).is_relative_to(snap)
    assert snap.parent == tmp_path / "jobs" / "code" and info["cwd"] == str(REPO_ROOT)
    text = Path(job.paths.submission_file).read_text()
    assert "--partition=debug" in text and "--requeue" in text and " -P -u -m submitit" in text
    assert ledger.job_states(tmp_path)["probe"].state == "done"
    assert ledger.active_job(tmp_path, "probe") is None


@pytest.mark.slurm
@slurm
def test_slurm_failed_job_is_reported(tmp_path, slurm_cluster):
    ex = executors.make_executor("slurm", tmp_path / "jobs", Resources(name="fail"), slurm_cluster)
    job = ex.submit(launch_jobs.fail, "slurm boom")
    ledger.record_job(tmp_path, "score", job)
    with pytest.raises(Exception, match="slurm boom"):
        ledger.wait_result(job, timeout_s=120)
    st = ledger.job_states(tmp_path)["score"]
    assert st.state == "failed" and "slurm boom" in st.detail
    assert st.log == str(job.paths.stderr) and "slurm boom" in Path(st.log).read_text()


@pytest.mark.slurm
@slurm
def test_slurm_dependency_chain(tmp_path, slurm_cluster):
    marker = tmp_path / "marker.txt"
    first = executors.make_executor("slurm", tmp_path / "jobs", Resources(name="first"), slurm_cluster)
    j1 = first.submit(launch_jobs.write_after, str(marker), "from the first job", 3.0)
    second = executors.make_executor(
        "slurm", tmp_path / "jobs", Resources(name="second"), slurm_cluster, dependency=[j1.job_id]
    )
    j2 = second.submit(launch_jobs.read_text, str(marker))
    assert f"--dependency=afterok:{j1.job_id}" in Path(j2.paths.submission_file).read_text()
    ledger.record_job(tmp_path, "first", j1)
    ledger.record_job(tmp_path, "second", j2)
    assert ledger.job_states(tmp_path)["second"].state in ("queued", "running", "done")
    # Reading before the file exists would fail the job: success proves the ordering.
    assert ledger.wait_result(j2, timeout_s=180) == "from the first job"
    assert {s.state for s in ledger.job_states(tmp_path).values()} == {"done"}


@pytest.mark.slurm
@slurm
def test_slurm_cancel(tmp_path, slurm_cluster):
    ex = executors.make_executor("slurm", tmp_path / "jobs", Resources(name="cancel"), slurm_cluster)
    job = ex.submit(launch_jobs.write_after, str(tmp_path / "never"), "x", 300)
    ledger.record_job(tmp_path, "sleep", job)
    assert ledger.active_job(tmp_path, "sleep") == job.job_id
    _wait_for_text(job.paths.stdout, "Loading pickle", timeout_s=120)
    assert ledger.job_states(tmp_path)["sleep"].state == "running"
    assert ledger.cancel_jobs(tmp_path) == [job.job_id]
    deadline = time.time() + 60
    while ledger.job_states(tmp_path)["sleep"].active and time.time() < deadline:
        time.sleep(1)
    st = ledger.job_states(tmp_path)["sleep"]
    assert st.state == "failed" and "CANCELLED" in st.detail
    # submitit's own job state and wait end too (its watcher reads squeue, not the absent sacct)
    assert job.state == "CANCELLED" and job.done()
    with pytest.raises(RunStateError, match="ended without a result"):
        ledger.wait_result(job, timeout_s=60)


@pytest.mark.slow
@pytest.mark.slurm
@slurm
def test_slurm_checkpointable_requeue(tmp_path, slurm_cluster):
    # Interrupt once as a preemption would (scancel --signal TERM, then USR2): submitit's handler
    # calls checkpoint() and `scontrol requeue`; SLURM restarts the same job id after cred_expire.
    n_steps = 150
    ex = executors.make_executor(
        "slurm",
        tmp_path / "jobs",
        Resources(name="counter", timeout_min=10, signal_delay_s=30, max_num_timeout=3),
        slurm_cluster,
    )
    state_dir = tmp_path / "state"
    job = ex.submit(launch_jobs.CounterJob(str(state_dir), n_steps, ckpt_every=5, sleep_s=0.1))
    ledger.record_job(tmp_path, "chain", job)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for some checkpointed progress
        state = state_dir / "state.json"
        if state.exists() and json.loads(state.read_text())["step"] >= 20:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the counter job made no progress; log: {job.paths.stderr}")
    job._interrupt(timeout=False)
    t0 = time.time()
    out = ledger.wait_result(job, timeout_s=360)
    restart_s = time.time() - t0
    assert out["value"] == launch_jobs.counter_value(n_steps)
    starts = [a["start"] for a in out["attempts"]]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= 20, starts
    assert {a["job_id"] for a in out["attempts"]} == {job.job_id}  # requeued under the same id
    assert f"Requeued job {job.job_id}" in job.stdout()  # submitit's handler, not a crash
    print(f"requeue -> result in {restart_s:.0f} s", file=sys.stderr)
