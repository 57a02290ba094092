"""The report's per-table summary figures (loss, metrics against n, chain diagnostics), written by `write_report`;
and the per-run sample lines (the sample grids, chain strips and traces are the score stage's: evaluation/images.py),
with the rule that picks the runs whose samples REPORT.md shows (`featured`; the others: results/APPENDIX.md)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..data.registry import CLASS_GROUPS
from ..evaluation import chain_stats
from ..evaluation.images import pyplot
from ..runs import experiments, paper
from .headline import dedup, train_key
from .tables import (chain_statistics, class_shares, class_shares_pm, config_hash, figure_path, load_records, pm,
                     record_sort_key, shares_text, text, top_class)

# The chain statistics (value ± MCSE, shown in the tables with their errors) are not metrics against n.
CHAIN_STATS = {name for groups in [{}, *CLASS_GROUPS.values()] for name in chain_stats.metric_names(groups)}


def _plt():
    plt = pyplot()
    # seaborn's whitegrid look via matplotlib's copy of it (importing seaborn itself costs seconds).
    plt.style.use("seaborn-v0_8-whitegrid")
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 6})
    return plt


def _save_fig(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png", metadata={"Software": None})
    _plt().close(fig)
    return path


def _label(record: dict, runs: Iterable[str] | None = None) -> str:
    """`experiment (profile, run keys)`: the record's own run key unless `runs` names the runs of one line."""
    keys = ", ".join(run.rsplit("-", 1)[-1] for run in (runs if runs is not None else [record.get("run", "")]) if run)
    return f"{record['experiment']} ({record['profile']}{', ' + keys if keys else ''})"


def loss_lines(records: list[dict]) -> list[tuple[str, np.ndarray]]:
    """(label, [[step, loss], ...]) per trained model (headline.train_key), from `train.history`: the runs that
    sample one model share its line, labelled with their run keys."""
    models: dict[str, list[dict]] = {}
    for r in sorted(records, key=record_sort_key):
        if (r.get("train") or {}).get("history"):
            models.setdefault(train_key(r), []).append(r)
    return [(_label(runs[0], [r.get("run", "") for r in runs]),
             np.asarray([h[:2] for h in runs[0]["train"]["history"]], dtype=float)) for runs in models.values()]


def loss_curve(records: list[dict], path: str | os.PathLike) -> Path:
    """Training loss against step, one line per trained model (log scale): `loss_lines`."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in loss_lines(records):
        ax.plot(h[:, 0], h[:, 1], label=label)
    ax.set(xlabel="training step", ylabel="loss", yscale="log", title="Training loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return _save_fig(fig, path)


def metric_vs_samples(records: list[dict], path: str | os.PathLike,
                      metrics: Iterable[str] | None = None) -> Path:
    """Each computed metric against its number of samples n, one panel per metric.

    Points of one (run, metric, mode) are joined in order of n. In a panel named exactly "FID", the
    paper's FIDs of the same table are dashed lines, labelled with their source (paper.py).
    """
    df = load_records(records)
    df = df[(df["status"] == "ok") & df["value"].notna() & df["n"].notna() & ~df["metric"].isin(CHAIN_STATS)]
    if metrics is not None:
        df = df[df["metric"].isin(list(metrics))]
    names = sorted(df["metric"].unique())
    ncols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, names):
        sub = df[df["metric"] == name]
        for (run, mode), g in sub.groupby(["run", sub["mode"].fillna("")], sort=True):
            g = g.sort_values("n")
            label = f"{g['experiment'].iloc[0]} ({g['profile'].iloc[0]}{', ' + mode if mode else ''})"
            ax.plot(g["n"], g["value"], marker="o", label=label)
        if name == "FID":
            for number in sorted({n for t in sub["table"].unique() for n in paper.numbers_for(t)}, key=str):
                ax.axhline(number.value, ls="--", lw=0.8, color="grey")
                ax.annotate(f"paper {number.value:g}", (0, number.value), xycoords=("axes fraction", "data"),
                            fontsize=6)
        ax.set(xlabel="samples n", title=name)
        ax.legend(fontsize=6)
    if not names:
        axes[0][0].text(0.5, 0.5, "no computed metric yet", ha="center", va="center")
    return _save_fig(fig, path)


def chain_diagnostics(records: list[dict], path: str | os.PathLike) -> Path:
    """Per run: the mean of x̂ over the first vs last 10% of jumps (drift = instability), walk speed, and
    the classes the jumps visit (labelled data)."""
    records = [r for r in sorted(records, key=record_sort_key) if r.get("chain")]
    labelled = [r for r in records if r["chain"].get("class_histogram")]
    plt = _plt()
    fig, axes = plt.subplots(1, 3 if labelled else 2, figsize=(10 if labelled else 7, 3.2))
    labels = [_label(r) for r in records]
    y = np.arange(len(records))
    first = [r["chain"].get("jump_mean_first10pct") or 0.0 for r in records]
    last = [r["chain"].get("jump_mean_last10pct") or 0.0 for r in records]
    axes[0].barh(y - 0.2, first, height=0.4, label="first 10% of jumps")
    axes[0].barh(y + 0.2, last, height=0.4, label="last 10% of jumps")
    axes[0].set(yticks=y, yticklabels=labels, xlabel="mean of x̂ (jump)", title="Chain stability (drift)")
    axes[0].invert_yaxis()  # first run on top
    axes[0].legend(fontsize=6)
    axes[1].barh(y, [r["chain"].get("steps_per_s") or math.nan for r in records])
    axes[1].set(yticks=y, yticklabels=["" for _ in labels], xlabel="walk steps / s", xscale="log", title="Speed")
    axes[1].invert_yaxis()
    if labelled:
        for r in labelled:
            h = np.asarray(r["chain"]["class_histogram"], dtype=float)
            axes[2].plot(np.arange(len(h)), h / max(h.sum(), 1e-12), marker="o", label=_label(r))
            axes[2].axhline(1 / len(h), ls="--", lw=0.8, color="grey")  # uniform over classes
        axes[2].set(xlabel="class", ylabel="share of jumps", title="Classes visited", ylim=(0, None))
        axes[2].legend(fontsize=6)
    return _save_fig(fig, path)


# --------------------------------------------------------------------------------------------------
# Per-run samples (the score stage's grid, strip and trace figures): REPORT.md shows those of the runs that
# matter (`featured`), the appendix those of every other run, so the front page does not grow with each run.

SAMPLE_FIGURES = ("grid", "strip", "trace")  # the score stage's per-run figures, in display order (legend: top)
DISPLAY_MIN_PX = 560  # small PNGs are shown upscaled (integer factor) to at least this width
FEATURED_MIN_STEPS = 200_000  # the cpu profile's chain: shorter chains' samples go to the appendix
# Tables whose notes, samples and summary figures only the appendix shows (REPORT.md keeps their headline table: its
# five-minute budget); the walk's own table and the CLMC table keep theirs on the front page.
APPENDIX_ONLY = frozenset({"fashion-mnist-levers", "fashion-mnist-M", "fashion-mnist-sigma", "fashion-mnist-schemes",
                           "toy-schemes"})


def link(path: Path, out_dir: Path) -> str:
    """A path as a link relative to the folder of the page that holds it."""
    return Path(os.path.relpath(path, out_dir)).as_posix()


def image(path: Path, alt: str, out_dir: Path, min_px: int = DISPLAY_MIN_PX) -> str:
    """An <img> upscaled by an integer factor to at least `min_px` wide (small grids of 28x28 images)."""
    if not path.is_file():
        return f"`{link(path, out_dir)}` (missing in this checkout)"
    with Image.open(path) as im:
        width, height = im.size
    factor = max(1, math.ceil(min_px / width), math.ceil(56 / height) if height < 56 else 1)
    return f'<img src="{link(path, out_dir)}" width="{width * factor}" alt="{alt}">'


def same_runs(records: list[dict]) -> dict[str, tuple[str, str]]:
    """Run -> (experiment, table) of the same run (same config hash) in an earlier table (experiments.tables() order)."""
    first: dict[str, tuple[str, str]] = {}
    out = {}
    for t in experiments.tables():
        for r in dedup([x for x in records if x["table"] == t])[0]:
            if config_hash(r) in first:
                out[r["run"]] = first[config_hash(r)]
            else:
                first[config_hash(r)] = (r["experiment"], t)
    return out


def _rank(r: dict) -> tuple:
    """Longest chain first; among equally long ones a chain rule 2 calls on the data, then stable, then the newest."""
    v = (chain_statistics(r) or {}).get("verdict") or {}
    judged = 2 if v.get("on_data") and v.get("stable") and v.get("decided") else 1 if v.get("stable") else 0
    return ((r.get("chain") or {}).get("steps") or 0, judged, str((r.get("provenance") or {}).get("created")), r["run"])


def featured(records: list[dict], aliases: dict) -> set[str]:
    """The runs of one table whose samples REPORT.md shows: per profile, the longest chain of at least
    FEATURED_MIN_STEPS walk steps (of equally long ones: on the data by rule 2, else stable, else the newest); never
    a run shown in an earlier table; none of an APPENDIX_ONLY table."""
    best: dict[tuple, dict] = {}
    for r in dedup(records)[0]:
        if r["table"] in APPENDIX_ONLY:
            continue
        steps = (r.get("chain") or {}).get("steps") or 0
        if r["run"] in aliases or not r.get("figures") or steps < FEATURED_MIN_STEPS:
            continue
        key = r["profile"]
        if key not in best or _rank(r) > _rank(best[key]):
            best[key] = r
    return {r["run"] for r in best.values()}


def sample_lines(r: dict, results_dir: Path, out_dir: Path) -> list[str]:
    """A run's samples: its chain and class shares (± MCSE where the chain statistics hold them), then its figures."""
    figs, c = r.get("figures") or {}, r.get("chain") or {}
    chains = "one chain" if c.get("n_chains") == 1 else f"{text(c.get('n_chains')) or '?'} chains"
    head = (f"- **{r['experiment']} ({config_hash(r)})**, {r['profile']}, {chains} of {c.get('steps', 0):,} walk "
            f"steps, {c.get('n_jumps', 0):,} jumps")
    shares, with_err = class_shares(r), class_shares_pm(r)
    if with_err:  # ± MCSE of the per-jump class traces (chain statistics)
        ranked = sorted(with_err, key=lambda s: (-s[1], s[0]))
        head += (f". Top class: **{top_class(r)}** of the jumps (uniform {100 / len(ranked):.0f}%); then "
                 + ", ".join(f"{n} {pm(v, e, 100, '%')}" for n, v, e in ranked[1:5]) + " (± MCSE)")
    elif shares:
        ranked = sorted(shares, key=lambda s: (-s[1], s[0]))
        head += (f". Top class: **{top_class(r)}** of the jumps (uniform would be {100 / len(shares):.0f}%); then "
                 + ", ".join(f"{n} {100 * v:.1f}%" for n, v in ranked[1:5])
                 + f"; the other {len(ranked) - 5} classes {100 * sum(v for _, v in ranked[5:]):.1f}% together"
                 if len(ranked) > 5 else f". Class shares: {shares_text(r)}")
    images = [image(figure_path(results_dir, figs[kind]), kind, out_dir) for kind in SAMPLE_FIGURES if kind in figs]
    return [head + "."] + (["  " + "<br>".join(images)] if images else [])


def other_sample_lines(records: list[dict], aliases: dict, results_dir: Path, out_dir: Path) -> list[str]:
    """The samples of the runs of one table that REPORT.md does not show (the appendix's list)."""
    shown, lines = featured(records, aliases), []
    for r in dedup(records)[0]:
        if r["run"] in aliases:
            experiment, table = aliases[r["run"]]
            lines.append(f"- **{r['experiment']} ({config_hash(r)})**: the same run as `{experiment}` "
                         f"(`--table {table}`); its samples are listed with that table.")
        elif r.get("figures") and r["run"] not in shown:
            lines += sample_lines(r, results_dir, out_dir)
    return lines
