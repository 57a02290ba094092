"""Executors for the four launchers, behind submitit's executor interface (``make_executor``).

  inline  call the function right here, at submit time (the default CPU path; no submitit)
  debug   ``submitit.AutoExecutor(cluster="debug")``: in-process, lazily on ``.result()``
  local   ``submitit.AutoExecutor(cluster="local")``: subprocesses with the real pickling,
          timeout -> USR2 -> ``checkpoint()`` -> requeue path (at most 6 restarts per job)
  slurm   ``submitit.AutoExecutor(cluster="slurm")``: sbatch on a SLURM cluster

The cluster is always passed explicitly: submitit's auto-detection answers "slurm" on any machine
where ``srun`` is on PATH (docs/on-disk.md §6.1), including development machines with slurm-client.
SLURM executors run from a code snapshot (snapshots.py); resources come from clusters.py; the
job ledger is ledger.py.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shlex
import shutil
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..runs.folders import REPO_ROOT
from .clusters import ClusterProfile, Resources, load_cluster_profile, resolve_resources
from .snapshots import snapshot_code

LAUNCHERS = ("inline", "debug", "local", "slurm")


# ----------------------------------------------------------------------------------------------
# The inline executor: same submit/result interface, no submitit, no subprocess.


class InlineJob:
    """The outcome of a call made at submit time, behind submitit's ``Job`` interface."""

    def __init__(self, job_id: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.job_id = job_id
        self.paths = None
        self._result: Any = None
        self._exception: BaseException | None = None
        self._traceback: str | None = None
        try:
            self._result = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - handed back by result(), like submitit
            self._exception = e
            self._traceback = traceback.format_exc()

    @property
    def state(self) -> str:
        return "FAILED" if self._exception is not None else "DONE"

    def done(self, force_check: bool = False) -> bool:
        return True

    def wait(self) -> None:
        return None

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def results(self) -> list[Any]:
        return [self.result()]

    def exception(self) -> BaseException | None:
        return self._exception

    def cancel(self, check: bool = True) -> None:
        return None

    def __repr__(self) -> str:
        return f"InlineJob<{self.job_id}, {self.state}>"


class InlineExecutor:
    """Runs each submission immediately in this process (exceptions are kept for ``result()``)."""

    cluster = "inline"
    _ids = itertools.count()

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.parameters: dict[str, Any] = {}

    def _new_id(self) -> str:
        return f"inline-{os.getpid()}-{next(self._ids)}"

    def update_parameters(self, **kwargs: Any) -> None:
        self.parameters.update(kwargs)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> InlineJob:
        return InlineJob(self._new_id(), fn, args, kwargs)

    def submit_array(self, fns: Sequence[Callable[[], Any]]) -> list[InlineJob]:
        return [self.submit(fn) for fn in fns]

    def map_array(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[InlineJob]:
        return [self.submit(fn, *args) for args in zip(*iterables)]

    @contextlib.contextmanager
    def batch(self):
        yield


# ----------------------------------------------------------------------------------------------
# Executors.


def make_executor(
    launcher: str,
    folder: str | os.PathLike,
    resources: Resources | None = None,
    cluster: ClusterProfile | str | None = None,
    *,
    dependency: Sequence[str] | None = None,
    code_snapshot: str | os.PathLike | bool = True,
    python: str | None = None,
):
    """An executor for ``launcher`` ("inline" | "debug" | "local" | "slurm"), writing to ``folder``.

    ``cluster`` (a profile or its name) supplies partition/account/qos/constraint/setup and
    defaults; it only matters for "slurm" (for the others only its defaults are used).
    ``dependency``: job ids this submission must wait for (SLURM ``afterok``; ignored elsewhere:
    inline/debug/local callers run stages in order themselves). ``code_snapshot`` (slurm only):
    True = snapshot the repo into ``<folder>/code/<sha>``; a path = an existing snapshot; False =
    run the live tree (the submit directory must then be the repo root).
    """
    if launcher not in LAUNCHERS:
        raise UsageError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if isinstance(cluster, str):
        cluster = load_cluster_profile(cluster)
    res = resolve_resources(resources or Resources(), cluster, launcher in ("local", "slurm"))
    if launcher == "inline":
        ex = InlineExecutor(folder)
        ex.update_parameters(**res)
        return ex

    import submitit
    from submitit.core.utils import JobPaths

    folder = Path(folder).absolute()
    generic = {
        "name": res["name"],
        "nodes": res["nodes"],
        "tasks_per_node": res["tasks_per_node"],
        "gpus_per_node": int(res["gpus_per_node"]),
        "cpus_per_task": int(res["cpus_per_task"]),
        "timeout_min": max(1, math.ceil(res["timeout_min"])),
    }
    if res["mem_gb"] is not None:
        generic["mem_gb"] = float(res["mem_gb"])

    if launcher == "debug":
        ex = submitit.AutoExecutor(folder, cluster="debug")
        ex.update_parameters(**generic)
        return ex

    if launcher == "local":
        ex = submitit.AutoExecutor(
            folder, cluster="local", local_max_num_timeout=int(res["max_num_timeout"])
        )
        ex.update_parameters(**generic)
        # AutoExecutor types timeout_min as int and rejects local_signal_delay_s (docs/on-disk.md §6.1),
        # so set the fractional timeout and the signal delay on the LocalExecutor itself.
        ex._executor.update_parameters(
            timeout_min=float(res["timeout_min"]), signal_delay_s=int(res["signal_delay_s"])
        )
        return ex

    # slurm
    if shutil.which("srun") is None:
        raise UsageError(
            "launcher 'slurm' needs srun/sbatch on PATH: run on a SLURM login node, or start the "
            "one-node test cluster with `slurm/local-cluster.sh start`"
        )
    setup = list(cluster.setup) if cluster is not None else []
    ctor: dict[str, Any] = {"slurm_max_num_timeout": int(res["max_num_timeout"])}
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
    ctor["slurm_python"] = py
    ex = submitit.AutoExecutor(folder, cluster="slurm", **ctor)
    extra: dict[str, Any] = {"requeue": True}  # also requeue on node failure (resume is from disk)
    if cluster is not None:
        extra.update(cluster.sbatch_extra)
    if dependency:
        extra["dependency"] = "afterok:" + ":".join(str(j) for j in dependency)
        extra["kill-on-invalid-dep"] = "yes"  # a failed parent cancels the child instead of hanging
    params: dict[str, Any] = dict(
        generic,
        slurm_signal_delay_s=int(res["signal_delay_s"]),
        slurm_additional_parameters=extra,
    )
    if setup:
        params["slurm_setup"] = setup
    if cluster is not None:
        for key in ("partition", "account", "qos", "constraint", "array_parallelism"):
            value = getattr(cluster, key)
            if value not in (None, ""):
                params[f"slurm_{key}"] = value
    ex.update_parameters(**params)
    return ex


def launcher_of(job: Any) -> str:
    """ "inline" | "debug" | "local" | "slurm" for a job returned by one of our executors."""
    if isinstance(job, InlineJob):
        return "inline"
    name = type(job).__name__
    return {"DebugJob": "debug", "LocalJob": "local", "SlurmJob": "slurm"}.get(name, name)
