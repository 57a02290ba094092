"""Multimeasurement noise models (MNMs) and analytic priors with exact M-densities.

Notation follows docs/method.md §1 (Saremi & Srivastava 2022): X in R^d, measurements Y_m = X + N(0, sigma_m^2 I)
for m = 1..M, bold y = (y_1, ..., y_M). Tensors carry the measurement axis explicitly: x of shape
(N, *S) gives y of shape (N, M, *S).

The analytic priors (isotropic Gaussian, Gaussian mixture) have closed-form M-densities, scores and
Bayes estimators; they are the ground truth of the tests and of the `toy` experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

Tensor = torch.Tensor


def _check_sigma_M(sigma, M: int) -> None:
    if not isinstance(M, int) or M < 1:
        raise ValueError(f"M must be an integer >= 1, got {M!r}: set M to the number of measurements (e.g. M=8)")
    values = sigma if isinstance(sigma, (list, tuple)) else [sigma]
    for s in values:
        if not (float(s) > 0 and math.isfinite(float(s))):
            raise ValueError(f"sigma must be a finite number > 0, got {s!r}: sigma is the noise std in [0,1] pixel units")


class GaussianMNM:
    """Gaussian multimeasurement noise model p(y|x) = prod_m N(y_m; x, sigma_m^2 I) (docs/method.md §1.1, §1.2).

    `sigma` is one float (equal noise, the permutation-invariant case used in all experiments) or a
    sequence of M floats (per-measurement sigma_m).
    """

    def __init__(self, sigma: float | Sequence[float], M: int | None = None):
        if isinstance(sigma, (list, tuple)):
            M = len(sigma) if M is None else M
            _check_sigma_M(list(sigma), M)
            if len(sigma) != M:
                raise ValueError(f"got {len(sigma)} values of sigma_m for M={M}: give one sigma or exactly M")
            self.sigmas = tuple(float(s) for s in sigma)
        else:
            M = 1 if M is None else M
            _check_sigma_M(sigma, M)
            self.sigmas = (float(sigma),) * M
        self.M = M

    @property
    def equal(self) -> bool:
        return len(set(self.sigmas)) == 1

    @property
    def sigma(self) -> float:
        if not self.equal:
            raise ValueError("sigma is not shared by all measurements; use .sigmas")
        return self.sigmas[0]

    @property
    def precision(self) -> float:
        """P = sum_m 1/sigma_m^2, the posterior precision contributed by the measurements."""
        return sum(1.0 / s**2 for s in self.sigmas)

    @property
    def sigma_eff(self) -> float:
        """sigma_eff = P^(-1/2); sigma/sqrt(M) for equal noise (docs/method.md §1.3)."""
        return self.precision**-0.5

    def sigma_m(self, like: Tensor) -> Tensor:
        """sigma_m as a tensor broadcastable against y of shape (N, M, *S)."""
        shape = (1, self.M) + (1,) * (like.dim() - 2)
        return torch.tensor(self.sigmas, dtype=like.dtype, device=like.device).reshape(shape)

    def measure(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw y ~ p(y|x): (N, *S) -> (N, M, *S), fresh i.i.d. noise per measurement and coordinate."""
        shape = (x.shape[0], self.M) + tuple(x.shape[1:])
        eps = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
        return x.unsqueeze(1) + self.sigma_m(eps) * eps

    def y_bar(self, y: Tensor) -> Tensor:
        """Precision-weighted mean of the measurements, the sufficient statistic (docs/method.md §1.3): (N, *S)."""
        w = self.sigma_m(y) ** -2
        return (w * y).sum(1) / w.sum(1)

    def x_hat_from_score(self, y: Tensor, score: Tensor) -> Tensor:
        """Bayes estimator from the score, one per m: x_hat = y_m + sigma_m^2 grad_{y_m} log p(y) (docs/method.md §1.2)."""
        return y + self.sigma_m(y) ** 2 * score


class PoissonMNM:
    """Poisson MNM p(y|x) = prod_m prod_i Poisson(y_mi; x_i), x in R^d_+ (docs/method.md §1.6)."""

    def __init__(self, M: int):
        _check_sigma_M(1.0, M)
        self.M = M

    def measure(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        rates = x.unsqueeze(1).expand((x.shape[0], self.M) + tuple(x.shape[1:]))
        return torch.poisson(rates.contiguous(), generator=generator)

    def x_hat(self, log_p: Callable[[Tensor], Tensor], y: Tensor, m: int = 0) -> Tensor:
        """Multimeasurement Robbins formula, docs/method.md §1.6: x_hat_i = (y_mi + 1) p(y + e_mi) / p(y).

        `log_p` maps y of shape (N, M, d) to log p(y) (up to a constant) of shape (N,). Costs d + 1
        evaluations of log_p. The result does not depend on m for the exact density.
        """
        N, M, d = y.shape
        base = log_p(y)
        out = torch.empty(N, d, dtype=y.dtype, device=y.device)
        for i in range(d):
            shifted = y.clone()
            shifted[:, m, i] += 1
            out[:, i] = (y[:, m, i] + 1) * torch.exp(log_p(shifted) - base)
        return out


@dataclass(frozen=True)
class GaussianMixture:
    """p(x) = sum_k w_k N(x; mu_k, s_k^2 I_d) in any dimension d, with exact Gaussian M-densities.

    means (K, d), stds (K,), weights (K,) (normalised here). All methods take y of shape (N, M, d)
    and an MNM, and work in float64.

    Per coordinate and component, y is Gaussian with covariance C_k = diag(sigma_m^2) + s_k^2 11^T, so
    by Sherman-Morrison, with P = sum_m sigma_m^-2 and y_bar the precision-weighted mean:
      log N_k(y) = -1/2 [ sum_m |y_m - mu_k|^2/sigma_m^2 - P^2 |y_bar - mu_k|^2 / (1/s_k^2 + P) ]
                   - d/2 [ M log 2pi + sum_m log sigma_m^2 + log(1 + s_k^2 P) ].
    The posterior of x given (y, k) is N((mu_k/s_k^2 + P y_bar)/(1/s_k^2 + P), (1/s_k^2 + P)^-1 I).
    """

    means: Tensor
    stds: Tensor
    weights: Tensor

    def __post_init__(self):
        means = torch.as_tensor(self.means, dtype=torch.float64)
        stds = torch.as_tensor(self.stds, dtype=torch.float64).reshape(-1)
        weights = torch.as_tensor(self.weights, dtype=torch.float64).reshape(-1)
        if means.dim() != 2 or not (means.shape[0] == stds.shape[0] == weights.shape[0]):
            raise ValueError("GaussianMixture needs means (K, d), stds (K,), weights (K,)")
        if (stds <= 0).any() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("GaussianMixture needs stds > 0 and non-negative weights with a positive sum")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", stds)
        object.__setattr__(self, "weights", weights / weights.sum())

    @property
    def d(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw n points x ~ p(x): returns (x (n, d) float64, component labels (n,))."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.d, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * eps, k

    def _terms(self, y: Tensor, mnm: GaussianMNM):
        y = y.to(torch.float64)
        if y.dim() != 3 or y.shape[1] != mnm.M or y.shape[2] != self.d:
            raise ValueError(f"y must have shape (N, M={mnm.M}, d={self.d}), got {tuple(y.shape)}")
        inv_var = y.new_tensor([s**-2 for s in mnm.sigmas])  # (M,)
        P = inv_var.sum()
        y_bar = (inv_var[None, :, None] * y).sum(1) / P  # (N, d)
        a = self.stds**-2 + P  # (K,) posterior precision per component
        diff = y[:, None] - self.means[None, :, None]  # (N, K, M, d)
        quad = (inv_var[None, None, :, None] * diff**2).sum((2, 3))
        dbar = y_bar[:, None] - self.means[None]  # (N, K, d)
        quad = quad - P**2 * (dbar**2).sum(-1) / a
        log_norm = -0.5 * self.d * (mnm.M * math.log(2 * math.pi) - torch.log(inv_var).sum() + torch.log1p(self.stds**2 * P))
        log_joint = torch.log(self.weights) + log_norm - 0.5 * quad  # (N, K)
        return y, inv_var, P, y_bar, a, log_joint

    def log_prob(self, y: Tensor, mnm: GaussianMNM) -> Tensor:
        """Exact log p(y) of the M-density (poster Eq. 1): (N,)."""
        return torch.logsumexp(self._terms(y, mnm)[-1], dim=1)

    def responsibilities(self, y: Tensor, mnm: GaussianMNM) -> Tensor:
        """Posterior component probabilities p(k | y): (N, K)."""
        return torch.softmax(self._terms(y, mnm)[-1], dim=1)

    def x_hat(self, y: Tensor, mnm: GaussianMNM) -> Tensor:
        """Exact Bayes estimator E[X | y] = sum_k p(k|y) (mu_k/s_k^2 + P y_bar)/(1/s_k^2 + P): (N, d)."""
        y, _, P, y_bar, a, log_joint = self._terms(y, mnm)
        r = torch.softmax(log_joint, dim=1)
        post_means = (self.means[None] * self.stds[None, :, None] ** -2 + P * y_bar[:, None]) / a[None, :, None]
        return (r[..., None] * post_means).sum(1)

    def x_hat_bar(self, y_bar: Tensor, sigma_eff: float) -> Tensor:
        """Exact Bayes estimator under equal noise from the mean alone, E[X | y_bar] with y_bar ~ p_X * N(0, sigma_eff^2 I)
        (the mean is a sufficient statistic, docs/method.md §1.3-1.4): (N, d) -> (N, d). Equals x_hat(y, mnm) for y_bar = y.mean(1)
        and sigma_eff = mnm.sigma_eff, with a few times fewer tensor operations (the toy-claims chains)."""
        se2 = sigma_eff**2
        s2 = self.stds**2
        var = s2 + se2  # (K,) variance of y_bar given component k
        log_c = torch.log(self.weights) - 0.5 * self.d * torch.log(var)
        shrink = s2 / var  # posterior mean = mu_k (1 - shrink) + shrink * y_bar
        offset = self.means * (se2 / var)[:, None]  # (K, d)
        y_bar = y_bar.to(torch.float64)
        d2 = ((y_bar[:, None, :] - self.means[None]) ** 2).sum(-1)  # (N, K)
        r = torch.softmax(log_c - d2 / (2 * var), dim=1)
        post = offset[None] + shrink[None, :, None] * y_bar[:, None, :]  # (N, K, d)
        return (r[..., None] * post).sum(1)

    def score(self, y: Tensor, mnm: GaussianMNM) -> Tensor:
        """Exact score grad_y log p(y) = (x_hat(y) - y_m)/sigma_m^2 for every m (docs/method.md §1.2-1.4): (N, M, d)."""
        y = y.to(torch.float64)
        return (self.x_hat(y, mnm)[:, None] - y) / mnm.sigma_m(y) ** 2
