"""The toy-claims study's command line and outputs: records, tables and figures of each sweep.

    python -m replication.claims toy [--quick] [--sweeps large_m,smoothing,stability] [--out results]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.mnm import GaussianMixture
from ..data.storage import atomic_write_bytes, atomic_write_json
from ..runs.folders import REPO_ROOT
from ..runs.provenance import provenance
from .chains import ring_prior
from .clmc import sweep_clmc
from .figures import figure_clmc, figure_integrators, figure_large_m, figure_smoothing, figure_stability
from .integrators import sweep_integrators
from .profiles import CLAIMS, FULL, MIXTURE, NOTES, QUICK, SCOPE, SWEEPS, Profile, toy_chain
from .sweeps import sweep_large_m, sweep_smoothing, sweep_stability


def _clean(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_outputs(out: Path, name: str, rows: list[dict], record: dict, figure, split=None) -> dict:
    """The record (all rows), one table per part (`split` maps a row to a table-name suffix, "" = `name`;
    REPORT.md embeds only the first 40 rows of a table) and the figure."""
    out = Path(out)
    for sub in ("records", "tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    paths = {"figure": out / "figures" / f"{name}.png", "record": out / "records" / f"{name}.json"}
    parts: dict[str, list[dict]] = {}
    for r in rows:
        parts.setdefault(split(r) if split else "", []).append(r)
    notes = "".join(f"- {n}\n" for n in record.get("notes", []))
    for suffix, part in parts.items():
        t = pd.DataFrame(part).dropna(axis=1, how="all")
        csv, md = out / "tables" / f"{name}{suffix}.csv", out / "tables" / f"{name}{suffix}.md"
        atomic_write_bytes(csv, t.to_csv(index=False, float_format="%.5g", lineterminator="\n").encode())
        text = (f"# {name}{suffix}\n\n{SCOPE}\n\nClaim: {record['claim']}\n\n{notes}\n"
                f"{t.to_markdown(index=False, floatfmt='.4g')}\n\nRecord: `records/{name}.json`; figure: `figures/{name}.png`.\n")
        atomic_write_bytes(md, text.encode())
        paths[f"table_csv{suffix}"], paths[f"table_md{suffix}"] = csv, md
    figure(df, paths["figure"])
    try:
        fig_rel = paths["figure"].resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        fig_rel = str(paths["figure"])
    record = {**record, "rows": [{k: _clean(v) for k, v in r.items()} for r in rows], "figures": {"claims": fig_rel}}
    atomic_write_json(paths["record"], record)
    return {k: str(v) for k, v in paths.items()}


def run_sweep(sweep: str, p: Profile, out: Path, prior: GaussianMixture | None = None) -> dict:
    prior = prior or ring_prior()
    prov = provenance()  # at the start: the code this process imported (the working tree may change meanwhile)
    t0, c0 = time.perf_counter(), time.process_time()
    fn = {"large_m": sweep_large_m, "smoothing": sweep_smoothing, "stability": sweep_stability,
          "integrators": sweep_integrators, "clmc": sweep_clmc}[sweep]
    rows, extra = fn(p, prior)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    name = f"claims_toy_{sweep}{p.suffix}"
    traces = extra.pop("traces", None)
    record = {
        # run / table / experiment / profile: the fields report.tables.read_records needs (listed under unknown tables).
        "run": name, "table": "claims", "experiment": f"claims-toy-{sweep}", "profile": p.name,
        "claim": CLAIMS[sweep], "scope": SCOPE,
        "config": {"claims": asdict(p), "mixture": MIXTURE,
                   "walk": {"delta": f"{p.chain.delta_over_sigma:g} sigma", "gamma": p.chain.gamma, "u": p.chain.u,
                            "scheme": p.chain.scheme, "init": "uniform_shared"}},
        "seeds": {"base": p.seed, "rule": "seeding.generator('claims', base, <sweep>, <config...>[, chain index])"},
        "provenance": prov, "git_sha_at_end": provenance()["git_sha"], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "torch_threads": torch.get_num_threads(), "notes": NOTES[sweep], **extra,
    }
    if sweep == "stability":
        figure = lambda df, path: figure_stability(traces, p.st_jump_every, path)  # noqa: E731
    else:
        figure = {"large_m": figure_large_m, "smoothing": figure_smoothing, "integrators": figure_integrators,
                  "clmc": figure_clmc}[sweep]
    split = ((lambda r: "" if r.get("jump_mse") is not None else "_samples") if sweep == "large_m"  # noqa: E731
             else (lambda r: "_inner" if r.get("level") is not None else "") if sweep == "clmc" else None)  # noqa: E731
    paths = write_outputs(out, name, rows, record, figure, split)
    return {"sweep": sweep, "wall_s": wall, "cpu_s": cpu, "rows": rows, "paths": paths}


def run_all(out: str | Path | None = None, quick: bool = False, sweeps=SWEEPS, profile: Profile | None = None) -> dict:
    p = profile or (QUICK if quick else FULL)
    out = Path(out) if out is not None else REPO_ROOT / "results"
    prior = ring_prior()
    return {s: run_sweep(s, p, out, prior) for s in sweeps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m replication.claims", description=sys.modules[__package__].__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=["toy"], help="the distribution (only the toy mixture has exact metrics)")
    ap.add_argument("--quick", action="store_true", help="seconds-sized run (outputs named *_quick)")
    ap.add_argument("--sweeps", default=",".join(SWEEPS), help=f"comma-separated subset of {', '.join(SWEEPS)}")
    ap.add_argument("--out", default=str(REPO_ROOT / "results"), help="results folder (records/, tables/, figures/)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="chain.KEY=VALUE",
                    help="the walk: chain.delta_over_sigma, chain.gamma, chain.u, chain.scheme (default: the toy experiment's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sweeps = [s.strip() for s in args.sweeps.split(",") if s.strip()]
    unknown = [s for s in sweeps if s not in SWEEPS]
    if unknown:
        ap.error(f"unknown sweep(s) {unknown}; known: {', '.join(SWEEPS)}")
    p = QUICK if args.quick else FULL
    if args.overrides:
        walk_keys = ("chain.delta_over_sigma", "chain.gamma", "chain.u", "chain.scheme")
        sets = dict(item.split("=", 1) for item in args.overrides if "=" in item)
        if len(sets) != len(args.overrides) or not set(sets) <= set(walk_keys):
            ap.error(f"--set takes {', '.join(walk_keys)} as KEY=VALUE, got {args.overrides}")
        p = replace(p, chain=toy_chain(sets))
    prior = ring_prior()
    for s in sweeps:
        r = run_sweep(s, p, Path(args.out), prior)
        print(f"{s}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU -> {r['paths']['record']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
