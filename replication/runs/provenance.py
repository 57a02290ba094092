"""Provenance recorded next to every result: code version (git commit, dirty or not), hardware, versions, time."""

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


def provenance(device: str = "cpu") -> dict:
    """Code version, hardware and versions recorded next to every result."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

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
    sha = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", ":(exclude)REPORT.md"))
    snapshot = os.environ.get("REPLICATION_CODE_SNAPSHOT")  # SLURM jobs run from a code snapshot (pipeline/snapshots.py)
    if snapshot and Path(snapshot, "SNAPSHOT.json").exists():
        meta = read_json(Path(snapshot, "SNAPSHOT.json"))
        sha, dirty = meta.get("git_commit") or sha, bool(meta.get("git_dirty", dirty))
    return {"git_sha": sha or "unknown", "git_dirty": dirty,
            "hostname": socket.gethostname(), "hardware": hardware, "device": device, "torch": torch.__version__,
            "python": platform.python_version(), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
