"""What `replicate.py` prints when it has run experiments (`make quickstart` ends with it): per experiment the
headline metrics with their calibration points, a verdict in words, and the paths of the sample grid, the
record and the REPORT.md section; then which committed files under results/ the run rewrote, and how to
restore them."""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluation import metric_names as mn
from ..runs.provenance import git
from .headline import CSV_ONLY
from .tables import chain_statistics, class_shares, count, ess_text, figure_path, pm, profile_note, top_class

CONTEXT = ("classifier_test_accuracy",)


def modified_tracked(repo: Path, paths: tuple[str, ...] = ("results", "REPORT.md")) -> set[str] | None:
    """Tracked files under `paths` that differ from the last commit (None outside a git checkout)."""
    out = git("status", "--porcelain", "--untracked-files=no", "--", *paths, cwd=repo)
    return None if out is None else {line[3:] for line in out.splitlines() if line.strip()}


def _rel(path: Path, repo: Path) -> str:
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return str(path)


def _verdict(r: dict, metrics: dict[str, dict]) -> str:
    """A verdict in words from the record's metrics and their calibration points."""
    words = []
    fd = metrics.get(mn.FD_CLASSIFIER)
    cal = {cp[1]: m["value"] for k, m in metrics.items() if (cp := mn.calibration_point(k)) and cp[0] == mn.FD_CLASSIFIER}
    if fd and {mn.REAL, mn.BLURRED, mn.NOISE} <= set(cal):
        v = fd["value"]
        if v <= 2 * cal[mn.REAL]:
            words.append("the jumps are as close to real images as real images are (classifier features)")
        elif v <= cal[mn.BLURRED]:
            words.append("the jumps lie between real and 3x3-blurred real images (classifier features)")
        elif v < cal[mn.NOISE]:
            words.append("the jumps are further from real images than blurred real images, but closer than uniform "
                         "noise (classifier features)")
        else:
            words.append("the jumps are no closer to real images than uniform noise (classifier features)")
    shares, st = class_shares(r), chain_statistics(r)
    if st:  # rule 2 (docs/statistics.md) replaces the class-balance words
        v = st["verdict"]
        words.append(f"chain (rule 2): {v['label']} ({'; '.join(v.get('reasons') or [])})")
    elif shares:
        name, share = max(shares, key=lambda s: s[1])
        if share > 2 / len(shares):
            words.append(f"they over-represent {name} ({100 * share:.0f}% of jumps; real data: {100 / len(shares):.0f}%)")
        else:
            words.append(f"they spread over the classes (largest: {name}, {100 * share:.0f}%)")
    ed, floor = metrics.get(mn.ENERGY_DISTANCE), metrics.get(mn.calibration(mn.ENERGY_DISTANCE, mn.EXACT))
    if ed and floor:
        ratio = ed["value"] / max(floor["value"], 1e-12)
        words.append(f"energy distance to the true mixture is {ratio:.1f}x the exact-vs-exact floor"
                     + (" (close to exact)" if ratio < 3 else ""))
    note = profile_note(r.get("profile"))
    if note:
        words.append(f"not comparable to the paper ({note.split(':')[0]})")
    return "; ".join(words) or "no metric to judge from (see the record)"


def _pm(m: dict | None, err: str = "mcse") -> str:
    return "" if not m else pm(m["value"], m.get(err)).replace(" ± ", " +- ")


def stats_lines(r: dict, metrics: dict[str, dict]) -> list[str]:
    """The chain statistics: each group's share +- MCSE (ESS n) beside the reference's +- SE, the mean pixel, S and
    the split-R-hats (evaluation/chain_stats.py)."""
    st = chain_statistics(r)
    if not st:
        return []
    v, s, mp = st["verdict"], st.get("switches"), st.get("mean_pixel")
    lines = [f"   chain statistics (arviz-stats {v.get('arviz_stats', '')}; {v.get('reference')}): classifier groups, "
             "share +- MCSE (ESS n), beside the reference (one-step jumps from noised test images, +- SE)"]
    why = next((m.get("reason") for m in r.get("metrics") or [] if m.get("status") != "ok" and m.get("reason")
                and m.get("metric") in CSV_ONLY), "")
    for g, m in st["shares"].items():
        ref = st["reference"].get(g)
        lines.append(f"     {g} {_pm(m)} (ESS {ess_text(m.get('ess'))})   reference " + (_pm(ref, "se") if ref else "—"))
    if not st["reference"]:
        lines.append(f"     reference not computed: {why}")
    data = metrics.get(mn.MEAN_PIXEL_DATA)
    if mp:
        lines.append(f"     mean pixel {_pm(mp)} (ESS {ess_text(mp.get('ess'))})" + (f"   data {data['value']:.4g}" if data else ""))
    rhats = ", ".join(f"{name} {'—' if m.get('rhat') is None else format(m['rhat'], '.3f')}"
                      for name, m in [("mean pixel", mp), *st["shares"].items()] if m)
    if s:
        rate = f"; {s['per_1e5_steps']:.3g} per 10^5 walk steps" if s.get("per_1e5_steps") is not None else ""
        lines.append(f"     S = {s['value']:,.0f} {'<->'.join(s.get('pair') or [])} switches"
                     + (" (on thinned jumps: a lower bound)" if s.get("lower_bound") else "") + rate)
    lines.append(f"     split-R-hat over {v.get('n_windows')} windows: {rhats}")
    return lines


def summarize(runs: list[tuple[str, str, str]], results: Path, repo: Path, report: Path) -> list[str]:
    """Lines to print for finished runs [(run name, table, report anchor)]."""
    lines = []
    for run, table, anchor in runs:
        path = results / "records" / f"{run}.json"
        if not path.is_file():
            lines.append(f"== {run}: no record (the score stage did not finish)")
            continue
        r = json.loads(path.read_text())
        t, c = r.get("train") or {}, r.get("chain") or {}
        model = (r.get("config") or {}).get("model") or {}
        ok = {m["metric"]: m for m in r.get("metrics") or [] if m.get("status") == "ok" and m.get("value") is not None}
        lines += [f"== {r['experiment']} [{r['profile']}] sigma={model.get('sigma')} M={model.get('M')}: "
                  f"{count(t.get('n_params'))} parameters, {t.get('steps', 0):,} training steps, "
                  f"{c.get('steps', 0):,} walk steps -> {c.get('n_jumps', 0):,} jumps"]
        order = ["FID", mn.FD_CLASSIFIER, mn.CLASS_COVERAGE, "denoise_mse", mn.ENERGY_DISTANCE]
        levels = {k: m for k, m in ok.items() if "[m=" in k}  # per-level metrics (mn.at_level): one line below
        for name, m in sorted(ok.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])):
            if m.get("calibration") or name in CONTEXT or name in CSV_ONLY or name in levels:
                continue
            cal = [f"{cp[1]} {v['value']:.4g}" for k, v in ok.items()
                   if (cp := mn.calibration_point(k)) and cp[0] == name and v.get("calibration")]
            at = f" at n = {m['n']:,}" if isinstance(m.get("n"), int) else ""
            if m.get("mcse") is not None:  # a chain window: its Monte Carlo error and effective sample size
                at = f" +- {m['mcse']:.2g}{at}, about {m['ess']:,.0f} effective"
            ref = f"  ({m['reference']})" if m.get("reference") and not cal and "NOT FID" not in name else ""
            lines.append(f"   {name} {m['value']:.4g}{at}" + (f"  (calibration: {', '.join(cal)})" if cal else ref))
        per_level = {base: [(k.split("[m=")[1].split("]")[0], m["value"]) for k, m in levels.items() if k.startswith(base + "[m=")]
                     for base in (mn.DENOISE_MSE, mn.CLMC_SETTLE_STEP)}
        if per_level[mn.DENOISE_MSE]:
            lines.append("   denoise_mse per level m: " + ", ".join(f"m={lv} {v:.3g}" for lv, v in
                                                                   sorted(per_level[mn.DENOISE_MSE], key=lambda p: int(p[0]))))
        if per_level[mn.CLMC_SETTLE_STEP]:
            worst = max(per_level[mn.CLMC_SETTLE_STEP], key=lambda p: p[1])
            lines.append(f"   CLMC inner walks settle within {worst[1]:.0f} steps at worst (level m={worst[0]}; "
                         f"{mn.CLMC_SETTLE_STEP}[m=...] in the record)")
        missing = sorted({m["metric"] for m in r.get("metrics") or [] if m.get("status") != "ok"} - set(CSV_ONLY))
        for name in missing:
            reason = next((m.get("reason") for m in r["metrics"] if m["metric"] == name and m.get("reason")), "")
            lines.append(f"   {name}: not computed ({(reason or '').split(';')[0]})")
        lines += stats_lines(r, ok)
        if top_class(r):
            lines.append(f"   top class: {top_class(r)} of the jumps".replace(" ± ", " +- "))
        lines.append(f"   verdict: {_verdict(r, ok)}")
        for kind, rel in sorted((r.get("figures") or {}).items()):
            lines.append(f"   {kind}: {_rel(figure_path(results, rel), repo)}")
        lines.append(f"   record: {_rel(path, repo)}")
        lines.append(f"   report: {_rel(report, repo)}#{anchor}")
    return lines


def _scalars(r: dict) -> dict[str, float]:
    """The numbers the summary prints for one run, by name (for the spread over chain seeds)."""
    ok = {m["metric"]: m for m in r.get("metrics") or [] if m.get("status") == "ok" and m.get("value") is not None}
    out = {}
    for name in (mn.thinned(mn.FD_CLASSIFIER), mn.FD_CLASSIFIER, mn.CLASS_COVERAGE, mn.TOP_CLASS_SHARE):
        if name in ok:
            out[name] = ok[name]["value"]
    st = chain_statistics(r)
    if st:
        for g, m in st["shares"].items():
            out[f"{g} share"] = m["value"]
            if m.get("mcse") is not None:
                out[f"{g} share MCSE"] = m["mcse"]
        if st.get("mean_pixel"):
            out["mean pixel"] = st["mean_pixel"]["value"]
        if st.get("switches"):
            out["S (footwear<->clothing switches)"] = st["switches"]["value"]
    return out


def spread_lines(runs: list[tuple[str, str, str]], results: Path) -> list[str]:
    """For runs of one experiment that differ only in chain.seed (`--seeds N`): each printed number per seed, and
    its median and range over the seeds: how much one chain's numbers vary from seed to seed (and so from machine
    to machine, where the last bits of floating point send a chaotic chain elsewhere)."""
    groups: dict[str, list[dict]] = {}
    for run, _, _ in runs:
        path = results / "records" / f"{run}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            groups.setdefault(r["experiment"], []).append(r)
    lines = []
    for exp, recs in groups.items():
        if len(recs) < 2:
            continue
        recs.sort(key=lambda r: ((r.get("config") or {}).get("chain") or {}).get("seed", 0))
        seeds = [((r.get("config") or {}).get("chain") or {}).get("seed") for r in recs]
        values = [_scalars(r) for r in recs]
        lines.append(f"Spread over {len(recs)} chain seeds ({', '.join(map(str, seeds))}) of {exp}: "
                     "each seed's value; median [min, max]")
        for name in values[0]:
            xs = [v.get(name) for v in values]
            if any(x is None for x in xs):
                continue
            med = sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1 : len(xs) // 2 + 1]) / 2
            lines.append(f"   {name}: {' / '.join(f'{x:.3g}' for x in xs)}; median {med:.3g} [{min(xs):.3g}, {max(xs):.3g}]")
    return lines


def _without_seed(config: dict) -> str:
    c = json.loads(json.dumps(config))
    (c.get("chain") or {}).pop("seed", None)
    return json.dumps(c, sort_keys=True)


SEED_SPREAD = ("footwear share", "S (footwear<->clothing switches)", mn.thinned(mn.FD_CLASSIFIER), mn.FD_CLASSIFIER,
               mn.TOP_CLASS_SHARE)


def recorded_spread_line(run: str, results: Path, records: Path, repo: Path) -> list[str]:
    """One line: how much this run's numbers vary over the recorded chain seeds of the same config (records in
    `records`, e.g. the committed results/records), when at least three seeds are recorded there."""
    path = results / "records" / f"{run}.json"
    if not path.is_file() or not records.is_dir():
        return []
    config = _without_seed(json.loads(path.read_text()).get("config") or {})
    same = []
    for p in sorted(records.glob("*.json")):
        r = json.loads(p.read_text())
        if r.get("config") and _without_seed(r["config"]) == config:
            same.append(r)
    seeds = {(r["config"].get("chain") or {}).get("seed") for r in same}
    if len(seeds) < 3:
        return []
    values = [_scalars(r) for r in same]
    parts = []
    for name in SEED_SPREAD:
        xs = [v[name] for v in values if name in v]
        if len(xs) == len(values) and not (name == mn.FD_CLASSIFIER and any(SEED_SPREAD[2] in v for v in values)):
            parts.append(f"{name} {min(xs):.3g}–{max(xs):.3g}")
    return [f"Note: one chain of this length is a noisy sample: over {len(seeds)} recorded chain seeds of this config "
            f"({_rel(records, repo)}), {'; '.join(parts)}. The same spread separates machines (other CPUs "
            f"round differently, and the chain is chaotic). `--seeds N` measures it."]


def rewritten_lines(before: set[str] | None, after: set[str] | None, repo: Path) -> list[str]:
    """The committed files this run rewrote (tracked, unchanged before the run, changed after), and how to restore."""
    if before is None or after is None:
        return []
    changed = sorted(after - before)
    if not changed:
        return ["No committed file was rewritten."]
    shown = changed[:8] + ([f"... and {len(changed) - 8} more"] if len(changed) > 8 else [])
    return (["This run rewrote committed files (their committed versions stay in git):"]
            + [f"   {p}" for p in shown]
            + ["   review: git diff --stat -- results REPORT.md",
               "   restore: git checkout -- " + (" ".join(changed) if len(changed) <= 4 else "results REPORT.md"),
               "   keep runs apart from the committed records: --results DIR (writes DIR/records and DIR/REPORT.md)"])
