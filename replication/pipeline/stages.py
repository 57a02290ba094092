"""Stages with on-disk contracts: train -> chain -> export -> score (-> report, table-wide).

A run lives in `results/runs/<table>/<experiment>-<profile>-<hash8>/` (git-ignored; the hash covers the
whole config, so a changed config gets a new folder). Each stage writes into its own sub-folder and
marks itself done last with `DONE.json` = {key, summary, provenance}; a stage is done iff DONE.json exists
and its key matches the stage's inputs. Finished stages are skipped, interrupted ones resume from their
own checkpoints. The stage objects are small and picklable, so the same objects run inline, through
submitit's local executor or on SLURM. The score stage publishes a small record to `results/records/`.
"""

from __future__ import annotations

import time
from pathlib import Path

import submitit
import torch
import torch.distributed as dist

from ..core.mnm import GaussianMixture
from ..data.datasets import load_images, to_unit, toy_mixture
from ..data.storage import atomic_write_json
from ..errors import NotImplementedYet
from ..evaluation.classifier import evaluate, save_classifier, train_classifier
from ..evaluation.images import export_pngs
from ..runs.experiments import Experiment, from_dict
from ..runs.folders import REPO_ROOT, classifier_path, done_record, run_dir, stage_dir, stage_key, train_dir
from ..runs.model_store import adopt, adopt_classifier, committed_model, find_committed
from ..runs.models import build_model, save_model
from ..runs.provenance import provenance
from ..runs.records import publish_record
from ..train.training import train
from . import scoring
from .chain import ChainJob, read_shards


def _mark_done(d: Path, key: str, summary: dict, device: str) -> dict:
    out = {"key": key, "summary": summary, "provenance": provenance(device)}
    atomic_write_json(d / "DONE.json", out)
    return out


# -------------------------------------------------------------------------------------------------
# Data.


def load_training_data(e: Experiment, data_root: str | None) -> torch.Tensor:
    """Training data as float in [0, 1] (N, C, H, W), or toy points (N, d)."""
    if e.dataset.startswith("toy:"):
        mix = toy_mixture(e.dataset.split(":", 1)[1])
        x, _ = GaussianMixture(mix.means, mix.stds, mix.weights).sample(50_000, torch.Generator().manual_seed(e.train.seed))
        return x.float()
    images, _ = load_images(e.dataset, data_root, split="train")
    return to_unit(images)


# -------------------------------------------------------------------------------------------------
# Stages.


class Stage(submitit.helpers.Checkpointable):
    """Base: a picklable callable holding the experiment dict and paths only."""

    name = ""

    def __init__(self, exp: dict, results: str, data_root: str | None = None, device: str = "cpu", progress: bool = True,
                 retrain: bool = False):
        self.exp, self.results, self.data_root, self.device, self.progress = exp, results, data_root, device, progress
        self.retrain = retrain  # train stage: ignore a committed model (model_store) and train from scratch

    @property
    def e(self) -> Experiment:
        return from_dict(self.exp)

    @property
    def dir(self) -> Path:
        return stage_dir(self.e, self.name, Path(self.results))

    def checkpoint(self, *args, **kwargs):
        return submitit.helpers.DelayedSubmission(type(self)(self.exp, self.results, self.data_root, self.device, self.progress,
                                                             self.retrain))

    def done_record(self) -> dict | None:
        return done_record(self.dir, stage_key(self.e, self.name))


class TrainStage(Stage):
    name = "train"

    def __call__(self, stop_after: int | None = None) -> dict:
        if (rec := self.done_record()) is not None:
            return rec
        e = self.e
        if not e.implemented:
            raise NotImplementedYet(f"{e.id}: {e.notes}")
        key = stage_key(e, "train")
        if not self.retrain and (committed := find_committed(e, key)) is not None:
            done = adopt(e, key, committed, self.dir)
            s = done["summary"]
            print(f"  train: using the committed trained model {_relative(committed)} ({s['steps']:,} steps, "
                  f"{s['wall_s'] / 60:.0f} min on {done['provenance']['hardware']}); --retrain trains from scratch",
                  flush=True)
            return done
        rank = _init_distributed(self.device)
        data = load_training_data(e, self.data_root)
        torch.manual_seed(e.train.seed)  # initial weights
        scheme = build_model(e.model, e.image_shape).to(self.device)
        t = e.train
        if t.init_from:
            scheme.warm_start(committed_model(t.init_from, e.image_shape))
        self.dir.mkdir(parents=True, exist_ok=True)
        out = train(scheme, data.to(self.device), t, self.dir, key=key, progress=self.progress, stop_after=stop_after)
        if out["steps"] < t.steps:
            return {"stopped_at": out["steps"]}
        if rank != 0:
            return {"rank": rank, "final_loss": out["final_loss"]}
        save_model(self.dir / "model.pt", scheme, e.to_dict()["model"], key, ema=out["ema"])
        summary = {"steps": out["steps"], "wall_s": out["wall_s"], "final_loss": out["final_loss"],
                   "history": out["history"], "n_params": sum(p.numel() for p in scheme.parameters())}
        return _mark_done(self.dir, key, summary, self.device)


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _init_distributed(device: str) -> int:
    """Under a submitit job with several tasks, join the process group (DDP over the tasks); return the rank."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:
        return 0
    if env.num_tasks == 1:
        return 0
    if not dist.is_initialized():
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            torch.cuda.set_device(env.local_rank)
    return dist.get_rank()


class ChainStage(Stage):
    name = "chain"

    def __call__(self, stop_after: int | None = None) -> dict:
        if (rec := self.done_record()) is not None:
            return rec
        e = self.e
        classifier = classifier_path(e, Path(self.results)) if e.score.classifier else None
        if classifier is not None and not classifier.exists():
            ClassifierStage(self.exp, self.results, self.data_root, self.device, self.progress)()
        job = ChainJob(self.exp, str(train_dir(e, Path(self.results)) / "model.pt"), str(self.dir / "run"),
                       str(classifier) if classifier else None, self.device, self.progress, stop_after)
        summary = job()
        if "stopped_at" in summary:
            return summary
        return _mark_done(self.dir, stage_key(e, "chain"), summary, self.device)


class ExportStage(Stage):
    """Jumps -> uint8 PNGs in a dedicated folder for clean-fid (image data only)."""

    name = "export"

    def __call__(self) -> dict:
        if (rec := self.done_record()) is not None:
            return rec
        e = self.e
        shards = run_dir(e, Path(self.results)) / "chain" / "run"
        if len(e.image_shape) == 3:
            images = read_shards(shards, ("images",))["images"]
            images = images.reshape(-1, *images.shape[2:])
            export_pngs(images, self.dir / "png", overwrite=True)
            summary = {"n": int(len(images)), "folder": str(self.dir / "png")}
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            summary = {"n": 0, "folder": None, "note": "vector data: no PNG export"}
        return _mark_done(self.dir, stage_key(e, "export"), summary, self.device)


class ClassifierStage(Stage):
    """The suite's own classifier for labelled 28x28 data (offline metrics, chain class diagnostics)."""

    name = "classifier"

    def __call__(self) -> dict:
        e = self.e
        path = classifier_path(e, Path(self.results))
        if path.exists():
            return {"path": str(path)}
        fast = e.profile == "smoke"
        if not fast and (committed := adopt_classifier(e.dataset, path)) is not None:
            print(f"  classifier: using the committed classifier {_relative(committed)}", flush=True)
            return {"path": str(path), "adopted_from": str(committed)}
        x, y = load_images(e.dataset, self.data_root, "train")
        xt, yt = load_images(e.dataset, self.data_root, "test")
        t0 = time.perf_counter()
        model = train_classifier(x[:5000] if fast else x, y[:5000] if fast else y, epochs=1 if fast else 3, seed=0)
        acc = evaluate(model, xt, yt)
        save_classifier(model, path, {"test_accuracy": acc, "dataset": e.dataset, "fast": fast,
                                      "wall_s": time.perf_counter() - t0})
        return {"path": str(path), "test_accuracy": acc}


class ScoreStage(Stage):
    name = "score"

    def __call__(self) -> dict:
        if (rec := self.done_record()) is not None:
            return rec
        e = self.e
        metrics, figures = scoring.score_run(e, run_dir(e, Path(self.results)), Path(self.results), self.data_root, self.device)
        samples = figures.pop("samples", None)  # the committed thinned jumps (.npz), not a figure
        done = _mark_done(self.dir, stage_key(e, "score"), {"metrics": metrics, "figures": figures, "samples": samples},
                          self.device)
        publish_record(e, Path(self.results))
        return done


STAGE_CLASSES = {"train": TrainStage, "chain": ChainStage, "export": ExportStage, "score": ScoreStage}


