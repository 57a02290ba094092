"""What MUVB's stochastic score does to the walk: the bias of z resampled per evaluation against z = mu, where exact.

On a linear-Gaussian VAE whose encoder is the exact posterior (tests/test_muvb.py: decoder nu(z) = A z + b, beta = 1,
M = 2, d = 3, sigma = 0.8), the M-density is N(b, C) with C = A A^T + sigma^2 I, the z = mu energy differs from
-log p by a constant (its score is exact), and the resampled score is the exact score plus zero-mean noise
(docs/method.md §2.4). Chains of each walk (BAOAB at delta = sigma/4, sigma/2, sigma; ABOBA at sigma/2 and at the
official MUVB step sigma; 200 chains x 1,500 steps, y recorded every 10 after 300) are run with both
z modes; the table gives the stationary variance of y along the top principal direction of C and along an
orthogonal (noise-only) one, each relative to the exact value. Only the walk and the score's noise differ between
the two modes, so their difference is what resampling z costs at that step. A measurement of the sampler, not of a
network: no timings. Writes results/benchmarks/muvb_noise.csv.

    python -m benchmarks.muvb_noise
"""

from __future__ import annotations

import math

import pandas as pd
import torch

from replication.core.schemes import MUVB
from replication.sampling.chains import init_chains
from replication.sampling.integrators import Walk
from replication.sampling.loop import walk_jump

from . import common

SIGMA, M, d, k = 0.8, 2, 3, 2
D = M * d


def linear_gaussian() -> tuple[MUVB, torch.Tensor, torch.Tensor]:
    """The MUVB of tests/test_muvb.py (exact posterior encoder) in float64, with its A and b."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D, k, generator=g, dtype=torch.float64))
    A = q * torch.tensor([1.5, 0.7], dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64) * 0.3
    muvb = MUVB.linear_gaussian(A, b, SIGMA, M)
    return muvb, A, b


def measure(integrator: str, delta_over_sigma: float, z_mode: str, chains: int = 200, steps: int = 1500) -> dict:
    muvb, A, b = linear_gaussian()
    muvb.z_mode = z_mode
    gens = torch.Generator().manual_seed(100)  # one generator for the batch: per-chain ones cost a call per chain
    muvb.z_generator = gens
    y, v = init_chains(chains, M, (d,), SIGMA, gens, dtype=torch.float64)
    ys = []
    for stop in walk_jump(muvb.score, muvb.jump, y, v, walk=Walk(delta_over_sigma * SIGMA, 0.5, 1.0, integrator),
                          steps=steps, jump_every=10, burn_in=steps // 5, generator=gens, autograd=True):
        ys.append(stop.y.reshape(chains, D))
    ys = torch.cat(ys)
    cov = A @ A.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(cov)
    top, flat = evecs[:, -1], evecs[:, 0]  # the decoder's strongest direction; a noise-only direction (sigma^2)
    emp = torch.cov(ys.T)
    return {"integrator": integrator, "delta_over_sigma": delta_over_sigma, "z_mode": z_mode, "chains": chains,
            "steps": steps, "var_top_rel": float(top @ emp @ top / evals[-1]),
            "var_noise_dir_rel": float(flat @ emp @ flat / evals[0]),
            "mean_err_max": float((ys.mean(0) - b).abs().max()),
            "se_rel_approx": math.sqrt(2 / ys.shape[0])}  # if the recorded states were independent (a lower bound)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = common.parse(common.parser(__doc__), argv)
    walks = [("baoab", 0.25), ("baoab", 0.5), ("baoab", 1.0), ("aboba", 0.5), ("aboba", 1.0)]  # cpu recipe .. official MUVB
    rows = [measure(i, dos, z) for i, dos in walks for z in ("mean", "sample")]
    df = pd.DataFrame(rows)
    env = common.environment("cpu")
    df["git_sha"], df["load1"] = env["git_sha"], common.load1()
    out = common.RESULTS if args.out is None else args.out
    path = common.append_csv("muvb_noise", df.to_dict("records"), out)
    with pd.option_context("display.width", 200):
        print(df.drop(columns=["git_sha"]).to_string(index=False, float_format="%.4f"))
    print(f"wrote {path}")
    return df


if __name__ == "__main__":
    main()
