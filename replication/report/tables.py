"""Run records -> tidy DataFrames -> the report's tables (one headline table per paper table).

Record (the fields read here; everything else is ignored, and every field but run/table/experiment/profile
may be missing):

    run, table, experiment, profile (a name in experiments.PROFILES, or any other), config (Experiment.to_dict()),
    provenance {git_sha, git_dirty, hostname, hardware, device, torch, python, created, train_hardware?, chain_hardware?},
    train {steps, wall_s, final_loss, history [[step, loss], ...], n_params},
    chain {steps, n_chains, n_jumps, n_samples, wall_s, steps_per_s, finite, jump_mean_first10pct,
           jump_mean_last10pct, dist_prev_mean, iat_jump_mean, class_switch_rate?,
           class_histogram? (shares or counts per class; normalised here)},
    metrics [{metric, value, mode, n, status ("ok" | "not computed"), reason, reference, extractor?, calibration?}],
    figures {name: path relative to the folder holding results/, i.e. the repo root}

Paper values are compared only with the same metric name, at the paper profile, and for FID only in
the paper's mode (legacy TF-Inception, docs/deviations.md §3.1). Fréchet distances in other feature spaces
(`FD_classifier`, `FD_test-proj16 (NOT FID)`) are never put beside an FID.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import DataRow, TableFormat, tabulate

from ..data.registry import CLASS_GROUPS, CLASS_NAMES, gpu_data
from ..data.storage import atomic_write_bytes
from ..evaluation import chain_stats
from ..runs import experiments, paper

PAPER_FID_MODES = (None, "legacy_tensorflow")  # the paper's FID is compared in legacy-TF mode only
COLUMNS = [  # results_table: the full tidy table, one row per (run, metric); written as CSV, not shown in REPORT.md
    "experiment", "sigma", "M", "chain steps", "samples", "metric", "mode", "n", "reference", "reproduced",
    "paper", "difference", "profile", "hardware", "wall time (train+chain)", "code version",
    "status/reason", "run",
]
RECORD_COLUMNS = [  # load_records
    "run", "table", "experiment", "profile", "sigma", "M", "chain_steps", "n_samples", "hardware", "device",
    "git_sha", "git_dirty", "train_steps", "train_wall_s", "chain_wall_s", "wall_s", "train_seed", "chain_seed",
    "created", "metric", "mode", "value", "n", "status", "reason", "reference", "extractor", "calibration",
]


# --------------------------------------------------------------------------------------------------
# Profiles: experiments.PROFILES in order, then any other profile name found in records.


def profile_rank(profile: Any) -> tuple:
    return (experiments.PROFILES.index(profile), "") if profile in experiments.PROFILES else (len(experiments.PROFILES), str(profile))


def profile_note(profile: Any) -> str | None:
    """Why a non-paper profile's numbers are not the paper's; None for the paper profile."""
    if profile == "paper":
        return None
    if profile == "smoke":
        return "smoke profile: plumbing check only, numbers meaningless"
    return f"{profile} profile: small network, short training and chains; not comparable to the paper"


# --------------------------------------------------------------------------------------------------
# Reading records.


@functools.cache
def _registry_order(tables: tuple[str, ...]) -> dict[str, int]:
    ids = [e.id for t in tables for e in experiments.resolve(t, "paper")]
    return {id_: i for i, id_ in enumerate(ids)}


def record_sort_key(r: dict) -> tuple:
    order = _registry_order(experiments.tables())
    return (order.get(r["experiment"], len(order)), r["experiment"], profile_rank(r["profile"]), r["run"])


def read_records(records_dir: str | os.PathLike) -> list[dict]:
    """All `*.json` records of a folder, sorted by (experiment in registry order, profile, run)."""
    records = []
    for path in sorted(Path(records_dir).glob("*.json")):
        try:
            r = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a JSON record ({err})") from None
        missing = [k for k in ("run", "table", "experiment", "profile") if k not in r]
        if missing:
            raise ValueError(f"{path}: record lacks {', '.join(missing)}")
        records.append(r)
    return sorted(records, key=record_sort_key)


def config_hash(r: dict) -> str:
    """The config hash a run is named by (`<experiment>-<profile>-<hash8>`); the run name if it has none."""
    tail = r["run"].rsplit("-", 1)[-1]
    return tail if len(tail) == 8 and all(c in "0123456789abcdef" for c in tail) else r["run"]


def figure_path(results_dir: Path, rel: str) -> Path:
    """A record's figure path ("results/figures/x.png", relative to the folder holding the results folder),
    resolved inside `results_dir` whatever that folder is called (`--results DIR`)."""
    parts = Path(rel).parts
    return results_dir.joinpath(*parts[1:]) if parts and parts[0] == "results" else results_dir.parent / rel


def hardware(prov: dict) -> str:
    """The hardware of a run; per stage where train, chain and score ran on different machines."""
    stages = {"train": prov.get("train_hardware"), "chain": prov.get("chain_hardware"), "score": prov.get("hardware")}
    if len({h for h in stages.values() if h}) <= 1:
        return next((h for h in stages.values() if h), "")
    return "; ".join(f"{stage}: {h}" for stage, h in stages.items() if h)


def load_records(records: str | os.PathLike | list[dict]) -> pd.DataFrame:
    """Tidy DataFrame: one row per (run, metric); a run without metrics gives one row with metric None."""
    if not isinstance(records, list):
        records = read_records(records)
    rows = []
    for r in records:
        config, prov = r.get("config") or {}, r.get("provenance") or {}
        train, chain = r.get("train") or {}, r.get("chain") or {}
        model, cchain = config.get("model") or {}, config.get("chain") or {}
        walls = [w for w in (train.get("wall_s"), chain.get("wall_s")) if w is not None]
        base = {
            "run": r["run"], "table": r["table"], "experiment": r["experiment"], "profile": r["profile"],
            "sigma": model.get("sigma"), "M": model.get("M"),
            "chain_steps": chain.get("steps", cchain.get("steps")), "n_samples": chain.get("n_samples"),
            "hardware": hardware(prov), "device": prov.get("device"),
            "git_sha": prov.get("git_sha"), "git_dirty": prov.get("git_dirty"),
            "train_steps": train.get("steps"), "train_wall_s": train.get("wall_s"),
            "chain_wall_s": chain.get("wall_s"), "wall_s": sum(walls) if walls else None,
            "train_seed": (config.get("train") or {}).get("seed"), "chain_seed": cchain.get("seed"),
            "created": prov.get("created"),
        }
        metrics = r.get("metrics") or [{"status": "no metrics", "reason": "the record has no metrics"}]
        rows += [{**base, **{k: m.get(k) for k in RECORD_COLUMNS[RECORD_COLUMNS.index("metric"):]}}
                 for m in metrics]
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["n"] = pd.to_numeric(df["n"], errors="coerce")
    return df


# --------------------------------------------------------------------------------------------------
# Small formatting helpers.


def is_fid(metric: Any, extractor: Any) -> bool:
    """Inception FID only: a name exactly "FID" and no non-Inception extractor behind it."""
    return metric == "FID" and (not isinstance(extractor, str) or extractor.startswith("inception"))


def not_fid_fd(metric: Any) -> bool:
    return isinstance(metric, str) and ("NOT FID" in metric or metric.startswith("FD"))


def text(v: Any) -> str:
    """A text cell: None / NaN -> ""."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def code_version(sha: Any, dirty: Any) -> str:
    return "" if not isinstance(sha, str) else sha[:8] + ("-dirty" if dirty is True else "")


def duration(seconds: Any) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def count(v: Any) -> str:
    """A count in short form: 81152 -> 81k, 1200 -> 1.2k, 1000000 -> 1M, 28259552 -> 28.3M."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "?"
    v = float(v)
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            s = f"{v / div:.3g}"
            return (s if float(s) < 100 else f"{v / div:.0f}") + unit
    return f"{v:g}"


def value(v: Any, fmt: str = "{:.4g}") -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return fmt.format(float(v))
    return str(v).replace("|", "\\|").replace("\n", " ")


# tabulate's "pipe" table without its padding to column width: `| a | b |`, `|---|---|` (REPORT.md's tables).
COMPACT_PIPE = TableFormat(lineabove=None, linebelowheader=lambda widths, _aligns: "|" + "---|" * len(widths),
                           linebetweenrows=None, linebelow=None, headerrow=DataRow("|", "|", "|"),
                           datarow=DataRow("|", "|", "|"), padding=1, with_header_hide=None)


def to_markdown(table: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A DataFrame as a compact markdown pipe table (no padding) with fixed float formatting."""
    formats = {"sigma": "{:g}", "paper": "{:g}", "difference": "{:+.4g}", **(formats or {})}
    cols = [str(c) for c in table.columns]
    rows = [[value(v, formats.get(c, "{:.4g}")) for c, v in zip(cols, row)] for row in table.itertuples(index=False)]
    # Cells are formatted above: no number parsing, no alignment (so no padding, no stripping).
    return tabulate(rows, headers=cols, tablefmt=COMPACT_PIPE, disable_numparse=True, stralign=None, numalign=None)


# --------------------------------------------------------------------------------------------------
# Class shares of a chain's jumps (labelled data).


def dataset(r: dict) -> str:
    return ((r.get("config") or {}).get("dataset") or r.get("table", "")).split(":")[0]


def class_shares(r: dict) -> list[tuple[str, float]] | None:
    """[(class name, share of jumps)] from `chain.class_histogram` (shares or counts), or None."""
    hist = (r.get("chain") or {}).get("class_histogram")
    if not hist:
        return None
    h = np.asarray(hist, dtype=float)
    if not np.isfinite(h).all() or h.sum() <= 0:
        return None
    names = CLASS_NAMES.get(dataset(r), ())
    return [(names[i] if i < len(names) else f"class {i}", float(s)) for i, s in enumerate(h / h.sum())]


# --------------------------------------------------------------------------------------------------
# Chain statistics with their errors (evaluation/chain_stats.py): shares are printed as value ± MCSE (ESS).


def chain_statistics(r: dict) -> dict | None:
    """The record's chain-statistics entries (`chain_stats.read_metrics`), or None when it has none."""
    return chain_stats.read_metrics(r.get("metrics"), CLASS_GROUPS.get(dataset(r), {}))


def pm(v: Any, err: Any, scale: float = 1.0, unit: str = "") -> str:
    """'0.41 ± 0.05': the value rounded where its error's first significant digit is (two digits when that is 1);
    `scale`/`unit` for percentages (100, "%")."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    v = float(v) * scale
    if err is None or not math.isfinite(float(err)):
        return f"{v:.3g}{unit}"
    e = float(err) * scale
    if e <= 0:
        return f"{v:.3g} ± 0{unit}"
    exp = math.floor(math.log10(e))
    d = max(0, -exp + (1 if e / 10**exp < 2 else 0))
    return f"{v:.{d}f} ± {e:.{d}f}{unit}"


def ess_text(ess: Any) -> str:
    return "?" if ess is None else f"{float(ess):,.0f}"


def share_pm(m: dict | None, with_ess: str = "ESS ") -> str:
    """A chain share entry as 'value ± MCSE (ESS n)'; '' for None."""
    return "" if not m else f"{pm(m['value'], m.get('mcse'))} ({with_ess}{ess_text(m.get('ess'))})"


def class_shares_pm(r: dict) -> list[tuple[str, float, float | None]] | None:
    """[(class name, share, MCSE)] from the chain statistics' per-class traces, or None."""
    st = chain_statistics(r)
    c = (st or {}).get("classes") or {}
    if not c.get("shares"):
        return None
    names = CLASS_NAMES.get(dataset(r), ())
    return [(names[i] if i < len(names) else f"class {i}", s, (c.get("mcse") or [None] * len(c["shares"]))[i])
            for i, s in enumerate(c["shares"])]


def top_class(r: dict) -> str:
    """'Sandal 80%': the class most jumps fall in, with its share (± MCSE where the chain statistics hold it);
    '' without a class histogram."""
    with_err = class_shares_pm(r)
    if with_err:
        name, share, err = min(with_err, key=lambda s: (-s[1], s[0]))  # ties: the first name, as the lists below
        return f"{name} {pm(share, err, 100, '%')}"
    shares = class_shares(r)
    if not shares:
        return ""
    name, share = min(shares, key=lambda s: (-s[1], s[0]))
    return f"{name} {100 * share:.0f}%"


def shares_text(r: dict) -> str:
    """Every class with its share of the jumps, largest first: 'Sandal 80.0%, Bag 11.1%, ...' (sums to 100%);
    with ± MCSE where the chain statistics hold them."""
    with_err = class_shares_pm(r)
    if with_err:
        return ", ".join(f"{name} {100 * s:.1f}" + ("" if e is None else f" ± {100 * e:.1f}") + "%"
                         for name, s, e in sorted(with_err, key=lambda s: (-s[1], s[0])))
    shares = class_shares(r)
    if not shares:
        return ""
    return ", ".join(f"{name} {100 * s:.1f}%" for name, s in sorted(shares, key=lambda s: (-s[1], s[0])))


# --------------------------------------------------------------------------------------------------
# The full tidy results table (CSV) of one table.


def not_run_reason(e: experiments.Experiment) -> str:
    """Why an experiment has no result, and the command that produces one."""
    if not e.implemented:
        return "not implemented yet" + (f" ({e.notes})" if e.notes else "")
    data = gpu_data(e.table)
    if e.table in experiments.CPU_TABLES:
        return f"run `python replicate.py --table {e.table} --profile quick` (CPU)"
    if data is None:
        return f"run `python replicate.py --table {e.table} --profile paper`"
    return (f"needs {data} and a GPU; run `python replicate.py --table {e.table} --profile paper "
            f"--launcher slurm --cluster <profile>`")


def paper_number_for(x: pd.Series, numbers: list[paper.PaperNumber]) -> paper.PaperNumber | None:
    """The paper number a tidy row is compared with: same experiment and metric, paper profile, FID in legacy mode."""
    metric, mode = text(x["metric"]), text(x["mode"]) or None
    comparable = x["profile"] == "paper" and x["calibration"] is not True and (
        is_fid(metric, x["extractor"]) and mode in PAPER_FID_MODES or (metric != "FID" and not not_fid_fd(metric)))
    return next((p for p in numbers if comparable and (p.row, p.metric) == (x["experiment"], metric)), None)


def missing_paper_reason(number: paper.PaperNumber, registry: dict) -> str:
    e = registry.get(number.row)
    if e is None:
        return f"reference row, no matching experiment ({number.source})"
    if not e.implemented:
        return f"not run: {not_run_reason(e)}"
    return "not run: needs a GPU cluster (paper profile)" if gpu_data(e.table) else "not run (paper profile)"


def results_table(records: pd.DataFrame | list[dict], table: str) -> pd.DataFrame:
    """Reproduced beside paper for one table: a row per (run, metric), plus a row per paper number
    with no paper-profile result (empty reproduced cell and the reason). Columns: `COLUMNS`."""
    df = records if isinstance(records, pd.DataFrame) else load_records(records)
    df = df[df["table"] == table] if len(df) else df
    registry = {e.id: e for e in experiments.resolve(table, "paper")}
    numbers = paper.numbers_for(table)
    rows, matched = [], set()
    for _, x in df.iterrows():
        metric, calibration = text(x["metric"]), x["calibration"] is True
        number = paper_number_for(x, numbers)
        matched.add(number)
        ok = x["status"] == "ok" and pd.notna(x["value"])
        status = "ok" if x["status"] == "ok" else text(x["reason"]) or text(x["status"])
        if metric == "FID" and not is_fid(metric, x["extractor"]):
            status, ok = f"invalid: FID label on a non-Inception extractor ({x['extractor']})", False
        if calibration:
            status += "; calibration: a reference value, not the model's samples"
        if profile_note(x["profile"]):
            status += f"; {profile_note(x['profile'])}"
        rows.append({
            "experiment": x["experiment"], "sigma": x["sigma"], "M": x["M"], "chain steps": x["chain_steps"],
            "samples": x["n_samples"], "metric": metric, "mode": text(x["mode"]), "n": x["n"],
            "reference": text(x["reference"]), "reproduced": x["value"] if ok else math.nan,
            "paper": number.value if number else math.nan,
            "difference": x["value"] - number.value if number and ok else math.nan,
            "profile": x["profile"], "hardware": text(x["hardware"]), "wall time (train+chain)": duration(x["wall_s"]),
            "code version": code_version(x["git_sha"], x["git_dirty"]), "status/reason": status, "run": x["run"],
        })
    for number in numbers:
        if number in matched:
            continue
        e = registry.get(number.row)
        rows.append({
            **{c: "" for c in COLUMNS}, "experiment": number.row or "—",
            "sigma": e.model.sigma if e else math.nan, "M": e.model.M if e else math.nan,
            "chain steps": e.chain.steps if e else math.nan, "samples": e.n_samples if e else math.nan,
            "metric": number.metric, "n": math.nan, "reproduced": math.nan, "paper": number.value,
            "difference": math.nan, "profile": "paper", "status/reason": missing_paper_reason(number, registry),
        })
    out = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("sigma", "reproduced", "paper", "difference"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    for col in ("M", "chain steps", "samples", "n"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    return out


def write_tables(records_dir: str | os.PathLike | list[dict],
                 out_dir: str | os.PathLike = "results/tables") -> list[Path]:
    """`<out_dir>/<table>.csv`: the full tidy results of every table in experiments.tables() (raw numbers)."""
    df, out_dir, written = load_records(records_dir), Path(out_dir), []
    for table in experiments.tables():
        csv = results_table(df, table).to_csv(index=False, float_format="%.6g", lineterminator="\n")
        atomic_write_bytes(out_dir / f"{table}.csv", csv.encode())
        written.append(out_dir / f"{table}.csv")
    return written
