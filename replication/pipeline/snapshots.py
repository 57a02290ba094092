"""Code snapshots: a SLURM job imports the code it was submitted with, from a content-addressed copy.

A SLURM job that is requeued after days re-imports the code from disk. SLURM executors therefore run
from a content-addressed copy of ``replication/`` and ``replicate.py`` (folder name = sha256 of the
files), put first on ``PYTHONPATH`` by a setup line. The job's Python runs with ``-P`` (Python >= 3.11),
so the submit directory, which ``python -m`` would otherwise put before ``PYTHONPATH``, cannot shadow
the snapshot; the working directory stays the submit directory, so relative paths keep their meaning.
We do not use ``submitit.helpers.RsyncSnapshot``: it copies only git-tracked files (uncommitted edits
would be silently dropped), needs rsync, and chdirs the submitting process into the snapshot.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..runs.provenance import git


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
    commit = (git("rev-parse", "HEAD", cwd=repo_root) or "").strip() or None
    manifest = {
        "sha256": digest,
        "source": str(repo_root),
        "git_commit": commit,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "files": [f.relative_to(repo_root).as_posix() for f in files],
    }
    (tmp / "SNAPSHOT.json").write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        os.rename(tmp, final)
    except OSError:  # another submitter won the race; same content by construction
        shutil.rmtree(tmp, ignore_errors=True)
    return final
