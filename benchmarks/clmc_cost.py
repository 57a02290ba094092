"""CLMC cost per sample against the plain walk-jump's, same net (docs/method.md §6).

The two rows of the registry's `fashion-mnist-clmc` table under a profile (default cpu): one noise-conditional
ybar-levels SmallUNet (fresh weights: timings do not depend on them), batch 1, 28x28, M = 16.
  walk_jump  the plain walk-jump on the joint M-density: `jump_every` walk steps and one jump per sample
  clmc       the CLMC sampler: `jump_every` outer steps on y_1, then 1 + (M - 1)(K + 1) evaluations of the inner
             walks per sample (sampling/clmc.py)
Both through the library loop (sampling.loop.walk_jump) under inference_mode, timed interleaved per sample
(benchmarks/common.py). Columns: ms per sample, score evaluations per sample, and ms per evaluation; the
ratio clmc / walk_jump per sample, and the ratio of the per-evaluation costs (about 1: both evaluate the same net
on one d-dimensional input per evaluation).

    python -m benchmarks.clmc_cost [--quick] [--profile cpu] [--samples 4]
"""

from __future__ import annotations

import torch

from replication.pipeline.samplers import evals_per_jump, sampler_functions
from replication.runs.experiments import resolve
from replication.runs.models import build_model
from replication.sampling.chains import init_chains
from replication.sampling.loop import walk_jump

from . import common


def samplers(profile: str, samples: int):
    """{name: (run, evals per sample)} for the clmc and walk_jump rows; run() draws `samples` samples."""
    by_id = {e.id: e for e in resolve("fashion-mnist-clmc", profile)}
    e_clmc, e_walk = by_id["fmnist-clmc-M16"], by_id["fmnist-clmc-M16-walk"]
    torch.manual_seed(0)
    scheme = build_model(e_walk.model, e_walk.image_shape).eval()
    out = {}
    for name, e in (("walk_jump", e_walk), ("clmc", e_clmc)):
        gen = torch.Generator().manual_seed(0)
        score, jump, M = sampler_functions(scheme, e, gen)
        state = dict(zip(("y", "v"), init_chains(1, M, e.image_shape, e.walk_sigma, gen)))

        def run(e=e, score=score, jump=jump, state=state, gen=gen):
            k = e.chain.jump_every
            for stop in walk_jump(score, jump, state["y"], state["v"], walk=e.walk, steps=samples * k, jump_every=k,
                                  generator=gen):
                state["y"], state["v"] = stop.y, stop.v

        out[name] = (run, e.chain.jump_every + evals_per_jump(e))
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = common.parser(__doc__, whole_doc=True)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--profile", default="cpu", help="the registry profile whose nets and settings are timed")
    ap.add_argument("--samples", type=int, default=4, help="samples per timed call")
    args = common.parse(ap, argv)
    repeats, warmup = (3, 1) if args.quick else (7, 1)
    runs = samplers(args.profile, args.samples)
    load = common.load1()
    cpu: dict = {}
    with torch.inference_mode():
        times = common.time_interleaved({n: r for n, (r, _) in runs.items()}, repeats=repeats, warmup=warmup,
                                        units={n: args.samples for n in runs}, cpu_out=cpu)
    rows = common.summarize(times, {"walk_jump": None, "clmc": "walk_jump"}, repeats=repeats, warmup=warmup,
                            load_start=load, device="cpu", cpu_times=cpu, bench="clmc_cost", case=args.profile, M=16,
                            H=28, batch=1)
    for row in rows:
        evals = runs[row["variant"]][1]
        row |= {"unit": "sample", "evals_per_sample": evals, "ms_per_eval": row["ms_median"] / evals}
    per_eval = rows[1]["ms_per_eval"] / rows[0]["ms_per_eval"]
    rows[1]["evals_ratio"] = runs["clmc"][1] / runs["walk_jump"][1]
    rows[1]["per_eval_ratio"] = per_eval
    common.print_rows(rows)
    print(f"evaluations per sample: clmc {runs['clmc'][1]}, walk_jump {runs['walk_jump'][1]} "
          f"(ratio {rows[1]['evals_ratio']:.2f}); cost per evaluation clmc / walk_jump {per_eval:.2f}", flush=True)
    common.append_csv("clmc_cost", rows, args.out)
    return rows


if __name__ == "__main__":
    main()
