"""The chain of log-concave Markov chains (CLMC; Saremi, Park & Bach, ICLR 2024, arXiv 2305.19473), docs/method.md §6.

Beyond the paper. The M measurements are sampled one at a time instead of jointly:

  y_1 ~ p(y_1)                       the density smoothed at sigma: very smooth, fast mixing (the outer walk)
  y_m ~ p(y_m | y_1, ..., y_{m-1})   m = 2..M: log-concave once the posterior of x given the earlier measurements is
                                     narrower than sigma, so a short walk samples it (the inner walks)
  x_hat = x_hat(ybar_M; sigma/sqrt(M))  the jump, as sharp as the M-measurement walk-jump's

The score of the m-th conditional (docs/method.md Eq. 27) needs a denoiser at the level s_m = sigma/sqrt(m) of the
mean ybar_m of the first m measurements:

  grad_{y_m} log p(y_m | y_1..y_{m-1}) = (x_hat(ybar_m; sigma/sqrt(m)) - y_m) / sigma^2.

As one long chain (docs/method.md §6.1): the outer walk moves y_1 with the walk-jump loop (sampling.loop.walk_jump);
every jump draws y_2..y_M afresh by inner walks, jumps from ybar_M and discards them, and the outer chain goes on.
From a start level m0 > 1 the outer walk moves ybar_{m0} instead, whose density is the data's smoothed at
sigma/sqrt(m0) (score (x_hat(ybar; sigma/sqrt(m0)) - ybar) m0 / sigma^2); ybar_{m0} is sufficient for x given
y_1..y_{m0}, so the inner walks go on from it with y_{m0+1}..y_M.
Each inner walk starts at y_m = x_hat(ybar_{m-1}) + sigma eps with v ~ N(0, I/u). Every random number comes from
the chain's generator(s), so a chain stopped and resumed at a yielded step is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .integrators import Generators, Tensor, Walk, Walker, randn_like

SAMPLERS = ("walk_jump", "clmc")  # chain.sampler: the paper's walk-jump loop (sampling.loop), or CLMC on top of it
Denoise = Callable[[Tensor, int], Tensor]  # (ybar (N, *S), level m) -> x_hat(ybar; sigma/sqrt(m)) (N, *S)


def evals_per_jump(M: int, inner_steps: int, start_level: int = 1) -> int:
    """Score (denoiser) evaluations of one CLMC jump: x_hat(ybar_{m0}), then per level m = m0+1..M the K inner steps
    and one more: a walk that carries its score (BAOAB) spends it on its start and hands x_hat(ybar_m) = y_m + sigma^2
    score_m over at the end; the others spend it on x_hat(ybar_m) at the end."""
    return 1 + (M - start_level) * (inner_steps + 1)


class CLMC:
    """The CLMC sampler's two halves for the walk-jump loop: `score` (the outer walk on y_1, shaped (N, 1, *S)) and
    `jump` (the inner walks on y_2..y_M, then x_hat(ybar_M)); from `start_level` m0 > 1 the outer state is ybar_{m0}
    and the inner walks draw y_{m0+1}..y_M.

    `denoise(ybar, m)` is x_hat(ybar; sigma/sqrt(m)) (core.schemes.YbarLevels.denoise, or an exact denoiser);
    `inner` the inner walks' settings, `inner_steps` K their length. `trace`, when a list, receives per jump and
    level (m, r) with r (K, N) = |y_m - x_hat(ybar_m)|^2 / (d sigma^2) after each inner step, per chain
    (diagnostics, `settling_steps`; K evaluations more per level).
    """

    def __init__(self, denoise: Denoise, sigma: float, M: int, inner: Walk, inner_steps: int, generator: Generators,
                 check_every: int = 1, trace: list | None = None, start_level: int = 1):
        if M < 2:
            raise ValueError(f"CLMC needs M >= 2 measurements, got M = {M}")
        if inner_steps < 1:
            raise ValueError(f"CLMC needs inner_steps >= 1, got {inner_steps}")
        if not 1 <= start_level <= M:
            raise ValueError(f"CLMC's start level must be in [1, M = {M}], got {start_level}")
        self.denoise, self.sigma, self.M, self.start_level = denoise, float(sigma), int(M), int(start_level)
        self.inner, self.inner_steps, self.generator = inner, int(inner_steps), generator
        self.check_every, self.trace = check_every, trace

    @property
    def evals_per_jump(self) -> int:
        return evals_per_jump(self.M, self.inner_steps, self.start_level)

    def score(self, y: Tensor) -> Tensor:
        """The outer walk's score on y = ybar_{m0} (N, 1, *S), y_1 at m0 = 1: (x_hat(ybar; sigma/sqrt(m0)) - ybar) m0 /
        sigma^2 (Eq. 27 at m = 1; at m0 the score of the data smoothed at sigma/sqrt(m0), Eq. 5)."""
        m0 = self.start_level
        return (self.denoise(y[:, 0], m0).unsqueeze(1) - y) / (self.sigma**2 / m0)

    def jump(self, y: Tensor) -> Tensor:
        """One CLMC sample from the outer state y = ybar_{m0} (N, 1, *S): y_{m0+1}..y_M by inner walks, x_hat(ybar_M)
        (N, *S)."""
        sigma, gen, m0 = self.sigma, self.generator, self.start_level
        total = m0 * y[:, 0]  # y_1 + ... + y_{m-1}: only their sum (m0 ybar_{m0}) enters the later levels
        x_hat = self.denoise(y[:, 0], m0)
        for m in range(m0 + 1, self.M + 1):
            prefix = total.clone()

            def score_m(y_m: Tensor, prefix: Tensor = prefix, m: int = m) -> Tensor:
                return (self.denoise((prefix + y_m[:, 0]) / m, m).unsqueeze(1) - y_m) / sigma**2  # Eq. 27

            y_m = (x_hat + sigma * randn_like(x_hat, gen)).unsqueeze(1)
            v = randn_like(y_m, gen) / math.sqrt(self.inner.u)
            walker = Walker(score_m, self.inner, gen, self.check_every)
            if self.trace is not None:
                r = []
                for _ in range(self.inner_steps):
                    y_m, v = walker.run(y_m, v, 1)
                    err = y_m[:, 0] - self.denoise((prefix + y_m[:, 0]) / m, m)
                    r.append(err.flatten(1).pow(2).mean(1) / sigma**2)
                self.trace.append((m, torch.stack(r)))
            else:
                y_m, v = walker.run(y_m, v, self.inner_steps)
            g = walker.carry_for(y_m)
            if g is None:
                g = score_m(y_m)
            x_hat = (y_m + sigma**2 * g)[:, 0]  # x_hat(ybar_m; sigma/sqrt(m)) = y_m + sigma^2 score_m
            total += y_m[:, 0]
        return x_hat


def settling_steps(trace: list[tuple[int, Tensor]]) -> dict[int, dict]:
    """Per level m, when the inner walk's statistic r = |y_m - x_hat(ybar_m)|^2 / (d sigma^2) settles (a `trace` of
    CLMC jumps with long inner walks): r_inf = its mean over chains and the second half of the steps; the settling
    step = the first inner step k from which the mean over chains stays within 3 standard errors (over chains) of
    r_inf. Returns {m: {"r_first", "r_inf", "settle_step", "steps", "chains"}}."""
    by_level: dict[int, list[Tensor]] = {}
    for m, r in trace:
        by_level.setdefault(m, []).append(r)
    out = {}
    for m, rs in sorted(by_level.items()):
        r = torch.cat(rs, dim=1).double()  # (K, chains)
        K, n = r.shape
        mean, se = r.mean(1), r.std(1) / math.sqrt(n)
        r_inf = r[K // 2 :].mean().item()
        ok = (mean - r_inf).abs() <= 3 * se
        settle = K
        for k in range(K - 1, -1, -1):
            if not ok[k]:
                break
            settle = k
        out[m] = {"r_first": mean[0].item(), "r_inf": r_inf, "settle_step": settle + 1, "steps": K, "chains": n}
    return out
