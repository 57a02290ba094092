"""One walk step against one bare forward of nu_theta: how much does the sampler add to the net?

A walk step (docs/method.md §3, the case's registry walk, one score per step) is timed as the library's
`Walker(scheme.score, case.walk, gen).run(y, v, k)`, divided by k; the baseline is k bare forwards of the net on the stacked input
(N, M*C, H, W) under the same grad mode. Both are interleaved per repeat (benchmarks/common.py); the
ratio walk/forward is taken per repeat, then its median and IQR. Target: <= 1.10 at batch 1 on CPU
for the quick net and the U2Net at 32x32.

Variants (each with its matching forward as baseline):
  no_grad         library walk under torch.no_grad()            (the library as used by a sampler)
  inference_mode  library walk under torch.inference_mode()
  channels_last   inference_mode, net and forward input in channels-last
  lean            inference_mode, same ABOBA arithmetic with the per-step finiteness check moved
                  to the end of the k steps (isolates the cost of `torch.isfinite(y).all()`)
  integrator      the library walk with a free score (-y): the integrator's own cost per step,
                  reported against the forward
  overhead        the library walk with the MDAE scheme around an identity net: everything a walk
                  step costs except nu_theta (integrator, finiteness check, y/s scaling, reshapes,
                  sigmoid, (nu - y)/sigma^2). On a loaded machine `1 + overhead/forward`
                  (column walk_over_fwd_est) is a steadier estimate of walk/forward than the direct
                  ratio, whose IQR is set by load fluctuations of the forward itself.
  baoab, cheng    the library walk with that integrator, against the library ABOBA walk on the same net
                  (baseline `walk_aboba`): every integrator spends one score per step, so the ratio is the
                  integrator's own arithmetic
  ghmc_mem        the Metropolis-adjusted walk (generalized HMC) on the MEM scheme around the same net, against
                  the ABOBA walk on that MEM (baseline `walk_aboba_mem`): both one forward + one backward per step
  compile         torch.compile(net) (CPU: inductor + a C++ compiler; compile time in `note`)
  cuda_graph      one captured walk step replayed (only when CUDA is present; skipped otherwise)

    python -m benchmarks.walk_step [--quick] [--cases quick,u2net32] [--compile]
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import replace
import time
from typing import Callable

import torch

from replication.core.schemes import MDAE, MEM
from replication.sampling.chains import init_chains
from replication.sampling.integrators import INTEGRATORS, ChainDiverged, Noise, Walk, Walker

from . import common
from .cases import CASES, Case, build, is_image

Tensor = torch.Tensor


def lean_walk(score_fn: Callable[[Tensor], Tensor], y: Tensor, v: Tensor, *, steps: int, walk: Walk,
              generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The library integrator's steps (sampling.integrators), with finiteness checked once after `steps` steps."""
    y, v = y.clone(), v.clone()
    integrator = INTEGRATORS[walk.integrator](walk)
    carry = integrator.start(score_fn, y)
    noise = Noise(y, generator)
    for _ in range(steps):
        carry = integrator.step(score_fn, y, v, carry, noise)
    if not torch.isfinite(y).all():
        raise ChainDiverged(steps)
    return y, v


def cuda_graph_step(scheme: MDAE, y: Tensor, v: Tensor, *, walk: Walk, warmup: int = 3) -> tuple[Callable[[], None], Tensor, Tensor]:
    """Capture one library walk step (score included) as a CUDA graph acting in place on static (y, v).

    Returns (replay, y_static, v_static): each replay() advances the chains by one step. Noise comes from
    the default CUDA generator (graph-safe philox offsets); the finiteness check belongs outside the graph
    (e.g. every 1000 replays), since a host sync inside a captured step is impossible. Integrators that carry
    a score between steps (BAOAB) are not captured.
    """
    if not torch.cuda.is_available() or y.device.type != "cuda":
        raise RuntimeError("cuda_graph_step needs CUDA tensors")
    y_s, v_s = y.clone(), v.clone()
    integrator = INTEGRATORS[walk.integrator](walk)
    if integrator.start(lambda y: None, y_s) is not None:
        raise ValueError(f"cuda_graph_step captures integrators without a carry, not {walk.integrator!r}")

    def step() -> None:
        integrator.step(scheme.score, y_s, v_s, None, noise)

    noise = Noise(y_s, None)  # torch's default CUDA generator

    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream (cuDNN autotuning, allocator) before capture
            for _ in range(warmup):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
    return graph.replay, y_s, v_s


def compiled_scheme(case: Case, net: torch.nn.Module) -> MDAE:
    """The `compile` variant's sampler: the case's scheme around torch.compile of a copy of `net`
    (tests/test_benchmarks.py checks that its walk equals the eager one)."""
    return MDAE(torch.compile(copy.deepcopy(net)), case.sigma, case.M, sigmoid=case.sigmoid)


def _under(mode: Callable[[], contextlib.AbstractContextManager], fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with mode():
            return fn()
    return run


def bench_case(name: str, case: Case, batch: int, *, steps: int, repeats: int, warmup: int, device: torch.device,
               compile_net: bool = False, variants: set[str] | None = None) -> list[dict]:
    scheme = build(case, device)
    net = scheme.net
    gen = torch.Generator(device=device).manual_seed(0)
    y0, v0 = init_chains(batch, case.M, case.shape, case.sigma, torch.Generator().manual_seed(1), device=device)
    x = y0.reshape(batch, case.channels, *case.shape[1:])
    w = case.walk

    def walk(score_fn, y, v):  # the library walk of the case's settings, k steps from (y, v)
        return Walker(score_fn, w, gen).run(y, v, steps)

    nograd, infer = torch.no_grad, torch.inference_mode
    netless = MDAE(torch.nn.Identity(), case.sigma, case.M, sigmoid=case.sigmoid)  # the scheme without its net

    # variant -> (baseline name, baseline fn, variant fn); each pair is timed on its own, interleaved.
    fwd_nograd = _under(nograd, lambda: [net(x) for _ in range(steps)])
    fwd_infer = _under(infer, lambda: [net(x) for _ in range(steps)])
    pairs = {
        "no_grad": ("fwd_no_grad", fwd_nograd, _under(nograd, lambda: walk(scheme.score, y0, v0))),
        "inference_mode": ("fwd_inference_mode", fwd_infer, _under(infer, lambda: walk(scheme.score, y0, v0))),
        "lean": ("fwd_inference_mode", fwd_infer, _under(infer, lambda: lean_walk(scheme.score, y0, v0, steps=steps, walk=w, generator=gen))),
        "integrator": ("fwd_inference_mode", fwd_infer, _under(infer, lambda: walk(lambda y: -y, y0, v0))),
        "overhead": ("fwd_inference_mode", fwd_infer, _under(infer, lambda: walk(netless.score, y0, v0))),
    }
    # The other integrators against the library's ABOBA walk on the same net, each a chain that goes on from call to
    # call as a sampler's does (one Walker: BAOAB and GHMC reuse their carried score instead of evaluating it anew).
    def chain(score_fn, integrator: str, energy_fn=None):
        walker = Walker(score_fn, replace(w, integrator=integrator), gen, energy_fn=energy_fn)
        state = [y0, v0]

        def run():
            state[0], state[1] = walker.run(state[0], state[1], steps)
        return run

    walk_aboba = _under(infer, chain(scheme.score, "aboba"))
    for integrator, cls in INTEGRATORS.items():
        if integrator != "aboba" and not cls.needs_energy:  # MDAE has no energy
            pairs[integrator] = ("walk_aboba", walk_aboba, _under(infer, chain(scheme.score, integrator)))
    # the Metropolis-adjusted walk needs an energy: MEM around the same net, against ABOBA on that MEM
    mem = MEM(net, case.sigma, case.M)
    pairs["ghmc_mem"] = ("walk_aboba_mem", _under(nograd, chain(mem.score, "aboba")),
                         _under(nograd, chain(mem.score, "ghmc", mem.energy_and_score)))
    notes: dict[str, str] = {}
    if is_image(case):
        net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
        scheme_cl = MDAE(net_cl, case.sigma, case.M, sigmoid=case.sigmoid)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        pairs["channels_last"] = ("fwd_channels_last", _under(infer, lambda: [net_cl(x_cl) for _ in range(steps)]),
                                  _under(infer, lambda: walk(scheme_cl.score, y0, v0)))
    if compile_net:
        try:
            scheme_c = compiled_scheme(case, net)
            net_c = scheme_c.net
            t0 = time.perf_counter()
            with infer():
                net_c(x)
                walk(scheme_c.score, y0, v0)
            common.sync(device)
            notes["compile"] = f"torch.compile default mode (inductor); first call incl. compile {time.perf_counter() - t0:.1f} s"
            pairs["compile"] = ("fwd_compile", _under(infer, lambda: [net_c(x) for _ in range(steps)]),
                                _under(infer, lambda: walk(scheme_c.score, y0, v0)))
            # the compiled walk against the *eager* forward: the speed-up a sampler actually gets
            pairs["compile_vs_eager"] = ("fwd_inference_mode", fwd_infer, pairs["compile"][2])
        except Exception as err:  # record the failure rather than abort the run
            msg = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            print(f"torch.compile failed for {name}: {msg}", flush=True)
            notes["compile_failed"] = msg
    if device.type == "cuda":
        replay, _, _ = cuda_graph_step(scheme, y0, v0, walk=replace(w, integrator="aboba"))
        pairs["cuda_graph"] = ("fwd_inference_mode", fwd_infer, lambda: [replay() for _ in range(steps)])

    fields = dict(bench="walk_step", case=name, net=case.net, M=case.M, C=case.shape[0],
                  H=case.shape[1] if is_image(case) else "", batch=batch, steps_per_call=steps)
    rows = []
    for variant, (base, base_fn, fn) in pairs.items():
        if variants is not None and variant not in variants:
            continue
        load, cpu = common.load1(), {}
        times = common.time_interleaved({base: base_fn, variant: fn}, repeats=repeats, warmup=warmup, device=device,
                                        units={base: steps, variant: steps}, cpu_out=cpu)
        (row,) = common.summarize(times, {variant: base}, repeats=repeats, warmup=warmup, load_start=load,
                                  device=device, cpu_times=cpu, **fields)
        row["note"] = notes.get(variant, "")
        if variant == "overhead":  # low-noise estimate of walk/forward: 1 + (everything but the net)/forward
            row["walk_over_fwd_est"] = 1 + row["ratio_median"]
            if "cpu_ratio_median" in row:
                row["walk_over_fwd_est_cpu"] = 1 + row["cpu_ratio_median"]
        rows.append(row)
    if "compile_failed" in notes:
        rows.append(common.environment(device) | fields | {"variant": "compile", "note": notes["compile_failed"]})
    return rows


# (case, batch, k steps per timed call, repeats); the U2Nets keep repeats small on CPU.
PLAN_QUICK = [("quick", 1, 4, 9), ("quick", 16, 2, 7), ("cpu", 1, 4, 9), ("mlp", 1, 50, 9), ("mlp", 256, 50, 9),
              ("u2net28", 1, 2, 5), ("u2net32", 1, 2, 5)]
PLAN_FULL = [("quick", 1, 4, 15), ("quick", 16, 2, 9), ("cpu", 1, 4, 15), ("mlp", 1, 50, 15), ("mlp", 256, 50, 15),
             ("mlp", 4096, 10, 9), ("u2net28", 1, 2, 7), ("u2net28", 8, 1, 5), ("u2net32", 1, 2, 7), ("u2net32", 4, 1, 5)]
QUICK_U2NET_VARIANTS = {"no_grad", "inference_mode", "overhead"}  # --quick: the U2Nets' headline variants only


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--quick", action="store_true", help="batch 1 (and one larger batch for the small nets), fewer variants")
    p.add_argument("--cases", default="", help="comma-separated subset of: " + ",".join(CASES))
    p.add_argument("--compile", default=None, help="cases to try torch.compile on (default: quick,mlp unless --quick)")
    args = common.parse(p, argv)
    device = common.default_device()
    plan = common.pick(PLAN_QUICK if args.quick else PLAN_FULL, args.cases)
    compile_cases = set((args.compile if args.compile is not None else ("" if args.quick else "quick,mlp")).split(","))
    rows = common.record("walk_step", (bench_case(name, CASES[name], batch, steps=steps, repeats=repeats, warmup=1,
                                                  device=device, compile_net=name in compile_cases and batch == 1,
                                                  variants=QUICK_U2NET_VARIANTS if args.quick and name.startswith("u2net")
                                                  else None)
                                       for name, batch, steps, repeats in plan), args.out)
    if device.type != "cuda":
        print("cuda_graph: skipped (no CUDA device)", flush=True)
    return rows


if __name__ == "__main__":
    main()
