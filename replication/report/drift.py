"""The drift table: what the walk does to chains started in the typical set (results/drift/*.json, written by
`python replicate.py --drift`), one row per recorded measurement (a repeat of an older measurement that
adds the class shares replaces it), read from the files, nothing typed in.

Each measurement starts K chains at y = x + sigma eps from held-out images x and walks them with one walk; the
footwear share of the jumps, their mean pixel and Fréchet distance (classifier features) at the start, halfway and
at the end say how fast the walk leaves the data, r and v_var whether its temperature is right.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..data.registry import CLASS_GROUPS
from ..runs import experiments
from .tables import count

CAPTION = ("Chains started in the typical set (`python replicate.py --drift`, `results/drift/`, one row each): K chains "
           "from noised test images, one walk and sampler; {group} share (binomial SE), mean pixel and FD_classifier "
           "of the jumps at the start, halfway and the end; r = mean |y_m − x̂_m|²/(dσ²), v_var = mean v²/u "
           "(docs/method.md Eq. 17, 21).")
COLUMNS = ["model (σ, M)", "integrator", "δ/σ", "γ", "chains × steps", "footwear: start → half → end (± SE)",
           "mean pixel: start → end (data)", "FD classifier: start → end (start images)", "r, v_var at the end"]


def _walk(r: dict) -> dict:
    """The walk of a measurement: recorded as `walk` since the chain loop; older files only have the config's chain."""
    if r.get("walk"):
        return r["walk"]
    c, m = r["config"]["chain"], r["config"]["model"]
    return {"integrator": c.get("scheme", "aboba"), "delta": c["delta_over_sigma"] * m["sigma"], "gamma": c["gamma"]}


def drift_table(results_dir: Path, dataset: str = "fashion-mnist", group: str = "footwear") -> pd.DataFrame:
    rows = []
    for path in sorted((Path(results_dir) / "drift").glob("*.json")):
        r = json.loads(path.read_text())
        cfg = r.get("config") or {}
        if cfg.get("dataset") != dataset:
            continue
        w, m, n = _walk(r), cfg["model"], r["n_chains"]
        steps = r["rows"]
        first, half, last = steps[0], steps[len(steps) // 2], steps[-1]
        classes = CLASS_GROUPS.get(dataset, {}).get(group, ())

        def share(row: dict) -> float | None:
            shares = row.get("class_shares")
            return None if shares is None else sum(shares[i] for i in classes)

        if share(last) is None:
            foot = "—"
        else:
            p = share(last)
            foot = f"{share(first):.2f} → {share(half):.2f} → {p:.2f} (± {math.sqrt(p * (1 - p) / n):.2f})"
        cal = r.get("calibration") or {}
        rv = f"{last['r']:.3f}, {last['v_var']:.3f}" if "r" in last else "—"
        sampler = r.get("sampler", "walk_jump")  # recorded since CLMC; older measurements walked the walk-jump chain
        e = experiments.from_dict(cfg)
        c, param, m0 = e.chain, e.model.parametrization, e.chain.clmc_start_level
        s_walk = e.walk_sigma  # the walked density's noise level: δ is a fraction of it
        label = f"σ {m['sigma']:g}, M {m['M']}" + (f", {param} {count(cfg['train']['steps'])}" if param != "mdae" else "") + (
            f", CLMC K {c.clmc_inner_steps}" + (f", walks ȳ_{m0}" if m0 > 1 else "") if sampler == "clmc" else "")
        same = (label, w["integrator"], round(w["delta"] / s_walk, 9), w["gamma"], n, last["step"])
        rows.append(dict(zip(COLUMNS + ["_same", "_new"], [
            label, w["integrator"], f"{w['delta'] / s_walk:g}", f"{w['gamma']:g}", f"{count(n)} × {count(last['step'])}",
            foot, f"{first['mean_pixel']:.3f} → {last['mean_pixel']:.3f} ({cal.get('mean_pixel_data', float('nan')):.3f})",
            f"{first['FD_classifier']:.0f} → {last['FD_classifier']:.0f} ({cal.get('FD_classifier_real', float('nan')):.0f})",
            rv, same, "walk" in r])))
    # a measurement repeated with the class shares (same model, walk, chains and steps) replaces the older file's row
    df = pd.DataFrame(rows, columns=COLUMNS + ["_same", "_new"]).sort_values("_new", kind="stable")
    df = df.drop_duplicates("_same", keep="last")[COLUMNS]
    return df.sort_values(["model (σ, M)", "δ/σ", "integrator"], ascending=[True, False, True], kind="stable")
