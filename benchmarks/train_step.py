"""One training step of the library against a bare forward+backward of the net on the same batch.

The training step is the body of `replication.train.training.train`: the step's batch and noise generator
from `global_batch` (a fresh seeded epoch permutation per step), y = mnm.measure(x, g), the MDAE loss
(docs/method.md §2.1), zero_grad, backward, Adam step (docs/official-settings.md §2) and
`loss.item()`. The baseline is `net(y_stacked).square().mean().backward()` on a fixed batch of the
same shape. Each variant is interleaved with its own baseline (benchmarks/common.py); ratios are per
repeat.

Variants (all against fwd_bwd):
  train_step          the library step (Adam with PyTorch's default implementation for the device)
  train_step_foreach  the same with Adam(foreach=True)
  train_step_fused    the same with Adam(fused=True) (where the device supports it)
  loss_fwd_bwd        MDAE.loss forward + backward on a fixed (x, y): the scheme's wrapper cost
  batching            global_batch + mnm.measure alone (data order, gather, noise)
  adam_step           opt.step() alone (default implementation)

The training set is a stand-in of the real size (60,000 / 50,000 images) built by expanding one random
image, so indexing costs what it costs on real data without holding it in memory.

    python -m benchmarks.train_step [--quick] [--cases quick,u2net28]
"""

from __future__ import annotations

from typing import Callable

import torch

from replication.train.spec import TrainSpec
from replication.train.training import _lr_at, adam, global_batch

from . import common
from .cases import CASES, Case, build

# (case, batch, training-set size, hflip, repeats); batches are CPU-sized, not the paper's (128/256/16).
PLAN_QUICK = [("quick", 8, 60_000, False, 7), ("u2net28", 2, 60_000, False, 5)]
PLAN_FULL = [("quick", 32, 60_000, False, 9), ("u2net28", 4, 60_000, False, 7), ("u2net32", 2, 50_000, True, 5)]


def make_train_step(scheme, data: torch.Tensor, cfg: TrainSpec, opt: torch.optim.Optimizer) -> Callable[[], float]:
    """The loop body of replication.train.training.train (single process), as a callable advancing one step."""
    state = {"step": 0}

    def step() -> float:
        x, g = global_batch(data, cfg, state["step"])
        y = scheme.mnm.measure(x, g)
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, state["step"])
        loss = scheme(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        return loss.item()

    return step


def bench_case(name: str, case: Case, batch: int, n_data: int, hflip: bool, *, repeats: int, warmup: int,
               device: torch.device) -> list[dict]:
    scheme = build(case, device).train()
    net = scheme.net
    data = torch.rand((1, *case.shape), generator=torch.Generator().manual_seed(0)).expand(n_data, *case.shape)
    data = data.to(device)
    cfg = TrainSpec(steps=10**9, batch_size=batch, lr=1e-4, seed=0, hflip=hflip)
    x, g = global_batch(data, cfg, 0)
    y = scheme.mnm.measure(x, g)
    y_stacked = y.reshape(batch, case.channels, *case.shape[1:])

    def fwd_bwd() -> None:
        net.zero_grad(set_to_none=True)
        net(y_stacked).square().mean().backward()

    def loss_fwd_bwd() -> None:
        scheme.zero_grad(set_to_none=True)
        scheme.loss(x, y=y).backward()

    def optimizer(**kw) -> torch.optim.Optimizer:  # the training's Adam (training.adam), implementation per kw
        return adam(scheme.parameters(), cfg, **kw)

    opt = optimizer()
    variants: dict[str, Callable[[], object]] = {
        "train_step": make_train_step(scheme, data, cfg, opt),
        "train_step_foreach": make_train_step(scheme, data, cfg, optimizer(foreach=True)),
        "loss_fwd_bwd": loss_fwd_bwd,
        "batching": lambda: scheme.mnm.measure(*global_batch(data, cfg, 7)),
        "adam_step": opt.step,  # grads are left in place by the interleaved fwd_bwd
    }
    notes = {}
    try:
        fused = optimizer(fused=True)
        variants["train_step_fused"] = make_train_step(scheme, data, cfg, fused)
    except (RuntimeError, ValueError) as err:
        notes["train_step_fused"] = f"Adam(fused=True) unavailable: {err}"
    fields = dict(bench="train_step", case=name, net=case.net, M=case.M, C=case.shape[0], H=case.shape[1], batch=batch,
                  steps_per_call=1, n_data=n_data, hflip=hflip)
    rows = []
    for variant, fn in variants.items():
        load, cpu = common.load1(), {}
        times = common.time_interleaved({"fwd_bwd": fwd_bwd, variant: fn}, repeats=repeats, warmup=warmup, device=device,
                                        cpu_out=cpu)
        (row,) = common.summarize(times, {variant: "fwd_bwd"}, repeats=repeats, warmup=warmup, load_start=load,
                                  device=device, cpu_times=cpu, **fields)
        row["note"] = notes.get(variant, "")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cases", default="", help="comma-separated subset of: quick,u2net28,u2net32")
    args = common.parse(p, argv)
    device = common.default_device()
    plan = common.pick(PLAN_QUICK if args.quick else PLAN_FULL, args.cases)
    return common.record("train_step", (bench_case(name, CASES[name], batch, n_data, hflip, repeats=repeats, warmup=1,
                                                   device=device)
                                        for name, batch, n_data, hflip, repeats in plan), args.out)


if __name__ == "__main__":
    main()
