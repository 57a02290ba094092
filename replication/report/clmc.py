"""The CLMC table of REPORT.md (beyond the paper, docs/method.md §6): one long CLMC chain beside the plain walk-jump
at sigma_eff = 0.25 and 0.5, per score evaluation.

Rows: the longest chain per trained model and sampler of `--table fashion-mnist-clmc`, and the cpu recipe's plain
walk-jump chains of the Fashion-MNIST tables with the same walk (BAOAB at delta = sigma/4) and at least
PLAIN_MIN_JUMPS jumps with chain statistics. Score evaluations come from the record's config
(pipeline.samplers.score_evals: a walk step each, plus the jumps')."""

from __future__ import annotations

import math

import pandas as pd

from ..evaluation import metric_names as mn
from ..pipeline.samplers import score_evals
from ..runs import experiments
from .headline import WALK_DATASET, WALK_GROUP, _fd, dedup, stats_parts
from .tables import chain_statistics, config_hash, count

CLMC_TABLE = "fashion-mnist-clmc"
PLAIN_MIN_JUMPS = 5000  # the plain chains shown beside CLMC: long ones only (the quickstart's seeds are elsewhere)
COLUMNS = ["sampler", "model (σ, M, param. train)", "jump σ_eff", "run", "walk steps", "score evals", "jumps",
           "S", "S / 10⁵ evals", f"{WALK_GROUP} ± MCSE (ESS); ref.", "FD (1,000 thinned)", "verdict"]


def _chain(r: dict) -> dict:
    return (r.get("config") or {}).get("chain") or {}


def _longest(records: list[dict]) -> dict | None:
    """The longest chain of `records` (the newest of ties)."""
    return max(records, key=lambda r: (_chain(r).get("steps") or 0, str((r.get("provenance") or {}).get("created"))),
               default=None)


def clmc_records(records: list[dict]) -> list[dict]:
    """The table's own chains, the longest per trained model and sampler (the others are in the table's headline
    rows), then the recipe's comparable plain chains of the other Fashion-MNIST tables."""
    groups: dict[tuple, list[dict]] = {}
    for r in dedup([r for r in records if r["table"] == CLMC_TABLE])[0]:
        if chain_statistics(r):
            c = experiments.from_dict(r["config"]).chain
            groups.setdefault(((r.get("train") or {}).get("steps") or 0, c.sampler, c.clmc_start_level), []).append(r)
    own = [_longest(rs) for _, rs in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1:]))]
    plain = [r for r in dedup([r for r in records if r["table"] != CLMC_TABLE and r["table"].startswith(WALK_DATASET)])[0]
             if _chain(r).get("scheme") == "baoab" and _chain(r).get("delta_over_sigma") == 0.25
             and ((r.get("chain") or {}).get("n_jumps") or 0) >= PLAIN_MIN_JUMPS and chain_statistics(r)]
    return own + sorted(plain, key=lambda r: ((r.get("config") or {}).get("model") or {}).get("M", 0))


def clmc_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in clmc_records(records):
        e = experiments.from_dict(r["config"])
        n_jumps = (r.get("chain") or {}).get("n_jumps") or 0
        evals = score_evals(e, n_jumps)
        parts = stats_parts(chain_statistics(r), WALK_GROUP)
        s = (chain_statistics(r) or {}).get("switches") or {}
        c = e.chain
        sampler = "walk-jump" if c.sampler != "clmc" else (
            f"CLMC, K = {c.clmc_inner_steps}" + (f", from ybar_{c.clmc_start_level}" if c.clmc_start_level > 1 else ""))
        rows.append(dict(zip(COLUMNS, [
            sampler, f"{e.model.sigma:g}, {e.model.M}, {e.model.parametrization} {count(e.train.steps)}",
            f"{e.model.sigma / math.sqrt(e.model.M):.3g}", config_hash(r), count(e.chain.steps), count(evals),
            count(n_jumps), parts["S"], f"{s['value'] / evals * 1e5:.1f}" if s.get("value") is not None else "",
            f"{parts['share']}; {parts['ref']}" if parts["share"] else "", _fd(r), parts["verdict"]])))
    return pd.DataFrame(rows, columns=COLUMNS)


def _metric(r: dict, name: str):
    return next((m["value"] for m in r.get("metrics") or [] if m.get("metric") == name and m.get("status") == "ok"), None)


def featured(records: list[dict]) -> dict | None:
    """The CLMC chain whose figures REPORT.md shows: the longest of the table's CLMC chains (the newest of ties)."""
    return _longest([r for r in clmc_records(records) if r["table"] == CLMC_TABLE and _chain(r).get("sampler") == "clmc"])


def level_table(records: list[dict]) -> pd.DataFrame:
    """The ybar-levels models' one-step jump quality at each level m (denoise_mse[m]), one row per trained model (its
    training steps), beside the fixed-M models of the fashion-mnist-M table at the same sigma_eff = sigma/sqrt(m), one
    row per profile that recorded them."""
    own = [r for r in dedup([r for r in records if r["table"] == CLMC_TABLE])[0]
           if _metric(r, mn.at_level(mn.DENOISE_MSE, 1)) is not None]
    if not own:
        return pd.DataFrame()
    levels = sorted(int(m["metric"].split("=")[1].rstrip("]")) for m in own[0]["metrics"]
                    if m.get("metric", "").startswith(mn.DENOISE_MSE + "[m="))
    models = {(r.get("train") or {}).get("steps"): r for r in own}  # one row per trained model
    rows = [{"model": f"ybar-levels, σ 1, M {levels[-1]}, {count(steps)} steps ({config_hash(r)})",
             **{f"m = {m}": f"{_metric(r, mn.at_level(mn.DENOISE_MSE, m)):.2f}" for m in levels}}
            for steps, r in sorted(models.items(), key=lambda kv: kv[0] or 0)]
    fixed = [r for r in dedup([r for r in records if r["table"] == "fashion-mnist-M"])[0]
             if _metric(r, mn.DENOISE_MSE) is not None]
    for profile in sorted({r["profile"] for r in fixed}):
        by_M = {((r.get("config") or {}).get("model") or {}).get("M"): _metric(r, mn.DENOISE_MSE)
                for r in fixed if r["profile"] == profile}
        rows.append({"model": f"fixed M = m (fashion-mnist-M, {profile})",
                     **{f"m = {m}": f"{by_M[m]:.2f}" if m in by_M else "—" for m in levels}})
    return pd.DataFrame(rows)
