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
  ghmc   generalized HMC: OBABO with a Metropolis accept step, for scores with an energy (§3.6, Eq. 22)
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


class Noise:
    """The random numbers of a walk on chains shaped like `like`: normal(), shaped like y, and uniform(), one per
    chain (the accept step), from `generator` (one, or one per chain); generator None: torch's default one."""

    def __init__(self, like: Tensor, generator: Generators | None):
        self.like, self.generator = like, generator

    def normal(self) -> Tensor:
        if self.generator is None:
            return torch.randn_like(self.like)
        return randn_like(self.like, self.generator)

    def uniform(self) -> Tensor:
        y, g = self.like, self.generator
        if g is None or isinstance(g, torch.Generator):
            return torch.rand(y.shape[0], generator=g, dtype=y.dtype, device=y.device)
        return torch.stack([torch.rand((), generator=gi, dtype=y.dtype, device=y.device) for gi in g])


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
    """One step of a discretization, in place on (y, v). `carry` is what a step hands to the next (or None).

    `fn` is the score y -> grad log p(y), or for integrators with `needs_energy` the energy and score together,
    y -> (f(y) per chain, grad log p(y)) with f = -log p up to a constant.
    """

    needs_energy = False

    def __init__(self, w: Walk):
        self.delta, self.gamma, self.u = w.delta, w.gamma, w.u
        self.zeta1, self.zeta2 = math.exp(-w.gamma * w.delta), math.exp(-2 * w.gamma * w.delta)

    def start(self, fn: Callable, y: Tensor):
        return None

    def step(self, fn: Callable, y: Tensor, v: Tensor, carry, noise: Noise):
        raise NotImplementedError


class ABOBA(_Integrator):
    """docs/method.md Eq. 15: A (half drift), score, B (half kick), O (exact OU) and B, A (half drift)."""

    def step(self, score_fn, y, v, carry, noise):
        half, kick = self.delta / 2, self.u * self.delta / 2
        y.add_(v, alpha=half)  # A
        g = score_fn(y)  # the step's only score evaluation
        v.add_(g, alpha=kick)  # B
        v.mul_(self.zeta1).add_(g, alpha=kick).add_(noise.normal(), alpha=math.sqrt(self.u * (1 - self.zeta2)))  # O, B
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
        v.mul_(self.zeta1).add_(noise.normal(), alpha=math.sqrt(self.u * (1 - self.zeta2)))  # O
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
        e1, e2 = noise.normal(), noise.normal()
        y_next = y + self.c * v + self.u / self.gamma * (self.delta - self.c) * g + self.L11 * e1
        v.copy_(self.zeta1 * v + self.u * self.c * g + self.L21 * e1 + self.L22 * e2)
        y.copy_(y_next)
        return None


class GHMC(_Integrator):
    """Generalized HMC (Horowitz 1991), docs/method.md §3.6, Eq. 22: half O, a leapfrog step (B A B) proposed
    and accepted with probability min(1, exp(H - H')) on H = f(y) + |v|^2 / (2u), the velocity flipped on
    rejection, half O. The Metropolis step makes the target exactly invariant whatever delta, for a score that is
    the gradient of the energy (MEM; exact densities). One energy-and-score evaluation per step; the carry is
    (f, score) at the current y. `accepted` / `proposed` count the accept steps per chain (diagnostics)."""

    needs_energy = True

    def __init__(self, w: Walk):
        super().__init__(w)
        self.zeta_half = math.exp(-w.gamma * w.delta / 2)
        self.accepted = self.proposed = 0

    def start(self, fn, y):
        return fn(y)

    def _half_o(self, v: Tensor, noise: Noise) -> None:
        v.mul_(self.zeta_half).add_(noise.normal(), alpha=math.sqrt(self.u * (1 - self.zeta_half**2)))

    def step(self, fn, y, v, carry, noise):
        f0, g0 = carry
        self._half_o(v, noise)
        y0, v0 = y.clone(), v.clone()
        h0 = f0 + v.flatten(1).pow(2).sum(1) / (2 * self.u)
        v.add_(g0, alpha=self.u * self.delta / 2)  # B
        y.add_(v, alpha=self.delta)  # A
        f1, g1 = fn(y)  # the step's only evaluation
        v.add_(g1, alpha=self.u * self.delta / 2)  # B
        h1 = f1 + v.flatten(1).pow(2).sum(1) / (2 * self.u)
        accept = torch.log(noise.uniform()) < h0 - h1  # NaN energy: rejected
        a = accept.view(-1, *([1] * (y.dim() - 1)))
        y.copy_(torch.where(a, y, y0))
        v.copy_(torch.where(a, v, -v0))  # momentum flip on rejection
        self.accepted = self.accepted + accept.sum()  # a device tensor: no host sync inside the walk
        self.proposed += accept.numel()
        self._half_o(v, noise)
        return torch.where(accept, f1, f0), torch.where(a, g1, g0)


INTEGRATORS: dict[str, type[_Integrator]] = {"aboba": ABOBA, "baoab": BAOAB, "cheng": Cheng, "ghmc": GHMC}


class Walker:
    """A walk setting bound to a score and generator(s): `run` advances (y, v) by k steps.

    It keeps the integrator's carry (BAOAB's score at the last y) for the (y, v) it returned, so a chain walked
    in segments spends exactly one score per step; a walk started from any other y (a resumed checkpoint)
    evaluates the carry afresh, which gives the same numbers on a deterministic device.
    """

    def __init__(self, score_fn: ScoreFn, w: Walk, generator: Generators, check_every: int = 1,
                 energy_fn: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None):
        self.settings, self.generator = w, generator
        self.integrator = INTEGRATORS[w.integrator](w)
        if self.integrator.needs_energy and energy_fn is None:
            raise ValueError(f"the {w.integrator!r} walk needs an energy (its Metropolis step): use a scheme with one "
                             f"(model.scheme=mem) or another integrator (chain.scheme=aboba|baoab)")
        self.fn = energy_fn if self.integrator.needs_energy else score_fn
        self.check_every = check_every
        self._carry: tuple[Tensor, object] | None = None  # (a copy of the y returned, the carry for it)

    def resume_carry(self, y: Tensor, carry) -> None:
        """Continue from y with a saved carry (a checkpoint's) instead of evaluating it afresh at the next `run`."""
        self._carry = (y.clone(), carry)

    def carry_for(self, y: Tensor):
        """The carry kept for y (the y the last `run` returned), or None."""
        saved = self._carry
        return saved[1] if saved is not None and saved[0].shape == y.shape and torch.equal(saved[0], y) else None

    def run(self, y: Tensor, v: Tensor, steps: int, start_step: int = 0) -> tuple[Tensor, Tensor]:
        """`steps` steps from (y, v); returns the new (y, v) (inputs are not modified). Raises ChainDiverged with the
        absolute step number start_step + k at which y first turned non-finite. The check runs on the device every
        step and reaches the host every `check_every` steps (use ~100 on GPUs: no host sync in between)."""
        carry = self.carry_for(y)
        y, v = y.clone(), v.clone()
        if carry is None:
            carry = self.integrator.start(self.fn, y)
        noise = Noise(y, self.generator)
        check_every = self.check_every
        first_bad = torch.full((), -1, dtype=torch.long, device=y.device)
        for k in range(steps):
            carry = self.integrator.step(self.fn, y, v, carry, noise)
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
         generator: Generators, integrator: str = "aboba", start_step: int = 0, check_every: int = 1,
         energy_fn: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None) -> tuple[Tensor, Tensor]:
    """One walk of `steps` steps from (y, v) with a fresh `Walker` (see there); returns the new (y, v)."""
    return Walker(score_fn, Walk(delta, gamma, u, integrator), generator, check_every, energy_fn).run(y, v, steps, start_step)
