"""REPORT.md, the results tables and the figures, regenerated from the run records alone.

Every number in REPORT.md comes from `results/records/<run>.json` (one record per finished run, written
by the pipeline) or from `paper.py` (the paper's numbers); nothing is typed by hand. Reproduced values
sit *beside* the paper's, never instead (clean-fid's "reported | reproduced" tables), and the output is
deterministic so a golden test pins it (DomainBed's `collect_results`; see tests/test_report.py).

Record (the fields read here; everything else is ignored):

    run, table, experiment, profile ("paper" | "quick" | "smoke"), config (Experiment.to_dict()),
    provenance {git_sha, git_dirty, hostname, hardware, device, torch, python, created,
                train_hardware?, chain_hardware?},
    train {steps, wall_s, final_loss, history [[step, loss], ...], n_params},
    chain {steps, n_chains, n_jumps, n_samples, wall_s, steps_per_s, jump_mean_first10pct,
           jump_mean_last10pct, dist_prev_mean, iat_jump_mean, class_switch_rate?, class_histogram?},
    metrics [{metric, value, mode, n, status ("ok" | "not computed"), reason, reference, extractor?,
              calibration?}],
    figures {name: path relative to the folder holding results/, i.e. the repo root}   (optional)

Paper values are compared only with the same metric name, at the paper profile, and for FID only in
the paper's mode (legacy TF-Inception, SPEC §6 decision 1). Fréchet distances in other feature spaces
(`FD_classifier`, `FD_test-proj16 (NOT FID)`) are never put beside an FID and get a warning banner.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from . import experiments, paper
from .storage import atomic_write_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]
REPORT_COMMAND = "python replicate.py --report"

PROFILE_ORDER = {"paper": 0, "quick": 1, "smoke": 2}
PROFILE_NOTES = {
    "quick": "quick profile: not comparable to the paper",
    "smoke": "smoke profile: plumbing check only, numbers meaningless",
}
PAPER_FID_MODES = (None, "legacy_tensorflow")  # the paper's FID is compared in legacy-TF mode only
TABLE_TITLES = {
    "mnist": "MNIST",
    "cifar10": "CIFAR-10",
    "ffhq256": "FFHQ-256",
    "toy": "Toy 2-D Gaussian mixture (beyond the paper)",
    "fashion-mnist": "Fashion-MNIST (beyond the paper)",
}
DATA_NEEDS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "ffhq256": "FFHQ-256", "fashion-mnist": "Fashion-MNIST"}
COLUMNS = [
    "experiment", "sigma", "M", "chain steps", "samples", "metric", "mode", "n", "reference", "reproduced",
    "paper", "difference", "profile", "hardware", "wall time (train+chain)", "code version",
    "status/reason", "run",
]
RECORD_COLUMNS = [  # load_records
    "run", "table", "experiment", "profile", "sigma", "M", "chain_steps", "n_samples", "hardware", "device",
    "git_sha", "git_dirty", "train_steps", "train_wall_s", "chain_wall_s", "wall_s", "train_seed", "chain_seed",
    "created", "metric", "mode", "value", "n", "status", "reason", "reference", "extractor", "calibration",
]
MAX_EMBEDDED_CSV_ROWS = 40


# --------------------------------------------------------------------------------------------------
# Figures.


def _images01(images: Any) -> torch.Tensor:
    """uint8 [N, C, H, W] or float in [0, 1] -> float [N, C, H, W] in [0, 1] (NaN -> 0)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    x = x.detach().cpu()
    if x.ndim == 3:  # [N, H, W]
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(x.shape)}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return torch.nan_to_num(x, nan=0.0).clamp(0, 1)


def _make_grid(x: torch.Tensor, nrow: int, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """torchvision.utils.make_grid's layout ([N, C, H, W] -> [C, H', W']), without importing torchvision
    (whose import pulls in torch._dynamo: seconds, for a few lines of indexing)."""
    n, c, h, w = x.shape
    ncol, nrows = min(nrow, n), math.ceil(n / nrow)
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for k in range(n):
        top, left = (k // nrow) * (h + padding) + padding, (k % nrow) * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = x[k]
    return grid


def _save_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int, max_side: int) -> Path:
    from PIL import Image

    channels = x.shape[1]
    grid = _make_grid(x, nrow=nrow)  # [C, H', W']
    scale = max_side / max(grid.shape[1:])
    if scale < 1:  # Downsample large grids (FFHQ-256) so the PNG stays small.
        size = (max(1, round(grid.shape[1] * scale)), max(1, round(grid.shape[2] * scale)))
        grid = torch.nn.functional.interpolate(grid[None], size=size, mode="bilinear", antialias=True)[0]
    arr = grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(arr[..., 0] if channels == 1 else arr)  # grey stays one channel (smaller PNG)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
    return path


def sample_grid(images: Any, path: str | os.PathLike, nrow: int = 10, max_side: int = 512) -> Path:
    """Save the first nrow² images as an nrow-wide grid PNG (torchvision make_grid).

    Args:
        images: uint8 [N, C, H, W] (0..255) or float [N, C, H, W] in [0, 1].
        path: the PNG to write.
        nrow: images per row; at most nrow * nrow images are shown.
        max_side: the grid is downsampled to at most this many pixels per side.
    Returns:
        The path written.
    """
    x = _images01(images)[: nrow * nrow]
    return _save_grid(x, path, nrow, max_side)


def chain_strip(images: Any, path: str | os.PathLike, n: int = 20, start: int = 0,
                max_side: int = 1280) -> Path:
    """Save `n` consecutive jumps x̂ of one chain as one row (the poster's chain figures).

    Args:
        images: the jumps of one chain in chain order, uint8 or float [T, C, H, W].
        n: how many consecutive jumps to show, from index `start`.
    """
    x = _images01(images)[start : start + n]
    return _save_grid(x, path, max(1, len(x)), max_side)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def _label(record: dict) -> str:
    return f"{record['experiment']} ({record['profile']})"


def loss_curve(records: list[dict], path: str | os.PathLike) -> Path:
    """Training loss against step, one line per run (log scale), from `train.history`."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in sorted(records, key=_record_sort_key):
        history = np.asarray([h[:2] for h in (r.get("train") or {}).get("history") or []], dtype=float)
        if len(history):
            ax.plot(history[:, 0], history[:, 1], label=_label(r))
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
    df = df[(df["status"] == "ok") & df["value"].notna() & df["n"].notna()]
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
    records = [r for r in sorted(records, key=_record_sort_key) if r.get("chain")]
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
            axes[2].plot(np.arange(len(h)), h / max(h.sum(), 1), marker="o", label=_label(r))
            axes[2].axhline(1 / len(h), ls="--", lw=0.8, color="grey")  # uniform over classes
        axes[2].set(xlabel="class", ylabel="fraction of jumps", title="Classes visited", ylim=(0, None))
        axes[2].legend(fontsize=6)
    return _save_fig(fig, path)


# --------------------------------------------------------------------------------------------------
# Records -> tidy DataFrame -> results tables.


@functools.cache
def _registry_order() -> dict[str, int]:
    ids = [e.id for t in experiments.TABLES for e in experiments.resolve(t, "paper")]
    return {id_: i for i, id_ in enumerate(ids)}


def _record_sort_key(r: dict) -> tuple:
    order = _registry_order()
    return (order.get(r["experiment"], len(order)), r["experiment"], PROFILE_ORDER.get(r["profile"], 9), r["run"])


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
    return sorted(records, key=_record_sort_key)


def _hardware(prov: dict) -> str:
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
            "chain_steps": chain.get("steps", cchain.get("steps")),
            "n_samples": chain.get("n_samples"),
            "hardware": _hardware(prov), "device": prov.get("device"),
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


def _is_fid(metric: Any, extractor: Any) -> bool:
    """Inception FID only: a name exactly "FID" and no non-Inception extractor behind it."""
    return metric == "FID" and (not isinstance(extractor, str) or extractor.startswith("inception"))


def _not_fid_fd(metric: Any) -> bool:
    return isinstance(metric, str) and ("NOT FID" in metric or metric.startswith("FD"))


def _str(v: Any) -> str:
    """A text cell: None / NaN -> ""."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _code_version(sha: Any, dirty: Any) -> str:
    return "" if not isinstance(sha, str) else sha[:8] + ("-dirty" if dirty is True else "")


def _duration(seconds: Any) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _not_run(e: experiments.Experiment) -> str:
    """Why an experiment has no result, and the command that produces one."""
    if not e.implemented:
        return "not implemented yet" + (f" ({e.notes})" if e.notes else "")
    data = DATA_NEEDS.get(e.table)
    if e.table in experiments.CPU_TABLES:
        return f"run `python replicate.py --table {e.table} --profile quick` (CPU)"
    if data is None:
        return f"run `python replicate.py --table {e.table} --profile paper`"
    return (f"needs {data} and a GPU; run `python replicate.py --table {e.table} --profile paper "
            f"--launcher slurm --cluster <profile>`")


def results_table(records: pd.DataFrame | list[dict], table: str) -> pd.DataFrame:
    """Reproduced beside paper for one table: a row per (run, metric), plus a row per paper number
    with no paper-profile result (empty reproduced cell and the reason). Columns: `COLUMNS`."""
    df = records if isinstance(records, pd.DataFrame) else load_records(records)
    df = df[df["table"] == table] if len(df) else df
    registry = {e.id: e for e in experiments.resolve(table, "paper")}
    numbers = paper.numbers_for(table)
    rows, matched = [], set()

    # Rows of the records.
    for _, x in df.iterrows():
        metric, mode, calibration = _str(x["metric"]), _str(x["mode"]) or None, x["calibration"] is True
        comparable = x["profile"] == "paper" and not calibration and (
            _is_fid(metric, x["extractor"]) and mode in PAPER_FID_MODES
            or (metric != "FID" and not _not_fid_fd(metric))
        )
        number = next((p for p in numbers if comparable and (p.row, p.metric) == (x["experiment"], metric)), None)
        if number is not None:
            matched.add(number)
        ok = x["status"] == "ok" and pd.notna(x["value"])
        status = "ok" if x["status"] == "ok" else _str(x["reason"]) or _str(x["status"])
        if metric == "FID" and not _is_fid(metric, x["extractor"]):
            status, ok = f"invalid: FID label on a non-Inception extractor ({x['extractor']})", False
        if calibration:
            status += "; calibration: a reference value, not the model's samples"
        if x["profile"] in PROFILE_NOTES:
            status += f"; {PROFILE_NOTES[x['profile']]}"
        rows.append({
            "experiment": x["experiment"], "sigma": x["sigma"], "M": x["M"], "chain steps": x["chain_steps"],
            "samples": x["n_samples"], "metric": metric, "mode": mode or "", "n": x["n"],
            "reference": _str(x["reference"]), "reproduced": x["value"] if ok else math.nan,
            "paper": number.value if number else math.nan,
            "difference": x["value"] - number.value if number and ok else math.nan,
            "profile": x["profile"], "hardware": _str(x["hardware"]), "wall time (train+chain)": _duration(x["wall_s"]),
            "code version": _code_version(x["git_sha"], x["git_dirty"]), "status/reason": status, "run": x["run"],
        })

    # Paper numbers with no paper-profile result.
    for number in numbers:
        if number in matched:
            continue
        e = registry.get(number.row)
        if e is None:
            reason = f"reference row, no matching experiment ({number.source})"
        elif not e.implemented:
            reason = f"not run: {_not_run(e)}"
        elif e.table in DATA_NEEDS:
            reason = "not run: needs a GPU cluster (paper profile)"
        else:
            reason = "not run (paper profile)"
        rows.append({
            **{c: "" for c in COLUMNS}, "experiment": number.row or "—",
            "sigma": e.model.sigma if e else math.nan, "M": e.model.M if e else math.nan,
            "chain steps": e.chain.steps if e else math.nan, "samples": e.n_samples if e else math.nan,
            "metric": number.metric, "n": math.nan, "reproduced": math.nan, "paper": number.value,
            "difference": math.nan, "profile": "paper", "status/reason": reason,
        })
    out = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("sigma", "reproduced", "paper", "difference"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    for col in ("M", "chain steps", "samples", "n"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    return out


def _cell(v: Any, fmt: str = "{:.4g}") -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return fmt.format(float(v))
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame) -> str:
    """A results table as a markdown pipe table with fixed float formatting."""
    formats = {"sigma": "{:g}", "paper": "{:g}", "difference": "{:+.4g}"}
    cells = pd.DataFrame({c: [_cell(v, formats.get(c, "{:.4g}")) for v in table[c]] for c in table.columns},
                         columns=list(table.columns))
    if not len(cells):
        return "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns)
    return cells.to_markdown(index=False, disable_numparse=True)


def write_tables(records_dir: str | os.PathLike | list[dict],
                 out_dir: str | os.PathLike = "results/tables") -> list[Path]:
    """`<out_dir>/<table>.csv` (raw numbers) and `<table>.md` for every table in experiments.TABLES."""
    df, out_dir, written = load_records(records_dir), Path(out_dir), []
    for table in experiments.TABLES:
        t = results_table(df, table)
        csv = t.to_csv(index=False, float_format="%.6g", lineterminator="\n")
        for path, text in ((out_dir / f"{table}.csv", csv), (out_dir / f"{table}.md", to_markdown(t) + "\n")):
            atomic_write_bytes(path, text.encode())
            written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# REPORT.md.


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path, out_dir)).as_posix()


def _figure(name: str, path: Path, shown: str, out_dir: Path) -> str:
    if path.is_file():
        return f"![{name}]({_link(path, out_dir)})"
    return f"`{shown}` (missing in this checkout)"


def _demote(markdown: str, levels: int = 2) -> str:
    """Push the headings of an embedded markdown file down `levels` levels (outside code fences)."""
    out, fence = [], False
    for line in markdown.rstrip().splitlines():
        fence ^= line.lstrip().startswith("```")
        out.append("#" * levels + line if not fence and re.match(r"#+ ", line) else line)
    return "\n".join(out)


def _banners(df: pd.DataFrame) -> list[str]:
    lines = []
    small = sorted(set(df["profile"]) & set(PROFILE_NOTES), key=PROFILE_ORDER.get)
    if small:
        lines.append(f"> **WARNING: {'/'.join(small)} profile results.** Some numbers in this section come from "
                     f"the {' and '.join(small)} profile (small networks, short training and chains, few "
                     "samples): they are not comparable to the paper and no difference is computed for them.")
    fds = sorted({m.split("[")[0] for m in df["metric"] if _not_fid_fd(m)})  # calibrations: "FD_x[calibration: ...]"
    if fds:
        lines.append(f"> **WARNING: not FID.** {', '.join(f'`{m}`' for m in fds)} "
                     f"{'is a Fréchet distance' if len(fds) == 1 else 'are Fréchet distances'} in non-Inception "
                     "feature spaces (the suite's classifier, a test projection): not comparable to any FID, "
                     "and never placed beside the paper's FID.")
    return [line for b in lines for line in (b, "")]


def _not_run_lines(table: str, records: list[dict]) -> list[str]:
    ran: dict[str, set] = {}
    for r in records:
        ran.setdefault(r["experiment"], set()).add(r["profile"])
    lines = []
    for e in experiments.resolve(table, "paper"):
        if e.id not in ran:
            lines.append(f"- `{e.id}`: not run — {_not_run(e)}")
        elif "paper" not in ran[e.id] and table not in experiments.CPU_TABLES:
            profiles = "/".join(sorted(ran[e.id], key=lambda p: PROFILE_ORDER.get(p, 9)))
            lines.append(f"- `{e.id}`: paper profile not run (only {profiles} results above) — {_not_run(e)}")
    return lines


def _paper_lines(table: str) -> list[str]:
    lines = [f"- {n.metric} {n.value:g} ({f'`{n.row}`' if n.row else 'reference row, no experiment'}): "
             f"{n.setting}. Source: {n.source}." + ("" if n.verified_setting else " The setting is unverified.")
             for n in paper.numbers_for(table)]
    return lines + [f"- \"{text}\" — {source} (qualitative; compare with the figures)."
                    for t, text, source in paper.PAPER_CLAIMS if t == table]


def _figure_lines(table: str, records: list[dict], results_dir: Path, out_dir: Path, figures: bool) -> list[str]:
    lines = [f"- `{r['run']}` {name}: {_figure(name, results_dir.parent / rel, rel, out_dir)}"
             for r in records for name, rel in sorted((r.get("figures") or {}).items())]
    if records and figures:
        for name, fn in (("loss", loss_curve), ("metrics", metric_vs_samples), ("chain", chain_diagnostics)):
            path = fn(records, results_dir / "figures" / f"report_{table}_{name}.png")
            lines.append(f"- {name} (all runs): {_figure(name, path, path.name, out_dir)}")
    return lines


def _table_section(table: str, records: list[dict], results_dir: Path, out_dir: Path, figures: bool) -> list[str]:
    df = load_records(records)
    results = results_table(df, table)
    registry = experiments.resolve(table, "paper")
    lines = [f"## {TABLE_TITLES.get(table, table)} (`--table {table}`)", ""] + _banners(df) + ["### Results", ""]
    if len(results):
        lines += [to_markdown(results), "",
                  "`reproduced` and `paper` sit side by side; `difference` = reproduced − paper, only for paper-"
                  "profile runs with the paper's metric (FID: legacy-TF mode). An empty `reproduced` cell means "
                  "no number: see `status/reason`.", ""]
    else:
        lines += ["_No results and no paper numbers for this table yet._", ""]
    sections = (
        ("Not run, and why", _not_run_lines(table, records)),
        ("What the paper reports", _paper_lines(table)),
        ("Unverified settings and notes", [f"- `{e.id}`: {u}" for e in registry for u in e.unverified]
         + [f"- `{e.id}`: {e.notes}" for e in registry if e.notes]),
        ("Figures", _figure_lines(table, records, results_dir, out_dir, figures)),
        ("Chain diagnostics", [_chain_table(records)] if records else []),
        ("Provenance", [_provenance_table(records)] if records else []),
    )
    for title, body in sections:
        if body:
            lines += [f"### {title}", ""] + body + [""]
    return lines


def _chain_table(records: list[dict]) -> str:
    rows = []
    for r in records:
        c = r.get("chain") or {}
        hist = c.get("class_histogram")
        rows.append({
            "run": r["run"], "profile": r["profile"], "walk steps": c.get("steps"), "chains": c.get("n_chains"),
            "jumps": c.get("n_jumps"), "steps/s": c.get("steps_per_s"), "finite": c.get("finite"),
            "mean of x̂, first 10% of jumps": c.get("jump_mean_first10pct"),
            "mean of x̂, last 10% of jumps": c.get("jump_mean_last10pct"),
            "distance to previous jump": c.get("dist_prev_mean"), "IAT of the mean of x̂": c.get("iat_jump_mean"),
            "class switch rate": c.get("class_switch_rate"),
            "class histogram": " ".join(str(int(h)) for h in hist) if hist else None,
        })
    return to_markdown(pd.DataFrame(rows))


def _provenance_table(records: list[dict]) -> str:
    rows = []
    for r in records:
        p, t, c, cfg = (r.get(k) or {} for k in ("provenance", "train", "chain", "config"))
        rows.append({
            "run": r["run"], "profile": r["profile"],
            "code version": _code_version(p.get("git_sha"), p.get("git_dirty")),
            "hardware": _hardware(p), "device": p.get("device"), "torch": p.get("torch"),
            "python": p.get("python"), "host": p.get("hostname"),
            "seeds (train, chain)": f"{(cfg.get('train') or {}).get('seed')}, {(cfg.get('chain') or {}).get('seed')}",
            "train": f"{t.get('steps')} steps, {_duration(t.get('wall_s'))}",
            "final loss": t.get("final_loss"), "params": t.get("n_params"),
            "chain": f"{c.get('steps')} steps, {_duration(c.get('wall_s'))}", "created": p.get("created"),
        })
    return to_markdown(pd.DataFrame(rows))


def _csv_markdown(path: Path, out_dir: Path) -> list[str]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    lines = [f"`{_link(path, out_dir)}`:", ""]
    lines += [df.head(MAX_EMBEDDED_CSV_ROWS).to_markdown(index=False, disable_numparse=True)]
    if len(df) > MAX_EMBEDDED_CSV_ROWS:
        lines += ["", f"(first {MAX_EMBEDDED_CSV_ROWS} of {len(df)} rows)"]
    return lines + [""]


def _extras_section(results_dir: Path, out_dir: Path) -> list[str]:
    """Benchmarks and other stages' tables and benchmark figures, embedded if present."""
    def files(folder: str, pattern: str) -> list[Path]:
        return sorted((results_dir / folder).glob(pattern))

    parts = []
    for path in files("benchmarks", "*.md"):
        parts += [f"`{_link(path, out_dir)}`:", "", _demote(path.read_text()), ""]
    other_tables = [p for p in files("tables", "*.csv")
                    if p.stem not in experiments.TABLES and not p.stem.startswith("claims_")]
    for path in files("benchmarks", "*.csv") + other_tables:
        parts += _csv_markdown(path, out_dir)
    for path in files("figures", "benchmark*.png"):
        parts += [f"![{path.stem}]({_link(path, out_dir)})", ""]
    if not parts:
        return []
    return ["## Benchmarks and other tables", "",
            "> Timings are only comparable on the same hardware; each file names its device.", ""] + parts


def _claims_section(records: list[dict], results_dir: Path, out_dir: Path) -> list[str]:
    """The poster's claims measured on the toy mixture (`python -m replication.claims toy`), one part per sweep."""
    if not records:
        return []
    lines = ["## The poster's claims, measured on the toy mixture (beyond the paper)", "",
             "> **Beyond the paper:** measurements on a 2-D Gaussian mixture (ring of 8 modes) where the M-density, "
             "its score and the Bayes jump are exact; regenerate with `python -m replication.claims toy`.", ""]
    for r in records:
        sweep = r["run"].removeprefix("claims_")
        lines += [f"### {r.get('claim', sweep)}", "",
                  f"Run `{r['run']}`, code `{_code_version(r.get('provenance', {}).get('git_sha'), r.get('provenance', {}).get('git_dirty'))}`, "
                  f"{r.get('provenance', {}).get('hardware', '')}.", ""]
        for path in sorted((results_dir / "tables").glob(f"{r['run']}*.csv")):
            lines += _csv_markdown(path, out_dir)
        for path in sorted((results_dir / "figures").glob(f"{r['run']}*.png")):
            lines += [f"![{path.stem}]({_link(path, out_dir)})", ""]
    return lines


def _versions(records: list[dict]) -> str:
    """Distinct code versions of the records with their run counts, e.g. `3f2c1a9b` (2 runs)."""
    counts: dict[str, int] = {}
    for r in records:
        p = r.get("provenance") or {}
        v = _code_version(p.get("git_sha"), p.get("git_dirty")) or "unknown"
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(f"`{v}` ({n} run{'s' if n > 1 else ''})" for v, n in sorted(counts.items())) or "none"


def _anchor(table: str) -> str:
    """GitHub's anchor for a table's section heading."""
    heading = f"{TABLE_TITLES.get(table, table)} (--table {table})".lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def render_report(records: list[dict], results_dir: Path, out_dir: Path, figures: bool = True) -> str:
    """The text of REPORT.md for these records; `results_dir` holds records/, figures/, benchmarks/, tables/.

    Figure paths in the records are relative to `results_dir.parent` (the repo root by default); links in
    the report are relative to `out_dir`. With `figures`, writes the summary figures it links.
    """
    records = sorted(records, key=_record_sort_key)
    by_table = {t: [r for r in records if r["table"] == t] for t in experiments.TABLES}
    lines = [
        "# Multimeasurement Generative Models (ICLR 2022): replication report",
        "",
        f"<!-- GENERATED FILE: do not edit. Regenerate with `{REPORT_COMMAND}`. -->",
        "",
        f"Generated by `{REPORT_COMMAND}` from {len(records)} run record(s) in "
        f"`{_link(results_dir / 'records', out_dir)}/`; do not edit by hand, every number below is regenerated "
        "from the records. Paper numbers come from `replication/paper.py` only and always appear beside the "
        "reproduced ones, never instead of them.",
        "",
        f"Code versions of the runs: {_versions(records)}.",
        "",
        "| table | experiments | runs (paper / quick / smoke) | paper numbers | paper numbers reproduced |",
        "|---|---|---|---|---|",
    ]
    for t in experiments.TABLES:
        counts = " / ".join(str(sum(r["profile"] == p for r in by_table[t])) for p in PROFILE_ORDER)
        results = results_table(by_table[t], t)
        reproduced = int((results["paper"].notna() & results["reproduced"].notna()).sum())
        lines.append(f"| [{t}](#{_anchor(t)}) | {len(experiments.resolve(t, 'paper'))} | {counts} | "
                     f"{len(paper.numbers_for(t))} | {reproduced} |")
    lines.append("")
    for t in experiments.TABLES:
        lines += _table_section(t, by_table[t], results_dir, out_dir, figures)
    lines += _claims_section([r for r in records if r["table"] == "claims"], results_dir, out_dir)
    other = sorted({r["run"] for r in records if r["table"] not in experiments.TABLES + ("claims",)})
    if other:
        lines += ["## Records of unknown tables", ""] + [f"- `{run}`" for run in other] + [""]
    lines += _extras_section(results_dir, out_dir)
    return "\n".join(lines).rstrip() + "\n"


def write_report(records_dir: str | os.PathLike = "results/records", out: str | os.PathLike = "REPORT.md",
                 repo_root: str | os.PathLike | None = None, figures: bool = True, tables: bool = True) -> Path:
    """Regenerate REPORT.md entirely from the records (and the benchmark files, if present).

    Args:
        records_dir: the records folder; its parent is the results folder (figures/, benchmarks/, tables/).
        out: the report to write.
        repo_root: what relative `records_dir` and `out` are relative to (default: this checkout).
        figures: also write the summary figures `<results>/figures/report_<table>_{loss,metrics,chain}.png`.
        tables: also write `<results>/tables/<table>.{csv,md}` (`write_tables`).
    Returns:
        The path of the report.
    """
    root = Path(repo_root) if repo_root is not None else REPO_ROOT
    records_dir, out = root / records_dir, root / out
    records = read_records(records_dir) if records_dir.is_dir() else []
    if tables:
        write_tables(records, records_dir.parent / "tables")
    text = render_report(records, records_dir.parent, out.parent, figures)
    atomic_write_bytes(out, text.encode())
    return out
