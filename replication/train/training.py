"""Resumable MDAE/MEM training with Adam (docs/official-settings.md §2: betas (0.9, 0.999), eps 1e-8, no weight decay, constant LR).

Determinism: the data order of epoch e and the noise and flips of step t come from generators seeded by
(seed, purpose, e or t) (`seeding.derive_seed`), so they are functions of the step alone and a resumed
run draws exactly what an uninterrupted one draws. Under torch.distributed each rank draws the *global*
batch and keeps its slice, so W processes with batch B/W each equal one process with batch B up to the
order of floating-point reductions.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..core import seeding
from ..data.storage import CorruptCheckpoint, load_checked, save_checked
from ..errors import ReplicationError, UsageError
from .spec import TrainSpec

Tensor = torch.Tensor


ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # the paper's Adam (docs/official-settings.md §2), no weight decay


def adam(params, spec: TrainSpec, **kw) -> torch.optim.Adam:
    """The paper's Adam at the spec's learning rate (`kw`: torch's implementation choices, e.g. fused=True)."""
    return torch.optim.Adam(params, lr=spec.lr, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=0.0, **kw)


class ConfigMismatch(ReplicationError, RuntimeError):
    """A checkpoint in the train folder belongs to another training config."""


def _lr_at(cfg: TrainSpec, step: int) -> float:
    scale = 1.0
    if cfg.warmup_steps and step < cfg.warmup_steps:
        scale = (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        scale *= 0.5 * (1 + math.cos(math.pi * min(step / max(cfg.steps, 1), 1.0)))
    elif cfg.lr_schedule != "constant":
        raise UsageError(f"unknown lr_schedule {cfg.lr_schedule!r}; known: constant, cosine")
    return cfg.lr * scale


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    return torch.randperm(n, generator=seeding.generator(seed, "epoch", epoch))


def global_batch(data: Tensor, cfg: TrainSpec, step: int) -> tuple[Tensor, torch.Generator]:
    """The step's batch (drop_last epochs) and the generator for its noise, both functions of `step` only."""
    n = data.shape[0]
    per_epoch = n // cfg.batch_size
    if per_epoch == 0:
        raise UsageError(f"batch_size {cfg.batch_size} exceeds the {n} training examples")
    epoch, i = divmod(step, per_epoch)
    perm = _epoch_permutation(n, cfg.seed, epoch)
    x = data[perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]]
    g = seeding.generator(cfg.seed, "step", step)
    if cfg.hflip:
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x, g


def _autocast(precision: str, device: torch.device):
    """The forward pass's precision: fp32, or bfloat16 autocast (weights, optimizer and loss stay fp32)."""
    if precision not in ("fp32", "bf16"):
        raise UsageError(f"unknown precision {precision!r}; known: fp32, bf16")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _checkpoint_paths(run_dir: Path) -> tuple[Path, Path]:
    return run_dir / "ckpt.pt", run_dir / "ckpt.prev.pt"


def load_training_checkpoint(run_dir: Path, key: str) -> dict | None:
    """Newest valid checkpoint (falls back to the previous one if the newest is corrupt)."""
    for path in _checkpoint_paths(run_dir):
        if not path.exists():
            continue
        try:
            state = load_checked(path)
        except CorruptCheckpoint as err:
            print(f"warning: {err}; trying the previous checkpoint", flush=True)
            continue
        if state["key"] != key:
            raise ConfigMismatch(
                f"{path} was written by another configuration (key {state['key'][:12]} != {key[:12]}): "
                f"use a fresh run folder or rerun with --force train"
            )
        return state
    return None


def train(scheme: torch.nn.Module, data: Tensor, cfg: TrainSpec, run_dir: str | Path, *, key: str = "",
          progress: bool = True, stop_after: int | None = None, log_every: int = 50, ckpt_secs: float = 600.0) -> dict:
    """Train `scheme` (MDAE, MEM or MUVB) on `data` (N, *S) float in [0, 1] for cfg.steps Adam steps.

    Resumes from run_dir/ckpt.pt when present. `key` identifies the configuration: a checkpoint with
    another key is refused. `stop_after` ends the call early at that step (a stand-in for a kill in tests).
    The loss history has a point every `log_every` steps; a checkpoint is written every cfg.ckpt_every steps
    and after `ckpt_secs` seconds without one. cfg.sample_with_ema and cfg.init_from are the pipeline's.
    Returns a summary with the loss history; the caller publishes the model.
    """
    run_dir = Path(run_dir)
    rank, world = _rank_world()
    if cfg.batch_size % world:
        raise UsageError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    model = scheme
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(scheme)
    opt = adam(scheme.parameters(), cfg, fused=True)  # same algorithm, one kernel (benchmarks/train_step.py)
    ema = copy.deepcopy(scheme).requires_grad_(False) if cfg.ema_decay > 0 else None
    step, history, wall, running, count = 0, [], 0.0, 0.0, 0
    state = load_training_checkpoint(run_dir, key)
    if state is not None:
        scheme.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step, history, wall = state["step"], state["history"], state["wall_s"]
        running, count = state["running_loss"]
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)

    def save() -> None:
        if rank != 0:
            return
        ckpt, prev = _checkpoint_paths(run_dir)
        if ckpt.exists():
            ckpt.replace(prev)
        save_checked({"model": scheme.state_dict(), "optimizer": opt.state_dict(),
                      "ema": ema.state_dict() if ema is not None else None, "step": step,
                      "history": history, "running_loss": (running, count), "wall_s": wall + time.perf_counter() - t0, "key": key,
                      "config": asdict(cfg)}, ckpt)

    t0 = last_save = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not progress or rank != 0, unit="step")
    scheme.train()
    while step < end:
        x, g = global_batch(data, cfg, step)
        y = scheme.mnm.measure(x, g)
        part = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        with _autocast(cfg.precision, x.device):
            loss = model(x[part], y[part], g)  # g also draws MUVB's z (docs/method.md §2.4); MDAE and MEM ignore it
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), scheme.parameters()):
                    p_ema.lerp_(p, 1 - cfg.ema_decay)
        step += 1
        logged = loss.detach()
        if world > 1:  # log the global-batch loss, not rank 0's slice
            dist.all_reduce(logged)
            logged = logged / world
        running, count = running + logged.item(), count + 1
        if step % log_every == 0 or step == cfg.steps:
            history.append((step, running / count))
            bar.set_postfix(loss=f"{running / count:.3f}")
            running, count = 0.0, 0
        bar.update(1)
        if step % cfg.ckpt_every == 0 or step == end or time.perf_counter() - last_save > ckpt_secs:
            save()
            last_save = time.perf_counter()
    bar.close()
    wall += time.perf_counter() - t0
    return {"steps": step, "history": history, "running_loss": (running, count), "wall_s": wall, "final_loss": history[-1][1] if history else None,
            "ema": ema}
