"""Provenance recorded next to every result: code version (git commit, dirty or not), hardware, versions, time;
`git`, the one way the suite asks git."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

from ..data.storage import read_json
from .folders import REPO_ROOT


def git(*args: str, cwd: str | os.PathLike | None = None) -> str | None:
    """`git *args` in `cwd` (default: the repository): its stdout, or None when git is missing, fails (e.g. not a
    checkout) or takes over 10 s."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT if cwd is None else cwd, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def provenance(device: str = "cpu") -> dict:
    """Code version, hardware and versions recorded next to every result."""
    if device.startswith("cuda") and torch.cuda.is_available():
        hardware = f"GPU: {torch.cuda.get_device_name(0)}"
    else:
        cpu = platform.processor() or platform.machine()
        try:
            cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        hardware = f"CPU: {cpu} ({torch.get_num_threads()} threads)"
    # Code dirtiness only: results/ and REPORT.md are outputs a run itself rewrites (records, figures, report).
    sha = (git("rev-parse", "HEAD") or "").strip()
    dirty = bool((git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
                      ":(exclude)REPORT.md") or "").strip())
    snapshot = os.environ.get("REPLICATION_CODE_SNAPSHOT")  # SLURM jobs run from a code snapshot (pipeline/snapshots.py)
    if snapshot and Path(snapshot, "SNAPSHOT.json").exists():
        meta = read_json(Path(snapshot, "SNAPSHOT.json"))
        sha, dirty = meta.get("git_commit") or sha, bool(meta.get("git_dirty", dirty))
    return {"git_sha": sha or "unknown", "git_dirty": dirty,
            "hostname": socket.gethostname(), "hardware": hardware, "device": device, "torch": torch.__version__,
            "python": platform.python_version(), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
