"""Chain statistics with their Monte Carlo errors, and verdicts that respect the errors (docs/statistics.md).

A scored chain gives per-jump traces: the classifier's class of each jump, the 0/1 indicator of each group
of classes (Fashion-MNIST: footwear / clothing / bag, `data.registry.CLASS_GROUPS`) and the jump's mean pixel.
For each trace: its mean, the bulk effective sample size (ESS), the Monte Carlo standard error of the mean
(MCSE) and the rank-normalized split-R-hat of the trace cut into `N_WINDOWS` consecutive windows treated as
chains. The estimators are arviz-stats' (`arviz_stats.base.array_stats`, version pinned in pyproject.toml;
Vehtari et al. 2021), not hand-written ones. S counts the switches between the first two groups (footwear
and clothing), the transitions that a metastable chain makes rarely.

Rule 2 (issue 17), `verdict`:
  undecided    S < S_MIN, or the bulk ESS of either group of the switching pair < ESS_MIN: the chain holds too
               few crossings (or too few effective jumps) for its shares and their errors to mean anything;
  stable       split-R-hat over the windows <= RHAT_MAX for the mean pixel and for every group indicator;
  on the data  every group's share within N_MCSE * sqrt(MCSE^2 + SE_ref^2) + SHARE_SLACK of the reference
               (the classifier's reading of one-step jumps from noised test images, binomial SE_ref), and the
               chain's classifier FD at most the FD of 3x3-blurred real images at the same n.
The label (`verdict`) reads "undecided", "not stable", or "stable" with "on/off the data". Pure numpy (plus arviz-stats); the names of the record entries are defined here and
shared by the score stage (producer) and the report (reader).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
from arviz_stats.base import array_stats

N_WINDOWS = 4  # split-R-hat: the trace in 4 consecutive windows; arviz halves each again (8 segments)
MIN_DRAWS = 4  # arviz-stats' own minimum per chain (and per window)

# Rule 2, thresholds.
S_MIN = 100  # fewest footwear<->clothing switches for a chain to be judged
ESS_MIN = 100  # fewest effective jumps (bulk ESS) of a group of the switching pair
RHAT_MAX = 1.05  # split-R-hat over windows at most this for the mean pixel and every group indicator
N_MCSE = 2  # a share is on the data within N_MCSE combined standard errors ...
SHARE_SLACK = 0.02  # ... plus this absolute slack

# Record entries (metrics of the score stage), shared by producer (pipeline/scoring.py) and reader (report/).
SHARE = "group_share"  # per group: share of the chain's jumps, with ess, mcse, rhat
REFERENCE_SHARE = "group_share_reference"  # per group: share of one-step jumps of noised test images, with se
CLASS_SHARES = "class_shares_chain"  # per class: shares, mcse, ess (lists); value None
CLASS_SHARES_REFERENCE = "class_shares_reference"  # per class: reference shares and se (lists); value None
MEAN_PIXEL = "mean_pixel_chain"  # the per-jump mean pixel trace: value, ess, mcse, rhat
SWITCHES = "group_switches"  # S (value), pair, per_1e5_steps, thinned
VERDICT = "chain_verdict"  # decided, stable, on_data, label, reasons; value None


def share_metric(group: str) -> str:
    return f"{SHARE}[{group}]"


def reference_metric(group: str) -> str:
    return f"{REFERENCE_SHARE}[{group}]"


def metric_names(groups: Iterable[str] = ()) -> tuple[str, ...]:
    """Every record entry these statistics write, for datasets with the given groups."""
    groups = tuple(groups)
    return (tuple(share_metric(g) for g in groups) + tuple(reference_metric(g) for g in groups)
            + (CLASS_SHARES, CLASS_SHARES_REFERENCE, MEAN_PIXEL, SWITCHES, VERDICT))


# --------------------------------------------------------------------------------------------------
# One trace.


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def trace_stats(series, n_windows: int = N_WINDOWS) -> dict:
    """mean, n, ess (bulk), mcse (of the mean), rhat (rank-normalized split-R-hat of `n_windows` consecutive
    windows treated as chains; the first n mod n_windows draws are dropped for it) and constant.

    A constant trace (a group never or always present) has ess = n, mcse = 0 and rhat None: its windows agree
    trivially. A trace too short for arviz (fewer than 4 draws, or windows of fewer than 4) has None where the
    statistic is undefined (and any non-finite arviz result is None: not a pass, `verdict` fails it).
    """
    x = np.asarray(series, dtype=np.float64).ravel()
    n = len(x)
    if n == 0:
        raise ValueError("empty trace")
    constant = bool(np.ptp(x) == 0)
    out = {"mean": float(x.mean()), "n": n, "ess": None, "mcse": None, "rhat": None, "constant": constant}
    with np.errstate(all="ignore"):
        if n >= MIN_DRAWS:
            out["ess"] = _finite(array_stats.ess(x[None], method="bulk"))
            out["mcse"] = _finite(array_stats.mcse(x[None], method="mean"))
        w = n // n_windows
        if w >= MIN_DRAWS and n_windows >= 2 and not constant:
            windows = x[n - w * n_windows:].reshape(n_windows, w)
            out["rhat"] = _finite(array_stats.rhat(windows, method="rank"))
    return out


# --------------------------------------------------------------------------------------------------
# Groups of classes and the switches between them.


def group_traces(labels, groups: Mapping[str, Iterable[int]]) -> dict[str, np.ndarray]:
    """{group: 0/1 float trace}, 1 where the jump's class belongs to the group."""
    labels = np.asarray(labels).ravel()
    return {g: np.isin(labels, tuple(classes)).astype(np.float64) for g, classes in groups.items()}


def switch_pair(groups: Mapping[str, Iterable[int]]) -> tuple[str, str]:
    """The pair of groups whose switches S counts: the first two of the registry (footwear, clothing)."""
    names = tuple(groups)
    if len(names) < 2:
        raise ValueError(f"need at least two groups to count switches, got {names}")
    return names[0], names[1]


def switches(labels, groups: Mapping[str, Iterable[int]]) -> int:
    """S: the number of changes between the first two groups (footwear <-> clothing) along the jump sequence,
    after dropping the jumps in any other group (bag). Example: classes 5 0 8 7 9 1 8 8 2 5 -> groups
    F C (bag) F F C (bag) (bag) C F -> F C F F C C F -> S = 4. On a thinned sequence S is a lower bound of the
    full chain's S: each change between two kept jumps implies at least one change between them."""
    a, b = switch_pair(groups)
    labels = np.asarray(labels).ravel()
    in_a, in_b = np.isin(labels, tuple(groups[a])), np.isin(labels, tuple(groups[b]))
    seq = in_a[in_a | in_b]
    return int(np.count_nonzero(seq[1:] != seq[:-1]))


# --------------------------------------------------------------------------------------------------
# A whole chain, and its reference.


def chain_statistics(labels, means, groups: Mapping[str, Iterable[int]], steps=None, n_classes: int = 10,
                     n_windows: int = N_WINDOWS, thinned: bool = False) -> dict:
    """Every statistic of one chain from its per-jump classes, mean pixels and (optionally) walk steps.

    Returns {n, n_windows, thinned, groups {g: trace_stats}, classes [{share, mcse, ess}] (per class),
    mean_pixel trace_stats, switches S, pair, walk_steps (spanned by the jumps), switches_per_1e5_steps}.
    """
    labels = np.asarray(labels).ravel().astype(np.int64)
    means = np.asarray(means, dtype=np.float64).ravel()
    if len(labels) != len(means):
        raise ValueError(f"{len(labels)} labels but {len(means)} mean pixels")
    out = {"n": int(len(labels)), "n_windows": n_windows, "thinned": bool(thinned),
           "groups": {g: trace_stats(t, n_windows) for g, t in group_traces(labels, groups).items()},
           "classes": [], "mean_pixel": trace_stats(means, n_windows), "switches": None, "pair": None,
           "walk_steps": None, "switches_per_1e5_steps": None}
    for k in range(n_classes):
        t = trace_stats((labels == k).astype(np.float64), n_windows)
        out["classes"].append({"share": t["mean"], "mcse": t["mcse"], "ess": t["ess"]})
    if len(groups) >= 2:
        out["switches"], out["pair"] = switches(labels, groups), list(switch_pair(groups))
        if steps is not None and len(steps) > 1:
            span = int(np.asarray(steps).ravel()[-1] - np.asarray(steps).ravel()[0])
            out["walk_steps"] = span
            out["switches_per_1e5_steps"] = 1e5 * out["switches"] / span if span > 0 else None
    return out


def reference_shares(labels, groups: Mapping[str, Iterable[int]], n_classes: int = 10) -> dict:
    """Shares of independent labelled items (the reference jumps) with binomial standard errors sqrt(p(1-p)/N):
    {n, groups {g: {share, se}}, classes [{share, se}]}."""
    labels = np.asarray(labels).ravel()
    n = len(labels)
    if n == 0:
        raise ValueError("no reference labels")
    binom = lambda p: {"share": float(p), "se": float(math.sqrt(p * (1 - p) / n))}  # noqa: E731
    return {"n": n, "groups": {g: binom(t.mean()) for g, t in group_traces(labels, groups).items()},
            "classes": [binom((labels == k).mean()) for k in range(n_classes)]}


# --------------------------------------------------------------------------------------------------
# Rule 2.


def share_tolerance(mcse: float | None, se_ref: float | None) -> float | None:
    """N_MCSE * sqrt(MCSE^2 + SE_ref^2) + SHARE_SLACK: how far a share may be from the reference (None if the
    chain's MCSE is unknown)."""
    if mcse is None:
        return None
    return N_MCSE * math.sqrt(mcse**2 + (se_ref or 0.0) ** 2) + SHARE_SLACK


def _r(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.3g}"


def _rh(x: float | None) -> str:
    """An R-hat with three decimals (so that 1.0503 does not read as the threshold 1.05)."""
    return "undefined" if x is None else f"{x:.3f}"


def verdict(stats: dict, reference: dict | None = None, fd: float | None = None,
            fd_blurred: float | None = None) -> dict:
    """Rule 2 on the output of `chain_statistics` (with `reference_shares` and the FD pair where known).

    Returns {decided, stable, on_data (None: not judged, reference or FD missing), label, reasons}. The three
    tests are made independently. The label: "undecided" when S < S_MIN (nothing can be judged, R-hat of a few
    crossings included); else "not stable" when R-hat fails (windows that disagree make arviz's bulk ESS collapse
    too, so the ESS test would hide the finding); else "undecided" when the ESS test fails; else "stable, on the
    data", "stable, off the data" or "stable" (on the data not judged).
    """
    reasons = []
    groups = stats["groups"]
    pair = stats.get("pair") or list(groups)[:2]
    s = stats.get("switches")
    ess = [groups[g]["ess"] for g in pair if g in groups]
    ess_min = None if not ess or None in ess else min(ess)
    if s is None:
        decided = False
        reasons.append("no pair of groups to count switches between")
    else:
        ok_s = s >= S_MIN
        reasons.append(f"S = {s} {pair[0]}↔{pair[1]} switches"
                       + (" on thinned jumps (a lower bound)" if stats.get("thinned") else "")
                       + f" {'≥' if ok_s else '<'} {S_MIN}")
        ok_e = ess_min is not None and ess_min >= ESS_MIN
        reasons.append(f"ESS of the {pair[0]}/{pair[1]} shares {_r(ess_min)} {'≥' if ok_e else '<'} {ESS_MIN}")
        decided = ok_s and ok_e
    bad = []
    for name, t in [("mean pixel", stats["mean_pixel"])] + list(groups.items()):
        if t["constant"]:
            continue
        if t["rhat"] is None or t["rhat"] > RHAT_MAX:
            bad.append(f"{name} {_rh(t['rhat'])}")
    stable = not bad
    worst = max((t["rhat"] for t in [stats["mean_pixel"], *groups.values()] if t["rhat"] is not None), default=None)
    reasons.append(f"split-R-hat ({stats['n_windows']} windows) > {RHAT_MAX}: {', '.join(bad)}" if bad
                   else f"split-R-hat ({stats['n_windows']} windows) ≤ {RHAT_MAX} (largest {_rh(worst)})")
    on_data = None
    if reference is None:
        reasons.append("on the data: not judged (no reference jumps)")
    else:
        off = []
        for g, t in groups.items():
            ref = reference["groups"][g]
            tol = share_tolerance(t["mcse"], ref["se"])
            if tol is None or abs(t["mean"] - ref["share"]) > tol:
                off.append(f"{g} {t['mean']:.3f} vs {ref['share']:.3f} (tolerance {_r(tol)})")
        reasons.append("group shares off the reference: " + "; ".join(off) if off
                       else "every group share within tolerance of the reference")
        fd_ok = None if fd is None or fd_blurred is None else fd <= fd_blurred
        if fd_ok is not None:
            reasons.append(f"FD_classifier {fd:.4g} {'≤' if fd_ok else '>'} blurred-real {fd_blurred:.4g}")
        on_data = False if off or fd_ok is False else (None if fd_ok is None else True)
    if s is None or s < S_MIN:
        label = "undecided"
    elif not stable:  # enough crossings, and the windows disagree (arviz's bulk ESS collapses with it)
        label = "not stable"
    elif not decided:
        label = "undecided"
    else:
        label = {True: "stable, on the data", False: "stable, off the data", None: "stable"}[on_data]
    return {"decided": bool(decided), "stable": bool(stable), "on_data": on_data, "label": label, "reasons": reasons}


def read_metrics(metrics: list[dict] | None, groups: Iterable[str]) -> dict | None:
    """The entries above from a record's metrics: {shares {g: m}, reference {g: m} (may be empty), classes,
    classes_reference, mean_pixel, switches, verdict} (each an entry dict or None); None without a verdict."""
    by_name = {m.get("metric"): m for m in metrics or []}
    if VERDICT not in by_name:
        return None
    ok = lambda m: m if m and m.get("status", "ok") == "ok" and m.get("value") is not None else None  # noqa: E731
    groups = tuple(groups)
    return {"shares": {g: by_name.get(share_metric(g)) for g in groups if by_name.get(share_metric(g))},
            "reference": {g: ok(by_name.get(reference_metric(g))) for g in groups if ok(by_name.get(reference_metric(g)))},
            "classes": by_name.get(CLASS_SHARES), "classes_reference": by_name.get(CLASS_SHARES_REFERENCE),
            "mean_pixel": by_name.get(MEAN_PIXEL), "switches": by_name.get(SWITCHES), "verdict": by_name[VERDICT]}
