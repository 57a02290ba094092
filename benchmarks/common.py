"""Timing harness shared by the benchmarks (nanoGPT `bench.py` style: burn-in, timed loop, synchronize).

Every benchmark times *pairs* of callables (a variant and its baseline, e.g. one walk step and one bare
forward) **interleaved** within each repeat, so that a load spike on a shared machine hits both
members of a pair; ratios are computed per repeat and summarised by their median and inter-quartile
range (IQR). Warm-up calls are never timed. On CUDA every timed call is bracketed by
`torch.cuda.synchronize()`.

Rows are appended to `results/benchmarks/<name>.csv` (pandas; columns are the union over runs) with the
hardware, library versions, git commit and the 1-minute load average before and after the measurement,
so timings are never compared across machines or loads by accident (filter on `device_name`/`cpu`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import os
import platform
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from replication.runs.provenance import git

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "benchmarks"
FIGURES = ROOT / "results" / "figures"

# Columns every row carries, in this order (benchmarks may add more; CSVs keep the union).
COLUMNS = (
    "time_utc", "bench", "case", "variant", "net", "M", "C", "H", "batch", "steps_per_call",
    "ms_median", "ms_q1", "ms_q3", "ms_iqr", "baseline", "baseline_ms_median", "ratio_median", "ratio_q1",
    "ratio_q3", "cpu_ms_median", "cpu_ms_q1", "cpu_ms_q3", "cpu_baseline_ms_median", "cpu_ratio_median",
    "cpu_ratio_q1", "cpu_ratio_q3", "repeats", "warmup", "load1_start", "load1_end", "device", "device_name", "cpu", "threads",
    "torch", "python", "git_sha", "git_dirty", "note",
)


# ------------------------------------------------------------------------------------------------
# Environment.


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def _git() -> tuple[str, bool]:
    sha = git("rev-parse", "HEAD", cwd=ROOT)
    if sha is None:
        return "unknown", False
    dirty = git("status", "--porcelain", "--untracked-files=no", "replication", cwd=ROOT)
    return sha.strip(), bool((dirty or "").strip())


def environment(device: str | torch.device = "cpu") -> dict:
    """Hardware, versions and commit of this measurement (git_dirty: uncommitted edits in replication/)."""
    device = torch.device(device)
    sha, dirty = _git()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {"device": device.type, "device_name": name, "cpu": f"{_cpu_name()} x{os.cpu_count()}",
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
            "git_sha": sha[:12], "git_dirty": dirty}


def load1() -> float:
    """The 1-minute load average (the machine is shared: read the timings against it)."""
    return round(os.getloadavg()[0], 2)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------
# Timing.


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1,
                     device: str | torch.device = "cpu", units: Mapping[str, int] | None = None,
                     cpu_out: dict | None = None) -> dict[str, np.ndarray]:
    """Wall-clock seconds per unit of work for each callable, interleaved: repeat r runs every fn once, rotated.

    `units[name]` divides the time of one call (e.g. a call that runs k walk steps counts k units).
    Returns {name: array of `repeats` timings}. The `warmup` rounds are run and discarded. If `cpu_out` is
    a dict it receives the same for process CPU time (time.process_time): on a shared CPU with one intra-op
    thread it excludes the time the process waits for a core, so it is far less sensitive to other users'
    load than wall time (it still includes their cache and memory-bandwidth interference).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(fns)
    units = {n: 1 for n in names} | dict(units or {})
    out = {n: np.empty(repeats) for n in names}
    cpu = {n: np.empty(repeats) for n in names}
    for r in range(-warmup, repeats):
        shift = r % len(names)
        for n in names[shift:] + names[:shift]:  # rotate so no fn always follows the same one
            sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            fns[n]()
            sync(device)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if r >= 0:
                out[n][r], cpu[n][r] = dt / units[n], dc / units[n]
    if cpu_out is not None:
        cpu_out.update(cpu)
    return out


def quartiles(x: Sequence[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(x, dtype=float), [25, 50, 75])
    return float(q1), float(med), float(q3)


def summarize(times: Mapping[str, np.ndarray], pairs: Mapping[str, str | None], *, repeats: int, warmup: int,
              load_start: float, device: str | torch.device, cpu_times: Mapping[str, np.ndarray] | None = None,
              **fields) -> list[dict]:
    """One row per variant: its ms (median, quartiles) and, when paired, the per-repeat ratio to its baseline.

    With `cpu_times` (CPU devices only) the same statistics of process CPU time go to the cpu_* columns.
    """
    rows = []
    env = environment(device)
    end = load1()
    use_cpu = cpu_times is not None and torch.device(device).type == "cpu"
    for name, base in pairs.items():
        q1, med, q3 = quartiles(times[name] * 1e3)
        row = {"variant": name, "ms_median": med, "ms_q1": q1, "ms_q3": q3, "ms_iqr": q3 - q1, "baseline": base or "",
               "repeats": repeats, "warmup": warmup, "load1_start": load_start, "load1_end": end}
        if base:
            r1, rmed, r3 = quartiles(times[name] / times[base])
            row |= {"baseline_ms_median": float(np.median(times[base]) * 1e3), "ratio_median": rmed, "ratio_q1": r1,
                    "ratio_q3": r3}
        if use_cpu:
            c1, cmed, c3 = quartiles(cpu_times[name] * 1e3)
            row |= {"cpu_ms_median": cmed, "cpu_ms_q1": c1, "cpu_ms_q3": c3}
            if base:
                r1, rmed, r3 = quartiles(cpu_times[name] / np.maximum(cpu_times[base], 1e-9))
                row |= {"cpu_baseline_ms_median": float(np.median(cpu_times[base]) * 1e3), "cpu_ratio_median": rmed,
                        "cpu_ratio_q1": r1, "cpu_ratio_q3": r3}
        rows.append({"time_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")} | fields | row | env)
    return rows


def append_csv(name: str, rows: Sequence[Mapping], out_dir: str | Path | None = None) -> Path:
    """Append rows to <out_dir>/<name>.csv (default results/benchmarks/), keeping the union of columns."""
    path = Path(out_dir or RESULTS) / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame(list(rows))
    if path.exists() and path.stat().st_size:
        new = pd.concat([pd.read_csv(path), new], ignore_index=True)
    cols = [c for c in COLUMNS if c in new.columns] + [c for c in new.columns if c not in COLUMNS]
    tmp = path.with_suffix(".csv.tmp")
    new[cols].to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)
    return path


def print_rows(rows: Sequence[Mapping]) -> None:
    """One line per row: ms per unit, and the ratio to the baseline (the nanoGPT bench.py print)."""
    for r in rows:
        head = (f"{r.get('bench', '')}/{r.get('case', '')} M={r.get('M', '')} H={r.get('H', '')} b={r.get('batch', '')} "
                f"{r['variant']:>18}:")
        if "ms_median" not in r:
            print(f"{head} {r.get('note', '')}", flush=True)
            continue
        ratio = ""
        if r.get("baseline"):
            ratio = (f" vs {r['baseline']} {r['baseline_ms_median']:.3f} ms: ratio {r['ratio_median']:.3f} "
                     f"[{r['ratio_q1']:.3f}, {r['ratio_q3']:.3f}]")
            if "cpu_ratio_median" in r:
                ratio += f" (cpu-time ratio {r['cpu_ratio_median']:.3f})"
        print(f"{head} {r['ms_median']:9.3f} ms (IQR {r['ms_iqr']:.3f}){ratio}  load {r['load1_start']}->{r['load1_end']}",
              flush=True)


def set_threads(threads: int | None) -> None:
    """Pin intra-op threads (default 1: on a shared 2-core box, 2 OpenMP threads stall on each other's load)."""
    torch.set_num_threads(threads or 1)


# ------------------------------------------------------------------------------------------------
# Command line: what every benchmark's main shares.


def parser(doc: str, whole_doc: bool = False) -> argparse.ArgumentParser:
    """A benchmark's argument parser with --threads and --out; the caller adds its own options. Described by the first
    line of `doc` (the module docstring), or all of it, as written, when `whole_doc`."""
    p = argparse.ArgumentParser(description=doc if whole_doc else doc.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter if whole_doc else argparse.HelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--out", default=None, help="output folder (default results/benchmarks)")
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The parsed arguments, with the intra-op threads pinned to --threads."""
    args = p.parse_args(argv)
    set_threads(args.threads)
    return args


def pick(plan: Sequence[tuple], cases: str) -> list[tuple]:
    """The rows of a plan whose case (first field) is one of the comma-separated `cases`; all of them when empty."""
    return [row for row in plan if row[0] in cases.split(",")] if cases else list(plan)


def record(name: str, cases: Iterable[list[dict]], out_dir: str | Path | None = None) -> list[dict]:
    """Print each case's rows and append them to <out_dir>/<name>.csv as the case finishes (a later crash keeps the
    cases done); `cases` yields one list of rows per case (a generator: the benchmark runs as it is consumed).
    Returns all rows."""
    rows: list[dict] = []
    for r in cases:
        print_rows(r)
        append_csv(name, r, out_dir)
        rows += r
    return rows
