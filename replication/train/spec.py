"""The training settings: one spec, an experiment's `train` section and what `training.train` takes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSpec:
    """What to train: every field is part of an experiment's identity (runs/experiments.py `Experiment.key`; a field
    added later enters its `ADDED_LATER` so earlier runs keep their keys). How often to log and the time between
    checkpoints are `training.train`'s arguments; Adam's betas and eps are the paper's (`training.ADAM_BETAS`)."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-4
    seed: int = 0
    hflip: bool = False  # random horizontal flips (CIFAR-10 config [C])
    ema_decay: float = 0.0  # beyond paper; 0 = off as in the official code
    lr_schedule: str = "constant"  # "constant" (paper) | beyond paper: "cosine"
    warmup_steps: int = 0
    ckpt_every: int = 1000
    sample_with_ema: bool = False  # the chain walks with the EMA weights (read by the chain stage, not by training)
    precision: str = "fp32"  # beyond paper: "bf16" = bfloat16 autocast of the forward pass, fp32 weights (benchmarks/cpu_speed.py)
    init_from: str = ""  # beyond paper: a committed model of results/models/ (its file stem) whose weights start
    #                      training (read by the train stage, which warm-starts the model before `training.train`)
