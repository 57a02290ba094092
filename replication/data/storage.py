"""Atomic, checksummed files: every stage writes through these so a kill never leaves a half file."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ReplicationError


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary sibling, fsync, rename: readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class CorruptCheckpoint(ReplicationError, RuntimeError):
    """A checkpoint file whose checksum does not match (truncated or overwritten)."""


_MAGIC = b"MEMSCKPT1"


def save_checked(obj: Any, path: str | os.PathLike) -> None:
    """torch.save with a sha256 header, written atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    atomic_write_bytes(path, _MAGIC + sha256_bytes(payload).encode() + payload)


def load_checked(path: str | os.PathLike) -> Any:
    """Load a file written by save_checked; raise CorruptCheckpoint if it fails its checksum."""
    raw = Path(path).read_bytes()
    head = len(_MAGIC)
    if raw[:head] != _MAGIC or len(raw) < head + 64:
        raise CorruptCheckpoint(f"{path}: not a checksummed checkpoint (bad header or truncated)")
    digest, payload = raw[head : head + 64].decode(errors="replace"), raw[head + 64 :]
    if sha256_bytes(payload) != digest:
        raise CorruptCheckpoint(f"{path}: checksum mismatch (file truncated or corrupted)")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
