"""MUVB's z mode on a trained model: one-step jumps from noised held-out images with z resampled and with z = mu.

The jump x_hat = y + sigma^2 score (docs/method.md Eq. 12) of a trained MUVB model, on the first 1,000 Fashion-MNIST
test images noised with seed 0 (pipeline.score_common.one_step_jumps, as the score stage's denoise metrics): mean
squared error per image (summed over pixels) and, with z resampled, the spread of the jump over 8 independent z
draws (the score's noise as it reaches a sample). Prints one line per mode and writes results/benchmarks/muvb_zmode.csv.

    python -m benchmarks.muvb_zmode --table fashion-mnist-schemes --profile cpu [--set chain.steps=10000] [--results DIR]
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from replication.data.datasets import load_images
from replication.pipeline.score_common import one_step_jumps
from replication.runs.experiments import resolve
from replication.runs.folders import train_dir

from . import common


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = common.parser(__doc__)
    p.add_argument("--table", default="fashion-mnist-schemes")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--results", default=None, help="results folder of the run (default results/)")
    args = common.parse(p, argv)
    overrides = dict(s.split("=", 1) for s in args.set)
    rows = []
    for e in resolve(args.table, args.profile, overrides):
        if e.model.scheme != "muvb":
            continue
        model = train_dir(e, Path(args.results) if args.results else None) / "model.pt"
        test_x = load_images(e.dataset, None, "test")[0]
        x, y, _, scheme = one_step_jumps(e, model, test_x, "cpu")  # x, y and the scheme (EMA weights as sampled)
        for mode, draws in (("sample", 8), ("mean", 1)):
            scheme.z_mode, jumps = mode, []
            for k in range(draws):
                scheme.z_generator = torch.Generator().manual_seed(1 + k)  # draw 0 = the score stage's draw
                with torch.no_grad():
                    jumps.append(torch.cat([scheme.jump(y[i : i + 100]).detach() for i in range(0, len(x), 100)]))
            xs = torch.stack(jumps)
            mse = ((xs - x) ** 2).flatten(2).sum(2).mean(1)  # per draw
            spread = ((xs - xs.mean(0)) ** 2).flatten(2).sum(2).mean().item() * draws / (draws - 1) if draws > 1 else 0.0
            rows.append({"experiment": e.id, "profile": e.profile, "run": e.run_name, "z_mode": mode, "draws": draws,
                         "denoise_mse": float(mse.mean()), "denoise_mse_min": float(mse.min()),
                         "denoise_mse_max": float(mse.max()), "jump_var_over_z": spread,
                         "load1": common.load1(), "git_sha": common.environment("cpu")["git_sha"]})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    common.append_csv("muvb_zmode", df.to_dict("records"), args.out)
    return df


if __name__ == "__main__":
    main()
