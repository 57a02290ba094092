"""Offline metrics: Fréchet distance on given features, class statistics, toy-mixture mode weights,
two-sample distances, and autocorrelation of MCMC chains.

Inception FID itself is clean-fid's job (the `fid` module); this file holds the metrics that need no
network and, where the truth is known (toy mixtures, AR(1) chains), are exact or have closed forms to
test against. Inputs may be numpy arrays or torch tensors; outputs are floats or numpy arrays.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ---------------------------------------------------------------------------------------------------
# Fréchet distance between two sets of features (e.g. the classifier's penultimate features).


def feature_statistics(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D x D] (unbiased, as clean-fid) of features [N x D], in float64."""
    f = _np(f).astype(np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """d^2 = ||mu_1 - mu_2||^2 + Tr(C_1 + C_2 - 2 (C_1 C_2)^(1/2)) between Gaussians (mu_1, C_1), (mu_2, C_2).

    The suite's one Fréchet distance (classifier features here, clean-fid's FID in the `fid` module): clean-fid's
    `frechet_distance`, unchanged (matrix square root and its safeguards), its scipy `disp` warning muted.
    """
    from cleanfid.fid import frechet_distance as cleanfid_frechet  # heavy: clean-fid imports torchvision (about 4 s)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The .disp. argument is deprecated", category=DeprecationWarning)
        return float(cleanfid_frechet(mu1, sigma1, mu2, sigma2))


def frechet_distance_features(f1, f2) -> float:
    """`frechet_distance` between features [N1 x D], [N2 x D] (their `feature_statistics`)."""
    return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))


# ---------------------------------------------------------------------------------------------------
# Class statistics of generated samples (labels from the classifier).


def class_histogram(labels, n_classes: int) -> np.ndarray:
    """Fraction of labels in each class, [n_classes] float64 summing to 1 (all zeros for no labels)."""
    counts = np.bincount(_np(labels).astype(np.int64).ravel(), minlength=n_classes).astype(np.float64)
    if counts.shape[0] != n_classes:
        raise ValueError(f"labels outside 0..{n_classes - 1}")
    return counts / max(counts.sum(), 1.0)


def class_coverage(labels, n_classes: int, min_frac: float = 0.02) -> int:
    """Number of classes holding at least min_frac of the labels."""
    return int((class_histogram(labels, n_classes) >= min_frac).sum())


def class_switch_rate(labels_sequence) -> float:
    """Fraction of consecutive pairs (l_t, l_{t+1}) of a chain's labels with l_t != l_{t+1}."""
    seq = _np(labels_sequence).ravel()
    if seq.size < 2:
        raise ValueError("need at least two labels")
    return float((seq[1:] != seq[:-1]).mean())


# ---------------------------------------------------------------------------------------------------
# Toy mixtures: which mode each sample belongs to, and how the mode weights compare with the truth.


class ModeStats(NamedTuple):
    weights: np.ndarray  # [K] fraction of samples assigned to each component
    on_manifold: float  # fraction of samples within 3 std of the mean of some component
    labels: np.ndarray  # [N] int64 assigned component of each sample


def mode_weights(x, means, stds, weights) -> ModeStats:
    """Assign each sample to its most responsible component of sum_k w_k N(mu_k, s_k^2 I).

    Responsibility: log r_k(x) = log w_k - d log s_k - ||x - mu_k||^2 / (2 s_k^2) + const. A sample is
    "on-manifold" if ||x - mu_k|| <= 3 s_k for some k (for exact samples in 2-D that is 1 - e^{-4.5}
    = 98.9% of them).
    """
    x = _np(x).astype(np.float64)
    means, stds, w = (_np(t).astype(np.float64) for t in (means, stds, weights))
    d = x.shape[1]
    dist2 = ((x[:, None, :] - means[None, :, :]) ** 2).sum(-1)  # [N x K]
    log_r = np.log(w) - d * np.log(stds) - dist2 / (2 * stds**2)
    labels = log_r.argmax(axis=1)
    on = (dist2 <= (3 * stds) ** 2).any(axis=1)
    return ModeStats(class_histogram(labels, len(w)), float(on.mean()), labels)


def total_variation(p, q) -> float:
    """Total variation (1/2) sum_k |p_k - q_k| between two histograms (class shares, mode weights)."""
    return float(0.5 * np.abs(_np(p) - _np(q)).sum())


def mode_weight_error(x, means, stds, weights) -> float:
    """Total variation between the assigned-mode histogram and the weights."""
    return total_variation(mode_weights(x, means, stds, weights).weights, weights)


# ---------------------------------------------------------------------------------------------------
# Two-sample distances between point clouds (exact V-statistics in float64, chunked;
# a few seconds for 10k vs 10k points in 2-D on one CPU thread).


def _pair_sum(a: torch.Tensor, b: torch.Tensor, kernel, chunk: int) -> float:
    """Mean of kernel(||a_i - b_j||) over all pairs, in row chunks so memory stays O(chunk * len(b))."""
    total = 0.0
    for i in range(0, a.shape[0], chunk):
        dist = torch.cdist(a[i : i + chunk], b, compute_mode="donot_use_mm_for_euclid_dist")
        total += kernel(dist).sum().item()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x, y, chunk: int = 256) -> float:
    """Energy distance 2E||X - Y|| - E||X - X'|| - E||Y - Y'|| between the empirical measures of x, y.

    V-statistic (pairs i = j included): exactly 0 for identical samples, >= 0 always, and 0 in the limit
    only if the distributions are equal (Székely & Rizzo).
    """
    x, y = (torch.as_tensor(_np(t), dtype=torch.float64) for t in (x, y))
    norm = lambda r: r  # noqa: E731
    return 2 * _pair_sum(x, y, norm, chunk) - _pair_sum(x, x, norm, chunk) - _pair_sum(y, y, norm, chunk)


# ---------------------------------------------------------------------------------------------------
# Autocorrelation of a scalar chain statistic.


def autocorrelation(series, max_lag: int | None = None, mean: float | None = None) -> np.ndarray:
    """Normalized autocorrelation rho(0..max_lag) of a 1-D series (rho(0) = 1), via zero-padded FFT.

    rho(k) = sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2 (the standard biased estimator), with m the
    series' own mean, or `mean` when the stationary mean is known.
    """
    x = _np(series).astype(np.float64).ravel()
    n = x.size
    max_lag = n - 1 if max_lag is None else min(max_lag, n - 1)
    x = x - (x.mean() if mean is None else mean)
    size = 1 << (2 * n - 1).bit_length()  # Zero padding >= 2n - 1 makes the circular correlation linear.
    f = np.fft.rfft(x, size)
    acov = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1]
    if acov[0] <= 0:
        raise ValueError("constant series has no autocorrelation")
    return acov / acov[0]


def iat_sokal(series, c: float = 5.0, mean: float | None = None) -> tuple[float, bool]:
    """(tau, censored): tau = 1 + 2 sum_{k=1}^{W} rho(k) with Sokal's automatic window, the smallest W >= c tau(W).

    For an AR(1) chain with coefficient rho, tau = (1 + rho) / (1 - rho); the effective sample size is
    N / tau. If no such W exists (chain shorter than ~c tau), the last estimate is returned and `censored`
    is True: tau is then a lower bound. `mean`: centre at the known stationary mean instead of the chain's
    own, so that a chain stuck in one mode gets rho ~ 1 and a large tau, not a small one.
    """
    rho = autocorrelation(series, mean=mean)
    taus = 2 * np.cumsum(rho) - 1  # taus[W] = 1 + 2 sum_{k=1}^{W} rho(k)
    ok = np.arange(taus.size) >= c * taus
    return (float(taus[int(np.argmax(ok))]), False) if ok.any() else (float(taus[-1]), True)


def integrated_autocorr_time(series, c: float = 5.0) -> float:
    """tau of `iat_sokal` (centred at the chain's own mean), a lower bound when the chain is too short."""
    return iat_sokal(series, c)[0]
