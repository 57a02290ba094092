"""Cluster profiles (`slurm/<name>.toml`, see slurm/README.md) and the resources one class of jobs asks for.

Resources come from two places. A ``Resources`` says what one class of jobs needs (e.g. the
chain stage: 1 GPU, 24 h); a ``ClusterProfile`` (``slurm/<name>.toml``) says how to ask this
cluster for it (partition, account, qos, constraint, setup lines) and gives defaults. A field
set in ``Resources`` wins; ``None`` falls back to the profile, then to the built-in default
(``DEFAULTS``). A profile's ``max_time_min`` caps the time limit (long jobs then rely on
checkpoint + requeue).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..runs.folders import REPO_ROOT

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

    Unknown names and unknown keys raise ``UsageError`` (a ValueError) (a typo in a profile should not silently
    submit to the default partition).
    """
    p = Path(name_or_path)
    if p.suffix != ".toml" or not p.exists():
        p = PROFILE_DIR / f"{name_or_path}.toml"
    if not p.exists():
        raise UsageError(
            f"unknown cluster profile {str(name_or_path)!r}; available in {PROFILE_DIR}: "
            f"{', '.join(available_profiles()) or '(none)'} (or pass a path to a .toml file)"
        )
    with open(p, "rb") as f:
        raw = tomllib.load(f)
    unknown = sorted(set(raw) - _PROFILE_KEYS)
    if unknown:
        raise UsageError(f"{p}: unknown key(s) {unknown}; known keys: {sorted(_PROFILE_KEYS)}")
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
        raise UsageError(f"timeout_min must be > 0, got {out['timeout_min']}")
    if check_signal and out["signal_delay_s"] >= 60 * out["timeout_min"]:
        raise UsageError(
            f"signal_delay_s={out['signal_delay_s']} must be shorter than the time limit "
            f"({60 * out['timeout_min']:.0f} s), or the job is signalled before it starts"
        )
    if out["nodes"] < 1 or out["tasks_per_node"] < 1:
        raise UsageError("nodes and tasks_per_node must be >= 1")
    return out
