"""SLURM submission of a run's pending stages: one job per stage, chained with afterok dependencies.

Training runs as one job with one task per GPU (DDP over the cluster profile's gpus_per_node); the chain
is a requeueable Checkpointable on one GPU; export on CPU; score on one GPU. A stage whose latest job is
queued or running is not submitted again; its job id becomes the next stage's dependency.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import RunStateError, UsageError, WaitTimeout
from ..runs.folders import run_dir, stage_status
from .clusters import Resources, load_cluster_profile
from .executors import make_executor
from .ledger import active_job, job_states, record_job
from .stages import STAGE_CLASSES


def stage_resources(e, stage: str, cluster) -> Resources:
    gpus = max(1, int(cluster.gpus_per_node or 0)) if cluster is not None and cluster.gpus_per_node else 0
    if stage == "train":
        return Resources(name=f"{e.id}-train", gpus_per_node=gpus, tasks_per_node=max(1, gpus), max_num_timeout=50)
    if stage == "chain":
        return Resources(name=f"{e.id}-chain", gpus_per_node=min(gpus, 1), tasks_per_node=1, max_num_timeout=200)
    return Resources(name=f"{e.id}-{stage}", gpus_per_node=0 if stage == "export" else min(gpus, 1), tasks_per_node=1)


def submit_slurm(e, pending: list[str], args, results: Path) -> list[str]:
    if not args.cluster:
        raise UsageError("--launcher slurm needs --cluster <profile> (see slurm/README.md; `local` is the one-node test cluster)")
    cluster = load_cluster_profile(args.cluster)
    rd = run_dir(e, results)
    device = "cuda" if cluster.gpus_per_node else args.device
    dependency: list[str] = []
    ids = []
    for s in pending:
        running = active_job(rd, s)
        if running:
            print(f"  {s}: job {running} is already queued/running; not resubmitted")
            dependency = [running]
            continue
        stage = STAGE_CLASSES[s](e.to_dict(), str(results), args.data_root, device, False, retrain=getattr(args, "retrain", False))
        ex = make_executor("slurm", rd / "submitit", stage_resources(e, s, cluster), cluster, dependency=dependency or None)
        job = ex.submit(stage)
        record_job(rd, s, job)
        print(f"  {s}: submitted SLURM job {job.job_id}" + (f" (afterok:{dependency[0]})" if dependency else ""), flush=True)
        dependency = [job.job_id]
        ids.append(job.job_id)
    if args.wait:
        wait(e, rd, pending, results)
    return ids


def wait(e, rd: Path, stages: list[str], results: Path, poll_s: float = 10.0, timeout_s: float | None = None) -> None:
    """Poll the ledger until the last stage is done; raise on a failed stage with its log path."""
    t0 = time.time()
    while stage_status(e, stages[-1], results) != "done":
        for s, st in job_states(rd).items():  # only the awaited stages: an old failure of a stage since done doesn't count
            if s in stages and st.state == "failed" and stage_status(e, s, results) != "done":
                raise RunStateError(f"{e.id}: stage {s} failed (job {st.job_id}); log: {st.log}")
        if timeout_s is not None and time.time() - t0 > timeout_s:
            raise WaitTimeout(f"{e.id}: jobs not finished after {timeout_s:.0f} s; see --status")
        time.sleep(poll_s)
