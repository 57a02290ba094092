"""Drift of the walk measured directly: chains started *in* the typical set, from noisy held-out images.

K chains start at y_m = x + sigma * eps_m (x a held-out test image, v = 0), i.e. exactly in the M-density's
typical set, and walk T steps with the experiment's walk (delta, gamma, u) and sampler (chain.sampler: for CLMC the
chains walk y_1 alone, started at x + sigma eps_1, or ybar_{m0} from the mean of m0 measurements, and every jump draws
the later measurements by its inner walks). A sampler that keeps the M-density
invariant keeps every statistic of the jumps where it started: the mean pixel of the jumps (data: 0.286 on the
Fashion-MNIST test split) and their Fréchet distance to held-out images in the suite's classifier features. A
statistic that moves away measures the walk's bias (step size, a non-conservative learned score) at that
model, in far fewer steps than a long single chain needs to show it.

    python replicate.py --drift --table fashion-mnist --profile cpu [--set chain.delta_over_sigma=0.5]
    (alias, defaults --table fashion-mnist --profile cpu: python -m replication.pipeline.drift [--chains K --steps T])

writes results/drift/<run>.json: the config, the statistics at each checkpoint step, wall time and load.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import torch

from ..data.datasets import load_images, to_unit
from ..data.storage import atomic_write_json
from ..evaluation.classifier import features, load_classifier, predict
from ..evaluation.metrics import class_histogram, frechet_distance_features
from ..runs import experiments
from ..runs.folders import classifier_path, train_dir
from ..runs.models import load_model
from ..runs.provenance import provenance
from ..sampling.loop import walk_jump
from .samplers import sampler_functions, walked_state


def measure_drift(e: experiments.Experiment, model_path: Path, classifier_path: Path, data_root: str | None,
                  n_chains: int = 100, steps: int = 2000, every: int = 250, seed: int = 0) -> dict:
    """K chains from noisy test images, walked with the experiment's walk (e.walk); statistics every `every` steps.

    Per row: the jumps' mean pixel, class shares and Fréchet distance to held-out images (classifier features);
    r = mean |y_m - x_hat_m|^2 / (d sigma^2) (about 1 on noisy data: the walk's temperature as the denoiser sees
    it) and v_var = mean v^2 / u (1 at the continuous dynamics' stationarity).
    """

    scheme = load_model(model_path, e.image_shape, use_ema=e.train.sample_with_ema, spec=e.model)
    score, jump, _ = sampler_functions(scheme, e, torch.Generator().manual_seed(seed + 1))
    clf, _ = load_classifier(classifier_path)
    test = to_unit(load_images(e.dataset, data_root, "test")[0])
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(test), generator=g)
    x0, ref = test[pick[:n_chains]], test[pick[n_chains : 2 * n_chains]]
    f_ref = features(clf, ref)
    y = walked_state(e, scheme.mnm.measure(x0, g))  # y (walk-jump), or y_1 / ybar_{m0} (CLMC)
    autograd = e.model.scheme != "mdae"
    sigma = e.walk_sigma  # the walked density's noise level

    def row(step: int, y: torch.Tensor, v: torch.Tensor, x_hat: torch.Tensor) -> dict:
        with torch.no_grad() if autograd else torch.inference_mode():
            r = float(sigma**2 * score(y).pow(2).mean())  # |x_hat - y|^2 / sigma^2, as sigma^2 score = x_hat - y
        x_hat = x_hat.clamp(0, 1)
        return {"step": step, "mean_pixel": float(x_hat.mean()),
                "class_shares": class_histogram(predict(clf, x_hat).numpy(), 10).round(4).tolist(),
                "FD_classifier": frechet_distance_features(features(clf, x_hat), f_ref), "r": r,
                "v_var": float(v.pow(2).mean() / e.chain.u)}

    t0 = time.perf_counter()
    with torch.no_grad() if autograd else torch.inference_mode():
        rows = [row(0, y, torch.zeros_like(y), jump(y))]
    for stop in walk_jump(score, jump, y, torch.zeros_like(y), walk=e.walk, steps=steps, jump_every=every,
                          generator=g, autograd=autograd):
        rows.append(row(stop.step, stop.y, stop.v, stop.x_hat))
    calib = {"mean_pixel_data": float(test.mean()), "FD_classifier_real": frechet_distance_features(features(clf, x0), f_ref)}
    return {"steps": steps, "n_chains": n_chains, "walk": dataclasses.asdict(e.walk), "sampler": e.chain.sampler, "rows": rows,
            "calibration": calib, "wall_s": time.perf_counter() - t0}


def record_drift(e: experiments.Experiment, results: Path, data_root: str | None, n_chains: int = 100,
                 steps: int = 2000) -> list[str]:
    """`replicate.py --drift`: measure the drift of the experiment's trained model, write results/drift/<run>.json (the
    config, the rows, wall time and load), and return the lines to print."""

    load = os.getloadavg()
    out = measure_drift(e, train_dir(e, results) / "model.pt", classifier_path(e, results), data_root,
                        n_chains=n_chains, steps=steps)
    record = {"run": e.run_name, "experiment": e.id, "profile": e.profile, "config": e.to_dict(), **out,
              "provenance": provenance() | {"load_avg_start": list(load), "load_avg_end": list(os.getloadavg())}}
    path = results / "drift" / f"{e.run_name}.json"
    atomic_write_json(path, record)
    lines = [f"step {r['step']:6d}: mean pixel {r['mean_pixel']:.3f}  FD_classifier {r['FD_classifier']:.1f}  "
             f"r {r['r']:.3f}  v_var {r['v_var']:.3f}" for r in out["rows"]]
    return lines + [f"data: mean pixel {out['calibration']['mean_pixel_data']:.3f}; FD of the start images "
                    f"{out['calibration']['FD_classifier_real']:.1f}; wrote {path}"]


if __name__ == "__main__":  # the old entry point: an alias of `replicate.py --drift` with its defaults
    from replication.cli import drift_alias

    raise SystemExit(drift_alias(sys.argv[1:]))
