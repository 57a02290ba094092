"""Derived seeds: every random stream is seeded from (run seed, purpose, index), never from global RNG.

Seeding a fresh torch.Generator per training step or per data epoch makes the streams stateless, so a
resumed run replays exactly the numbers an uninterrupted run draws, whatever the process boundaries.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes and Python versions (no hash())."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))
