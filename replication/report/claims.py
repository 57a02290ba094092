"""The toy claim sweeps' sections (`replicate.py --claims toy`): per sweep its run, code version, full rows, summary
table (scoreboard.claim_summary) and figure; the appendix holds them all, the CLMC section of REPORT.md its own."""

from __future__ import annotations

from pathlib import Path

from .figures import link as _link
from .scoreboard import claim_summary
from .tables import code_version, to_markdown


def claims_lines(records: list[dict], results_dir: Path, out_dir: Path) -> list[str]:
    """The toy claim sweeps, one subsection each: run, code version, full rows, summary table, figure (the appendix's;
    the front page lists them: render._claims_section)."""
    lines = []
    for r in records:
        prov = r.get("provenance") or {}
        lines += [f"### {r.get('claim', r['run'])}", "",
                  f"Run `{r['run']}` (profile `{r['profile']}`, code `{code_version(prov.get('git_sha'), prov.get('git_dirty'))}`)."
                  f" Full rows: " + ", ".join(f"[{p.name}]({_link(p, out_dir)})"
                                              for p in sorted((results_dir / "tables").glob(f"{r['run']}*.csv"))) + ".", ""]
        summary = claim_summary(r)
        if summary is not None:
            fmt = {c: "{:.3g}" for c in summary.columns} | {"M": "{:.0f}", "steps": "{:,.0f}"}
            caption = summary.attrs.get("caption")
            lines += ([caption, ""] if caption else []) + [to_markdown(summary, fmt), ""]
        lines += [f"![{p.stem}]({_link(p, out_dir)})" for p in sorted((results_dir / "figures").glob(f"{r['run']}*.png"))]
        lines += [""]
    return lines
