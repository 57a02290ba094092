"""REPORT.md (the front page a researcher reads in five minutes), results/APPENDIX.md (the details) and the
results tables and figures, regenerated from the run records alone.

Every number comes from `results/records/<run>.json` (one record per finished run, written by the pipeline;
fields: tables.py) or from `runs/paper.py` (the paper's numbers and claims); nothing is typed by hand.
Reproduced values sit beside the paper's, never instead (clean-fid's "reported | reproduced" tables), and the
output is deterministic, so `python replicate.py --report` regenerates REPORT.md byte for byte (tests/test_report.py).

REPORT.md: the claims scoreboard (scoreboard.py), the scale gap, then per table one headline table
(headline.py) with its notes, samples and figures (the Fashion-MNIST section also the walk's bias table:
headline.walk_table; the CLMC section its side-by-side and the toy CLMC sweep); the toy claim sweeps as a list.
Samples are shown for one run per experiment and profile (figures.featured), so the page does not grow by a block
of images with each run; the others', the notes, samples and figures of the figures.APPENDIX_ONLY tables, the toy
sweeps' tables, the provenance, chain diagnostics, the full tidy metrics (CSV), benchmarks and the cost model are in
results/APPENDIX.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ..data import registry
from ..data.storage import atomic_write_bytes
from ..evaluation.traces import N_WINDOWS
from ..runs import experiments, paper
from ..runs.folders import REPO_ROOT
from .claims import claims_lines
from .clmc import CLMC_TABLE, PLAIN_MIN_JUMPS, clmc_table, level_table
from .clmc import featured as featured_clmc
from .drift import drift_table
from .figures import (APPENDIX_ONLY, FEATURED_MIN_STEPS, SAMPLE_FIGURES, chain_diagnostics, featured, image, loss_curve,
                      metric_vs_samples, same_runs, sample_lines)
from .figures import link as _link
from .headline import (WALK_DATASET, WALK_GROUP, WALK_MIN_JUMPS, banners, dedup, headline, paper_scale, runs_scale,
                       table_notes, walk_table)
from .scoreboard import RULES, claim_record, scoreboard
from .tables import (code_version, config_hash, count, figure_path, not_run_reason, profile_rank, read_records,
                     record_sort_key, to_markdown, write_tables)

REPORT_COMMAND = "python replicate.py --report"
TABLE_TITLES = {  # tables other than a dataset's own (whose title is its registry entry's heading)
    "fashion-mnist-levers": "Fashion-MNIST levers (beyond the paper)",
    "fashion-mnist-M": "Fashion-MNIST, jump quality against M (beyond the paper)",
    "fashion-mnist-sigma": "Fashion-MNIST, mixing against sigma (beyond the paper)",
    "fashion-mnist-clmc": "Fashion-MNIST, a chain of log-concave Markov chains (beyond the paper)",
    "fashion-mnist-schemes": "MUVB on Fashion-MNIST (beyond the paper)",
    "toy-schemes": "MUVB on the toy mixture (beyond the paper)",
}
# Rows recorded in another table that a table shows beside its own (same data and training budget, another scheme):
# table -> (experiment id, label). The MDAE recipe model at M = 4 (fmnist-M4 under cpu is the fashion-mnist table's
# committed model) with its one-step jump metrics, beside MUVB.
BESIDE = {"fashion-mnist-schemes": ("fmnist-M4", "MDAE recipe, beside"), "toy-schemes": ("toy-mdae-1x4", "MDAE, beside")}
CLAIMS_TITLE = "The poster's claims on the toy mixture (beyond the paper)"
SUMMARY_FIGURES = {"loss": loss_curve, "metrics": metric_vs_samples, "chain": chain_diagnostics}


def heading(table: str) -> str:
    if table == "claims":
        return CLAIMS_TITLE
    own = registry.datasets().get(table)
    return f"{TABLE_TITLES.get(table) or (own.heading if own else table)} (`--table {table}`)"


def anchor(table: str) -> str:
    """GitHub's anchor for a section heading."""
    return re.sub(r"[^\w\- ]", "", heading(table).lower()).replace(" ", "-")


# --------------------------------------------------------------------------------------------------
# The claims scoreboard and the scale gap.


def _scoreboard_lines(records: list[dict]) -> list[str]:
    rows = scoreboard(records)
    df = pd.DataFrame([{
        "claim (poster)": r["claim"], "paper target": r["target"], "measured here": r["measured"],
        "profile": r["profile"], "verdict": f"**{r['verdict'].split(':')[0]}**" + r["verdict"][len(r["verdict"].split(":")[0]):],
        "section": ", ".join(f"[{t}](#{anchor(t)})" for t in dict.fromkeys(r["tables"])),
    } for r in rows])
    return [to_markdown(df), "",
            "Verdicts are computed from the records by the rules in `replication/report/scoreboard.py` (rule 2, "
            f"[docs/statistics.md](docs/statistics.md): {RULES}; an FID reproduces within 10%). Paper targets come "
            "from `replication/runs/paper.py`.", ""]


def _scale_gap(records: list[dict]) -> list[str]:
    runs = [r for r in records if r["table"] in experiments.tables()]
    if not runs:
        return []
    def span(values):
        values = sorted(v for v in values if isinstance(v, (int, float)))
        return "?" if not values else count(values[0]) if values[0] == values[-1] else f"{count(values[0])}–{count(values[-1])}"
    params = span((r.get("train") or {}).get("n_params") for r in runs)
    steps = span((r.get("train") or {}).get("steps") for r in runs)
    chain = span((r.get("chain") or {}).get("steps") for r in runs)
    paper_params = span(paper.NET_PARAMS.values())
    paper_steps = span(e.train.steps for t in ("mnist", "cifar10", "ffhq256") for e in experiments.resolve(t) if e.implemented)
    return [f"**Scale gap.** The {len(runs)} runs recorded here use networks of {params} parameters trained for "
            f"{steps} steps, with chains of {chain} walk steps ({', '.join(sorted({r['profile'] for r in runs}, key=profile_rank))} "
            f"profiles, CPU); the paper's U2Nets have {paper_params} parameters trained for {paper_steps} steps, "
            "sampled with one chain of 1M steps. No paper-profile run is recorded unless the table below says so.", ""]


def _overview(by_table: dict[str, list[dict]]) -> list[str]:
    profiles = list(experiments.PROFILES) + sorted({r["profile"] for rs in by_table.values() for r in rs}
                                                   - set(experiments.PROFILES))
    rows = []
    for t in experiments.tables():
        kept = dedup(by_table[t])[0]
        counts = " / ".join(str(sum(r["profile"] == p for r in kept)) for p in profiles)
        rows.append({"table": f"[{t}](#{anchor(t)})", "experiments": len(experiments.resolve(t, "paper")),
                     f"runs ({' / '.join(profiles)})": counts, "paper numbers": len(paper.numbers_for(t))})
    return [to_markdown(pd.DataFrame(rows)), ""]


# --------------------------------------------------------------------------------------------------
# One section per table.


def _not_run_lines(table: str, records: list[dict]) -> list[str]:
    ran: dict[str, set] = {}
    for r in records:
        ran.setdefault(r["experiment"], set()).add(r["profile"])
    lines = []
    for e in experiments.resolve(table, "paper"):
        if e.id not in ran:
            lines.append(f"- `{e.id}`: not run — {not_run_reason(e)}")
        elif "paper" not in ran[e.id] and table not in experiments.CPU_TABLES:
            profiles = "/".join(sorted(ran[e.id], key=profile_rank))
            lines.append(f"- `{e.id}`: paper profile not run (only {profiles}) — {not_run_reason(e)}")
    return lines


def _paper_lines(table: str) -> list[str]:
    lines = [f"- {n.metric} {n.value:g} ({f'`{n.row}`' if n.row else 'reference row'}): {n.setting}. "
             f"Source: {n.source}." + ("" if n.verified_setting else " Setting unverified.")
             for n in paper.numbers_for(table)]
    return lines + [f"- \"{quote}\" — {paper.POSTER_TITLE}." for quote in paper.quotes_for(table)]


def _sample_lines(records: list[dict], results_dir: Path, out_dir: Path, aliases: dict) -> list[str]:
    """The samples of the table's featured runs (figures.featured), then where the other runs' samples are."""
    shown = featured(records, aliases)
    lines = [line for r in dedup(records)[0] if r["run"] in shown for line in sample_lines(r, results_dir, out_dir)]
    others = [config_hash(r) for r in dedup(records)[0]
              if r["run"] not in shown and (r.get("figures") or r["run"] in aliases)]
    if others:
        table = records[0]["table"]
        lines.append(f"- Samples of the {'other ' if shown else ''}{len(others)} run{'s' * (len(others) > 1)} "
                     f"({', '.join(others)}): [appendix]({_link(results_dir / 'APPENDIX.md', out_dir)}#{table}).")
    return lines


def _summary_figures(table: str, records: list[dict], results_dir: Path, make: bool) -> dict[str, Path]:
    out = {}
    for name, fn in SUMMARY_FIGURES.items():
        path = results_dir / "figures" / f"report_{table}_{name}.png"
        if records and make:
            fn(records, path)
        if records and path.is_file():
            out[name] = path
    return out


def _walk_lines(records: list[dict], results_dir: Path, out_dir: Path) -> list[str]:
    """The walk's bias (headline.walk_table) with its caption, then a pointer to the drift table (report/drift.py),
    which the appendix holds (the front page's byte budget); [] without a row."""
    df = walk_table(records)
    n_drift = len(drift_table(results_dir, WALK_DATASET, WALK_GROUP))
    drift_lines = ["", f"Chains started in the typical set (`python replicate.py --drift`, {n_drift} measurements in "
                   f"`results/drift/`): the [drift table]({_link(results_dir / 'APPENDIX.md', out_dir)}#drift) of "
                   "the appendix."] if n_drift else []
    if not len(df):
        return drift_lines[1:]
    toy = (f" The toy sweep `integrators` in [the appendix]({_link(results_dir / 'APPENDIX.md', out_dir)}#claims) measures the same bias with the "
           "exact score." if claim_record(records, "integrators") else "")
    return [f"{WALK_GROUP.capitalize()} share of the jumps against the walk and the model, one row per recorded chain, "
            f"computed from its record: every chain of `--table {WALK_DATASET}` and the chains of at least "
            f"{WALK_MIN_JUMPS:,} jumps with chain statistics of the other {registry.get(WALK_DATASET).title} "
            "tables (one per config hash); grouped by model, then integrator (aboba: the paper's), δ/σ, γ and walk "
            "steps. `ref.` = the model's one-step jumps; `+ MH` = Metropolis-adjusted (accept rate); `(histogram)` = "
            "no per-jump trace, no error." + toy,
            "", to_markdown(df)] + drift_lines


def _clmc_lines(records: list[dict], results_dir: Path, out_dir: Path) -> list[str]:
    """The CLMC sampler beside the plain walk-jump (report/clmc.py), the denoiser's jump quality per level, and the
    figures of the table's own chains; [] without a row."""
    df = clmc_table(records)
    if not len(df):
        return []
    shown = featured_clmc(records)
    images = [image(figure_path(results_dir, shown["figures"][k]), k, out_dir) for k in SAMPLE_FIGURES
              if k in (shown or {}).get("figures", {})]  # the longest CLMC chain's; the others' are in the appendix
    return ["Per chain, scored alike (docs/statistics.md): CLMC (docs/method.md §6) beside the recipe's plain walk-jump "
            f"chains (BAOAB, δ = σ/4, ≥ {PLAIN_MIN_JUMPS:,} jumps). `score evals` = walk steps + the jumps' (a CLMC jump: "
            "1 + (M−1)(K+1)); `S / 10⁵ evals` = footwear↔clothing switches per 10⁵ evaluations; from exact "
            f"starts: the [drift table]({_link(results_dir / 'APPENDIX.md', out_dir)}#drift).", "", to_markdown(df)] + (
        ["", "The denoiser at each level, E|x − x̂(ȳ_m; σ/√m)|² on 1,000 noised test images, beside the fixed-M models "
         "(`--table fashion-mnist-M`):", "", to_markdown(levels)] if len(levels := level_table(records)) else []) + (
        ["", f"CLMC samples of {config_hash(shown)} (grid, last 20 jumps, class shares in 20 windows):", "",
         "<br>".join(images)] if images else []) + (
        ["", "On the toy mixture, with the exact denoiser at every level and the exact answer:", ""]
        + claims_lines([toy], results_dir, out_dir)[:-1] if (toy := claim_record(records, "clmc")) else [])


def _table_section(table: str, records: list[dict], results_dir: Path, out_dir: Path, figures: dict,
                   aliases: dict[str, str], walk: list[str] = (), seen: set | None = None,
                   side: list[str] = ()) -> list[str]:
    """One table's section. A warning banner already shown in an earlier section (`seen`) is shortened to its
    bold head, and calibration points stated earlier are not repeated; an APPENDIX_ONLY table's notes, samples and
    figures are left to the appendix (the report's byte budget, tests/test_report.py)."""
    lines = [f"## {heading(table)}", ""]
    kept = dedup(records)[0]
    lines += [f"Scale: the paper's recipe is {paper_scale(table) or 'not defined'}; "
              f"{'runs here: ' + runs_scale(kept) if kept else 'no run recorded here'}.", ""]
    seen = set() if seen is None else seen
    for line in banners(kept):
        lines += [line if line not in seen else line.split("** ")[0] + "** As above.", ""]
        seen.add(line)
    table_df, notes = headline(records, table, aliases, walk=bool(walk))
    if len(table_df):
        lines += [to_markdown(table_df, {"class switch rate": "{:.2f}"}), ""]
    else:
        lines += ["_No run recorded and no paper number for this table._", ""]
    brief = table in APPENDIX_ONLY and bool(kept)
    notes = [] if brief else table_notes(records, table, notes, seen)
    parts = (("Notes", [f"- {n}" for n in notes]), ("The walk's bias", list(walk)),
             ("Side by side at equal score evaluations", list(side)),
             ("What the paper reports", _paper_lines(table)), ("Not run, and why", _not_run_lines(table, records)),
             ("Samples", [] if brief else _sample_lines(records, results_dir, out_dir, aliases)))
    for title, body in parts:
        if body:
            lines += [f"### {title}", ""] + body + [""]
    appendix = f"[appendix]({_link(results_dir / 'APPENDIX.md', out_dir)}#{table})"
    if brief:
        lines += [f"Notes (calibration points, the settings the rows differ in), samples, summary figures, provenance "
                  f"and chain diagnostics: {appendix}.", ""]
    elif figures:
        lines += ["Summary figures: " + ", ".join(f"[{n}]({_link(p, out_dir)})" for n, p in figures.items())
                  + f"; provenance and chain diagnostics: {appendix}.", ""]
    return lines


def _claims_section(records: list[dict], results_dir: Path, out_dir: Path) -> list[str]:
    """The front page's list of the toy claim sweeps; their tables and figures are in the appendix (claims_lines)."""
    if not records:
        return []
    appendix = f"{_link(results_dir / 'APPENDIX.md', out_dir)}#claims"
    return [f"## {CLAIMS_TITLE}", "",
            "> **Beyond the paper:** a 2-D Gaussian mixture (ring of 8 modes) where the M-density, its score and the "
            "Bayes jump are exact; regenerate with `python replicate.py --claims toy`. The scoreboard above gives "
            f"each sweep's verdict; its summary table, figure and full rows are in the [appendix]({appendix}).", ""] + [
        f"- {r.get('claim', r['run'])} (`{r['run']}`, profile `{r['profile']}`"
        + (f"; in [{CLMC_TABLE}](#{anchor(CLMC_TABLE)})" if r is claim_record(records, "clmc") else "") + ")."
        for r in records] + [""]


def _beside(table: str, records: list[dict], own: list[dict]) -> list[dict]:
    """The BESIDE rows of `table`: records of the named experiment under the profiles the table's own runs have,
    relabelled, with their training and their one-step jump metrics (denoise_*) only: their chains and samples stay
    with their own table."""
    if table not in BESIDE or not own:
        return []
    eid, label = BESIDE[table]
    profiles = {r["profile"] for r in own}
    return [{**r, "table": table, "experiment": f"{eid} ({label})", "figures": {}, "chain": {"steps": (r.get("chain") or {}).get("steps")},
             "metrics": [m for m in r.get("metrics") or [] if str(m.get("metric", "")).startswith("denoise")]}
            for r in records if r["experiment"] == eid and r["profile"] in profiles and r["table"] != table]


def _versions(records: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in records:
        p = r.get("provenance") or {}
        v = code_version(p.get("git_sha"), p.get("git_dirty")) or "unknown"
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(f"`{v}` ({n})" for v, n in sorted(counts.items())) or "none"


def render_report(records: list[dict], results_dir: Path, out_dir: Path, figures: bool = True) -> str:
    """The text of REPORT.md; `results_dir` holds records/, figures/, benchmarks/, tables/ and APPENDIX.md.

    Figure paths in the records are relative to `results_dir.parent` (the repo root by default); links are
    relative to `out_dir`. With `figures`, (re)writes the summary figures; the text is the same either way
    when they exist.
    """
    records = sorted(records, key=record_sort_key)
    by_table = {t: [r for r in records if r["table"] == t] for t in experiments.tables()}
    appendix = _link(results_dir / "APPENDIX.md", out_dir)
    lines = [
        "# Multimeasurement Generative Models (ICLR 2022): replication report", "",
        f"<!-- GENERATED FILE: do not edit. Regenerate with `{REPORT_COMMAND}`. -->", "",
        f"From {len(records)} run records in `{_link(results_dir / 'records', out_dir)}/` and the paper's numbers in "
        f"`replication/paper.py`. Details (provenance, chain diagnostics, full metrics as CSV, benchmarks, cost "
        f"model): [{appendix}]({appendix}).", "",
        "## Claims scoreboard", "",
    ]
    lines += _scoreboard_lines(records) + _scale_gap(records) + _overview(by_table) + [
        "How to read the tables below: one row per run (runs with the same config hash are shown once); "
        "`params · train · chain steps` = network parameters · training steps · walk steps of the chain; metrics "
        "are computed on all jumps of the run (its n); `top class` = the class the suite's classifier assigns to "
        "most jumps, with its share (10% each for a perfect Fashion-MNIST sampler); `footwear ± MCSE (ESS); ref.` = "
        "share of jumps classified sandal, sneaker or ankle boot ± Monte Carlo standard error (bulk ESS), then that "
        "share for one-step jumps from 1,000 noised test images ± binomial SE (—: model not committed); `S` = "
        "footwear↔clothing switches (≥: on the 1,000 committed thinned jumps, a lower bound; their shares too); "
        "`verdict` = rule 2, largest split-R̂; `paper` = the paper's number, "
        "beside the reproduced one. Samples: a grid of jumps spread over the chain, its last 20 consecutive jumps "
        f"and (chains of at least 1,000 jumps) the class shares and mean pixel of the jumps in {N_WINDOWS} windows along the "
        f"chain; shown here for one run per profile of a table, its longest chain of at least "
        f"{FEATURED_MIN_STEPS:,} walk steps (of equally long ones: on the data by rule 2, else stable, else the newest); every other run's samples are in the "
        "appendix, under its table. Of the tables " + ", ".join(f"`{t}`" for t in sorted(APPENDIX_ONLY)) + " this "
        "page shows the headline table only: their notes, samples and figures are in the appendix.", ""]
    same, seen = same_runs(records), set()
    for t in experiments.tables():
        runs = {r["run"] for r in by_table[t]}
        aliases = {run: f"`{e}` in [{t0}](#{anchor(t0)})" for run, (e, t0) in same.items() if run in runs}
        shown = by_table[t] + _beside(t, records, by_table[t])
        lines += _table_section(t, shown, results_dir, out_dir, _summary_figures(t, shown, results_dir, figures), aliases,
                                _walk_lines(records, results_dir, out_dir) if t == WALK_DATASET else [], seen,
                                _clmc_lines(records, results_dir, out_dir) if t == CLMC_TABLE else [])
    lines += _claims_section([r for r in records if r["table"] == "claims"], results_dir, out_dir)
    other = sorted({r["run"] for r in records if r["table"] not in experiments.tables() + ("claims",)})
    if other:
        lines += ["## Records of unknown tables", ""] + [f"- `{run}`" for run in other] + [""]
    lines += [f"Code versions of the runs (runs per version): {_versions(records)}.", ""]
    return "\n".join(lines).rstrip() + "\n"


from .appendix import render_appendix  # noqa: E402  (the appendix uses the helpers above)


def write_report(records_dir: str | os.PathLike = "results/records", out: str | os.PathLike = "REPORT.md",
                 repo_root: str | os.PathLike | None = None, figures: bool = True, tables: bool = True) -> Path:
    """Regenerate REPORT.md and <results>/APPENDIX.md entirely from the records (and benchmark files, if present).

    Args:
        records_dir: the records folder; its parent is the results folder (figures/, benchmarks/, tables/).
        out: the report to write.
        repo_root: what relative `records_dir` and `out` are relative to (default: this checkout).
        figures: also write the summary figures `<results>/figures/report_<table>_{loss,metrics,chain}.png`.
        tables: also write `<results>/tables/<table>.csv`, `provenance.csv` and `chains.csv`.
    Returns:
        The path of the report.
    """
    root = Path(repo_root) if repo_root is not None else REPO_ROOT
    records_dir, out = root / records_dir, root / out
    results_dir = records_dir.parent
    records = read_records(records_dir) if records_dir.is_dir() else []
    if tables:
        write_tables(records, results_dir / "tables")
    text_ = render_report(records, results_dir, out.parent, figures)
    atomic_write_bytes(results_dir / "APPENDIX.md", render_appendix(records, results_dir, tables).encode())
    atomic_write_bytes(out, text_.encode())
    return out
