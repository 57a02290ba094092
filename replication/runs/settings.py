"""The settings of a resolved experiment: `--set section.key=value` overrides, read against the field's type, and the
checks every experiment of `experiments.resolve` passes (each error names the setting and the fix). The functions take
an experiments.Experiment (not imported: experiments imports this module)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

from ..errors import UsageError
from ..sampling.clmc import SAMPLERS
from ..sampling.integrators import INTEGRATORS


def apply_overrides(e, overrides: dict[str, str]):
    """The experiments.Experiment `e` with each `section.key` (model, train, chain, score) set to its value, parsed
    as the field's type."""
    for dotted, raw in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in ("model", "train", "chain", "score") or not key:
            raise UsageError(f"unknown setting {dotted!r}: use section.key with section in model, train, chain, score")
        spec = getattr(e, section)
        fields = {f.name: f for f in dataclasses.fields(spec)}
        if key not in fields:
            raise UsageError(f"unknown setting {dotted!r}; {section} settings: {', '.join(fields)}")
        current = getattr(spec, key)
        e = replace(e, **{section: replace(spec, **{key: _parse(raw, current, dotted)})})
    return e


def _parse(raw: str, current, name: str):
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(current, int):
            return int(float(raw)) if float(raw).is_integer() else int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, tuple):
            return tuple(s for s in raw.split(",") if s)
        return raw
    except ValueError:
        raise UsageError(f"cannot read {name}={raw!r} as {type(current).__name__}") from None


def validate(e) -> None:
    """Refuse a config that cannot run, with the setting to change."""
    m, t, c = e.model, e.train, e.chain
    if not (m.sigma > 0 and math.isfinite(m.sigma)):
        raise UsageError(f"{e.id}: sigma must be > 0, got {m.sigma}: set e.g. --set model.sigma=1.0")
    if m.M < 1:
        raise UsageError(f"{e.id}: M must be >= 1, got {m.M}: set e.g. --set model.M=8")
    for name, value in (("train.steps", t.steps), ("train.batch_size", t.batch_size), ("chain.steps", c.steps),
                        ("chain.jump_every", c.jump_every), ("chain.n_chains", c.n_chains), ("chain.ckpt_every", c.ckpt_every)):
        if value < 1:
            raise UsageError(f"{e.id}: {name} must be >= 1, got {value}")
    if not (c.delta_over_sigma > 0 and c.gamma > 0 and c.u > 0):
        raise UsageError(f"{e.id}: chain.delta_over_sigma, chain.gamma and chain.u must be > 0")
    if c.scheme not in INTEGRATORS:
        raise UsageError(f"{e.id}: unknown walk integrator chain.scheme={c.scheme!r}; known: {', '.join(INTEGRATORS)}")
    if m.scheme == "muvb":
        for bad, fix in ((c.muvb_z not in ("sample", "mean"), f"unknown chain.muvb_z={c.muvb_z!r}; known: sample, mean"),
                         (m.net not in ("vdvae_resnet", "mlp"), "model.scheme=muvb needs model.net=vdvae_resnet or mlp"),
                         (m.sigmoid, "model.sigmoid is an MDAE option: set --set model.sigmoid=false"),
                         (m.beta < 0 or m.zdim < 1, "MUVB needs model.beta >= 0 and model.zdim >= 1")):
            if bad:
                raise UsageError(f"{e.id}: {fix}")
        if INTEGRATORS[c.scheme].needs_energy and c.muvb_z == "sample" and m.beta > 0:
            raise UsageError(f"{e.id}: chain.scheme={c.scheme} needs a deterministic energy (its Metropolis test), but MUVB "
                             f"with z resampled at every evaluation has a stochastic one: set --set chain.muvb_z=mean "
                             f"(z = mu) or another chain.scheme (aboba, baoab)")
    elif INTEGRATORS[c.scheme].needs_energy and m.scheme != "mem":
        raise UsageError(f"{e.id}: chain.scheme={c.scheme} needs an energy (its Metropolis step), which model.scheme="
                         f"{m.scheme} does not have: set --set model.scheme=mem or another chain.scheme (aboba, baoab)")
    if c.sampler not in SAMPLERS:
        raise UsageError(f"{e.id}: unknown chain.sampler={c.sampler!r}; known: {', '.join(SAMPLERS)}")
    if c.sampler == "clmc":
        if m.parametrization != "ybar-levels":
            raise UsageError(f"{e.id}: chain.sampler=clmc needs a denoiser at every level sigma/sqrt(m): set "
                             f"--set model.parametrization=ybar-levels (got {m.parametrization!r})")
        if not 1 <= c.clmc_start_level <= m.M:
            raise UsageError(f"{e.id}: chain.clmc_start_level must be in [1, model.M = {m.M}] (the level m0 whose ybar_m0 "
                             f"the outer walk moves), got {c.clmc_start_level}")
        if c.clmc_inner_steps < 1 or not (c.clmc_inner_delta_over_sigma > 0 and c.clmc_inner_gamma > 0):
            raise UsageError(f"{e.id}: chain.clmc_inner_steps must be >= 1, clmc_inner_delta_over_sigma and "
                             f"clmc_inner_gamma > 0")
    if c.burn_in < 0 or c.burn_in >= c.steps:
        raise UsageError(f"{e.id}: chain.burn_in must be in [0, chain.steps)")
    if e.score.classifier and e.image_shape != (1, 28, 28):
        raise UsageError(f"{e.id}: score.classifier needs 28x28 grayscale images (the suite's classifier); {e.dataset} "
                         f"has shape {e.image_shape}: set --set score.classifier=false")
