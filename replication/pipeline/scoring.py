"""The score stage for one run: which metrics and figures of evaluation/ it records, against what.

Image data:
  FID           clean-fid, each mode of ScoreSpec.fid_modes, against clean-fid's CIFAR-10 train statistics or
                statistics the suite computes from the data (both need the staged Inception weights; without
                them the record says "not computed" with the fix).
  FD_test-proj16 (NOT FID)   the same clean-fid code path with the fixed 16-D test extractor, against the
                training data at the same N: proves the path, never comparable to FID.
  FD_classifier, class_coverage   in the suite's classifier features (labelled data), with calibration
                points at the same N: real held-out images, 3x3 box-blurred real images, uniform noise.
Toy data: exact metrics against the known mixture: mode-weight total variation, on-manifold fraction,
  energy distance to fresh exact samples of the same N.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from ..core.mnm import GaussianMixture
from ..data import registry
from ..data.datasets import load_images, to_unit, toy_mixture
from ..data.registry import CLASS_NAMES
from ..data.storage import atomic_write_bytes
from ..evaluation import assets, fid
from ..evaluation import metric_names as mn
from ..evaluation.assets import AssetsNotStaged
from ..evaluation.chain_stats import trace_stats
from ..evaluation.classifier import features, load_classifier, predict
from ..evaluation.images import box_blur, chain_strip, sample_grid, toy_scatter
from ..evaluation.metric_names import THINNED_N
from ..evaluation.metrics import (class_coverage, class_histogram, energy_distance, frechet_distance_features,
                                  mode_weight_error, mode_weights, total_variation)
from ..evaluation.traces import N_WINDOWS, trace_figure, window_stats
from ..runs.experiments import Experiment
from ..runs.folders import classifier_path, train_dir
from ..sampling.clmc import CLMC, settling_steps
from .chain import read_shards
from .samplers import walked_state
from .score_common import metric as _metric
from .score_common import one_step_jumps
from .statistics import chain_metrics, reference


def score_run(e: Experiment, rd: Path, results: Path, data_root: str | None, device: str) -> tuple[list[dict], dict]:
    if len(e.image_shape) == 1:
        return _score_toy(e, rd, results)
    return _score_images(e, rd, results, data_root, device)


def _figure_path(results: Path, e: Experiment, kind: str) -> Path:
    return results / "figures" / f"{e.run_name}_{kind}.png"


def _rel(path: Path, results: Path) -> str:
    return str(Path("results") / path.relative_to(results))


def _score_images(e: Experiment, rd: Path, results: Path, data_root: str | None, device: str) -> tuple[list[dict], dict]:
    # read once: images (n_jumps, chains, C, H, W), and the chain-time labels and mean pixel where recorded
    shards = read_shards(rd / "chain" / "run", ("images", "step", "label", "mean"))
    samples = shards["images"]
    flat = samples.reshape(-1, *samples.shape[2:])
    n = len(flat)
    png = rd / "export" / "png"
    train_x, _ = load_images(e.dataset, data_root, "train")
    test_x = load_images(e.dataset, data_root, "test")[0] if (e.score.classifier or e.score.denoise) else None
    metrics: list[dict] = []

    # Inception FID, per mode.
    for mode in e.score.fid_modes:
        name = "inception-legacy-tf" if mode == "legacy_tensorflow" else "inception-clean"
        try:
            ref = _inception_ref(e, results, mode, name, train_x, device)
        except AssetsNotStaged as err:
            metrics.append(_metric("FID", None, mode=mode, n=n, status="not computed", reason=str(err), extractor=name))
            continue
        rec = fid.score_folder(png, ref, name, mode, device, expected_n=n)
        metrics.append(_metric("FID", rec.get("value"), mode=mode, n=n, reference=str(ref.name),
                               status=rec.get("status", "ok"), reason=rec.get("reason"), extractor=name))

    # The clean-fid path with the test extractor (labelled NOT FID).
    ref = results / "runs" / e.table / f"refstats-{e.dataset}" / f"test-proj16_legacy_tensorflow_train_n{n}.npz"
    if not ref.exists():
        pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:n]
        fid.make_ref_stats(train_x[pick].numpy(), ref, "test-proj16", "legacy_tensorflow", device)
    rec = fid.score_folder(png, ref, "test-proj16", "legacy_tensorflow", device, expected_n=n)
    metrics.append(_metric(rec["metric"], rec["value"], mode="legacy_tensorflow", n=n,
                           reference=f"{n} training images", extractor="test-proj16"))

    thinned = _thinned(shards, THINNED_N)
    jumps = one_step_jumps(e, train_dir(e, results) / "model.pt", test_x, device) if test_x is not None else None
    if e.score.classifier:
        metrics += _classifier_metrics(e, results, torch.from_numpy(flat), train_x, test_x)
        if n > THINNED_N:  # with fewer jumps the thinned set is all of them: the metrics above
            metrics += _classifier_metrics(e, results, torch.from_numpy(thinned["images"]), train_x, test_x,
                                           thinned_n=len(thinned["images"]))
        metrics += _stability_metrics(e, results, samples[:, 0], test_x)
        if "label" in shards:  # the run's first chain, every jump (docs/statistics.md)
            metrics += chain_metrics(e, shards["label"][:, 0], shards["mean"][:, 0], shards["step"], metrics,
                                     reference(e, classifier_path(e, results), jumps),
                                     source=f"all {len(shards['label']):,} jumps of the chain",
                                     n_chains=shards["label"].shape[1])
    if e.score.denoise:
        metrics += _denoise_metrics(e, results, jumps)
        if e.model.parametrization == "ybar-levels":
            metrics += _level_metrics(jumps)
    if e.chain.sampler == "clmc" and jumps is not None:
        metrics += _inner_walk_metrics(e, jumps)

    figures = {"samples": _rel(_save_samples(thinned, results / "samples" / f"{e.run_name}.npz"), results)}
    grid = _figure_path(results, e, "grid")
    idx = np.linspace(0, n - 1, min(100, n)).astype(int)
    sample_grid(torch.from_numpy(flat[idx]), grid, nrow=10)
    figures["grid"] = _rel(grid, results)
    strip = _figure_path(results, e, "strip")
    chain_strip(torch.from_numpy(samples[-20:, 0]), strip, n=20)
    figures["strip"] = _rel(strip, results)
    if "label" in shards and len(shards["label"]) >= 50 * N_WINDOWS:  # >= 50 jumps per window
        data_mean = next((m["value"] for m in metrics if m["metric"] == mn.MEAN_PIXEL_DATA), None)
        metrics.append(_trace(e, results, shards, data_mean, figures))
    return metrics, figures


def _trace(e: Experiment, results: Path, shards: dict, data_mean: float | None, figures: dict) -> dict:
    """Class shares and mean pixel in N_WINDOWS windows along the chain (evaluation/traces.py): metastability at a glance."""
    stats = window_stats(shards["label"][:, 0], shards["mean"][:, 0])
    path = _figure_path(results, e, "trace")
    trace_figure(stats, shards["step"], CLASS_NAMES.get(e.dataset, ()), path, data_mean_pixel=data_mean)
    figures["trace"] = _rel(path, results)
    n_window = len(shards["label"]) // N_WINDOWS
    return _metric(mn.WINDOW_TV, stats["tv_mean"], n=n_window,
                   reference="the chain's own class shares",
                   window_shares=np.round(stats["shares"], 4).tolist(),
                   window_mean_pixel=np.round(stats["mean_pixel"], 4).tolist())


def _inception_ref(e: Experiment, results: Path, mode: str, extractor: str, train_x: torch.Tensor, device: str) -> Path:
    """clean-fid's staged statistics of the dataset (its registry entry's `fid_stats`, e.g. CIFAR-10's), or statistics
    the suite computes from the training data."""
    entry = registry.get(e.dataset)
    if entry.fid_stats:
        name = assets.ref_stats_name(entry.fid_stats, mode, e.score.fid_split, entry.fid_res)
        assets.require_assets([name])
        return assets.asset_path(name)
    assets.require_assets(["inception-2015-12-05.pt"])
    ref = results / "runs" / e.table / f"refstats-{e.dataset}" / f"{extractor}_{mode}_{e.score.fid_split}.npz"
    if not ref.exists():
        fid.make_ref_stats(train_x.numpy(), ref, extractor, mode, device)
    return ref


def _thinned(d: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """n jumps of the first chain, evenly spaced over the whole recorded chain (jumps start after burn-in)."""
    idx = np.unique(np.linspace(0, len(d["images"]) - 1, min(n, len(d["images"]))).round().astype(int))
    return {"images": d["images"][idx, 0], "step": d["step"][idx]}


def _save_samples(thinned: dict[str, np.ndarray], path: Path) -> Path:
    """The committed samples anyone can score: uint8 (n, C, H, W) jumps and their walk steps, in a small .npz."""
    buf = io.BytesIO()
    np.savez_compressed(buf, images=thinned["images"].astype(np.uint8), step=thinned["step"].astype(np.int64))
    atomic_write_bytes(path, buf.getvalue())
    return path


def _stability_metrics(e: Experiment, results: Path, images: np.ndarray, test_x: torch.Tensor) -> list[dict]:
    """Drift along the chain: mean pixel and class shares of the first and last 10% of jumps, against the data."""
    model, _ = load_classifier(classifier_path(e, results))
    tenth = max(1, len(images) // 10)
    data = to_unit(test_x)
    data_shares = class_histogram(predict(model, data), 10)
    out = [_metric(mn.MEAN_PIXEL_DATA, data.mean(), n=len(data), reference="held-out test split",
                   calibration=True)]
    # How many independent jumps a window is worth: n / tau, tau = N / ESS the integrated autocorrelation time of
    # the per-jump mean pixel over the whole chain (arviz-stats' bulk ESS, evaluation/chain_stats.py); mcse: the
    # Monte Carlo standard error of the window's mean pixel.
    series = images.reshape(len(images), -1).mean(1) / 255.0
    ess = trace_stats(series)["ess"] if len(series) > 10 else None
    tau = max(1.0, len(series) / ess) if ess else 1.0
    shares = {}
    for name, part in (("first 10%", images[:tenth]), ("last 10%", images[-tenth:])):
        x = to_unit(torch.from_numpy(part))
        shares[name] = class_histogram(predict(model, x), 10)
        window = series[:tenth] if name == "first 10%" else series[-tenth:]
        ess = len(window) / tau
        out.append(_metric(f"mean_pixel[{name} of jumps]", x.mean(), n=len(x), reference="the chain's own jumps",
                           ess=round(ess, 1), mcse=float(window.std() / np.sqrt(ess))))
        out.append(_metric(f"class_shares_tv[{name} of jumps vs data]", total_variation(shares[name], data_shares),
                           n=len(x), reference="classifier labels of the test split", histogram=shares[name].tolist()))
    out.append(_metric("class_shares_tv[first vs last 10% of jumps]",
                       total_variation(shares["first 10%"], shares["last 10%"]), n=tenth, reference="first 10%"))
    return out


def _classifier_metrics(e: Experiment, results: Path, samples_u8: torch.Tensor, train_x: torch.Tensor,
                        test_x: torch.Tensor, thinned_n: int | None = None) -> list[dict]:
    """FD_classifier with its calibration points, class coverage and the top class's share; of the thinned jumps
    (named so: metric_names.thinned) when `thinned_n`."""
    model, meta = load_classifier(classifier_path(e, results))
    n = len(samples_u8)
    g = torch.Generator().manual_seed(1)
    ref = to_unit(test_x[torch.randperm(len(test_x), generator=g)[: min(n, len(test_x))]])
    real = to_unit(train_x[torch.randperm(len(train_x), generator=g)[:n]])
    f_ref = features(model, ref)
    fd = lambda x: frechet_distance_features(features(model, x), f_ref)  # noqa: E731
    samples = to_unit(samples_u8)
    labels = predict(model, samples)
    ref_name = f"{len(ref)} held-out test images"
    shares = class_histogram(labels, 10)
    name = (lambda m: mn.thinned(m, thinned_n)) if thinned_n else (lambda m: m)  # noqa: E731
    fd_name = name(mn.FD_CLASSIFIER)
    out = [
        _metric(fd_name, fd(samples), n=n, reference=ref_name),
        _metric(name(mn.CLASS_COVERAGE), class_coverage(labels, 10, 0.02), n=n,
                reference="classes holding >= 2% of samples", histogram=shares.tolist()),
        _metric(name(mn.TOP_CLASS_SHARE), shares.max(), n=n, reference="the most frequent class",
                top_class=int(shares.argmax())),
        _metric(mn.calibration(fd_name, mn.REAL), fd(real), n=n, reference=ref_name, calibration=True),
        _metric(mn.calibration(fd_name, mn.BLURRED), fd(box_blur(real)), n=n, reference=ref_name, calibration=True),
        _metric(mn.calibration(fd_name, mn.NOISE), fd(torch.rand(real.shape, generator=g)), n=n,
                reference=ref_name, calibration=True),
    ]
    if not thinned_n:
        out.insert(0, _metric(mn.CLASSIFIER_ACCURACY, meta["test_accuracy"], reference="full test split"))
    return out


def _denoise_metrics(e: Experiment, results: Path, jumps: tuple) -> list[dict]:
    """One-step jump quality on held-out images (score_common.one_step_jumps): E|x - x_hat(y)|^2 per image (summed over
    pixels), against the naive mean y_bar clipped to [0, 1]; and the classifier FD of the jumps to the clean images."""
    x, y, x_hat, scheme = jumps
    n = len(x)
    mse = ((x_hat - x) ** 2).flatten(1).sum(1).mean().item()
    mse_ybar = ((y.mean(1).clamp(0, 1) - x) ** 2).flatten(1).sum(1).mean().item()
    ref = f"{n} noisy test images, sigma_eff = {scheme.mnm.sigma_eff:.3g}"
    out = [_metric(mn.DENOISE_MSE, mse, n=n, reference=ref),
           _metric(mn.calibration(mn.DENOISE_MSE, mn.CLIPPED_YBAR), mse_ybar, n=n, reference=ref, calibration=True)]
    if e.score.classifier and classifier_path(e, results).exists():
        model, _ = load_classifier(classifier_path(e, results))
        out.append(_metric("denoise_FD_classifier", frechet_distance_features(features(model, x_hat.cpu()), features(model, x.cpu())),
                           n=n, reference="the clean images"))
    return out


def _levels(M: int) -> list[int]:
    """The levels m of a ybar-levels model that the report shows: 1, 2, 4, ... and M."""
    return sorted({2**i for i in range(int(math.log2(M)) + 1)} | {M})


def _level_metrics(jumps: tuple) -> list[dict]:
    """A ybar-levels model's one-step jump quality at each level m (docs/method.md §6.2): E|x - x_hat(ybar_m)|^2 on the
    same noised test images, ybar_m the mean of their first m measurements; beside the fixed-M models of the M table."""
    x, y, _, scheme = jumps
    out = []
    with torch.inference_mode():
        for m in _levels(scheme.M):
            x_hat = torch.cat([scheme.denoise(y[i : i + 100, :m].mean(1), m) for i in range(0, len(x), 100)])
            out.append(_metric(mn.at_level(mn.DENOISE_MSE, m), ((x_hat - x) ** 2).flatten(1).sum(1).mean().item(), n=len(x),
                               reference=f"{len(x)} noisy test images, level sigma/sqrt(m) = {scheme.sigma / math.sqrt(m):.3g}"))
    return out


INNER_TRACE = (100, 16)  # the CLMC inner-walk trace of the score stage: chains (noised test images), steps per level


def _inner_walk_metrics(e: Experiment, jumps: tuple) -> list[dict]:
    """Where CLMC stops working (docs/method.md §6.1): CLMC jumps from y_1 = noised test images (exact draws of p(y_1);
    ybar_{m0} = the mean of m0 of their measurements from a start level m0)
    with INNER_TRACE[1] inner steps per level, traced (sampling.clmc.settling_steps): per level m the step at which the
    inner walk's r = |y_m - x_hat(ybar_m)|^2 / (d sigma^2) settles, and r after the first step and settled."""
    n, steps = INNER_TRACE
    _, y, _, scheme = jumps
    trace: list = []
    sampler = CLMC(scheme.denoise, e.model.sigma, e.model.M, e.inner_walk, steps,
                   torch.Generator(device=y.device).manual_seed(0), trace=trace, start_level=e.chain.clmc_start_level)
    with torch.inference_mode():
        sampler.jump(walked_state(e, y[:n]))
    ref = f"{n} noised test images as y_1, {steps} inner steps per level (K = {e.chain.clmc_inner_steps} in the chain)"
    out = []
    for m, st in settling_steps(trace).items():
        out += [_metric(mn.at_level(mn.CLMC_SETTLE_STEP, m), st["settle_step"], n=n, reference=ref),
                _metric(mn.at_level(mn.CLMC_INNER_R, m, "first step"), st["r_first"], n=n, reference=ref),
                _metric(mn.at_level(mn.CLMC_INNER_R, m, "settled"), st["r_inf"], n=n, reference=ref)]
    return out


def _score_toy(e: Experiment, rd: Path, results: Path) -> tuple[list[dict], dict]:
    x = read_shards(rd / "chain" / "run", ("float",))["float"]
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mix = toy_mixture(e.dataset.split(":", 1)[1])
    prior = GaussianMixture(mix.means, mix.stds, mix.weights)
    exact, _ = prior.sample(len(x), torch.Generator().manual_seed(123))
    stats = mode_weights(x, mix.means, mix.stds, mix.weights)
    n = len(x)
    m = min(n, 5000)
    metrics = [
        _metric("mode_weight_tv", mode_weight_error(x, mix.means, mix.stds, mix.weights), n=n, reference="true weights"),
        _metric("modes_visited", int((stats.weights > 0).sum()), n=n, reference=f"{len(mix.weights)} modes"),
        _metric("on_manifold_fraction", stats.on_manifold, n=n, reference="exact samples: 0.989"),
        _metric(mn.ENERGY_DISTANCE, energy_distance(x[-m:], exact[:m].numpy()), n=m, reference="fresh exact samples"),
        _metric(mn.calibration(mn.ENERGY_DISTANCE, mn.EXACT),
                energy_distance(prior.sample(m, torch.Generator().manual_seed(7))[0].numpy(), exact[:m].numpy()),
                n=m, reference="fresh exact samples", calibration=True),
    ]
    figures = {"scatter": _rel(toy_scatter(x, mix.means, _figure_path(results, e, "scatter")), results)}
    return metrics, figures

