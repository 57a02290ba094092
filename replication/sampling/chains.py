"""A batch of walk-jump chains: the paper's initialisation and the state that resumes them bit-exactly
(docs/method.md §5.1; docs/on-disk.md §4.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .integrators import Generators, Tensor


def init_chains(
    n: int, M: int, shape: Sequence[int], sigma: float, generator: Generators, *, init: str = "uniform_shared",
    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """The paper's initialisation (docs/method.md §5): y_0 = U(0,1) image replicated over M + N(0, sigma^2) per block, v_0 = 0.

    init "uniform_shared" is the official code's (one uniform image shared by the M blocks);
    "uniform_independent" draws an independent uniform per coordinate of R^{Md} ([A4]'s reading).
    """
    gens = [generator] * n if isinstance(generator, torch.Generator) else list(generator)
    if len(gens) != n:
        raise ValueError(f"got {len(gens)} generators for {n} chains")
    rows = []
    for g in gens:
        if init == "uniform_shared":
            x0 = torch.rand(tuple(shape), generator=g, dtype=dtype).expand(M, *shape)
        elif init == "uniform_independent":
            x0 = torch.rand((M, *shape), generator=g, dtype=dtype)
        else:
            raise ValueError(f"unknown init {init!r}; known: uniform_shared, uniform_independent")
        rows.append(x0 + sigma * torch.randn((M, *shape), generator=g, dtype=dtype))
    y = torch.stack(rows).to(device)
    return y, torch.zeros_like(y)


@dataclass
class ChainState:
    """Everything a chain needs to continue bit-exactly: positions, velocities, step, RNG state(s)."""

    y: Tensor
    v: Tensor
    step: int
    rng: list[Tensor]

    @classmethod
    def capture(cls, y: Tensor, v: Tensor, step: int, generator: Generators) -> "ChainState":
        gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
        return cls(y.detach().cpu().clone(), v.detach().cpu().clone(), int(step), [g.get_state() for g in gens])

    def restore(self, generator: Generators, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
        """Put the saved RNG state back into `generator` and return (y, v) on `device`."""
        gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
        if len(gens) != len(self.rng):
            raise ValueError(f"state holds {len(self.rng)} generator states, got {len(gens)} generators")
        for g, s in zip(gens, self.rng):
            g.set_state(s)
        return self.y.to(device), self.v.to(device)

    def to_dict(self) -> dict:
        return {"y": self.y, "v": self.v, "step": self.step, "rng": self.rng}

    @classmethod
    def from_dict(cls, d: dict) -> "ChainState":
        return cls(d["y"], d["v"], int(d["step"]), list(d["rng"]))
