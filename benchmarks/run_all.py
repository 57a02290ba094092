"""Run every benchmark: cost model, walk step, MUVB walk step, train step, scaling (+ figure).

    python -m benchmarks.run_all --quick     # a few minutes on a 2-core CPU
    python -m benchmarks.run_all             # the full plan (~20-30 min on a loaded 2-core CPU)

Rows are appended to results/benchmarks/*.csv (cost_model.csv/.md are rewritten); --out redirects them.
"""

from __future__ import annotations

import time

from . import common, cost_model, muvb_step, scaling, train_step, walk_step


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="cost_model,walk_step,muvb_step,train_step,scaling")
    args = p.parse_args(argv)  # not common.parse: each benchmark pins its own threads (the line below prints both)
    common_args = ["--threads", str(args.threads)] + (["--out", args.out] if args.out else [])
    quick = ["--quick"] if args.quick else []
    figure = ["--figure", f"{args.out}/benchmark_scaling.png"] if args.out else []
    env = common.environment(common.default_device())
    print(f"benchmarks on {env['device_name']} ({env['cpu']}), {env['threads']} -> {args.threads} thread(s), "
          f"torch {env['torch']}, commit {env['git_sha']}, load {common.load1()}", flush=True)
    runs = {"cost_model": lambda: cost_model.main(common_args), "walk_step": lambda: walk_step.main(common_args + quick),
            "muvb_step": lambda: muvb_step.main(common_args + (["--cases", "cpu"] if args.quick else [])),
            "train_step": lambda: train_step.main(common_args + quick), "scaling": lambda: scaling.main(common_args + quick + figure)}
    for name in args.only.split(","):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        runs[name]()
        print(f"== {name} done in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
