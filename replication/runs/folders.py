"""Where a run lives: run folders, the shared train folder, stage keys and stage status (docs/on-disk.md §2).

A run lives in `results/runs/<table>/<experiment>-<profile>-<hash8>/` (git-ignored; the hash covers the
whole config, so a changed config gets a new folder); the trained model lives in `results/runs/models/`,
shared by every run with the same (dataset, model, train) config. A stage is done iff its `DONE.json`
exists and its key matches the stage's inputs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..data.storage import read_json
from ..errors import UsageError
from .experiments import Experiment

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES = ("train", "chain", "export", "score")


def runs_root(results: Path | None = None) -> Path:
    return (results or REPO_ROOT / "results") / "runs"


def run_dir(e: Experiment, results: Path | None = None) -> Path:
    """The run's folder (chain, export, score); named by the whole config's hash."""
    return runs_root(results) / e.table / e.run_name


def train_dir(e: Experiment, results: Path | None = None) -> Path:
    """The trained model's folder, shared by every run (of any table) with the same (dataset, model, train) config."""
    return runs_root(results) / "models" / f"{e.dataset.replace(':', '-')}-{e.profile}-{stage_key(e, 'train')[:8]}"


def stage_dir(e: Experiment, stage: str, results: Path | None = None) -> Path:
    return train_dir(e, results) if stage == "train" else run_dir(e, results) / stage


def stage_key(e: Experiment, stage: str) -> str:
    sections = {"train": ("dataset", "model", "train"), "chain": ("dataset", "model", "train", "chain"),
                "export": ("dataset", "model", "train", "chain"), "score": ("dataset", "model", "train", "chain", "score")}
    return e.key(*sections[stage])


def done_record(d: Path, key: str, refuse: str | None = None) -> dict | None:
    """`d/DONE.json` if the stage in folder `d` is done for `key`, else None: the one "is this stage done?".

    A DONE.json with another key counts as not done, or, with `refuse` (the stage's name), is a UsageError: the
    folder belongs to another configuration of that stage.
    """
    done = d / "DONE.json"
    if not done.exists():
        return None
    rec = read_json(done)
    if rec.get("key") == key:
        return rec
    if refuse:
        raise UsageError(f"{done} belongs to another {refuse} configuration (key {str(rec.get('key'))[:12]} != "
                         f"{key[:12]}): use a fresh run folder or --force {refuse}")
    return None


def stage_status(e: Experiment, stage: str, results: Path | None = None) -> str:
    """done | partial (started, resumable) | failed | pending."""
    d = stage_dir(e, stage, results)
    if done_record(d, stage_key(e, stage)) is not None:
        return "done"
    if (d / "FAILED.json").exists() or (d / "run" / "FAILED.json").exists():
        return "failed"
    if d.exists() and any(d.iterdir()):
        return "partial"
    return "pending"


def classifier_path(e: Experiment, results: Path) -> Path:
    return runs_root(results) / e.table / f"classifier-{e.dataset}" / "classifier.pt"


def reset_stage(e: Experiment, stage: str, results: Path | None = None) -> None:
    """--force: move the stage's folder (and every later stage's DONE marker) aside, never delete results."""
    later = STAGES[STAGES.index(stage):]
    for s in later:
        d = stage_dir(e, s, results)
        if d.exists():
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            if s == stage:
                d.rename(d.with_name(f"{d.name}.replaced-{stamp}"))
            elif (d / "DONE.json").exists():
                (d / "DONE.json").rename(d / f"DONE.replaced-{stamp}.json")
