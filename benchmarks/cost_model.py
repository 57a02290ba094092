"""FLOPs of the paper's U2Nets and MUVB ResNets and a GPU-hour cost model for training and for 1M-step chains.

Counts (forward, batch 1) come from torch.utils.flop_counter.FlopCounterMode on the meta device (no
memory, no compute; convolutions and matmuls only, 2 FLOPs per multiply-add) for the three paper
configs (docs/official-settings.md §2): MNIST U2Net f=1 28x28 M=16, CIFAR-10 U2Net f=2 32x32 M=8, FFHQ-256 U2Net f=2
256x256 M=8. The backward is counted the same way (fwd+bwd, ~3x forward: the first conv needs no
input gradient). A dispatch-mode log of every aten op of one forward gives the number of kernels and,
per kernel, its FLOPs and bytes touched, for a per-kernel roofline of a batch-1 chain step.

Cost model (H100 SXM5; every assumption is a named constant below and a column of the CSV):
  training  GPU-hours = steps x batch x (fwd+bwd FLOPs per sample) / (peak x efficiency), for strict
            FP32 (CUDA cores) and for TF32 tensor cores (PyTorch 1.9, the paper's version, ran cuDNN
            convs in TF32 by default on Ampere and later). Data parallelism (4 GPUs for CIFAR/FFHQ)
            changes wall-clock, not GPU-hours (communication ignored).
  chain     a 1M-step walk at batch 1 (one MDAE forward per step, docs/method.md §3.2, the jump reuses it).
            At batch 1 the step is latency-bound: each kernel costs at least a floor (launch +
            minimal kernel time), so per step
              graph  (CUDA graph replay)  sum_k max(floor, flops_k/(peak eff), bytes_k/(BW eff))
              eager  (PyTorch eager)      max(graph, n_ops x host overhead per op) + one host sync
                     (walk's per-step `isfinite(y).all()`)
            and, for contrast, the throughput-bound cost of a chain-step when 256 chains share a batch.

Writes results/benchmarks/cost_model.csv and results/benchmarks/cost_model.md.

    python -m benchmarks.cost_model
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from replication.core.nets import ConvSiLU, U2Net
from replication.core.schemes import MDAE, MUVB
from replication.core.vdvae import vae_resnets
from replication.sampling.chains import init_chains
from replication.runs.experiments import ChainSpec
from replication.sampling.integrators import Walk, Walker

from . import common

# ------------------------------------------------------------------------------------------------
# Assumptions (H100 SXM5 80 GB datasheet numbers; efficiencies are judgement calls, stated as such).

PEAK_FP32 = 67e12  # FLOP/s, CUDA cores, dense
PEAK_TF32 = 494.7e12  # FLOP/s, tensor cores, dense (989 is the 2:4-sparse figure)
HBM_BW = 3.35e12  # bytes/s
EFF_TRAIN_FP32 = 0.60  # achieved fraction of FP32 peak for these convs at batch 16-256
EFF_TRAIN_TF32 = 0.35  # achieved fraction of TF32 peak (small 2x2..32x32 maps, cuDNN, no channels-last)
EFF_KERNEL_TF32 = 0.25  # per-kernel fraction of TF32 peak for a batch-1 conv (tiny GEMM "M" = H*W)
EFF_KERNEL_BW = 0.50  # per-kernel fraction of HBM bandwidth for elementwise / copy kernels
KERNEL_FLOOR_S = 2.5e-6  # launch + minimum kernel duration, back to back inside a CUDA graph
HOST_PER_OP_S = 10e-6  # eager host cost per op (Python + nn.Module + dispatcher + cudaLaunchKernel), modern server CPU
SYNC_S = 15e-6  # one device->host sync per walk step (the finiteness check), eager only
CHAIN_STEPS = 1_000_000
THROUGHPUT_BATCH = 256

CONFIGS = [  # docs/official-settings.md §2: name, width factor, C, H, M, optimizer steps, global batch, GPUs, registry id
    dict(dataset="MNIST", f=1, C=1, H=28, M=16, steps=469_000, batch=128, gpus=1, experiment="mnist-mdae-1x16"),
    dict(dataset="CIFAR-10", f=2, C=3, H=32, M=8, steps=195_000, batch=256, gpus=4, experiment="cifar10-mdae-1x8"),
    dict(dataset="FFHQ-256", f=2, C=3, H=256, M=8, steps=1_090_000, batch=16, gpus=4, experiment="ffhq256-mdae-4x8"),
    # MUVB (docs/method.md §2.4): the VDVAE-style ResNets, width 128, zdim 2048; a step is energy forward + score
    # backward (a chain step), and training backpropagates through the score (double backprop)
    dict(dataset="MNIST", scheme="muvb", f=128, C=1, H=28, M=4, zdim=2048, steps=1_875_000, batch=32, gpus=1,
         experiment="mnist-muvb-1x4"),
]

# Aliasing/allocation ops that launch no kernel.
NO_KERNEL = {"aten.empty.memory_format", "aten.empty_strided.default", "aten.lift_fresh.default",
             "aten.detach.default"}
HOST_SYNC = {"aten.is_nonzero.default", "aten._local_scalar_dense.default", "aten.item.default"}


class KernelLog(TorchDispatchMode):
    """Records every aten op that launches a kernel, with its FLOPs (flop_counter formulas) and bytes touched."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, int, int]] = []
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func)
        if name in HOST_SYNC:  # bool(tensor) / .item(): a device->host copy and sync, not a kernel of its own
            self.syncs += 1
            return out
        if func.is_view or name in NO_KERNEL:
            return out
        flops = 0
        if func.overloadpacket in flop_registry:
            flops = int(flop_registry[func.overloadpacket](*args, **kwargs, out_val=out))
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        self.ops.append((name, flops, nbytes))
        return out


def u2net_meta(cfg: dict) -> tuple[torch.nn.Module, torch.Tensor]:
    ch = cfg["M"] * cfg["C"]
    with torch.device("meta"):
        return U2Net(ch, ch, cfg["f"]), torch.empty(1, ch, cfg["H"], cfg["H"])


def muvb_meta(cfg: dict) -> tuple[MUVB, torch.Tensor]:
    """The MUVB scheme of `cfg` on the meta device and a batch-1 input y of shape (1, M, C, H, W)."""
    with torch.device("meta"):
        enc, dec = vae_resnets(cfg["M"] * cfg["C"], cfg["zdim"], cfg["f"], cfg["H"])
        scheme = MUVB(enc, dec, 1.0, cfg["M"])
        return scheme, torch.empty(1, cfg["M"], cfg["C"], cfg["H"], cfg["H"])


class _Score(torch.nn.Module):
    """MUVB's score (forward + backward through the energy, z = mu: no RNG on meta) as a module, for the counters."""

    def __init__(self, scheme: MUVB, train: bool = False):
        super().__init__()
        self.scheme, self.train_mode = scheme, train
        scheme.z_mode = "mean"

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.train_mode:  # the loss's graph: the score with create_graph, then backward into the weights
            return self.scheme.x_hat(y, create_graph=True)
        return self.scheme.score(y)


def count_flops(net: torch.nn.Module, x: torch.Tensor, backward: bool = False) -> int:
    with FlopCounterMode(display=False) as counter:
        out = net(x)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


def host_overhead_per_op(repeats: int = 7, calls: int = 200) -> float:
    """Seconds of host-side (Python + module + dispatcher) work per op of an eager forward, on this CPU.

    Proxy: a U2Net CONV unit (3x3 conv + SiLU, two ops) on a 1x1x1x1 tensor, whose compute is negligible.
    (A meta-device forward is no proxy: meta kernels of conv/upsample run Python shape functions.)
    """
    unit, x = ConvSiLU(1, 1), torch.zeros(1, 1, 1, 1)

    def run():
        with torch.inference_mode():
            for _ in range(calls):
                unit(x)

    times = common.time_interleaved({"unit": run}, repeats=repeats, warmup=1)["unit"]
    return float(pd.Series(times).median()) / (2 * calls)


def walk_overhead_ops(cfg: dict) -> tuple[list[tuple[str, int, int]], int]:
    """Kernels and host syncs of one library walk step other than the net (scaling, score, integrator, check).

    Per-step = log of walk(steps=2) minus log of walk(steps=1) (drops the once-per-call clones).
    """
    netless = MDAE(torch.nn.Identity(), 1.0, cfg["M"], sigmoid=cfg["dataset"] != "MNIST")
    c = ChainSpec()  # the paper's walk (docs/official-settings.md §3) at sigma = 1
    paper_walk = Walk(c.delta_over_sigma, c.gamma, c.u, c.scheme)
    y, v = init_chains(1, cfg["M"], (cfg["C"], cfg["H"], cfg["H"]), 1.0, torch.Generator().manual_seed(0))
    logs = []
    for steps in (1, 2):
        with torch.inference_mode(), KernelLog() as log:
            Walker(netless.score, paper_walk, torch.Generator().manual_seed(0)).run(y, v, steps)
        logs.append(log)
    ops = list((Counter(logs[1].ops) - Counter(logs[0].ops)).elements())
    return ops, logs[1].syncs - logs[0].syncs


def per_step_seconds(ops: list[tuple[str, int, int]]) -> float:
    """Per-kernel roofline with a floor: sum_k max(floor, flops/(TF32 peak eff), bytes/(BW eff))."""
    return sum(max(KERNEL_FLOOR_S, f / (PEAK_TF32 * EFF_KERNEL_TF32), b / (HBM_BW * EFF_KERNEL_BW)) for _, f, b in ops)


HOST_MEASURED = float("nan")  # set by main() from host_overhead_per_op(): context for HOST_PER_OP_S


def model(cfg: dict) -> dict:
    muvb = cfg.get("scheme") == "muvb"
    if muvb:  # "forward" = one chain step's score (energy forward + backward); fwd_bwd = one training sample
        scheme, x = muvb_meta(cfg)
        net, params = _Score(scheme), sum(p.numel() for p in scheme.parameters())
        fwd, fwd_bwd = count_flops(net, x), count_flops(_Score(scheme, train=True), x, backward=True)
    else:
        net, x = u2net_meta(cfg)
        params = sum(p.numel() for p in net.parameters())
        fwd = count_flops(net, x)
        fwd_bwd = count_flops(net, x, backward=True)
    with KernelLog() as log:
        net(x)
    kinds = Counter(name.split(".")[1] for name, _, _ in log.ops)
    walk_ops, syncs = walk_overhead_ops(cfg)
    ops = log.ops + walk_ops
    host = HOST_PER_OP_S
    graph_s = per_step_seconds(ops)
    eager_s = max(graph_s, len(ops) * host) + SYNC_S * syncs
    flops_bound_s = fwd / (PEAK_TF32 * EFF_TRAIN_TF32)
    batch_step_s = max(graph_s, THROUGHPUT_BATCH * fwd / (PEAK_TF32 * EFF_TRAIN_TF32))
    samples = cfg["steps"] * cfg["batch"]
    train_flops = samples * fwd_bwd
    hours = lambda seconds: seconds / 3600  # noqa: E731
    return {
        "experiment": cfg["experiment"], "dataset": cfg["dataset"],
        "net": f"MUVB ResNets w={cfg['f']} z={cfg['zdim']}" if muvb else f"U2Net f={cfg['f']}", "in_out_channels": cfg["M"] * cfg["C"],
        "resolution": cfg["H"], "M": cfg["M"], "params": params,
        "fwd_gflops": fwd / 1e9, "fwd_bwd_over_fwd": fwd_bwd / fwd,
        "kernels_fwd": len(log.ops), "kernels_walk_extra": len(walk_ops), "host_syncs_per_step": syncs,
        "walk_extra_kernels": " ".join(name.split(".")[1] for name, _, _ in walk_ops),
        "kernel_mix": ", ".join(f"{k} {v}" for k, v in kinds.most_common()),
        "train_steps": cfg["steps"], "train_batch": cfg["batch"], "train_gpus": cfg["gpus"],
        "train_pflops": train_flops / 1e15,
        "train_gpu_h_fp32": hours(train_flops / (PEAK_FP32 * EFF_TRAIN_FP32)),
        "train_gpu_h_tf32": hours(train_flops / (PEAK_TF32 * EFF_TRAIN_TF32)),
        "train_wall_h_tf32": hours(train_flops / (PEAK_TF32 * EFF_TRAIN_TF32)) / cfg["gpus"],
        "chain_step_ms_compute_bound": flops_bound_s * 1e3,
        "chain_step_ms_graph": graph_s * 1e3,
        "chain_step_ms_eager": eager_s * 1e3,
        "host_us_per_op_assumed": host * 1e6,
        "host_us_per_op_measured_this_cpu": HOST_MEASURED * 1e6,
        "chain_1M_h_compute_bound": hours(CHAIN_STEPS * flops_bound_s),
        "chain_1M_h_graph": hours(CHAIN_STEPS * graph_s),
        "chain_1M_h_eager": hours(CHAIN_STEPS * eager_s),
        "chain_1M_h_fp32_cuda_cores": hours(CHAIN_STEPS * max(graph_s, fwd / (PEAK_FP32 * EFF_TRAIN_FP32))),
        f"chain_1M_h_per_chain_at_batch{THROUGHPUT_BATCH}": hours(CHAIN_STEPS * batch_step_s) / THROUGHPUT_BATCH,
    }


ASSUMPTIONS = [
    ("GPU", "H100 SXM5 80 GB (datasheet: FP32 67 TFLOP/s, TF32 tensor 494.7 TFLOP/s dense, HBM3 3.35 TB/s)"),
    ("FLOPs", "FlopCounterMode (convolutions only, 2 FLOPs per multiply-add; bias, SiLU, pooling, upsampling, "
              "cat and the walk's elementwise ops carry no FLOPs but count as kernels with their bytes)"),
    ("training FLOPs", "steps x global batch x counted fwd+bwd FLOPs per sample (~3x forward); Adam update and "
                       "data loading ignored (Adam: ~10 FLOPs/param/step, < 0.1%)"),
    ("training efficiency", f"{EFF_TRAIN_FP32:.0%} of FP32 peak (strict fp32) or {EFF_TRAIN_TF32:.0%} of TF32 peak "
                            "(TF32 convs: PyTorch 1.9's cuDNN default on Ampere+)"),
    ("chain", f"{CHAIN_STEPS:,} walk steps, batch 1, one forward per step (MDAE; the jump reuses the step's output); "
              "for MUVB one forward and one backward per step, its `fwd_gflops` is that step's and its training "
              "FLOPs the double-backprop step's (docs/method.md §2.4)"),
    ("chain, compute-bound", f"forward FLOPs / ({EFF_TRAIN_TF32:.0%} of TF32 peak): what batch 1 would cost if it "
                             "were not latency-bound (it is)"),
    ("chain, CUDA graph", f"per kernel max({KERNEL_FLOOR_S * 1e6:.1f} us floor, flops/({EFF_KERNEL_TF32:.0%} TF32 peak), "
                          f"bytes/({EFF_KERNEL_BW:.0%} HBM BW)), summed over the forward's and the walk's kernels"),
    ("chain, eager", f"max(graph time, ops x {HOST_PER_OP_S * 1e6:.0f} us host cost per op) + {SYNC_S * 1e6:.0f} us per "
                     "host sync (the walk's per-step finiteness check); 10 us/op is typical of eager PyTorch on a server "
                     "CPU (Python + nn.Module + dispatcher + launch). For scale, this benchmark CPU spends "
                     "`host_us_per_op_measured_this_cpu` per op of a U2Net CONV unit on a 1x1 tensor (CPU kernels "
                     "included, shared and loaded machine)"),
    ("chain, FP32 cores", f"max(graph time, forward FLOPs / ({EFF_TRAIN_FP32:.0%} of FP32 peak))"),
    (f"chains at batch {THROUGHPUT_BATCH}", f"per chain: max(graph time, {THROUGHPUT_BATCH} x forward FLOPs / "
                                            f"({EFF_TRAIN_TF32:.0%} TF32 peak)) per step, divided by {THROUGHPUT_BATCH}"),
]


def to_markdown(df: pd.DataFrame, env: dict) -> str:
    train = df[["experiment", "dataset", "net", "resolution", "M", "params", "fwd_gflops", "fwd_bwd_over_fwd", "train_steps",
                "train_batch", "train_pflops", "train_gpu_h_fp32", "train_gpu_h_tf32", "train_gpus", "train_wall_h_tf32"]]
    chain = df[["experiment", "kernels_fwd", "kernels_walk_extra", "chain_step_ms_compute_bound", "chain_step_ms_graph",
                "chain_step_ms_eager", "chain_1M_h_graph", "chain_1M_h_eager", "chain_1M_h_fp32_cuda_cores",
                f"chain_1M_h_per_chain_at_batch{THROUGHPUT_BATCH}"]]
    fmt = dict(floatfmt=".3g", intfmt=",")
    lines = [
        "# Cost model: the paper's U2Nets on an H100",
        "",
        f"Generated by `python -m benchmarks.cost_model` (commit {env['git_sha']}, torch {env['torch']}). FLOPs are counted;"
        " times are modelled from the assumptions below, not measured on a GPU.",
        "",
        "## Training (paper schedule, docs/official-settings.md §2)",
        "",
        train.to_markdown(index=False, **fmt),
        "",
        "## One chain of 1M walk steps at batch 1",
        "",
        "A batch-1 step is latency-bound: a few hundred small kernels, most far shorter than their launch. "
        "`compute_bound` is what the FLOPs alone would cost; `graph` and `eager` are the latency-based estimates.",
        "",
        chain.to_markdown(index=False, **fmt),
        "",
        "## Assumptions",
        "",
        *[f"- **{k}**: {v}" for k, v in ASSUMPTIONS],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = common.parse(common.parser(__doc__), argv)
    env = common.environment("cpu")
    t0 = time.perf_counter()
    global HOST_MEASURED
    HOST_MEASURED = host_overhead_per_op()
    df = pd.DataFrame([model(cfg) for cfg in CONFIGS])
    df.insert(0, "time_utc", pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
    for k in ("git_sha", "torch", "cpu"):
        df[k] = env[k]
    df["load1"] = common.load1()
    out = Path(args.out or common.RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "cost_model.csv", index=False, float_format="%.6g")  # a model, not a measurement: overwritten
    (out / "cost_model.md").write_text(to_markdown(df, env))
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(df.drop(columns=["kernel_mix", "walk_extra_kernels", "time_utc", "cpu"]).T.to_string())
    print(f"wrote {out / 'cost_model.csv'} and {out / 'cost_model.md'} in {time.perf_counter() - t0:.1f} s")
    return df


if __name__ == "__main__":
    main()
