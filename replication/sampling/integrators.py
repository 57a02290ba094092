"""The walk's integrators: discretizations of underdamped Langevin dynamics on y (docs/method.md §3).

Continuous dynamics (poster): dv = -gamma v dt + u grad log p(y) dt + sqrt(2 gamma u) dB,  dy = v dt.

Every integrator here spends one score evaluation per step and acts in place on a batch of chains y, v of
shape (N, M, *S). All randomness comes from an explicit `generator`: one torch.Generator for the whole batch,
or a list with one generator per chain (then chain i's path does not depend on which other chains share its
batch). Registered by name in INTEGRATORS (the experiment's `chain.scheme`):

  aboba  Sachs, Leimkuhler & Danos (2017), A-B-O-B-A, the official default (docs/method.md §3.2, Eq. 15)
  baoab  Leimkuhler & Matthews (2013), B-A-O-A-B: the score at the step's end is the next step's first kick,
         so the walk carries it (`Walker`) and still spends one score per step (docs/method.md §3.5, Eq. 20)
  cheng  Cheng et al. (2018): the linear SDE with the score frozen over the step, integrated exactly (§3.3, Eq. 16)
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


@dataclass(frozen=True)
class Walk:
    """The walk's settings: step delta, friction gamma, inverse mass u and the integrator's name."""

    delta: float
    gamma: float = 0.5
    u: float = 1.0
    integrator: str = "aboba"

    def __post_init__(self):
        for name in ("delta", "gamma", "u"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"unknown walk integrator (chain.scheme) {self.integrator!r}; known: {', '.join(INTEGRATORS)}")


class _Integrator:
    """One step of a discretization, in place on (y, v). `carry` is what a step hands to the next (or None)."""

    def __init__(self, w: Walk):
        self.delta, self.gamma, self.u = w.delta, w.gamma, w.u
        self.zeta1, self.zeta2 = math.exp(-w.gamma * w.delta), math.exp(-2 * w.gamma * w.delta)

    def start(self, score_fn: ScoreFn, y: Tensor):
        return None

    def step(self, score_fn: ScoreFn, y: Tensor, v: Tensor, carry, noise: Callable[[], Tensor]):
        raise NotImplementedError


class ABOBA(_Integrator):
    """docs/method.md Eq. 15: A (half drift), score, B (half kick), O (exact OU) and B, A (half drift)."""

    def step(self, score_fn, y, v, carry, noise):
        half, kick = self.delta / 2, self.u * self.delta / 2
        y.add_(v, alpha=half)  # A
        g = score_fn(y)  # the step's only score evaluation
        v.add_(g, alpha=kick)  # B
        v.mul_(self.zeta1).add_(g, alpha=kick).add_(noise(), alpha=math.sqrt(self.u * (1 - self.zeta2)))  # O, then B
        y.add_(v, alpha=half)  # A
        return None


class BAOAB(_Integrator):
    """Leimkuhler & Matthews (2013), docs/method.md Eq. 20: B (half kick with the carried score), A, O, A, score, B.

    The carry is the score at the current y; `start` evaluates it once when a walk begins without one.
    """

    def start(self, score_fn, y):
        return score_fn(y)

    def step(self, score_fn, y, v, carry, noise):
        half, kick = self.delta / 2, self.u * self.delta / 2
        v.add_(carry, alpha=kick)  # B
        y.add_(v, alpha=half)  # A
        v.mul_(self.zeta1).add_(noise(), alpha=math.sqrt(self.u * (1 - self.zeta2)))  # O
        y.add_(v, alpha=half)  # A
        g = score_fn(y)  # the step's only score evaluation, carried into the next step's first B
        v.add_(g, alpha=kick)  # B
        return g


class Cheng(_Integrator):
    """docs/method.md Eq. 16: mean and 2x2 per-coordinate covariance of the frozen-gradient linear SDE."""

    def __init__(self, w: Walk):
        super().__init__(w)
        g, u, d = self.gamma, self.u, self.delta
        self.c = (1 - self.zeta1) / g
        var_y = u / g * (2 * d - 4 * self.c + (1 - self.zeta2) / g)
        var_v = u * (1 - self.zeta2)
        cov_yv = u / g * (1 - 2 * self.zeta1 + self.zeta2)
        self.L11 = math.sqrt(var_y)
        self.L21 = cov_yv / self.L11
        self.L22 = math.sqrt(max(var_v - self.L21**2, 0.0))

    def step(self, score_fn, y, v, carry, noise):
        g = score_fn(y)
        e1, e2 = noise(), noise()
        y_next = y + self.c * v + self.u / self.gamma * (self.delta - self.c) * g + self.L11 * e1
        v.copy_(self.zeta1 * v + self.u * self.c * g + self.L21 * e1 + self.L22 * e2)
        y.copy_(y_next)
        return None


INTEGRATORS: dict[str, type[_Integrator]] = {"aboba": ABOBA, "baoab": BAOAB, "cheng": Cheng}


class Walker:
    """A walk setting bound to a score and generator(s): `run` advances (y, v) by k steps.

    It keeps the integrator's carry (BAOAB's score at the last y) for the (y, v) it returned, so a chain walked
    in segments spends exactly one score per step; a walk started from any other y (a resumed checkpoint)
    evaluates the carry afresh, which gives the same numbers on a deterministic device.
    """

    def __init__(self, score_fn: ScoreFn, w: Walk, generator: Generators, check_every: int = 1):
        self.score_fn, self.settings, self.generator = score_fn, w, generator
        self.integrator = INTEGRATORS[w.integrator](w)
        self.check_every = check_every
        self._carry: tuple[Tensor, object] | None = None  # (a copy of the y returned, the carry for it)

    def run(self, y: Tensor, v: Tensor, steps: int, start_step: int = 0) -> tuple[Tensor, Tensor]:
        """`steps` steps from (y, v); returns the new (y, v) (inputs are not modified). Raises ChainDiverged with the
        absolute step number start_step + k at which y first turned non-finite. The check runs on the device every
        step and reaches the host every `check_every` steps (use ~100 on GPUs: no host sync in between)."""
        saved = self._carry
        carry = saved[1] if saved is not None and saved[0].shape == y.shape and torch.equal(saved[0], y) else None
        y, v = y.clone(), v.clone()
        if carry is None:
            carry = self.integrator.start(self.score_fn, y)
        noise = lambda: randn_like(y, self.generator)  # noqa: E731
        check_every = self.check_every
        first_bad = torch.full((), -1, dtype=torch.long, device=y.device)
        for k in range(steps):
            carry = self.integrator.step(self.score_fn, y, v, carry, noise)
            finite = torch.isfinite(y).all()
            if check_every == 1:
                if not finite:
                    raise ChainDiverged(start_step + k + 1)
                continue
            first_bad = torch.where(finite | (first_bad >= 0), first_bad, k)
            if (k + 1) % check_every == 0 or k + 1 == steps:
                if (bad := int(first_bad)) >= 0:
                    raise ChainDiverged(start_step + bad + 1)
        if carry is not None:
            self._carry = (y.clone(), carry)
        return y, v


def walk(score_fn: ScoreFn, y: Tensor, v: Tensor, *, steps: int, delta: float, gamma: float, u: float = 1.0,
         generator: Generators, integrator: str = "aboba", start_step: int = 0, check_every: int = 1) -> tuple[Tensor, Tensor]:
    """One walk of `steps` steps from (y, v) with a fresh `Walker` (see there); returns the new (y, v)."""
    return Walker(score_fn, Walk(delta, gamma, u, integrator), generator, check_every).run(y, v, steps, start_step)
