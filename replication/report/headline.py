"""One headline table per table of the report: one row per run (deduplicated by config hash), metrics as
columns, the paper's number beside the reproduced one, at most 12 columns; and the notes stated once per
table under it (scale against the paper, calibration points, metrics not computed, duplicates, overrides)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..data.registry import CLASS_GROUPS, CLASS_NAMES
from ..evaluation import chain_stats
from ..evaluation import metric_names as mn
from ..runs import experiments, paper
from ..runs.folders import stage_key
from ..sampling.integrators import INTEGRATORS
from .tables import (chain_statistics, class_shares, config_hash, count, dataset, is_fid, missing_paper_reason,
                     not_fid_fd, paper_number_for, pm, profile_note, profile_rank, record_sort_key, share_pm, text,
                     top_class, load_records)

# Metrics in headline order, with their column names; others follow alphabetically. Calibration points and
# the context metrics are stated once per table instead.
METRIC_COLUMNS = {
    "FID|legacy_tensorflow": "FID (legacy TF)", "FID|clean": "FID (clean)", "FID|": "FID",
    "FD_classifier (1,000 thinned)|": "FD classifier (1,000 thinned)", "FD_classifier|": "FD classifier",
    "class_coverage|": "classes ≥ 2%", "denoise_mse|": "denoise MSE",
    "denoise_FD_classifier|": "denoise FD", "mode_weight_tv|": "mode TV", "modes_visited|": "modes",
    "on_manifold_fraction|": "on manifold", "energy_distance|": "energy distance",
    "FD_test-proj16 (NOT FID)|legacy_tensorflow": "FD test-proj16 (NOT FID)",
}
# Not columns: the classifier's accuracy is stated once in the notes; the per-run context (the top class column
# names the top class and its share) is in tables/<table>.csv.
CONTEXT_METRICS = (mn.CLASSIFIER_ACCURACY, mn.thinned(mn.CLASS_COVERAGE), mn.TOP_CLASS_SHARE,
                   mn.thinned(mn.TOP_CLASS_SHARE))
NOTED_CONTEXT = (mn.CLASSIFIER_ACCURACY,)
# In the records and the CSV only: the first/last-10% windows and the window TV that rule 2 replaced, and the
# chain statistics, which get their own columns (value ± MCSE with the ESS) below.
CSV_ONLY = ("mean_pixel[first 10% of jumps]", "mean_pixel[last 10% of jumps]",
            "class_shares_tv[first 10% of jumps vs data]", "class_shares_tv[last 10% of jumps vs data]",
            "class_shares_tv[first vs last 10% of jumps]", mn.WINDOW_TV,
            *{name for groups in [{}, *CLASS_GROUPS.values()] for name in chain_stats.metric_names(groups)})
MAX_COLUMNS = 12
STATS_COLUMNS = 3  # "<group> ± MCSE (ESS); ref.", "S", "verdict"


def _key(metric: Any, mode: Any) -> str:
    return f"{text(metric)}|{text(mode)}"


def _column(key: str) -> str:
    metric, mode = key.split("|", 1)
    return METRIC_COLUMNS.get(key, f"{metric} ({mode})" if mode else metric)


def dedup(records: list[dict]) -> tuple[list[dict], list[str]]:
    """One record per config hash (the latest created); notes naming the records left out."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(config_hash(r), []).append(r)
    kept, notes = [], []
    for rs in groups.values():
        rs = sorted(rs, key=lambda r: (str((r.get("provenance") or {}).get("created")), r["run"]))
        kept.append(rs[-1])
        notes += [f"`{r['run']}` is the same run (same config hash) as `{rs[-1]['run']}`; shown once." for r in rs[:-1]]
    return sorted(kept, key=record_sort_key), notes


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differences(records: list[dict], walk: bool = False) -> list[str]:
    """For runs of one experiment and profile: the settings they differ in (why two rows sit side by side); with
    `walk`, the walk settings that the walk's bias table shows (WALK_KEYS) are named, not listed."""
    notes, groups = [], {}
    for r in records:
        groups.setdefault((r["experiment"], r["profile"]), []).append(r)
    for (exp, profile), rs in groups.items():
        if len(rs) < 2:
            continue
        later = {f"{section}.{name}": default for section, name, default in experiments.ADDED_LATER}
        flats = [{**later, **{k: v for k, v in _flat(r.get("config") or {}).items()  # older records: the defaults
                              if k.split(".")[0] in ("model", "train", "chain", "score")}} for r in rs]
        keys = sorted({k for f in flats for k in f if len({repr(g.get(k)) for g in flats}) > 1})
        show = lambda v: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else text(v) or "?"  # noqa: E731
        listed = [k for k in keys if not (walk and k in WALK_KEYS)]
        what = "; ".join(f"{k} = {' / '.join(show(f.get(k)) for f in flats)}" for k in listed)
        named = [k.split(".")[-1] for k in keys if k not in listed]
        if named:
            what = "; ".join(x for x in (what, f"the walk ({', '.join(named)}: the walk's bias below)") if x)
        notes.append(f"The {len(rs)} {profile} rows of `{exp}` differ {'only ' * (bool(named) and not listed)}in: "
                     f"{what or 'nothing recorded'} ({', '.join(config_hash(r) for r in rs)}).")
    return notes


def _params(e: experiments.Experiment) -> int | None:
    channels = e.model.M * (e.image_shape[0] if len(e.image_shape) == 3 else 1)
    return paper.NET_PARAMS.get((e.model.net, e.model.width, channels))


def paper_scale(table: str) -> str:
    """The paper recipe's scale for a table: parameters (where known), training steps, chain steps."""
    parts: dict[str, set] = {}
    for e in experiments.resolve(table, "paper"):
        if e.implemented:
            chains = "one chain" if e.chain.n_chains == 1 else f"{e.chain.n_chains} chains"
            parts.setdefault(f"{e.train.steps:,} training steps, {chains} of {e.chain.steps:,} steps", set()).add(_params(e))
    out = [(f"{'/'.join(count(p) for p in sorted(p for p in params if p))} parameters, " if any(params) else "") + part
           for part, params in parts.items()]
    return "; ".join(out)


def runs_scale(records: list[dict]) -> str:
    """The scale of the runs of a table: parameters, training steps, chain steps, per profile."""
    groups: dict[tuple, list] = {}
    for r in records:
        t = r.get("train") or {}
        groups.setdefault((r["profile"], t.get("steps") or 0), []).append(r)
    out = []
    for (profile, steps), rs in sorted(groups.items(), key=lambda kv: (profile_rank(kv[0][0]), kv[0])):
        known = sorted(p for r in rs if isinstance(p := (r.get("train") or {}).get("n_params"), (int, float)))
        span = "?" if not known else count(known[0]) if count(known[0]) == count(known[-1]) else f"{count(known[0])}–{count(known[-1])}"
        chains = ", ".join(count(c) for c in sorted({(r.get("chain") or {}).get("steps") or 0 for r in rs}))
        out.append(f"{span} parameters, {count(steps or None)} training steps, chains of {chains} steps ({profile})")
    return "; ".join(out)


def scale(r: dict) -> str:
    t, c = r.get("train") or {}, r.get("chain") or {}
    return f"{count(t.get('n_params'))} · {count(t.get('steps'))} · {count(c.get('steps'))}"


def headline(records: list[dict], table: str, aliases: dict[str, str] | None = None,
             walk: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The headline table of `table` (records of that table only) and its notes; `aliases` maps a run to the
    same run (same config hash) shown in an earlier table. With `walk` (the section shows the walk's bias table,
    which holds every row's chain statistics and walk settings), no chain-statistics columns, and the notes name
    the walk settings the rows differ in rather than listing them."""
    aliases = aliases or {}
    records, notes = dedup([r for r in records if r["table"] == table])
    df = load_records(records)
    numbers = paper.numbers_for(table)
    registry = {e.id: e for e in experiments.resolve(table, "paper")}
    main = df[(df["calibration"] != True) & ~df["metric"].isin(CONTEXT_METRICS + CSV_ONLY) & df["metric"].notna()]  # noqa: E712
    ok = main[(main["status"] == "ok") & main["value"].notna()]
    keys = sorted({_key(m, o) for m, o in zip(ok["metric"], ok["mode"])}
                  | ({"FID|legacy_tensorflow"} if any(n.metric == "FID" for n in numbers) else set()),
                  key=lambda k: (list(METRIC_COLUMNS).index(k) if k in METRIC_COLUMNS else len(METRIC_COLUMNS), k))
    labelled = any((r.get("chain") or {}).get("class_histogram") for r in records)
    stats = {r["run"]: chain_statistics(r) for r in records}
    group = None if walk else next((next(iter(st["shares"])) for st in stats.values() if st and st["shares"]), None)
    switch = not walk and not group and any((r.get("chain") or {}).get("class_switch_rate") is not None
                                            for r in records)
    missing = [n for n in numbers if not any(paper_number_for(x, [n]) for _, x in df.iterrows())]
    fixed = 4 + labelled + switch + STATS_COLUMNS * bool(group) + bool(numbers) + bool(missing)
    plumbing = [k for k in keys if "NOT FID" in k]  # the clean-fid path's test extractor: in the CSV, not here
    keys = ([k for k in keys if k not in plumbing] or plumbing)[: max(1, MAX_COLUMNS - fixed)]
    rows = []
    for r in records:
        sub = main[main["run"] == r["run"]]
        model = (r.get("config") or {}).get("model") or {}
        alias = f", = {aliases[r['run']]}" if r["run"] in aliases else ""
        row = {"run": f"{r['experiment']} ({config_hash(r)}{alias})", "profile": r["profile"],
               "σ, M": f"{model.get('sigma', '?'):g}, {model.get('M', '?')}" if isinstance(model.get("sigma"), (int, float)) else "?", "params · train · chain steps": scale(r)}
        paper_value = math.nan
        for k in keys:
            hit = sub[[_key(m, o) == k for m, o in zip(sub["metric"], sub["mode"])]]
            x = hit.iloc[0] if len(hit) else None
            bad = x is not None and x["metric"] == "FID" and not is_fid(x["metric"], x["extractor"])
            row[_column(k)] = ("" if x is None else "invalid" if bad else x["value"] if x["status"] == "ok" else "not computed")
            number = paper_number_for(x, numbers) if x is not None else None
            paper_value = number.value if number else paper_value
        if labelled:
            row["top class"] = top_class(r)
        if group:
            row.update(stats_cells(stats[r["run"]], group))
        if switch:
            row["class switch rate"] = (r.get("chain") or {}).get("class_switch_rate")
        if numbers:
            row["paper"] = paper_value
        if missing:
            row["note"] = "" if r["profile"] == "paper" else f"{r['profile']} profile: not comparable"
        rows.append(row)
    for n in missing:
        e = registry.get(n.row)
        rows.append({"run": n.row or f"reference row ({n.source.split(',')[0].split(' (')[0]})", "profile": "paper",
                     "σ, M": f"{e.model.sigma:g}, {e.model.M}" if e else "—",
                     "params · train · chain steps": paper_scale_short(e) if e else "—",
                     **{_column(k): "" for k in keys}, "paper": n.value,
                     "note": missing_paper_reason(n, registry).replace(f" ({n.source})", "")})
    out = pd.DataFrame(rows)
    notes += differences(records, walk)
    return out, notes


def stats_parts(st: dict | None, group: str) -> dict[str, str]:
    """The chain-statistics cells of a run: `share` (the group's share ± MCSE (ESS)), `ref` (the reference's ± SE,
    "—" when not computed), `S` ("≥ S" when counted on thinned jumps: a lower bound) and `verdict` (rule 2 with the
    largest split-R-hat); all "" without statistics."""
    share, ref = (st or {}).get("shares", {}).get(group), (st or {}).get("reference", {}).get(group)
    if not st or not share:
        return {"share": "", "ref": "", "S": "", "verdict": ""}
    s, v = st.get("switches"), st["verdict"]
    traces = [m for m in [st.get("mean_pixel"), *st["shares"].values()] if m and not m.get("constant")]
    rhats = [m.get("rhat") for m in traces]
    worst = "R̂ undefined" if None in rhats else f"R̂ {max(rhats):.3f}" if rhats else ""
    return {"share": share_pm(share, ""), "ref": pm(ref["value"], ref.get("se")) if ref else "—",
            "S": "" if not s else ("≥ " if s.get("lower_bound") else "") + f"{s['value']:,.0f}",
            "verdict": "; ".join(x for x in (v.get("label"), worst) if x)}


def stats_cells(st: dict | None, group: str) -> dict[str, str]:
    """The chain-statistics cells of a headline row: the group's share ± MCSE (ESS) and the reference's ± SE, S
    and the rule-2 verdict with the largest split-R-hat (stats_parts)."""
    p = stats_parts(st, group)
    return {f"{group} ± MCSE (ESS); ref.": f"{p['share']}; {p['ref']}" if p["share"] else "", "S": p["S"],
            "verdict (largest R̂)": p["verdict"]}


def paper_scale_short(e: experiments.Experiment) -> str:
    return f"{count(_params(e))} · {count(e.train.steps)} · {count(e.chain.steps)}"


def calibration_notes(records: list[dict], table: str) -> list[str]:
    """Calibration points and context metrics of a table, stated once (values at each n)."""
    df = load_records(dedup([r for r in records if r["table"] == table])[0])
    lines = []
    cal = df[(df["calibration"] == True) & (df["status"] == "ok")]  # noqa: E712
    for name, g in cal.groupby("metric", sort=True):
        vals = []
        for n, gn in g.groupby(g["n"].fillna(-1), sort=True):
            at = f" (n = {int(n):,})" if n >= 0 else ""
            # distinct values at this n (runs scored with different classifier versions); per run: tables/*.csv
            distinct = sorted({float(f"{v:.4g}") for v in gn["value"]})
            vals.append(" / ".join(f"{v:.4g}" for v in distinct) + at)
        cp = mn.calibration_point(name)  # others (mean_pixel[data: test images]) lose their "]" as they always have
        lines.append(f"{f'{cp[0]} of {cp[1]}' if cp else name.rstrip(']')}: {', '.join(vals)}")
    for name in NOTED_CONTEXT:
        vals = sorted({float(v) for v in df[(df["metric"] == name) & (df["status"] == "ok")]["value"]})
        if vals:
            lines.append(f"{name.replace('_', ' ')}: {', '.join(f'{v:.4g}' for v in vals)}")
    return lines


def not_computed_notes(records: list[dict], table: str) -> list[str]:
    """Metrics not computed in any run of the table, with their (first) reason, stated once."""
    df = load_records(dedup([r for r in records if r["table"] == table])[0])
    df = df[df["metric"].notna() & (df["calibration"] != True)]  # noqa: E712
    lines = []
    for metric, g in df.groupby("metric", sort=True):
        if metric in CSV_ONLY:  # the chain statistics say it in their cells ("—") and the appendix
            continue
        if (g["status"] != "ok").all():
            modes = ", ".join(sorted({text(m) for m in g["mode"] if text(m)}))
            reason = text(g["reason"].dropna().iloc[0]) if g["reason"].notna().any() else text(g["status"].iloc[0])
            lines.append(f"`{metric}`{f' ({modes})' if modes else ''} is not computed in any run: "
                         f"{reason.split(';')[0]}.")
    return lines


def banners(records: list[dict]) -> list[str]:
    """Warnings for a table's section: non-paper profiles, Fréchet distances that are not FID."""
    lines = []
    small = sorted({r["profile"] for r in records if profile_note(r["profile"])}, key=profile_rank)
    if small:
        lines.append(f"> **WARNING: {'/'.join(small)} profile results.** Small networks, short training and chains, "
                     "few samples: not comparable to the paper; no difference to a paper number is computed.")
    fds = sorted({text(m.get("metric")).split("[")[0] for r in records for m in r.get("metrics") or []
                  if not_fid_fd(m.get("metric"))})
    if fds:
        lines.append(f"> **WARNING: not FID.** {', '.join(f'`{m}`' for m in fds)} "
                     f"{'is a Fréchet distance' if len(fds) == 1 else 'are Fréchet distances'} in non-Inception "
                     "feature spaces: not comparable to any FID, never placed beside the paper's FID.")
    return lines


# --------------------------------------------------------------------------------------------------
# The walk's bias (issue 17): one row per recorded chain of a dataset's models, the group share against the walk
# (integrator, delta/sigma, gamma, walk steps) and the model (sigma, M, parametrization, training steps).

WALK_DATASET, WALK_GROUP = "fashion-mnist", "footwear"
WALK_KEYS = ("chain.scheme", "chain.delta_over_sigma", "chain.gamma", "chain.steps")  # the table's walk columns
WALK_MIN_JUMPS = 1000  # other tables' chains: at least this many jumps (as the trace figure), with chain statistics
FD_THINNED = mn.thinned(mn.FD_CLASSIFIER)
WALK_COLUMNS = ["model (σ, M, param., train)", "run", "integrator", "δ/σ", "γ", "walk steps",
                f"{WALK_GROUP} ± MCSE (ESS)", "ref.", "S", "FD classifier (1,000 thinned)", "verdict (largest R̂)"]


def walk_records(records: list[dict]) -> list[dict]:
    """The runs of the walk table: every chain of `--table WALK_DATASET`, and the chains of at least WALK_MIN_JUMPS
    jumps with chain statistics of the other tables of that dataset; one per config hash."""
    def keep(r: dict) -> bool:
        n = (r.get("chain") or {}).get("n_jumps") or 0
        return (r["table"] in experiments.tables() and dataset(r) == WALK_DATASET and n > 0
                and (r["table"] == WALK_DATASET or (n >= WALK_MIN_JUMPS and chain_statistics(r) is not None)))
    return dedup([r for r in records if keep(r)])[0]


def train_key(r: dict) -> str:
    """The trained model's identity (its train stage key: ybar models of one sigma_eff share one), else its config."""
    try:
        return stage_key(experiments.from_dict(r["config"]), "train")
    except Exception:  # a record whose config no longer parses: its own model and train sections
        cfg = r.get("config") or {}
        return repr((dataset(r), cfg.get("model"), cfg.get("train")))


def _model_label(r: dict) -> str:
    m, steps = (r.get("config") or {}).get("model") or {}, (r.get("train") or {}).get("steps")
    kind = m.get("parametrization", "?")
    kind = kind if m.get("scheme", "mdae") == "mdae" else f"{m.get('scheme')}/{kind}"
    sigma = f"{m['sigma']:g}" if isinstance(m.get("sigma"), (int, float)) else "?"
    return f"σ {sigma}, M {m.get('M', '?')}, {kind}, {count(steps)}"


def _integrator(r: dict) -> str:
    """The chain's integrator; a Metropolis-adjusted one (it needs an energy) with "MH" and its accept rate."""
    name = text(((r.get("config") or {}).get("chain") or {}).get("scheme")) or "?"
    rate = (r.get("chain") or {}).get("accept_rate")
    if name in INTEGRATORS and INTEGRATORS[name].needs_energy or rate is not None:
        return f"{name} + MH" + (f" (accept {rate:.2f})" if rate is not None else "")
    return name


def _fd(r: dict) -> str:
    """FD_classifier on 1,000 thinned jumps; else the full chain's, with its n when that is not 1,000."""
    ok = {m.get("metric"): m for m in r.get("metrics") or [] if m.get("status") == "ok" and m.get("value") is not None}
    m = ok.get(FD_THINNED) or ok.get(mn.FD_CLASSIFIER)
    if not m:
        return ""
    at_n = "" if m is ok.get(FD_THINNED) or m.get("n") == 1000 else f" (n = {count(m.get('n'))})"
    return f"{m['value']:.4g}{at_n}"


def walk_table(records: list[dict]) -> pd.DataFrame:
    """The walk's bias table: grouped by model (in report order), then integrator (registry order, the paper's
    aboba first), delta/sigma, gamma and walk steps. A chain without statistics gets the group's
    share of its class histogram (no error) and no verdict."""
    runs = walk_records(records)
    models: dict[tuple, int] = {}
    for r in runs:
        sigma_m = (((r.get("config") or {}).get("model") or {}).get(k) for k in ("sigma", "M"))
        models.setdefault((train_key(r), *sigma_m), len(models))
    first = {key[0]: i for key, i in sorted(models.items(), key=lambda kv: -kv[1])}  # a model's first appearance
    models = {key: (first[key[0]], key[1] if isinstance(key[1], (int, float)) else 0, i) for key, i in models.items()}
    labels: dict[str, set] = {}
    for r in runs:
        labels.setdefault(_model_label(r), set()).add(train_key(r))

    def order(r: dict) -> tuple:
        c = (r.get("config") or {}).get("chain") or {}
        m = (r.get("config") or {}).get("model") or {}
        scheme = text(c.get("scheme"))
        return (models[(train_key(r), m.get("sigma"), m.get("M"))],
                list(INTEGRATORS).index(scheme) if scheme in INTEGRATORS else len(INTEGRATORS), scheme,
                float(c.get("delta_over_sigma") or 0), float(c.get("gamma") or 0),
                (r.get("chain") or {}).get("steps") or 0, config_hash(r))

    rows, previous = [], None
    for r in sorted(runs, key=order):
        c = (r.get("config") or {}).get("chain") or {}
        label = _model_label(r) + (f" ({train_key(r)[:8]})" if len(labels[_model_label(r)]) > 1 else "")
        parts = stats_parts(chain_statistics(r), WALK_GROUP)
        if not parts["share"] and class_shares(r):
            shares, names = dict(class_shares(r)), CLASS_NAMES.get(WALK_DATASET, ())
            group = [names[i] for i in CLASS_GROUPS[WALK_DATASET][WALK_GROUP] if i < len(names)]
            parts |= {"share": f"{sum(shares.get(n, 0.0) for n in group):.2f} (histogram)", "ref": "—",
                      "verdict": "not judged (no per-jump trace)"}
        rows.append(dict(zip(WALK_COLUMNS, [
            "" if label == previous else label, config_hash(r), _integrator(r),
            f"{c['delta_over_sigma']:g}" if isinstance(c.get("delta_over_sigma"), (int, float)) else "?",
            f"{c['gamma']:g}" if isinstance(c.get("gamma"), (int, float)) else "?",
            count((r.get("chain") or {}).get("steps")), parts["share"], parts["ref"], parts["S"], _fd(r),
            parts["verdict"]])))
        previous = label
    return pd.DataFrame(rows, columns=WALK_COLUMNS)


def table_notes(records: list[dict], table: str, notes: list[str], seen: set | None = None) -> list[str]:
    """A table's notes: its calibration points (those stated in an earlier section, `seen`, are not repeated), what
    was not computed and why, then `notes` (headline's: the settings the rows differ in)."""
    seen = set() if seen is None else seen
    cal = calibration_notes(records, table)
    new = [c for c in cal if ("calibration", c) not in seen]  # a point stated in an earlier section is not repeated
    seen.update(("calibration", c) for c in cal)
    said = f"Calibration points (at the runs' n){' not stated above' if len(new) < len(cal) else ''}: "
    cal_line = [said + "; ".join(new) + "."] if new else ["Calibration points: as above."] * bool(cal)
    return cal_line + not_computed_notes(records, table) + notes
