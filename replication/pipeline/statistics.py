"""The chain statistics of a scored run as record entries (evaluation/chain_stats.py, docs/statistics.md): from the
chain's per-jump classes and mean pixels in the score stage, or, for records scored before these statistics
existed, from the run's 1,000 committed thinned jumps (`results/samples/<run>.npz`), which `--report` fills in.

The reference for "on the data" is the classifier's reading of the run's own one-step jumps from 1,000 noised
test images (`score_common.one_step_jumps`, the same jumps as the denoise table): the jump's own ceiling, with
binomial standard errors. It needs the run's model: its train folder, or the committed model of its train key
(`results/models/`); without it the reference entries say "not computed" and why.
"""

from __future__ import annotations

import datetime as dt
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import DatasetMissing, load_images, to_unit
from ..data.registry import CLASS_GROUPS
from ..data.storage import atomic_write_json, read_json
from ..evaluation import chain_stats as cs
from ..evaluation import metric_names as mn
from ..evaluation.classifier import load_classifier, predict
from ..runs.experiments import Experiment, from_dict
from ..runs.folders import classifier_path, stage_key, train_dir
from ..runs.model_store import classifier_name, find_committed, models_dir
from ..runs.provenance import provenance
from .score_common import ONE_STEP_N, one_step_jumps
from .score_common import metric as _metric

REFERENCE_TEXT = f"classifier labels of one-step jumps from {ONE_STEP_N:,} noised test images (seed 0)"
FD, FD_BLURRED = mn.FD_CLASSIFIER, mn.calibration(mn.FD_CLASSIFIER, mn.BLURRED)


def reference(e: Experiment, classifier_file: Path, jumps: tuple | None, reason: str = "") -> dict:
    """`chain_stats.reference_shares` of the classified one-step jumps (`score_common.one_step_jumps`), or
    {"reason": why not} when there are none."""
    if jumps is None:
        return {"reason": reason or "no one-step jumps (no test images)"}
    model, _ = load_classifier(classifier_file)
    x_hat = jumps[2].detach().cpu().clamp(0, 1)  # classified as the chain's jumps are (pipeline/chain.py)
    out = cs.reference_shares(predict(model, x_hat).numpy(), CLASS_GROUPS.get(e.dataset, {}))
    return out | {"mean_pixel": float(x_hat.mean()), "sigma_eff": float(jumps[3].mnm.sigma_eff)}


def _round(x, digits: int = 6):
    return None if x is None else float(f"{x:.{digits}g}")


def chain_metrics(e: Experiment, labels, means, steps, metrics: list[dict], ref: dict, source: str,
                  thinned: bool = False, n_chains: int = 1) -> list[dict]:
    """The record entries (chain_stats' names) of one chain: group shares +- MCSE (ESS, split-R-hat), per-class
    shares, the mean pixel, S, the reference shares +- SE and the rule-2 verdict (FD pair from `metrics`)."""
    groups = CLASS_GROUPS.get(e.dataset, {})
    stats = cs.chain_statistics(labels, means, groups, steps, thinned=thinned)
    n, ok_ref = stats["n"], "groups" in ref
    chain = source + ("" if n_chains == 1 else f" (chain 1 of {n_chains})")
    keep = lambda t: {k: _round(t[k]) for k in ("ess", "mcse", "rhat")} | {"constant": t["constant"]}  # noqa: E731
    out = [_metric(cs.share_metric(g), t["mean"], n=n, reference=chain, group=g, classes=list(groups[g]),
                   thinned=thinned, **keep(t)) for g, t in stats["groups"].items()]
    for g in groups:
        r = ref["groups"][g] if ok_ref else None
        out.append(_metric(cs.reference_metric(g), r and r["share"], n=ref.get("n"), reference=REFERENCE_TEXT,
                           status="ok" if r else "not computed", reason=ref.get("reason"), group=g,
                           se=r and _round(r["se"])))
    out.append(_metric(cs.CLASS_SHARES, None, n=n, reference=chain, thinned=thinned,
                       shares=[_round(c["share"]) for c in stats["classes"]],
                       mcse=[_round(c["mcse"]) for c in stats["classes"]], ess=[_round(c["ess"]) for c in stats["classes"]]))
    if ok_ref:
        out.append(_metric(cs.CLASS_SHARES_REFERENCE, None, n=ref["n"], reference=REFERENCE_TEXT,
                           shares=[_round(c["share"]) for c in ref["classes"]], se=[_round(c["se"]) for c in ref["classes"]],
                           mean_pixel=_round(ref["mean_pixel"]), sigma_eff=ref["sigma_eff"]))
    out.append(_metric(cs.MEAN_PIXEL, stats["mean_pixel"]["mean"], n=n, reference=chain, thinned=thinned,
                       **keep(stats["mean_pixel"])))
    if stats["switches"] is not None:
        out.append(_metric(cs.SWITCHES, stats["switches"], n=n, reference=chain, pair=stats["pair"], thinned=thinned,
                           lower_bound=thinned, walk_steps=stats["walk_steps"],
                           per_1e5_steps=_round(stats["switches_per_1e5_steps"], 4)))
    by_name = {m["metric"]: m for m in metrics if m.get("status") == "ok" and m.get("value") is not None}
    fd, blurred = (by_name.get(k, {}).get("value") for k in (FD, FD_BLURRED))
    v = cs.verdict(stats, ref if ok_ref else None, fd, blurred)
    out.append(_metric(cs.VERDICT, None, n=n, reference=chain, thinned=thinned, n_windows=stats["n_windows"],
                       rules={"S_MIN": cs.S_MIN, "ESS_MIN": cs.ESS_MIN, "RHAT_MAX": cs.RHAT_MAX, "N_MCSE": cs.N_MCSE,
                              "SHARE_SLACK": cs.SHARE_SLACK, "error": "sqrt(MCSE^2 + SE_ref^2)"},
                       arviz_stats=_arviz_version(), **v))
    return out


def _arviz_version() -> str:
    return version("arviz-stats")


# --------------------------------------------------------------------------------------------------
# Records scored before the chain statistics existed: their committed thinned jumps.


def _model_file(e: Experiment, results: Path) -> Path | None:
    local = train_dir(e, results) / "model.pt"
    return local if local.exists() else find_committed(e, stage_key(e, "train"))


def _classifier_file(e: Experiment, results: Path) -> Path | None:
    for path in (classifier_path(e, results), models_dir() / classifier_name(e.dataset)):
        if path.exists():
            return path
    return None


def backfill(results: Path, data_root: str | None = None, device: str = "cpu") -> list[str]:
    """Add the chain statistics to every record of `results/records` that has a classifier, committed thinned
    jumps and no chain statistics yet; S and the shares are then those of the thinned jumps (labelled so).
    Returns one line per record filled in."""
    lines, refs, tests = [], {}, {}
    for path in sorted((results / "records").glob("*.json")):
        r = read_json(path)
        cfg = r.get("config") or {}
        rel = r.get("samples") or ""
        npz = results / Path(rel).relative_to("results") if rel.startswith("results/") else None
        if (not cfg.get("model") or not (cfg.get("score") or {}).get("classifier") or npz is None or not npz.exists()
                or any(m.get("metric") == cs.VERDICT for m in r.get("metrics") or [])):
            continue
        e = from_dict(cfg)
        clf = _classifier_file(e, results)
        if clf is None:
            continue
        with np.load(npz) as z:
            images, steps = z["images"], z["step"]
        model, _ = load_classifier(clf)
        labels = predict(model, to_unit(torch.from_numpy(images))).numpy()
        means = images.reshape(len(images), -1).mean(1) / 255.0
        model_file = _model_file(e, results)
        key = (str(model_file), repr(e.model), e.train.sample_with_ema, e.dataset)
        if key not in refs:
            jumps, reason = None, f"the run's model is not here (train folder or results/models/) to jump from test images"
            if model_file is not None:
                try:
                    if e.dataset not in tests:
                        tests[e.dataset] = load_images(e.dataset, data_root, "test")[0]
                    jumps = one_step_jumps(e, model_file, tests[e.dataset], device)
                except DatasetMissing as err:
                    reason = str(err)
            refs[key] = reference(e, clf, jumps, reason)
        n_jumps = (r.get("chain") or {}).get("n_jumps")
        thinned = n_jumps is None or len(images) < n_jumps  # a short chain's committed jumps are all of them
        source = (f"the {len(images):,} committed {'thinned ' if thinned else ''}uint8 jumps of {rel}"
                  + (f" (of {n_jumps:,})" if thinned and n_jumps else ""))
        new = chain_metrics(e, labels, means, steps, r.get("metrics") or [], refs[key], source, thinned=thinned,
                            n_chains=(r.get("chain") or {}).get("n_chains") or 1)
        p = provenance(device)
        new[-1]["computed"] = {"by": "replicate.py --report (pipeline/statistics.py backfill)", "git_sha": p["git_sha"],
                               "git_dirty": p["git_dirty"], "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        r["metrics"] = (r.get("metrics") or []) + new
        atomic_write_json(path, r)
        lines.append(f"{path.name}: chain statistics from {source}: {new[-1]['label']}")
    return lines
