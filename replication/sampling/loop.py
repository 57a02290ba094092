"""The one walk-jump chain loop (docs/method.md §5.2): walk k steps, jump, hand the jump and the state to the caller.

`walk_jump` is a generator. It walks from (y, v) at `start_step` to `steps`, and yields a `Stop` at every jump
(every `jump_every` steps after `burn_in`), at every multiple of `stop_every` (a checkpoint, say) and at the end.
It does no file I/O: the pipeline records and checkpoints what it yields, the claims study and the drift
measurement compute statistics from it, the benchmarks time it. Because every random number comes from the
caller's generator(s) and the walk is cut into segments without changing its arithmetic, a chain stopped at any
yielded step and restarted there from its saved (y, v, generator state) is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .integrators import ChainDiverged, Generators, ScoreFn, Tensor, Walk, Walker

JumpFn = Callable[[Tensor], Tensor]


@dataclass
class Stop:
    """The chain at walk step `step`: its state and, when the step is a jump, x_hat = jump(y) (else None)."""

    step: int
    y: Tensor
    v: Tensor
    x_hat: Tensor | None
    accepted: int = 0  # Metropolis-adjusted walks (ghmc): accepted / proposed steps of all chains since the start
    proposed: int = 0
    carry: object = None  # what the integrator hands to its next step at this y (BAOAB: the score), for checkpoints


def next_stop(step: int, steps: int, jump_every: int, burn_in: int, stop_every: int | None) -> int:
    """The first walk step after `step` at which the loop yields: a jump, a multiple of stop_every, or the end."""
    candidates = [steps]
    if stop_every:
        candidates.append((step // stop_every + 1) * stop_every)
    if step < burn_in:
        candidates.append(burn_in + jump_every)
    else:
        candidates.append(burn_in + ((step - burn_in) // jump_every + 1) * jump_every)
    return min(candidates)


def is_jump(step: int, jump_every: int, burn_in: int) -> bool:
    return step > burn_in and (step - burn_in) % jump_every == 0


def walk_jump(score_fn: ScoreFn, jump_fn: JumpFn, y: Tensor, v: Tensor, *, walk: Walk, steps: int, jump_every: int,
              generator: Generators, burn_in: int = 0, start_step: int = 0, stop_every: int | None = None,
              check_every: int = 1, autograd: bool = False,
              energy_fn: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None, carry: object = None) -> Iterator[Stop]:
    """Walk-jump from (y, v) at `start_step` up to walk step `steps`, yielding a `Stop` at each jump / stop / the end.

    The walk and the jump run under torch.inference_mode(), or torch.no_grad() when the score needs autograd
    (`autograd=True`: MEM). `energy_fn` (y -> (f, score)) serves the Metropolis-adjusted walks. Raises
    ChainDiverged at the first step where y, v or a jump turns non-finite. `carry` is a checkpoint's `Stop.carry`
    at (y, v): given, the walk resumes without evaluating it afresh, which a stochastic score (MUVB) needs to
    resume bit-exactly.
    """
    walker = Walker(score_fn, walk, generator, check_every, energy_fn)
    if carry is not None:
        walker.resume_carry(y, carry)
    integrator = walker.integrator
    grad_mode = torch.no_grad if autograd else torch.inference_mode
    step = start_step
    while step < steps:
        target = next_stop(step, steps, jump_every, burn_in, stop_every)
        with grad_mode():
            y, v = walker.run(y, v, target - step, start_step=step)
            if not torch.isfinite(v).all():  # the walk watches y; v feeds y, but be explicit
                raise ChainDiverged(target, f"walk-jump chain velocity became non-finite by step {target}")
            x_hat = jump_fn(y) if is_jump(target, jump_every, burn_in) else None
        if x_hat is not None and not torch.isfinite(x_hat).all():
            raise ChainDiverged(target, f"the jump x_hat became non-finite at step {target} (y finite): the model is "
                                        f"broken or y left the region it was trained on")
        step = target
        yield Stop(step, y, v, x_hat, int(getattr(integrator, "accepted", 0)), getattr(integrator, "proposed", 0),
                   walker.carry_for(y))
