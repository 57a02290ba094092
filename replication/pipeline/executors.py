"""submitit's executors for the launchers, configured from a cluster profile (``make_executor``).

  inline  no executor: the CLI calls the stage right here (the default CPU path)
  debug   ``submitit.DebugExecutor``: in-process, lazily on ``.result()``
  local   ``submitit.LocalExecutor``: subprocesses with the real pickling, timeout -> USR2 -> ``checkpoint()``
          -> requeue path (at most 6 restarts per job)
  slurm   submitit's ``SlurmExecutor`` whose jobs are watched through squeue (slurm_jobs.py): sbatch

The executor class is named, never auto-detected: submitit's ``AutoExecutor`` answers "slurm" on any machine where
``srun`` is on PATH (docs/on-disk.md §6.1), including development machines with slurm-client. SLURM executors run
from a code snapshot (snapshots.py); resources come from clusters.py; the job ledger is ledger.py.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import JobPaths

from ..errors import UsageError
from ..runs.folders import REPO_ROOT
from .clusters import ClusterProfile, Resources, load_cluster_profile, resolve_resources
from .slurm_jobs import SlurmExecutor
from .snapshots import snapshot_code

# The job class of each launcher's executor (inline has none).
JOB_CLASSES = {"debug": submitit.DebugJob, "local": submitit.LocalJob, "slurm": submitit.SlurmJob}
LAUNCHERS = ("inline", *JOB_CLASSES)


def make_executor(
    launcher: str,
    folder: str | os.PathLike,
    resources: Resources | None = None,
    cluster: ClusterProfile | str | None = None,
    *,
    dependency: Sequence[str] | None = None,
    code_snapshot: str | os.PathLike | bool = True,
    python: str | None = None,
) -> submitit.Executor:
    """submitit's executor for ``launcher`` ("debug" | "local" | "slurm"), writing to ``folder``.

    ``cluster`` (a profile or its name) supplies partition/account/qos/constraint/setup and
    defaults; it only matters for "slurm" (for "local" only its defaults are used).
    ``dependency``: job ids this submission must wait for (SLURM ``afterok``; ignored elsewhere:
    debug/local callers run stages in order themselves). ``code_snapshot`` (slurm only):
    True = snapshot the repo into ``<folder>/code/<sha>``; a path = an existing snapshot; False =
    run the live tree (the submit directory must then be the repo root).
    """
    if launcher not in JOB_CLASSES:
        raise UsageError(f"no executor for launcher {launcher!r}; choose one of {', '.join(JOB_CLASSES)} "
                         "(inline runs without one)")
    if isinstance(cluster, str):
        cluster = load_cluster_profile(cluster)
    res = resolve_resources(resources or Resources(), cluster, launcher != "debug")
    folder = Path(folder).absolute()
    if launcher == "debug":
        return submitit.DebugExecutor(folder)
    if launcher == "local":
        ex = submitit.LocalExecutor(folder, max_num_timeout=int(res["max_num_timeout"]))
        ex.update_parameters(  # the local controller reads these; it ignores name, cpus and memory
            nodes=res["nodes"], tasks_per_node=res["tasks_per_node"], gpus_per_node=int(res["gpus_per_node"]),
            timeout_min=float(res["timeout_min"]), signal_delay_s=int(res["signal_delay_s"]))
        return ex

    # slurm
    if shutil.which("srun") is None:
        raise UsageError(
            "launcher 'slurm' needs srun/sbatch on PATH: run on a SLURM login node, or start the "
            "one-node test cluster with `slurm/local-cluster.sh start`"
        )
    setup = list(cluster.setup) if cluster is not None else []
    py = python or shlex.quote(sys.executable)
    if code_snapshot is not False:
        snap = (
            Path(code_snapshot)
            if not isinstance(code_snapshot, bool)
            else snapshot_code(REPO_ROOT, JobPaths.get_first_id_independent_folder(folder) / "code")
        )
        snap = snap.absolute()
        setup += [
            f"export PYTHONPATH={shlex.quote(str(snap))}${{PYTHONPATH:+:$PYTHONPATH}}",
            f"export REPLICATION_CODE_SNAPSHOT={shlex.quote(str(snap))}",
        ]
        py += " -P"  # keep the submit directory off sys.path: the snapshot must win
    ex = SlurmExecutor(folder, max_num_timeout=int(res["max_num_timeout"]), python=py)
    generic = {  # submitit's generic names, mapped to sbatch's by submitit (as AutoExecutor does)
        "name": res["name"],
        "nodes": res["nodes"],
        "tasks_per_node": res["tasks_per_node"],
        "gpus_per_node": int(res["gpus_per_node"]),
        "cpus_per_task": int(res["cpus_per_task"]),
        "timeout_min": max(1, math.ceil(res["timeout_min"])),
    }
    if res["mem_gb"] is not None:
        generic["mem_gb"] = float(res["mem_gb"])
    extra: dict[str, Any] = {"requeue": True}  # also requeue on node failure (resume is from disk)
    if cluster is not None:
        extra.update(cluster.sbatch_extra)
    params: dict[str, Any] = dict(ex._convert_parameters(generic), signal_delay_s=int(res["signal_delay_s"]))
    if dependency:
        params["dependency"] = "afterok:" + ":".join(str(j) for j in dependency)
        extra["kill-on-invalid-dep"] = "yes"  # a failed parent cancels the child instead of hanging
    params["additional_parameters"] = extra
    if setup:
        params["setup"] = setup
    if cluster is not None:
        for key in ("partition", "account", "qos", "constraint", "array_parallelism"):
            value = getattr(cluster, key)
            if value not in (None, ""):
                params[key] = value
    ex.update_parameters(**params)
    return ex


def launcher_of(job: submitit.Job) -> str:
    """ "debug" | "local" | "slurm" for a job returned by one of these executors."""
    return next(launcher for launcher, cls in JOB_CLASSES.items() if isinstance(job, cls))
