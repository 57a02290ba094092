"""Local jobs seen from another process: is the controller alive, cancel it with its tasks.

submitit's ``LocalJob`` knows its controller only through the ``Popen`` of the process that submitted it; a later
``--status`` or ``--cancel`` (another process) has the ledger's pid, read in ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a live (not zombie) submitit process (not a recycled pid)?"""
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
    """SIGINT to the local controller ``pid``, then SIGKILL to it and its tasks if still alive after ``grace_s``."""
    # The controller turns SIGINT into killing its tasks (SIGTERM is forwarded, and submitit's tasks ignore it).
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
