"""Functions run as jobs by tests/test_launch.py, and finished jobs for the ledger's tests.

They live in an importable module because submitit pickles functions by reference (a test
module's functions would need pytest's import machinery inside the job). The tests put this
folder on PYTHONPATH for the jobs. Deliberately light: no torch import, so a local/SLURM job
starts in well under a second.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time
from pathlib import Path

import submitit


def finished_job(folder: str | Path, job_id: str, outcome: tuple[str, object]) -> submitit.LocalJob:
    """A local job that ended with ``outcome`` (submitit's result pickle: ("success", value) or ("error", traceback)),
    re-created by submitit from its folder and id as another process sees it (no controller to ask)."""
    job = submitit.LocalJob(folder, job_id)
    job.paths.result_pickle.parent.mkdir(parents=True, exist_ok=True)
    job.paths.result_pickle.write_bytes(pickle.dumps(outcome))
    return job


def add(a: int, b: int) -> int:
    return a + b


def whoami() -> dict:
    """Where and how the job ran: the code it imported, its cwd and the scheduler's ids."""
    import replication

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "replication_file": replication.__file__,
        "sys_path0": sys.path[0],
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "executor": os.environ.get("SUBMITIT_EXECUTOR"),
        "snapshot": os.environ.get("REPLICATION_CODE_SNAPSHOT"),
    }


def fail(message: str) -> None:
    print(f"about to fail: {message}", file=sys.stderr, flush=True)
    raise RuntimeError(message)


def write_after(path: str, text: str, delay_s: float) -> str:
    """Sleep, then write ``text`` to ``path`` (the first link of a dependency chain)."""
    time.sleep(delay_s)
    Path(path).write_text(text)
    return text


def read_text(path: str) -> str:
    return Path(path).read_text()


def counter_value(n_steps: int) -> int:
    """What an uninterrupted CounterJob of ``n_steps`` returns."""
    value = 1
    for step in range(n_steps):
        value = _step(value, step)
    return value


def _step(value: int, step: int) -> int:
    return (value * 6364136223846793005 + 1442695040888963407 + step) % (1 << 61)


class CounterJob(submitit.helpers.Checkpointable):
    """A resumable loop: all state on disk (``state.json``, saved every ``ckpt_every`` steps).

    Each start appends ``{"start": step, "job_id": ...}`` to ``attempts.jsonl``, so tests can
    count restarts. ``checkpoint()`` (inherited behaviour, made explicit) returns a fresh
    instance with the same small arguments: nothing about the progress travels in the pickle.
    """

    def __init__(
        self, state_dir: str, n_steps: int, ckpt_every: int = 5, sleep_s: float = 0.05
    ) -> None:
        self.state_dir = str(state_dir)
        self.n_steps = n_steps
        self.ckpt_every = ckpt_every
        self.sleep_s = sleep_s

    def __call__(self) -> dict:
        d = Path(self.state_dir)
        d.mkdir(parents=True, exist_ok=True)
        state_file = d / "state.json"
        state = (
            json.loads(state_file.read_text()) if state_file.exists() else {"step": 0, "value": 1}
        )
        job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
        with open(d / "attempts.jsonl", "a") as f:
            f.write(
                json.dumps({"start": state["step"], "job_id": job_id, "time": time.time()}) + "\n"
            )
        print(f"start at step {state['step']}", flush=True)
        step, value = state["step"], state["value"]
        while step < self.n_steps:
            value = _step(value, step)
            step += 1
            if step % self.ckpt_every == 0 or step == self.n_steps:
                tmp = d / "state.json.tmp"
                tmp.write_text(json.dumps({"step": step, "value": value}))
                os.replace(tmp, state_file)
            time.sleep(self.sleep_s)
        attempts = [json.loads(line) for line in (d / "attempts.jsonl").read_text().splitlines()]
        return {"value": value, "attempts": attempts}

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(
            type(self)(self.state_dir, self.n_steps, self.ckpt_every, self.sleep_s)
        )
