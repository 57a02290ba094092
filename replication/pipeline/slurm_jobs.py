"""SLURM jobs watched through squeue: submitit's ``SlurmExecutor`` and ``SlurmJob`` with another ``InfoWatcher``.

submitit reads a SLURM job's state with ``sacct``, which needs an accounting database (slurmdbd). Without one
(the test cluster of slurm/local-cluster.sh, many small clusters) its ``job.state`` stays UNKNOWN, and
``job.done()`` / ``job.result()`` wait forever for a job that ended without a result (cancelled, killed, node
failure). ``SqueueWatcher`` is submitit's own watcher (one call for all the jobs it watches, finished states cached)
asking ``squeue --me --states=all`` instead: slurmctld lists an ended job for MinJobAge (300 s by default, 30 s on the
test cluster), and a watched job it no longer lists is ``GONE``. Submission, the sbatch script, requeue and results
stay submitit's. (submitit's job arrays are built with its own ``SlurmJob``; the suite submits no arrays.)
"""

from __future__ import annotations

import submitit
from submitit.slurm.slurm import SlurmInfoWatcher

# squeue %T states: waiting to run, and started but not ended.
QUEUED = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
RUNNING = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
                     "RESIZING"})
UNKNOWN = "UNKNOWN"  # submitit's state before any answer (squeue not called yet, or it failed)
GONE = "GONE"  # no longer listed by squeue: ended more than MinJobAge ago


class SqueueWatcher(SlurmInfoWatcher):
    """submitit's SLURM watcher, asking squeue where submitit asks sacct."""

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        return ["squeue", "--me", "--noheader", "--states=all", "--format=%i|%T"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        info = super().read_info("JobID|State\n" + text)  # submitit's reader of sacct's --parsable2 table
        info.update({job_id: {"State": GONE} for job_id in self._registered - self._finished if job_id not in info})
        return info

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return self.get_state(job_id, mode=mode) not in QUEUED | RUNNING | {UNKNOWN}


class SlurmJob(submitit.SlurmJob):
    """submitit's SLURM job, watched through squeue (at most every 5 s unless forced)."""

    watcher = SqueueWatcher(delay_s=5)


class SlurmExecutor(submitit.SlurmExecutor):
    """submitit's SLURM executor; its jobs are watched through squeue."""

    job_class = SlurmJob
