"""Walk-jump sampling (Saremi & Hyvarinen 2019; docs/method.md §3): the underdamped Langevin walk on y, chain
initialisation and state; the jump to x is the scheme's `jump` (core/schemes.py, docs/method.md §4).

Continuous dynamics (poster): dv = -gamma v dt + u grad log p(y) dt + sqrt(2 gamma u) dB,  dy = v dt.

The walk advances a batch of independent chains y, v of shape (N, M, *S). All randomness comes from an
explicit `generator`: one torch.Generator for the whole batch, or a list with one generator per chain
(then chain i's path does not depend on which other chains share its batch). The state (y, v, step,
generator states) round-trips bit-exactly through `ChainState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import ReplicationError

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor], Tensor]
Generators = torch.Generator | Sequence[torch.Generator]

INTEGRATORS = ("aboba", "cheng")  # the walk's `scheme` argument (experiments.ChainSpec.scheme)


class ChainDiverged(ReplicationError, FloatingPointError):
    """The chain state became non-finite; carries the (1-based) step at which it was first seen."""

    def __init__(self, step: int, message: str | None = None):
        self.step = step
        super().__init__(
            message
            or f"walk-jump chain became non-finite (NaN/inf) at step {step}: the step size delta is too large for "
            f"the score's curvature (stable needs delta < 2 sigma/sqrt(u)) or the model is broken; lower delta or check the checkpoint"
        )


def randn_like(y: Tensor, generator: Generators) -> Tensor:
    """Standard normal noise shaped like y from one generator, or from one generator per chain (row)."""
    if isinstance(generator, torch.Generator):
        return torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    if len(generator) != y.shape[0]:
        raise ValueError(f"got {len(generator)} generators for {y.shape[0]} chains")
    return torch.stack([torch.randn(y.shape[1:], generator=g, dtype=y.dtype, device=y.device) for g in generator])


def _check_params(delta: float, gamma: float, u: float) -> None:
    for name, value in (("delta", delta), ("gamma", gamma), ("u", u)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be finite and > 0, got {value!r}")


def walk(
    score_fn: ScoreFn,
    y: Tensor,
    v: Tensor,
    *,
    steps: int,
    delta: float,
    gamma: float,
    u: float = 1.0,
    generator: Generators,
    scheme: str = "aboba",
    start_step: int = 0,
    check_every: int = 1,
) -> tuple[Tensor, Tensor]:
    """Run `steps` underdamped Langevin steps from (y, v); returns the new (y, v) (inputs are not modified).

    scheme "aboba": the Sachs, Leimkuhler & Danos (2017) A-B-O-B-A splitting with one score per step
    (docs/method.md §3.2, the official default). scheme "cheng": Cheng et al. (2018), integrating the linear SDE
    exactly with the score frozen over the step (docs/method.md §3.3). Raises ChainDiverged with the absolute step
    number start_step + k at which y first turned non-finite. The check runs on the device every step and
    reaches the host every `check_every` steps (use ~100 on GPUs: no host sync in between).
    """
    _check_params(delta, gamma, u)
    if scheme not in INTEGRATORS:
        raise ValueError(f"unknown walk scheme {scheme!r}; known: {INTEGRATORS}")
    y, v = y.clone(), v.clone()
    zeta1, zeta2 = math.exp(-gamma * delta), math.exp(-2 * gamma * delta)
    first_bad = torch.full((), -1, dtype=torch.long, device=y.device)

    def check(k: int) -> None:
        nonlocal first_bad
        finite = torch.isfinite(y).all()
        if check_every == 1:
            if not finite:
                raise ChainDiverged(start_step + k + 1)
            return
        first_bad = torch.where(finite | (first_bad >= 0), first_bad, k)
        if (k + 1) % check_every == 0 or k + 1 == steps:
            if (bad := int(first_bad)) >= 0:
                raise ChainDiverged(start_step + bad + 1)

    if scheme == "aboba":
        half = delta / 2
        kick = u * delta / 2
        noise = math.sqrt(u * (1 - zeta2))
        for k in range(steps):
            y.add_(v, alpha=half)  # A: half drift
            g = score_fn(y)  # the step's only score evaluation
            v.add_(g, alpha=kick)  # B: half kick
            v.mul_(zeta1).add_(g, alpha=kick).add_(randn_like(y, generator), alpha=noise)  # O (exact OU), then B
            y.add_(v, alpha=half)  # A: half drift
            check(k)
        return y, v
    # Cheng et al.: mean and 2x2 per-coordinate covariance of the frozen-gradient linear SDE (docs/method.md §3.3).
    c = (1 - zeta1) / gamma
    var_y = u / gamma * (2 * delta - 4 * c + (1 - zeta2) / gamma)
    var_v = u * (1 - zeta2)
    cov_yv = u / gamma * (1 - 2 * zeta1 + zeta2)
    L11 = math.sqrt(var_y)
    L21 = cov_yv / L11
    L22 = math.sqrt(max(var_v - L21**2, 0.0))
    for k in range(steps):
        g = score_fn(y)
        e1, e2 = randn_like(y, generator), randn_like(y, generator)
        y_next = y + c * v + u / gamma * (delta - c) * g + L11 * e1
        v = zeta1 * v + u * c * g + L21 * e1 + L22 * e2
        y = y_next
        check(k)
    return y, v


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
