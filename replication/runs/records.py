"""Run records: the small, committed outcome of a run in `results/records/<run>.json` (docs/on-disk.md §5)."""

from __future__ import annotations

from pathlib import Path

from ..data.storage import atomic_write_json, read_json
from .experiments import Experiment
from .folders import stage_dir


def publish_record(e: Experiment, results: Path) -> Path:
    """The small, committed outcome of a run: config, provenance, train/chain summaries, metrics, figures."""
    train, chain, score = (read_json(stage_dir(e, s, results) / "DONE.json") for s in ("train", "chain", "score"))
    hist = train["summary"]["history"]
    stride = max(1, len(hist) // 200)
    record = {
        "run": e.run_name, "table": e.table, "experiment": e.id, "profile": e.profile, "config": e.to_dict(),
        "provenance": score["provenance"] | {"train_hardware": train["provenance"]["hardware"],
                                             "chain_hardware": chain["provenance"]["hardware"]},
        "train": train["summary"] | {"history": hist[::stride]},
        "chain": {k: v for k, v in chain["summary"].items() if k != "key"},
        "metrics": score["summary"]["metrics"], "figures": score["summary"]["figures"],
        "samples": score["summary"].get("samples"),
    }
    path = results / "records" / f"{e.run_name}.json"
    atomic_write_json(path, record)
    return path
