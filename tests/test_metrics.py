"""Offline metrics against known answers, and the small Fashion-MNIST classifier. CPU, no network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from replication.core.mnm import GaussianMixture
from replication.data import datasets as D
from replication.data.sets.fashion_mnist import DEBIAN_FASHION_MNIST
from replication.evaluation import classifier as C
from replication.evaluation import metrics as M

# ---------------------------------------------------------------------------------------------------
# Fréchet distance on features.


def test_frechet_distance_features():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2000, 8))
    assert abs(M.frechet_distance_features(f, f)) < 1e-6
    # Equal covariances: d^2 = ||delta mu||^2 = 8 c^2, exactly, for a shifted copy.
    dists = [M.frechet_distance_features(f, f + c) for c in (0.1, 0.5, 1.0)]
    assert np.allclose(dists, [8 * c**2 for c in (0.1, 0.5, 1.0)], rtol=1e-4)
    # Copy scaled by 2: C_2 = 4 C_1, so d^2 = ||mu_1||^2 + Tr(C_1) (1 - 2)^2.
    mu, cov = M.feature_statistics(f)
    assert np.isclose(M.frechet_distance_features(f, 2 * f), mu @ mu + np.trace(cov), rtol=1e-6)
    assert M.frechet_distance_features(torch.from_numpy(f), torch.from_numpy(f + 1)) > dists[1]


# ---------------------------------------------------------------------------------------------------
# Class statistics.


def test_class_statistics():
    labels = [0] * 50 + [1] * 45 + [2] * 4 + [3]
    assert np.allclose(M.class_histogram(labels, 5), [0.5, 0.45, 0.04, 0.01, 0.0])
    assert M.class_coverage(labels, 5) == 3  # Class 3 holds 1% < 2%.
    assert M.class_coverage(labels, 5, min_frac=0.0) == 5
    assert M.class_coverage(labels, 5, min_frac=0.1) == 2
    assert M.class_switch_rate([0, 0, 1, 1, 2]) == 0.5
    assert M.class_switch_rate(torch.tensor([3, 3, 3])) == 0.0
    assert M.class_switch_rate([0, 1, 0, 1]) == 1.0
    with pytest.raises(ValueError):
        M.class_histogram([5], 3)


# ---------------------------------------------------------------------------------------------------
# Toy mixtures.


def test_mode_weights_exact_samples():
    means, stds, weights = D.toy_mixture("ring8-unequal")
    x, k = GaussianMixture(means, stds, weights).sample(20000, torch.Generator().manual_seed(0))
    stats = M.mode_weights(x, means, stds, weights)
    assert np.array_equal(stats.labels, k.numpy())  # Modes ~10 std apart: assignment is exact.
    assert abs(stats.on_manifold - (1 - np.exp(-4.5))) < 0.005  # P(||z|| <= 3) in 2-D.
    assert M.mode_weight_error(x, means, stds, weights) < 0.02
    # Equal-weight samples scored against the unequal weights: the TV between the two weight vectors.
    x8, _ = GaussianMixture(means, stds, torch.full((8,), 1 / 8)).sample(20000, torch.Generator().manual_seed(1))
    expected = 0.5 * (torch.full((8,), 1 / 8) - weights).abs().sum().item()
    assert abs(M.mode_weight_error(x8, means, stds, weights) - expected) < 0.02


def test_total_variation_of_histograms():
    assert M.total_variation([0.5, 0.5, 0.0], [0.25, 0.25, 0.5]) == 0.5
    assert M.total_variation(torch.tensor([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0  # tensors and arrays alike
    assert M.total_variation([0.2, 0.8], [0.2, 0.8]) == 0.0


def test_mode_weights_off_manifold():
    means, stds, weights = D.toy_mixture("ring8")
    x = torch.zeros(100, 2, dtype=torch.float64)  # The ring's centre is far from every mode.
    assert M.mode_weights(x, means, stds, weights).on_manifold == 0.0


def test_energy_distance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    assert M.energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    same, shifted = M.energy_distance(x, y), M.energy_distance(x, y + 1.0)
    assert 0 <= same < 0.01 < shifted
    assert M.energy_distance(x, y, chunk=999) == pytest.approx(same, rel=1e-9)  # Chunking is exact.
    # Two point masses a distance r apart: energy 2r.
    a, b = torch.zeros(5, 2), torch.tensor([[3.0, 4.0]]).repeat(4, 1)
    assert M.energy_distance(a, b) == pytest.approx(10.0)


# ---------------------------------------------------------------------------------------------------
# Autocorrelation.


def ar1(rho: float, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = eps[0] / np.sqrt(1 - rho**2)  # Start in the stationary distribution.
    for t in range(1, n):
        x[t] = rho * x[t - 1] + eps[t]
    return x


def test_autocorrelation_matches_direct_sum():
    x = np.random.default_rng(0).standard_normal(50)
    xc = x - x.mean()
    direct = np.array([(xc[: 50 - k] * xc[k:]).sum() for k in range(11)]) / (xc**2).sum()
    assert np.allclose(M.autocorrelation(x, 10), direct)


def test_autocorrelation_ar1():
    rho = 0.8
    acf = M.autocorrelation(ar1(rho, 100_000), max_lag=10)
    assert acf[0] == 1.0 and acf.shape == (11,)
    assert np.allclose(acf, rho ** np.arange(11), atol=0.03)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_integrated_autocorr_time_ar1(rho):
    tau = M.integrated_autocorr_time(ar1(rho, 100_000, seed=1))
    assert tau == pytest.approx((1 + rho) / (1 - rho), rel=0.15)


def test_iat_at_a_known_mean_on_ar1():
    """iat_sokal(mean=...) centres at the known stationary mean (the toy-claims mixing measure)."""
    x = ar1(0.8, 100_000, seed=0)
    tau, censored = M.iat_sokal(x, mean=0.0)
    assert not censored and tau == pytest.approx((1 + 0.8) / (1 - 0.8), rel=0.1)
    stuck = np.full(500, 0.7) + 1e-3 * np.random.default_rng(0).normal(size=500)
    tau_stuck, censored = M.iat_sokal(stuck, mean=0.0)
    assert censored and tau_stuck > 100  # a chain stuck away from the stationary mean is not "fast"
    assert M.integrated_autocorr_time(stuck) < 10  # centred at its own mean it looks fast


# ---------------------------------------------------------------------------------------------------
# Classifier (trained briefly on a Fashion-MNIST subset).


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason=f"{DEBIAN_FASHION_MNIST} absent")
def test_classifier_fashion_mnist(tmp_path):
    x, y = D.load_images("fashion-mnist")
    xt, yt = D.load_images("fashion-mnist", split="test")
    xt, yt = xt[:2000], yt[:2000]
    model = C.train_classifier(x[:5000], y[:5000], seed=0, **C.FAST)
    acc = C.evaluate(model, xt, yt)
    assert acc > 0.7
    f = C.features(model, D.to_unit(xt[:10]))
    assert f.shape == (10, C.FAST["hidden"]) and torch.allclose(f, C.features(model, xt[:10]))
    assert C.predict(model, xt[:10]).dtype == torch.int64
    C.save_classifier(model, tmp_path / "clf.pt", meta={"acc": acc})
    loaded, meta = C.load_classifier(tmp_path / "clf.pt")
    assert meta == {"acc": acc} and torch.equal(C.predict(loaded, xt), C.predict(model, xt))
    # Deterministic for a seed (a short run suffices), and independent of the global RNG.
    torch.manual_seed(123)
    a = C.train_classifier(x[:500], y[:500], seed=3, epochs=1, widths=(4, 8), hidden=16)
    torch.manual_seed(456)
    b = C.train_classifier(x[:500], y[:500], seed=3, epochs=1, widths=(4, 8), hidden=16)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_window_stats_closed_forms(tmp_path):
    """A chain that spends its first half in class 0 and its second in class 1: every window's TV to the whole
    chain is 1/2; an i.i.d. chain's is about sqrt((K - 1) / (2 pi n)) per window of n jumps."""
    from replication.evaluation.traces import trace_figure, window_stats

    labels = np.repeat([0, 1], 500)
    means = np.repeat([0.1, 0.4], 500)
    s = window_stats(labels, means, n_windows=20)
    assert s["tv_mean"] == pytest.approx(0.5)
    np.testing.assert_allclose(s["mean_pixel"], np.repeat([0.1, 0.4], 10))
    np.testing.assert_allclose(s["shares"][:10, 0], 1.0)
    rng = np.random.default_rng(0)
    iid = window_stats(rng.integers(0, 10, 20 * 2000), rng.random(20 * 2000), n_windows=20)
    assert iid["tv_mean"] == pytest.approx(np.sqrt(9 / (2 * np.pi * 2000)), rel=0.15)
    path = trace_figure(s, np.arange(20, 20 * 1001, 20), ("a", "b"), tmp_path / "t.png", data_mean_pixel=0.3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="need >= 20 jumps"):
        window_stats(labels[:5], means[:5])
