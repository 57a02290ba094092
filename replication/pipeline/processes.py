"""What SLURM and the operating system say about a job: squeue states, live local controllers, cancelling them.

States are read without ``sacct`` (absent without slurmdbd): ``squeue`` for queued/running SLURM jobs,
and for local jobs the controller's pid in ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

# squeue %T states, mapped to the ledger's states.
SLURM_QUEUED = {
    "PENDING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
SLURM_RUNNING = {
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESIZING",
}


def squeue_state(job_id: str) -> tuple[str | None, str | None]:
    """(squeue %T state, or None once slurmctld forgot the job; error text if squeue failed)."""
    try:
        p = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"squeue failed: {e!r}"
    if p.returncode == 0:
        states = [s.strip() for s in p.stdout.split() if s.strip()]
        return (states[0] if states else None), None
    if "Invalid job id" in p.stderr:
        return None, None  # purged after MinJobAge
    return None, f"squeue failed: {p.stderr.strip()}"


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
        return b"submitit" in cmd  # not a recycled pid
    except (OSError, IndexError):
        return False


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def cancel_local(pid: int, grace_s: float = 5.0) -> None:
    # The controller turns SIGINT into killing its tasks (SIGTERM is forwarded, and submitit's
    # tasks ignore SIGTERM). SIGKILL whatever is left after the grace period.
    family = [pid] + _children(pid)
    family += [c for p in family[1:] for c in _children(p)]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.time() + grace_s
    while time.time() < deadline and any(pid_alive(p) for p in family):
        time.sleep(0.1)
    for p in family:
        if pid_alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
