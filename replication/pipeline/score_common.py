"""What the score stage's producers of record entries share (scoring.py, statistics.py): the entry of one metric,
and the run model's one-step jumps from noised held-out images (the denoise table and the chain-statistics reference)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.datasets import to_unit
from ..runs.experiments import Experiment
from ..runs.models import load_model


def metric(metric, value, *, mode=None, n=None, reference=None, status="ok", reason=None, **extra) -> dict:
    """One metric entry of a record (docs/on-disk.md §4.4): value as float (or None), status "ok" or "not computed"."""
    return {"metric": metric, "value": None if value is None else float(value), "mode": mode, "n": n,
            "reference": reference, "status": status, "reason": reason, **extra}


ONE_STEP_N = 1000  # noised test images behind the one-step metrics (denoise table, chain-statistics reference)


def one_step_jumps(e: Experiment, model_file: Path, test_x: torch.Tensor, device: str,
                   n: int = ONE_STEP_N) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """The run's model jumps once from noised held-out images: (x, y, x_hat, scheme) for the first n test images
    x, their M measurements y = x + sigma eps (fixed seed 0) and the jumps x_hat(y), on `device`."""
    scheme = load_model(model_file, e.image_shape, use_ema=e.train.sample_with_ema, spec=e.model).to(device)
    x = to_unit(test_x[:n]).to(device)
    y = scheme.mnm.measure(x, torch.Generator(device=device).manual_seed(0))
    if e.model.scheme == "muvb":  # the chain's z mode; z drawn from a fixed seed too (docs/method.md §2.4)
        scheme.z_mode, scheme.z_generator = e.chain.muvb_z, torch.Generator(device=device).manual_seed(1)
    with torch.no_grad() if e.model.scheme != "mdae" else torch.inference_mode():  # MEM's jump needs autograd
        x_hat = torch.cat([scheme.jump(y[i : i + 100]).detach() for i in range(0, len(x), 100)])
    return x, y, x_hat, scheme
