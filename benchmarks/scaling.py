"""Walk-step cost against the number of measurements M and against the image resolution.

Two sweeps, batch 1, library walk under torch.inference_mode() interleaved with the bare forward
(every point of a sweep in one interleaved loop):
  M          in {1, 2, 4, 8, 16} at 28x28 (C = 1): the quick net SmallUNet(M, M, w=32) and the MNIST
             U2Net(M, M, f=1)
  resolution in {28, 32, 64, 256} at fixed M = 16 (C = 1): the same two nets (the U2Net at 256 only
             without --quick)
Each point also carries the forward FLOPs from torch.utils.flop_counter on the meta device. M enters the
nets only through their input/output width M*C: in the U2Net that is the first conv of enc1 (M*C -> 64f),
the five side convs (-> M*C) and the 1x1 fuse (5*M*C -> M*C); everything else is independent of M, so
the walk step is nearly flat in M while the state it moves grows linearly.

Writes results/benchmarks/scaling.csv and results/figures/benchmark_scaling.png.

    python -m benchmarks.scaling [--quick]
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from replication.sampling.chains import init_chains
from replication.sampling.integrators import Walker

from . import common
from .cases import CASES, Case, build

NETS = {"quick": CASES["quick"], "u2net28": CASES["u2net28"]}  # both C = 1, sigma = 1, no sigmoid
LABELS = {"quick": "SmallUNet (quick net)", "u2net28": "U2Net f=1 (MNIST)"}


def forward_flops(case: Case, batch: int = 1) -> int:
    """FLOPs of one forward of the case's net (FlopCounterMode, meta device: no memory, no compute)."""
    with torch.device("meta"):
        net = build(case, "meta").net
        x = torch.empty(batch, case.channels, *case.shape[1:])
    with FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops()


def sweep(name: str, cases: list[Case], axis: str, *, steps: list[int], repeats: int, device: torch.device) -> list[dict]:
    """Walk step and bare forward at every point of a sweep, all interleaved in one timing loop.

    Interleaving the whole sweep means a load change on the shared machine hits every point alike, so
    the *shape* of the curve survives even when absolute times drift.
    """
    fns, units, meta = {}, {}, {}
    for case, k in zip(cases, steps):
        scheme = build(case, device)
        y0, v0 = init_chains(1, case.M, case.shape, case.sigma, torch.Generator().manual_seed(1), device=device)
        x = y0.reshape(1, case.channels, *case.shape[1:])
        gen = torch.Generator(device=device).manual_seed(0)
        key = f"M{case.M}_H{case.shape[1]}"

        def fwd(net=scheme.net, x=x, k=k):
            with torch.inference_mode():
                for _ in range(k):
                    net(x)

        def step(scheme=scheme, y0=y0, v0=v0, gen=gen, case=case, k=k):
            with torch.inference_mode():
                Walker(scheme.score, case.walk, gen).run(y0, v0, k)

        fns[f"fwd_{key}"], fns[f"walk_{key}"] = fwd, step
        units[f"fwd_{key}"] = units[f"walk_{key}"] = k
        meta[key] = (case, k, y0.numel())
    load, cpu = common.load1(), {}
    times = common.time_interleaved(fns, repeats=repeats, warmup=1, device=device, units=units, cpu_out=cpu)
    rows = []
    for key, (case, k, numel) in meta.items():
        (row,) = common.summarize({"walk_step": times[f"walk_{key}"], "fwd": times[f"fwd_{key}"]}, {"walk_step": "fwd"},
                                  repeats=repeats, warmup=1, load_start=load, device=device,
                                  cpu_times={"walk_step": cpu[f"walk_{key}"], "fwd": cpu[f"fwd_{key}"]},
                                  bench="scaling", case=name, net=case.net, M=case.M, C=case.shape[0], H=case.shape[1],
                                  batch=1, steps_per_call=k)
        rows.append(row | {"axis": axis, "flops_fwd": forward_flops(case), "state_numel": numel})
    return rows


def plot(df, path: Path) -> Path:
    """Two log-log panels (cost vs M, cost vs resolution): wall median with IQR, CPU time, FLOPs-proportional."""
    import matplotlib  # heavy: matplotlib and seaborn (seconds), only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: as above; after use("Agg")
    import seaborn as sns  # heavy: as above
    from matplotlib.lines import Line2D  # heavy: as above

    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    colors = dict(zip(df["case"].unique(), sns.color_palette()))
    for ax, axis, col, xlabel in ((axes[0], "M", "M", "M (measurements), 28x28"),
                                  (axes[1], "resolution", "H", "resolution H = W, M = 16")):
        part = df[df["axis"] == axis]
        for name, g in part.groupby("case", sort=False):
            g, color = g.sort_values(col), colors[name]
            ax.errorbar(g[col], g["ms_median"], yerr=[g["ms_median"] - g["ms_q1"], g["ms_q3"] - g["ms_median"]],
                        marker="o", color=color, capsize=2)
            if "cpu_ms_median" in g and g["cpu_ms_median"].notna().all():
                ax.plot(g[col], g["cpu_ms_median"], marker="o", mfc="none", ls=":", color=color)
            ref = g.iloc[0]  # FLOPs-proportional prediction anchored at the first point
            ax.plot(g[col], ref["ms_median"] * g["flops_fwd"] / ref["flops_fwd"], ls="--", color=color, alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms per walk step (batch 1)")
        ax.set_xticks(sorted(part[col].unique()))
        ax.minorticks_off()
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    handles = [Line2D([], [], color=c, marker="o", label=LABELS.get(n, n)) for n, c in colors.items()]
    handles += [Line2D([], [], color="gray", marker="o", label="wall time (median, IQR)"),
                Line2D([], [], color="gray", marker="o", mfc="none", ls=":", label="process CPU time"),
                Line2D([], [], color="gray", ls="--", label="FLOPs-proportional")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7, frameon=False)
    last = df.iloc[-1]
    fig.suptitle(f"Walk-step cost: {last['device_name']}, {int(last['threads'])} thread, load ~{df['load1_start'].median():.1f}",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--figure", default=str(common.FIGURES / "benchmark_scaling.png"))
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from the latest rows of scaling.csv")
    args = common.parse(p, argv)
    if args.plot_only:
        df = pd.read_csv(Path(args.out or common.RESULTS) / "scaling.csv")
        df = df.drop_duplicates(["case", "axis", "M", "H"], keep="last")
        print(f"wrote {plot(df, Path(args.figure))}")
        return df.to_dict("records")
    device = common.default_device()
    repeats = 5
    rows = []
    for name, base in NETS.items():
        k = 4 if name == "quick" else 2
        Ms = (1, 2, 4, 8, 16)
        rows += sweep(name, [base.with_(M=M) for M in Ms], "M", steps=[k] * len(Ms), repeats=repeats, device=device)
        common.print_rows(rows[-len(Ms):])
        Hs = (28, 32, 64) if name == "u2net28" and args.quick else (28, 32, 64, 256)  # U2Net at 256: ~10 s/forward
        rows += sweep(name, [base.with_(shape=(1, H, H)) for H in Hs], "resolution",
                      steps=[1 if H == 256 else k for H in Hs], repeats=repeats, device=device)
        common.print_rows(rows[-len(Hs):])
    path = common.append_csv("scaling", rows, args.out)
    print(f"wrote {path} and {plot(pd.DataFrame(rows), Path(args.figure))}")
    return rows


if __name__ == "__main__":
    main()
