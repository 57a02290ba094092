"""CPU throughput levers for the CPU profiles' nets: bf16 autocast, channels-last, torch.compile, threads.

For the `cpu` and `quick` cases (SmallUNet on Fashion-MNIST, M = 16), times against fp32 eager (the
reference path), interleaved in one run (benchmarks/common.py):

  train step  MDAE loss forward + backward + fused Adam on a batch of `--batch` (the training loop body)
  walk step   one ABOBA step of one chain (batch 1): one score evaluation (the chain's body)

Variants: `fp32` (reference), `bf16` (torch.autocast(cpu, bfloat16)), `cl` (channels_last memory format),
`bf16+cl`, `compile` (torch.compile of the net, fp32), `compile+bf16`. Every variant also reports its
numerical distance to the reference on the same inputs: the relative loss difference after one step
(train) and the max |score difference| (walk), so a faster variant is adopted only within a stated
tolerance. Thread counts are separate runs (`--threads 1` and `--threads 2`), recorded in the CSV.

    python -m benchmarks.cpu_speed [--threads 1] [--cases cpu] [--repeats 7]
"""

from __future__ import annotations

import contextlib
import copy

import torch

from replication.train.spec import TrainSpec
from replication.train.training import global_batch
from replication.sampling.integrators import Walker

from . import common
from .cases import CASES, build

VARIANTS = ("fp32", "bf16", "cl", "bf16+cl", "compile", "compile+bf16")


def _variant(scheme, name: str):
    """A copy of `scheme` set up for the variant, and the autocast context it runs under."""
    s = copy.deepcopy(scheme)
    if "cl" in name.split("+"):
        s = s.to(memory_format=torch.channels_last)
    if name.startswith("compile"):
        s.net = torch.compile(s.net, dynamic=False)
    bf16 = "bf16" in name
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    return s, ctx


def bench_train(case_name: str, batch: int, repeats: int, warmup: int, variants) -> list[dict]:
    case = CASES[case_name]
    base = build(case).train()
    data = torch.rand((2048, *case.shape), generator=torch.Generator().manual_seed(0))
    cfg = TrainSpec(steps=10**9, batch_size=batch, lr=1e-4, seed=0)
    x, g = global_batch(data, cfg, 0)
    y = base.mnm.measure(x, g)
    fns, losses = {}, {}
    for name in variants:
        s, ctx = _variant(base, name)
        opt = torch.optim.Adam(s.parameters(), lr=1e-4, fused=True)

        def step(s=s, ctx=ctx, opt=opt, name=name):
            with ctx():
                loss = s(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            losses[name] = float(loss)
            # no opt.step(): every repeat times the same weights, so the loss comparison is exact
        fns[name] = step
    load = common.load1()
    cpu: dict = {}
    times = common.time_interleaved(fns, repeats=repeats, warmup=warmup, cpu_out=cpu)
    rows = common.summarize(times, {n: (None if n == "fp32" else "fp32") for n in variants}, repeats=repeats,
                            warmup=warmup, load_start=load, device="cpu", cpu_times=cpu, bench="cpu_speed_train",
                            case=case_name, net=case.net, M=case.M, C=case.shape[0], H=case.shape[1], batch=batch,
                            steps_per_call=1)
    for r in rows:
        r["note"] = f"rel loss diff vs fp32 {abs(losses[r['variant']] - losses['fp32']) / abs(losses['fp32']):.2e}"
    return rows


def bench_walk(case_name: str, steps: int, repeats: int, warmup: int, variants) -> list[dict]:
    case = CASES[case_name]
    base = build(case).eval()
    gen = torch.Generator().manual_seed(0)
    y0 = torch.rand((1, 1, *case.shape), generator=gen).expand(1, case.M, *case.shape) + case.sigma * torch.randn(
        (1, case.M, *case.shape), generator=gen)
    v0 = torch.zeros_like(y0)
    fns, diffs = {}, {}
    with torch.inference_mode():
        ref = base.score(y0)
    for name in variants:
        s, ctx = _variant(base, name)

        def score(y, s=s, ctx=ctx):
            with ctx():
                return s.score(y).float()

        with torch.inference_mode():
            diffs[name] = float((score(y0) - ref).abs().max())

        def run(score=score):
            with torch.inference_mode():
                Walker(score, case.walk, torch.Generator().manual_seed(1)).run(y0, v0, steps)
        fns[name] = run
    load = common.load1()
    cpu: dict = {}
    times = common.time_interleaved(fns, repeats=repeats, warmup=warmup, units={n: steps for n in fns}, cpu_out=cpu)
    rows = common.summarize(times, {n: (None if n == "fp32" else "fp32") for n in variants}, repeats=repeats,
                            warmup=warmup, load_start=load, device="cpu", cpu_times=cpu, bench="cpu_speed_walk",
                            case=case_name, net=case.net, M=case.M, C=case.shape[0], H=case.shape[1], batch=1,
                            steps_per_call=steps)
    for r in rows:
        r["note"] = f"max |score diff| vs fp32 {diffs[r['variant']]:.2e}"
    return rows


def main(argv=None) -> None:
    p = common.parser(__doc__)
    p.add_argument("--cases", default="cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--walk-steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--variants", default=",".join(VARIANTS))
    a = common.parse(p, argv)
    variants = a.variants.split(",")
    rows = []
    for case in a.cases.split(","):
        rows += bench_train(case, a.batch, a.repeats, 2, variants)
        rows += bench_walk(case, a.walk_steps, a.repeats, 2, variants)
    common.print_rows(rows)
    for r in rows:
        print(f"  {r['bench']}/{r['variant']}: {r['note']}")
    common.append_csv("cpu_speed", rows, a.out)


if __name__ == "__main__":
    main()
