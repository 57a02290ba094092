"""The toy-claims study's runs and outputs: records, tables and figures of each sweep.

    python replicate.py --claims toy [--profile smoke] [--sweeps large_m,smoothing,stability] [--results results]
    (alias: python -m replication.claims toy ...; the command line is replication/cli.py)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.mnm import GaussianMixture
from ..data.storage import atomic_write_bytes, atomic_write_json
from ..errors import UsageError
from ..runs.folders import REPO_ROOT
from ..runs.provenance import provenance
from .chains import ring_prior
from .clmc import sweep_clmc
from .figures import figure_clmc, figure_integrators, figure_large_m, figure_smoothing, figure_stability
from .integrators import sweep_integrators
from .profiles import DEFAULT, MIXTURE, SWEEPS, Profile, sizes, toy_chain
from .sweeps import sweep_large_m, sweep_smoothing, sweep_stability
from .texts import CLAIMS, NOTES, SCOPE


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


def run_all(out: str | Path | None = None, profile: str = DEFAULT, sweeps=SWEEPS) -> dict:
    """Every sweep of `sweeps` at the study's sizes for `profile` (a registry profile: profiles.sizes)."""
    p = sizes(profile)
    out = Path(out) if out is not None else REPO_ROOT / "results"
    prior = ring_prior()
    return {s: run_sweep(s, p, out, prior) for s in sweeps}


def run_study(target: str, profile: str, sweeps: list[str], overrides: dict[str, str], out: Path) -> Iterator[str]:
    """`replicate.py --claims toy --profile P`: run the named sweeps at the study's sizes for P (profiles.sizes; the
    walk's settings overridden by `--set`), a line per sweep."""
    if target != "toy":
        raise UsageError(f"--claims {target}: only the toy mixture has exact metrics: --claims toy")
    unknown = [s for s in sweeps if s not in SWEEPS]
    if unknown:
        raise UsageError(f"--sweeps: unknown sweep(s) {unknown}; known: {', '.join(SWEEPS)}")
    p = sizes(profile)
    if overrides:
        p = replace(p, chain=toy_chain(overrides))
    prior = ring_prior()
    for s in sweeps:
        r = run_sweep(s, p, out, prior)
        yield f"{s}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU -> {r['paths']['record']}"
