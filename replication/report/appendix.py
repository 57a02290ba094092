"""results/APPENDIX.md: what the front page (REPORT.md) leaves out, per table: provenance, chain diagnostics,
class shares, unverified settings, summary figures, the full tidy metrics (CSV), the samples of the runs
REPORT.md does not show (figures.featured), the notes of the figures.APPENDIX_ONLY tables; the toy claim sweeps'
tables and figures (claims.claims_lines); benchmarks and the cost model (linked). Also writes results/tables/provenance.csv and chains.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data.storage import atomic_write_bytes
from ..runs import experiments
from .claims import claims_lines
from .drift import CAPTION as DRIFT_CAPTION
from .drift import drift_table
from .figures import APPENDIX_ONLY, FEATURED_MIN_STEPS, other_sample_lines, same_runs
from .figures import link as _link
from .headline import WALK_DATASET, WALK_GROUP, dedup, headline, table_notes
from .tables import (chain_statistics, code_version, config_hash, duration, ess_text, hardware, pm, record_sort_key,
                     shares_text, to_markdown)


def provenance_rows(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        p, t, c, cfg = (r.get(k) or {} for k in ("provenance", "train", "chain", "config"))
        rows.append({
            "run": r["run"], "profile": r["profile"],
            "code version": code_version(p.get("git_sha"), p.get("git_dirty")),
            "hardware": hardware(p), "torch": p.get("torch"),
            "seeds (train, chain)": f"{(cfg.get('train') or {}).get('seed')}, {(cfg.get('chain') or {}).get('seed')}",
            "train": f"{t.get('steps')} steps, {duration(t.get('wall_s'))}", "final loss": t.get("final_loss"),
            "chain": f"{c.get('steps')} steps, {duration(c.get('wall_s'))}", "created": p.get("created"),
        })
    return pd.DataFrame(rows)


def chain_rows(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        c = r.get("chain") or {}
        rows.append({
            "run": r["run"], "walk steps": c.get("steps"), "chains": c.get("n_chains"), "jumps": c.get("n_jumps"),
            "steps/s": c.get("steps_per_s"), "finite": c.get("finite"),
            "mean of x̂, first 10%": c.get("jump_mean_first10pct"), "mean of x̂, last 10%": c.get("jump_mean_last10pct"),
            "distance to previous jump": c.get("dist_prev_mean"), "IAT of mean of x̂": c.get("iat_jump_mean"),
            "class switch rate": c.get("class_switch_rate"),
        })
    return pd.DataFrame(rows)


def stats_rows(records: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """Chain statistics (rule 2, docs/statistics.md), one row per run that has them: each group's share ± MCSE
    (ESS) and the reference's ± SE, the mean pixel, the split-R-hats, S and the verdict; and the verdicts' reasons."""
    rows, reasons = [], []
    for r in records:
        st = chain_statistics(r)
        if not st:
            continue
        v, s, mp = st["verdict"], st.get("switches"), st.get("mean_pixel")
        row = {"run": f"{r['experiment']} ({config_hash(r)})", "jumps": ("thinned " if v.get("thinned") else "")
               + f"{v.get('n', 0):,}"}
        for g, m in st["shares"].items():
            ref = st["reference"].get(g)
            row[g] = f"{pm(m['value'], m.get('mcse'))} ({ess_text(m.get('ess'))})"
            row[f"{g} ref."] = pm(ref["value"], ref.get("se")) if ref else "—"
        row["mean pixel"] = f"{pm(mp['value'], mp.get('mcse'))} ({ess_text(mp.get('ess'))})" if mp else ""
        row["split-R̂ (mean pixel, groups)"] = " / ".join("—" if m.get("rhat") is None else f"{m['rhat']:.3f}"
                                                        for m in [mp, *st["shares"].values()] if m)
        row["S (per 10⁵ steps)"] = "" if not s else (("≥ " if s.get("lower_bound") else "") + f"{s['value']:,.0f}"
                                                   + (f" ({s['per_1e5_steps']:.3g})" if s.get("per_1e5_steps") is not None else ""))
        row["verdict"] = v.get("label")
        rows.append(row)
        reasons.append(f"- `{r['run']}`: {'; '.join(v.get('reasons') or [])}.")
    return pd.DataFrame(rows), reasons


def render_appendix(records: list[dict], results_dir: Path, tables: bool = True) -> str:
    """The text of <results>/APPENDIX.md (links relative to `results_dir`); with `tables`, writes the CSVs."""
    runs = [r for r in records if r["table"] in experiments.tables()]
    if tables:
        for name, df in (("provenance", provenance_rows(runs)), ("chains", chain_rows(runs))):
            atomic_write_bytes(results_dir / "tables" / f"{name}.csv",
                               df.to_csv(index=False, float_format="%.6g", lineterminator="\n").encode())
    same = same_runs(runs)
    lines = ["# Appendix to REPORT.md: provenance, chain diagnostics, full metrics, benchmarks", "",
             "<!-- GENERATED FILE: do not edit. Regenerate with `python replicate.py --report`. -->", "",
             "All runs: [tables/provenance.csv](tables/provenance.csv), [tables/chains.csv](tables/chains.csv); "
             "the full tidy metrics of each table (one row per run and metric, with the paper's number and the "
             "status or reason) are in `tables/<table>.csv`.", ""]
    for t in experiments.tables():
        rs = [r for r in runs if r["table"] == t]
        registry = experiments.resolve(t, "paper")
        lines += [f"## {t}", "", f"Full metrics: [tables/{t}.csv](tables/{t}.csv)."]
        figs = sorted((results_dir / "figures").glob(f"report_{t}_*.png")) if rs else []
        if figs:
            lines += ["Summary figures: " + ", ".join(f"[{p.stem.rsplit('_', 1)[-1]}]({_link(p, results_dir)})" for p in figs) + "."]
        lines += [""]
        notes = [f"- `{e.id}`: {u}" for e in registry for u in e.unverified] + [f"- `{e.id}`: {e.notes}" for e in registry if e.notes]
        if notes:
            lines += ["Unverified settings and notes:", ""] + notes + [""]
        if rs and t in APPENDIX_ONLY:  # the notes that REPORT.md leaves to the appendix for this table
            lines += ["Notes:", ""] + [f"- {n}" for n in table_notes(rs, t, headline(rs, t)[1])] + [""]
        if rs:
            kept, dups = dedup(rs)
            lines += ["Provenance:", "", to_markdown(provenance_rows(rs)), "", "Chain diagnostics:", "",
                      to_markdown(chain_rows(rs)), ""]
            stats, reasons = stats_rows(kept)
            if len(stats):
                lines += ["Chain statistics (rule 2, [docs/statistics.md](../docs/statistics.md)): shares of the "
                          "classifier's groups ± MCSE (bulk ESS), the reference's (one-step jumps from noised test "
                          "images) ± binomial SE; shares and S of `thinned` runs come from their committed thinned "
                          "jumps (S then a lower bound). Verdict reasons below the table.", "",
                          to_markdown(stats), ""] + reasons + [""]
            shares = [f"- `{r['run']}` ({config_hash(r)}): {shares_text(r)}" for r in kept if shares_text(r)]
            lines += (["Class shares of the jumps (largest first; ± MCSE where the chain statistics hold them):", ""] + shares + [""]) if shares else []
            lines += [f"- {d}" for d in dups] + ([""] if dups else [])
            samples = other_sample_lines(rs, {run: same[run] for run in same if run in {r["run"] for r in rs}},
                                         results_dir, results_dir)
            if samples:
                lines += ["Samples of every run (REPORT.md shows none of this table's):" if t in APPENDIX_ONLY else
                          "Samples of the runs whose samples REPORT.md does not show (it shows, per experiment and "
                          f"profile, the longest chain of at least {FEATURED_MIN_STEPS:,} walk steps):", "",
                          *samples, ""]
    drift = drift_table(results_dir, WALK_DATASET, WALK_GROUP)
    if len(drift):
        lines += ["## drift", "", DRIFT_CAPTION.format(group=WALK_GROUP), "", to_markdown(drift), ""]
    claims = [r for r in records if r["table"] == "claims"]
    if claims:
        lines += ["## claims", "", "The toy claim sweeps (`python replicate.py --claims toy`), listed on REPORT.md's "
                  "front page with their verdicts in its scoreboard.", ""]
        lines += claims_lines(sorted(claims, key=record_sort_key), results_dir, results_dir)
    bench = sorted(p for p in (results_dir / "benchmarks").glob("*") if p.suffix in (".md", ".csv", ".png"))
    bench += sorted((results_dir / "figures").glob("benchmark*.png"))
    if bench:
        lines += ["## benchmarks", "", "Timings are only comparable on the same hardware; each file names its device.", ""]
        lines += [f"- [{_link(p, results_dir)}]({_link(p, results_dir)})" for p in bench] + [""]
    return "\n".join(lines).rstrip() + "\n"
