"""The job ledger: one JSON line per submission in ``<run_dir>/jobs.jsonl`` (docs/on-disk.md §6.4).

``record_job`` / ``job_states`` / ``active_job`` / ``cancel_jobs`` / ``wait_result``. States are read
without ``sacct`` (absent without slurmdbd): ``squeue`` for queued/running SLURM jobs, otherwise
submitit's result pickles (``("success", value)`` / ``("error", traceback)``), and for local jobs the
controller's pid (processes.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pickle
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import RunStateError, WaitTimeout
from .executors import InlineJob, launcher_of
from .processes import SLURM_QUEUED, SLURM_RUNNING, cancel_local, pid_alive, squeue_state


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


_LIVE: dict[tuple[str, str], Any] = {}  # in-process jobs (inline/debug), whose state dies with us


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def ledger_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "jobs.jsonl"


def record_job(run_dir: str | os.PathLike, stage: str, job: Any) -> dict[str, Any]:
    """Append {stage, job_id, launcher, folder, submitted_at, ...} to ``run_dir/jobs.jsonl``."""
    launcher = launcher_of(job)
    folder = getattr(getattr(job, "paths", None), "folder", None)
    entry: dict[str, Any] = {
        "stage": stage,
        "job_id": str(job.job_id),
        "launcher": launcher,
        "folder": str(folder) if folder is not None else None,
        "submitted_at": _now(),
        "tasks": len(getattr(job, "_tasks", (0,))) or 1,
        "host": socket.gethostname(),
    }
    if isinstance(job, InlineJob):
        entry["state"] = "failed" if job._exception is not None else "done"
        if job._traceback:
            entry["detail"] = job._traceback.strip().splitlines()[-1]
    if launcher in ("inline", "debug"):
        _LIVE[(launcher, entry["job_id"])] = job
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


def _read_outcome(pickle_path: Path) -> tuple[str, Any] | None:
    """submitit's result pickle: ("success", value) | ("error", traceback str) | None if absent."""
    if not pickle_path.exists():
        return None
    try:
        with open(pickle_path, "rb") as f:
            outcome = pickle.load(f)
    except Exception as e:  # noqa: BLE001 - unreadable means we cannot vouch for success
        return ("error", f"unreadable result pickle {pickle_path}: {e!r}")
    return outcome


def _pickle_state(entry: dict[str, Any]) -> tuple[str, str | None] | None:
    """("done"|"failed", detail) from the result pickles of all tasks; None if any is missing."""
    from submitit.core.utils import JobPaths

    details = []
    for task in range(int(entry.get("tasks", 1))):
        outcome = _read_outcome(JobPaths(entry["folder"], entry["job_id"], task).result_pickle)
        if outcome is None:
            return None
        if outcome[0] != "success":
            lines = str(outcome[1]).strip().splitlines()
            details.append(lines[-1] if lines else "error")
    return ("failed", "; ".join(details)) if details else ("done", None)


def _status(entry: dict[str, Any]) -> JobStatus:
    from submitit.core.utils import JobPaths

    launcher, job_id = entry["launcher"], entry["job_id"]
    log = None
    if entry.get("folder"):
        log = str(JobPaths(entry["folder"], job_id, 0).stderr)
    base = {
        "stage": entry["stage"],
        "job_id": job_id,
        "launcher": launcher,
        "log": log,
        "submitted_at": entry.get("submitted_at"),
    }

    if launcher == "inline":
        return JobStatus(state=entry.get("state", "unknown"), detail=entry.get("detail"), **base)
    if launcher == "debug":
        job = _LIVE.get(("debug", job_id))
        if job is not None and job._submission.done():
            return JobStatus(state="done", **base)
        return JobStatus(
            state="unknown",
            detail="debug jobs run in-process, only when .result() is called",
            **base,
        )
    if launcher == "local":
        done = _pickle_state(entry)
        if done is not None:
            return JobStatus(state=done[0], detail=done[1], **base)
        if entry.get("host") not in (None, socket.gethostname()):
            return JobStatus(state="unknown", detail=f"local job of host {entry['host']}", **base)
        if pid_alive(int(job_id)):
            return JobStatus(state="running", **base)
        done = _pickle_state(entry)  # it may have finished between the two checks
        if done is not None:
            return JobStatus(state=done[0], detail=done[1], **base)
        return JobStatus(
            state="failed", detail="no result and the local controller is gone (killed?)", **base
        )
    if launcher == "slurm":
        slurm_state, err = squeue_state(job_id)
        if slurm_state in SLURM_QUEUED:
            return JobStatus(state="queued", detail=slurm_state, **base)
        # A result pickle is final even while the job is still exiting (RUNNING/COMPLETING):
        # a requeued run never writes one.
        done = _pickle_state(entry)
        if done is not None:
            return JobStatus(state=done[0], detail=done[1], **base)
        if slurm_state in SLURM_RUNNING:
            return JobStatus(state="running", detail=slurm_state, **base)
        if err is not None:
            return JobStatus(state="unknown", detail=err, **base)
        why = slurm_state or "no longer known to slurmctld"
        return JobStatus(state="failed", detail=f"no result pickle; SLURM state {why}", **base)
    return JobStatus(state="unknown", detail=f"unknown launcher {launcher!r}", **base)


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

    SLURM: ``scancel``. Local: SIGINT to the controller (it kills its tasks), then SIGKILL.
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
            p = subprocess.run(
                ["scancel", entry["job_id"]],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if p.returncode != 0:  # e.g. it completed in the meantime
                continue
        elif entry["launcher"] == "local":
            cancel_local(int(entry["job_id"]))
        else:
            continue
        cancelled.append(entry["job_id"])
    return cancelled


def wait_result(job: Any, timeout_s: float, poll_s: float = 1.0) -> Any:
    """``job.result()`` with a bound: poll result pickles (not sacct); fail fast on vanished jobs.

    Raises ``WaitTimeout`` after ``timeout_s``, or ``RunStateError`` (with the log path) when a
    SLURM/local job is gone without a result (cancelled, OOM-killed, node failure).
    """
    launcher = launcher_of(job)
    if launcher in ("inline", "debug"):
        return job.result()
    entry = {
        "stage": "?",
        "job_id": str(job.job_id),
        "launcher": launcher,
        "folder": str(job.paths.folder),
        "tasks": len(getattr(job, "_tasks", (0,))) or 1,
        "host": socket.gethostname(),
    }
    deadline, next_check, gone_since = time.time() + timeout_s, 0.0, None
    while True:
        if _pickle_state(entry) is not None:
            return job.results()[0] if entry["tasks"] == 1 else job.results()
        now = time.time()
        if now >= deadline:
            raise WaitTimeout(
                f"job {job.job_id} has no result after {timeout_s:.0f} s; log: {job.paths.stderr}"
            )
        if now >= next_check:
            st = _status(entry)
            next_check = now + 5.0
            if st.state == "failed":  # gone without a result; allow for slow file systems
                gone_since = gone_since or now
                if now - gone_since > 10.0:
                    raise RunStateError(
                        f"job {job.job_id} ended without a result ({st.detail}); log: {st.log}"
                    )
        time.sleep(poll_s)
