"""The job ledger: one JSON line per submission in ``<run_dir>/jobs.jsonl`` (docs/on-disk.md §6.2).

``record_job`` / ``job_states`` / ``active_job`` / ``cancel_jobs`` / ``wait_result``. A stage's state is its latest
job's, re-created from the ledger as submitit's job (folder + job id + tasks): once every task wrote submitit's result
pickle (``("success", value)`` / ``("error", traceback)``) from the pickles; before, SLURM jobs from squeue
(slurm_jobs.py, no ``sacct``: absent without slurmdbd) and local jobs from the controller's pid (processes.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, JobPaths, UncompletedJobError, pickle_load

from ..errors import RunStateError, WaitTimeout
from .executors import launcher_of
from .processes import cancel_local, pid_alive
from .slurm_jobs import GONE, QUEUED, RUNNING, UNKNOWN, SlurmJob


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """The latest job of one stage. ``state``: queued | running | done | failed | unknown."""

    stage: str
    job_id: str
    launcher: str
    state: str
    log: str | None = None  # the job's stderr log (task 0)
    detail: str | None = None  # SLURM state, last line of the error, or why the state is unknown
    submitted_at: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


_LIVE: dict[str, submitit.DebugJob] = {}  # debug jobs run in this process: their state dies with it


def ledger_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "jobs.jsonl"


def record_job(run_dir: str | os.PathLike, stage: str, job: submitit.Job) -> dict[str, Any]:
    """Append {stage, job_id, launcher, folder, submitted_at, tasks, host} to ``run_dir/jobs.jsonl``."""
    entry: dict[str, Any] = {
        "stage": stage,
        "job_id": str(job.job_id),
        "launcher": launcher_of(job),
        "folder": str(job.paths.folder),
        "submitted_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tasks": job.num_tasks,
        "host": socket.gethostname(),
    }
    if entry["launcher"] == "debug":
        _LIVE[entry["job_id"]] = job
    path = ledger_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return entry


def read_ledger(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All entries, oldest first (a torn last line from a crash is skipped)."""
    path = ledger_path(run_dir)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _job(entry: dict[str, Any]) -> submitit.Job:
    """A local or SLURM entry's job, re-created by submitit from its folder and id (SLURM: watched through squeue)."""
    cls = SlurmJob if entry["launcher"] == "slurm" else submitit.LocalJob
    return cls(entry["folder"], entry["job_id"], tasks=tuple(range(int(entry.get("tasks", 1)))))


def _outcome(job: submitit.Job) -> tuple[str, str | None] | None:
    """("done" | "failed", the errors' last lines) once every task wrote its result pickle; else None."""
    pickles = [job.task(i).paths.result_pickle for i in range(job.num_tasks)]
    if not all(p.exists() for p in pickles):
        return None
    errors = []
    for path in pickles:
        try:
            outcome, value = pickle_load(path)
        except Exception as e:  # noqa: BLE001 - unreadable means we cannot vouch for success
            outcome, value = "error", f"unreadable result pickle {path}: {e!r}"
        if outcome != "success":
            errors.append((str(value).strip().splitlines() or ["error"])[-1])
    return ("failed", "; ".join(errors)) if errors else ("done", None)


def _status(entry: dict[str, Any]) -> JobStatus:
    launcher, job_id = entry["launcher"], entry["job_id"]
    log = str(JobPaths(entry["folder"], job_id, 0).stderr) if entry.get("folder") else None

    def status(state: str, detail: str | None = None) -> JobStatus:
        return JobStatus(entry["stage"], job_id, launcher, state, log, detail, entry.get("submitted_at"))

    if launcher == "debug":
        job = _LIVE.get(job_id)
        if job is not None and job.state == "DONE":
            return status("done")
        return status("unknown", "debug jobs run in-process, only when .result() is called")
    if launcher not in ("local", "slurm"):
        return status("unknown", f"unknown launcher {launcher!r}")
    job = _job(entry)
    squeue = job.watcher.get_state(job_id, mode="force") if launcher == "slurm" else None
    if squeue in QUEUED:
        return status("queued", squeue)
    # A result pickle is final even while the job is still exiting (RUNNING/COMPLETING): a requeued run never
    # writes one.
    if (outcome := _outcome(job)) is not None:
        return status(*outcome)
    if launcher == "local":
        if entry.get("host") not in (None, socket.gethostname()):
            return status("unknown", f"local job of host {entry['host']}")
        if pid_alive(int(job_id)):
            return status("running")
        if (outcome := _outcome(job)) is not None:  # it may have finished between the two checks
            return status(*outcome)
        return status("failed", "no result and the local controller is gone (killed?)")
    if squeue in RUNNING:
        return status("running", squeue)
    if squeue == UNKNOWN:
        return status("unknown", "squeue gave no state (is slurmctld up?)")
    why = "no longer known to slurmctld" if squeue == GONE else squeue
    return status("failed", f"no result pickle; SLURM state {why}")


def job_states(run_dir: str | os.PathLike) -> dict[str, JobStatus]:
    """Per stage, the state of its latest recorded job."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in read_ledger(run_dir):
        latest[entry["stage"]] = entry
    return {stage: _status(entry) for stage, entry in latest.items()}


def active_job(run_dir: str | os.PathLike, stage: str) -> str | None:
    """The id of the stage's latest job if it is queued or running (so do not submit it again)."""
    st = job_states(run_dir).get(stage)
    return st.job_id if st is not None and st.active else None


def cancel_jobs(run_dir: str | os.PathLike) -> list[str]:
    """Cancel every queued/running job in the ledger; return their ids.

    SLURM: submitit's ``job.cancel()`` (scancel). Local: SIGINT to the controller (it kills its tasks), then SIGKILL.
    """
    cancelled, seen = [], set()
    for entry in reversed(read_ledger(run_dir)):
        key = (entry["launcher"], entry["job_id"])
        if key in seen:
            continue
        seen.add(key)
        if not _status(entry).active:
            continue
        if entry["launcher"] == "slurm":
            try:
                _job(entry).cancel()
            except subprocess.CalledProcessError:  # e.g. it completed in the meantime
                continue
        elif entry["launcher"] == "local":
            cancel_local(int(entry["job_id"]))
        else:
            continue
        cancelled.append(entry["job_id"])
    return cancelled


def wait_result(job: submitit.Job, timeout_s: float, poll_s: float = 1.0) -> Any:
    """submitit's ``job.done()`` / ``job.results()`` with a bound (a list for a job of several tasks).

    Raises ``WaitTimeout`` after ``timeout_s``, or ``RunStateError`` (with the log path) when the job ended without a
    result (cancelled, OOM-killed, node failure): the SLURM jobs of ``make_executor`` are watched through squeue, so
    their ``done()`` sees that without ``sacct``.
    """
    deadline = time.time() + timeout_s
    log = job.task(0).paths.stderr
    while not job.done():
        if time.time() >= deadline:
            raise WaitTimeout(f"job {job.job_id} has no result after {timeout_s:.0f} s; log: {log}")
        time.sleep(poll_s)
    try:
        results = job.results()
    except FailedJobError:  # the function raised: submitit's error, with the job's traceback
        raise
    except UncompletedJobError as e:
        raise RunStateError(f"job {job.job_id} ended without a result ({job.state}); log: {log}") from e
    return results[0] if job.num_tasks == 1 else results
