"""Where jobs run: executors for the four launchers, cluster profiles, a job ledger, code snapshots.

Launchers (``make_executor``):

  inline  call the function right here, at submit time (the default CPU path; no submitit)
  debug   ``submitit.AutoExecutor(cluster="debug")``: in-process, lazily on ``.result()``
  local   ``submitit.AutoExecutor(cluster="local")``: subprocesses with the real pickling,
          timeout -> USR2 -> ``checkpoint()`` -> requeue path (at most 6 restarts per job)
  slurm   ``submitit.AutoExecutor(cluster="slurm")``: sbatch on a SLURM cluster

The cluster is always passed explicitly: submitit's auto-detection answers "slurm" on any machine
where ``srun`` is on PATH (ECOSYSTEM §2.1), including development machines with slurm-client.

Resources come from two places. A ``Resources`` says what one class of jobs needs (e.g. the
chain stage: 1 GPU, 24 h); a ``ClusterProfile`` (``slurm/<name>.toml``) says how to ask this
cluster for it (partition, account, qos, constraint, setup lines) and gives defaults. A field
set in ``Resources`` wins; ``None`` falls back to the profile, then to the built-in default
(``DEFAULTS``). A profile's ``max_time_min`` caps the time limit (long jobs then rely on
checkpoint + requeue).

Code snapshots (``snapshot_code``): a SLURM job that is requeued after days re-imports the code
from disk. SLURM executors therefore run from a content-addressed copy of ``replication/`` and
``replicate.py`` (folder name = sha256 of the files), put first on ``PYTHONPATH`` by a setup line.
The job's Python runs with ``-P`` (Python >= 3.11), so the submit directory, which ``python -m``
would otherwise put before ``PYTHONPATH``, cannot shadow the snapshot; the working directory stays
the submit directory, so relative paths keep their meaning. We do not use
``submitit.helpers.RsyncSnapshot``: it copies only git-tracked files (uncommitted edits would be
silently dropped), needs rsync, and chdirs the submitting process into the snapshot.

Job ledger (``record_job`` / ``job_states`` / ``active_job`` / ``cancel_jobs``): one JSON line per
submission in ``<run_dir>/jobs.jsonl``. States are read without ``sacct`` (absent without
slurmdbd): ``squeue`` for queued/running SLURM jobs, otherwise submitit's result pickles
(``("success", value)`` / ``("error", traceback)``), and for local jobs the controller's pid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import os
import pickle
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

LAUNCHERS = ("inline", "debug", "local", "slurm")
REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE_DIR = REPO_ROOT / "slurm"

# Built-in defaults when neither Resources nor the profile says anything.
DEFAULTS = {
    "gpus_per_node": 0,
    "cpus_per_task": 1,
    "mem_gb": None,  # the cluster's default
    "timeout_min": 60.0,
    "signal_delay_s": 90,  # submitit's default; USR2 this long before the time limit
    "max_num_timeout": 3,
}

# squeue %T states, mapped to the ledger's states.
_SLURM_QUEUED = {
    "PENDING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
_SLURM_RUNNING = {
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESIZING",
}


# ----------------------------------------------------------------------------------------------
# Cluster profiles and resources.


@dataclasses.dataclass(frozen=True)
class ClusterProfile:
    """How to ask one SLURM cluster for resources (``slurm/<name>.toml``, see slurm/README.md)."""

    name: str
    description: str = ""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int | None = None  # default when Resources leaves it None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    time_min: float | None = None  # default time limit
    max_time_min: float | None = None  # partition limit: longer requests are capped to it
    signal_delay_s: int | None = None
    max_num_timeout: int | None = None
    array_parallelism: int | None = None
    setup: tuple[str, ...] = ()  # shell lines run in the sbatch script before srun
    additional_parameters: tuple[
        tuple[str, Any], ...
    ] = ()  # raw sbatch flags, e.g. ("exclusive", True)

    @property
    def sbatch_extra(self) -> dict[str, Any]:
        return dict(self.additional_parameters)


_PROFILE_KEYS = {f.name for f in dataclasses.fields(ClusterProfile)}


def available_profiles(profile_dir: str | os.PathLike = PROFILE_DIR) -> list[str]:
    return sorted(p.stem for p in Path(profile_dir).glob("*.toml"))


def load_cluster_profile(name_or_path: str | os.PathLike) -> ClusterProfile:
    """Load ``slurm/<name>.toml`` (or an explicit ``.toml`` path) into a ``ClusterProfile``.

    Unknown names and unknown keys raise ``ValueError`` (a typo in a profile should not silently
    submit to the default partition).
    """
    p = Path(name_or_path)
    if p.suffix != ".toml" or not p.exists():
        p = PROFILE_DIR / f"{name_or_path}.toml"
    if not p.exists():
        raise ValueError(
            f"unknown cluster profile {str(name_or_path)!r}; available in {PROFILE_DIR}: "
            f"{', '.join(available_profiles()) or '(none)'} (or pass a path to a .toml file)"
        )
    with open(p, "rb") as f:
        raw = tomllib.load(f)
    unknown = sorted(set(raw) - _PROFILE_KEYS)
    if unknown:
        raise ValueError(f"{p}: unknown key(s) {unknown}; known keys: {sorted(_PROFILE_KEYS)}")
    raw.setdefault("name", p.stem)
    raw["setup"] = tuple(str(line) for line in raw.get("setup", ()))
    raw["additional_parameters"] = tuple(sorted(dict(raw.get("additional_parameters", {})).items()))
    return ClusterProfile(**raw)


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one class of jobs needs. ``None``: take it from the cluster profile, then DEFAULTS."""

    name: str = "replication"
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: float | None = None  # may be fractional for the local launcher (tests)
    signal_delay_s: int | None = None
    max_num_timeout: int | None = None


def resolve_resources(
    resources: Resources, cluster: ClusterProfile | None = None, check_signal: bool = True
) -> dict[str, Any]:
    """Merge Resources > profile > DEFAULTS; return the effective values (validated).

    ``check_signal``: require ``signal_delay_s`` < the time limit (only meaningful for launchers
    that enforce time limits: local and slurm).
    """
    out: dict[str, Any] = {
        "name": resources.name,
        "nodes": resources.nodes,
        "tasks_per_node": resources.tasks_per_node,
    }
    profile_key = {"timeout_min": "time_min"}
    for key, default in DEFAULTS.items():
        value = getattr(resources, key)
        if value is None and cluster is not None:
            value = getattr(cluster, profile_key.get(key, key))
        out[key] = default if value is None else value
    if cluster is not None and cluster.max_time_min is not None:
        out["timeout_min"] = min(out["timeout_min"], cluster.max_time_min)
    if out["timeout_min"] <= 0:
        raise ValueError(f"timeout_min must be > 0, got {out['timeout_min']}")
    if check_signal and out["signal_delay_s"] >= 60 * out["timeout_min"]:
        raise ValueError(
            f"signal_delay_s={out['signal_delay_s']} must be shorter than the time limit "
            f"({60 * out['timeout_min']:.0f} s), or the job is signalled before it starts"
        )
    if out["nodes"] < 1 or out["tasks_per_node"] < 1:
        raise ValueError("nodes and tasks_per_node must be >= 1")
    return out


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
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
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
        # AutoExecutor types timeout_min as int and rejects local_signal_delay_s (ECOSYSTEM §2.2),
        # so set the fractional timeout and the signal delay on the LocalExecutor itself.
        ex._executor.update_parameters(
            timeout_min=float(res["timeout_min"]), signal_delay_s=int(res["signal_delay_s"])
        )
        return ex

    # slurm
    if shutil.which("srun") is None:
        raise RuntimeError(
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


# ----------------------------------------------------------------------------------------------
# Code snapshots.


def _snapshot_files(repo_root: Path, include: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for item in include:
        p = repo_root / item
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += [
                q
                for q in p.rglob("*")
                if q.is_file() and "__pycache__" not in q.parts and q.suffix not in (".pyc", ".pyo")
            ]
    return sorted(files)


def snapshot_code(
    repo_root: str | os.PathLike,
    dest: str | os.PathLike,
    include: Sequence[str] = ("replication", "replicate.py"),
) -> Path:
    """Copy ``include`` (relative to ``repo_root``) into ``dest/<sha256[:16]>``; return that folder.

    The name is the sha256 over (relative path, bytes) of every file, so identical code maps to
    the same folder (created once, atomically by rename) and a requeued job imports the code it
    was submitted with. ``SNAPSHOT.json`` inside lists the files, the full hash and the git commit.
    """
    repo_root, dest = Path(repo_root).resolve(), Path(dest)
    files = _snapshot_files(repo_root, include)
    if (
        not any(f.is_relative_to(repo_root / "replication") for f in files)
        and "replication" in include
    ):
        raise FileNotFoundError(f"no replication/ package under {repo_root}")
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(repo_root).as_posix()
        h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    digest = h.hexdigest()
    final = dest / digest[:16]
    if (final / "SNAPSHOT.json").exists():
        return final
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".tmp-{digest[:16]}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for f in files:
        target = tmp / f.relative_to(repo_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                check=False,
                cwd=repo_root,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    manifest = {
        "sha256": digest,
        "source": str(repo_root),
        "git_commit": commit,
        "created_at": _now(),
        "files": [f.relative_to(repo_root).as_posix() for f in files],
    }
    (tmp / "SNAPSHOT.json").write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        os.rename(tmp, final)
    except OSError:  # another submitter won the race; same content by construction
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------------------------
# Job ledger.


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


def _squeue_state(job_id: str) -> tuple[str | None, str | None]:
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


def _pid_alive(pid: int) -> bool:
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
        if _pid_alive(int(job_id)):
            return JobStatus(state="running", **base)
        done = _pickle_state(entry)  # it may have finished between the two checks
        if done is not None:
            return JobStatus(state=done[0], detail=done[1], **base)
        return JobStatus(
            state="failed", detail="no result and the local controller is gone (killed?)", **base
        )
    if launcher == "slurm":
        slurm_state, err = _squeue_state(job_id)
        if slurm_state in _SLURM_QUEUED:
            return JobStatus(state="queued", detail=slurm_state, **base)
        # A result pickle is final even while the job is still exiting (RUNNING/COMPLETING):
        # a requeued run never writes one.
        done = _pickle_state(entry)
        if done is not None:
            return JobStatus(state=done[0], detail=done[1], **base)
        if slurm_state in _SLURM_RUNNING:
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


def _cancel_local(pid: int, grace_s: float = 5.0) -> None:
    # The controller turns SIGINT into killing its tasks (SIGTERM is forwarded, and submitit's
    # tasks ignore SIGTERM). SIGKILL whatever is left after the grace period.
    family = [pid] + _children(pid)
    family += [c for p in family[1:] for c in _children(p)]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.time() + grace_s
    while time.time() < deadline and any(_pid_alive(p) for p in family):
        time.sleep(0.1)
    for p in family:
        if _pid_alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


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
            _cancel_local(int(entry["job_id"]))
        else:
            continue
        cancelled.append(entry["job_id"])
    return cancelled


# ----------------------------------------------------------------------------------------------
# Waiting without sacct.


def wait_result(job: Any, timeout_s: float, poll_s: float = 1.0) -> Any:
    """``job.result()`` with a bound: poll result pickles (not sacct); fail fast on vanished jobs.

    Raises ``TimeoutError`` after ``timeout_s``, or ``RuntimeError`` (with the log path) when a
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
            raise TimeoutError(
                f"job {job.job_id} has no result after {timeout_s:.0f} s; log: {job.paths.stderr}"
            )
        if now >= next_check:
            st = _status(entry)
            next_check = now + 5.0
            if st.state == "failed":  # gone without a result; allow for slow file systems
                gone_since = gone_since or now
                if now - gone_since > 10.0:
                    raise RuntimeError(
                        f"job {job.job_id} ended without a result ({st.detail}); log: {st.log}"
                    )
        time.sleep(poll_s)
