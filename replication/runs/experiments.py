"""The one registry of experiments: every table of the paper (docs/official-settings.md §2) plus `toy` and `fashion-mnist`.

An experiment is a frozen config in four parts: data, model, train, chain (+ score). `resolve(table, profile)`
returns the table's experiments under a profile:

  paper  the paper's exact hyperparameters (docs/official-settings.md §2, from the official configs [C]); for GPU clusters.
  cpu    a long CPU run (about an hour on one core): SmallUNet width 32, 15,000 bf16 steps, one 200k-step chain;
         the mnist and fashion-mnist tables also take the working CPU recipe (CPU_RECIPE).
  quick  CPU-sized (minutes on 2 cores); a small U-Net instead of the U2Net, shorter training and chains.
  smoke  seconds; for the test suite.

The toy-claims study sizes itself by the same names (claims/profiles.py `sizes`: quick and smoke).

Settings the sources leave unverified ([U?], docs/deviations.md §2) are listed in each experiment's `unverified` field and shown in
the report. `--set section.key=value` overrides any field; every result records its profile and config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, replace

from ..data import registry
from ..errors import UsageError
from ..sampling.integrators import Walk
from ..train.spec import TrainSpec
from .settings import apply_overrides, validate

PROFILES = ("paper", "cpu", "quick", "smoke")


@dataclass(frozen=True)
class ModelSpec:
    scheme: str = "mdae"  # "mdae" | "mem" | "muvb" (docs/method.md §2.2-2.4)
    net: str = "u2net"  # "u2net" | "small_unet" | "mlp" | "vdvae_resnet" (MUVB's encoder and decoder)
    width: int = 1  # U2Net width factor f, SmallUNet base width, MLP hidden width
    sigma: float = 1.0
    M: int = 8
    sigmoid: bool = False
    data_std: float = 0.225  # input scale s = sqrt(data_std^2 + sigma^2) [C]
    parametrization: str = "mdae"  # "mdae" (paper) | "ybar" (beyond paper: shared denoiser of the mean, docs/method.md §1.4)
    #                                 | "ybar-levels" (beyond paper: one noise-conditional denoiser of ybar_m at every
    #                                   level sigma/sqrt(m), m = 1..M, for the CLMC sampler, docs/method.md §6.2)
    beta: float = 1.0  # MUVB: weight of the KL term of the energy (docs/method.md Eq. 12a) [C]
    zdim: int = 2048  # MUVB: latent channels (at 1x1 for images) [C]


@dataclass(frozen=True)
class ChainSpec:
    steps: int = 1_000_000  # walk steps of the single chain [P]
    jump_every: int = 20  # 1M steps / 50,000 samples [P, D]
    burn_in: int = 0  # [U?]
    n_chains: int = 1
    delta_over_sigma: float = 0.5  # delta = sigma/2 [C]
    gamma: float = 0.5  # friction, zeta = exp(-gamma delta) [C]
    u: float = 1.0  # inverse mass [C]
    scheme: str = "aboba"  # the walk's integrator (sampling.integrators.INTEGRATORS): Sachs et al. [C]; "baoab", "cheng"
    init: str = "uniform_shared"  # [C]; "uniform_independent" [A4]
    seed: int = 0
    ckpt_every: int = 10_000
    save_float: bool = False
    # The sampler (beyond the paper): "walk_jump" (the paper's) or "clmc", the chain of log-concave Markov chains
    # (Saremi, Park & Bach 2024; docs/method.md §6): the walk above moves y_1 alone (sigma-smoothed), and each jump
    # draws y_2..y_M one at a time by `clmc_inner_steps` steps of the same integrator at delta = clmc_inner_delta_over_sigma
    # * sigma and friction clmc_inner_gamma on each log-concave conditional, then jumps from ybar_M (ybar-levels models).
    # clmc_start_level m0 > 1: the walk moves ybar_{m0} (smoothed at sigma/sqrt(m0)) and the inner walks draw y_{m0+1}..y_M.
    sampler: str = "walk_jump"
    clmc_start_level: int = 1
    clmc_inner_steps: int = 4
    clmc_inner_delta_over_sigma: float = 0.5
    clmc_inner_gamma: float = 2.0
    muvb_z: str = "sample"  # MUVB's z when sampling: "sample" (redrawn per evaluation [C]) | "mean" (z = mu, deterministic)


@dataclass(frozen=True)
class ScoreSpec:
    fid_modes: tuple[str, ...] = ()  # clean-fid modes; () = no Inception FID
    fid_split: str = "train"
    classifier: bool = False  # Frechet distance in the suite's classifier features + class coverage
    denoise: bool = False  # one-step jump quality on noisy held-out images (MSE, classifier FD)
    toy_exact: bool = False  # exact metrics against the known mixture


@dataclass(frozen=True)
class Experiment:
    id: str
    table: str
    dataset: str  # a registered dataset (data/registry.py) or "toy:<mixture name>"
    model: ModelSpec
    train: TrainSpec
    chain: ChainSpec
    score: ScoreSpec
    profile: str = "paper"
    implemented: bool = True
    unverified: tuple[str, ...] = ()
    notes: str = ""

    @property
    def image_shape(self) -> tuple[int, ...]:
        return registry.get(self.dataset).shape

    @property
    def walk_sigma(self) -> float:
        """The noise level of the density the walk moves on: sigma (the M-density, CLMC's y_1), or sigma/sqrt(m0) for a
        CLMC chain whose outer walk moves ybar_{m0} (chain.clmc_start_level = m0; docs/method.md §6.1)."""
        m0 = self.chain.clmc_start_level if self.chain.sampler == "clmc" else 1
        return self.model.sigma / math.sqrt(m0)

    @property
    def delta(self) -> float:
        return self.chain.delta_over_sigma * self.walk_sigma

    @property
    def walk(self) -> Walk:
        """The walk's settings (delta = chain.delta_over_sigma * walk_sigma, gamma, u, integrator): every chain of this
        experiment, in the pipeline, the drift measurement and the benchmarks, walks with these."""
        c = self.chain
        return Walk(self.delta, c.gamma, c.u, c.scheme)

    @property
    def inner_walk(self) -> Walk:
        """The CLMC sampler's inner walks (chain.sampler = clmc): delta = chain.clmc_inner_delta_over_sigma * sigma,
        friction chain.clmc_inner_gamma, the chain's u and integrator."""
        c = self.chain
        return Walk(c.clmc_inner_delta_over_sigma * self.model.sigma, c.clmc_inner_gamma, c.u, c.scheme)

    @property
    def n_samples(self) -> int:
        return self.chain.n_chains * max(0, (self.chain.steps - self.chain.burn_in) // self.chain.jump_every)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self, *sections: str) -> str:
        """Stable hash of the named sections (all when none): the identity of a stage's inputs.

        Settings added after results were recorded (`ADDED_LATER`) enter the hash only when they differ from
        their default, so every earlier run keeps its folder and record name.
        """
        d = self.to_dict()
        for section, name, default in ADDED_LATER:
            if d[section].get(name) == default:
                d[section].pop(name, None)
        keep = {k: d[k] for k in (sections or ("dataset", "model", "train", "chain", "score"))}
        if "train" in keep or "model" in keep:
            keep["dataset"] = self.dataset
        if "model" in keep and "chain" not in keep and self.model.parametrization == "ybar":
            # A ybar model is one denoiser at sigma_eff: every (sigma, M) with that sigma_eff shares it.
            model = dict(keep["model"])
            model["sigma_eff"] = round(model.pop("sigma") / math.sqrt(model.pop("M")), 12)
            keep["model"] = model
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()

    @property
    def run_name(self) -> str:
        return f"{self.id}-{self.profile}-{self.key()[:8]}"


ADDED_LATER = (("train", "precision", "fp32"), ("train", "init_from", ""), ("model", "beta", 1.0),
                ("model", "zdim", 2048), ("chain", "muvb_z", "sample"), ("chain", "sampler", "walk_jump"),
                ("chain", "clmc_start_level", 1), ("chain", "clmc_inner_steps", 4), ("chain", "clmc_inner_delta_over_sigma", 0.5),
                ("chain", "clmc_inner_gamma", 2.0))

_PROTOCOL_UNVERIFIED = ("chain burn-in and thinning offset [docs/deviations.md §2.1, U?]",
                        "whether delta and gamma were re-tuned for the 1M-step run [docs/deviations.md §2.1, U?]")


def _paper_experiments() -> list[Experiment]:
    fid = ScoreSpec(fid_modes=("legacy_tensorflow", "clean"))
    return [
        Experiment("mnist-mdae-1x16", "mnist", "mnist",
                   ModelSpec("mdae", "u2net", 1, 1.0, 16, sigmoid=False),
                   TrainSpec(steps=469_000, batch_size=128, lr=2e-5, seed=1999),
                   ChainSpec(), replace(fid, classifier=True),
                   unverified=_PROTOCOL_UNVERIFIED + ("training steps derived from 1000 epochs [docs/deviations.md §2.4, D]",)),
        Experiment("mnist-muvb-1x4", "mnist", "mnist",
                   ModelSpec("muvb", "vdvae_resnet", 128, 1.0, 4, beta=1.0, zdim=2048),
                   TrainSpec(steps=1_875_000, batch_size=32, lr=1e-4, seed=1764),
                   replace(ChainSpec(), delta_over_sigma=1.0), replace(fid, classifier=True),
                   unverified=_PROTOCOL_UNVERIFIED + ("Adam in place of the config's AdaBelief, which the official code does "
                                                      "not provide [docs/deviations.md §1.5]",),
                   notes="MUVB (docs/method.md §2.4): the official config, made runnable (docs/deviations.md §1.5)"),
        Experiment("cifar10-mdae-1x8", "cifar10", "cifar10",
                   ModelSpec("mdae", "u2net", 2, 1.0, 8, sigmoid=True),
                   TrainSpec(steps=195_000, batch_size=256, lr=1e-4, seed=1685, hflip=True),
                   ChainSpec(), fid,
                   unverified=_PROTOCOL_UNVERIFIED + ("(sigma, M) behind FID 43.95 assumed from the released config [docs/deviations.md §2.2]",
                                                      "training steps derived from 1000 epochs x 195 steps [docs/deviations.md §2.4, D]")),
        Experiment("ffhq256-mdae-4x8", "ffhq256", "ffhq256",
                   ModelSpec("mdae", "u2net", 2, 4.0, 8, sigmoid=True),
                   TrainSpec(steps=1_093_750, batch_size=16, lr=2e-5, seed=2001),
                   replace(ChainSpec(), steps=10_000, jump_every=10), ScoreSpec(),
                   unverified=("FFHQ evaluation is qualitative only on the poster; no FID target [docs/deviations.md §3.8]",)),
        Experiment("toy-mdae-1x4", "toy", "toy:ring8",
                   ModelSpec("mdae", "mlp", 256, 1.0, 4),
                   TrainSpec(steps=20_000, batch_size=256, lr=1e-3, seed=0, lr_schedule="cosine"),
                   replace(ChainSpec(), steps=200_000, jump_every=20, n_chains=1), ScoreSpec(toy_exact=True),
                   notes="beyond the paper: exact metrics against a known 2-D Gaussian mixture"),
        Experiment("fashion-mnist-mdae-1x16", "fashion-mnist", "fashion-mnist",
                   ModelSpec("mdae", "u2net", 1, 1.0, 16, sigmoid=False),
                   TrainSpec(steps=469_000, batch_size=128, lr=2e-5, seed=0),
                   ChainSpec(), replace(fid, classifier=True),
                   notes="beyond the paper: the MNIST recipe on Fashion-MNIST (installs offline from Debian)"),
    ]


# The narrow MUVB ResNets of the CPU profiles: (base width, zdim) in place of (128, 2048) (docs/deviations.md §4.11).
MUVB_NARROW, MUVB_CPU_STEPS, MUVB_CPU_CHAIN = {"quick": (8, 32), "cpu": (8, 32), "smoke": (4, 8)}, 15_000, 10_000


def _narrow(model: ModelSpec, profile: str, other: ModelSpec) -> ModelSpec:
    """The profile's model: MUVB ResNets narrowed (MUVB_NARROW), the other nets as `other`."""
    if model.net == "vdvae_resnet":
        width, zdim = MUVB_NARROW[profile]
        return replace(model, width=width, zdim=zdim)
    return other


def _quick(e: Experiment) -> Experiment:
    """CPU-sized: small U-Net (81k parameters at width 16) / MLP, short training, a 20k-step chain (1,000 samples)."""
    model = replace(e.model, net="small_unet", width=16) if e.model.net == "u2net" else replace(e.model, width=128)
    model = _narrow(e.model, "quick", model)
    toy = e.dataset.startswith("toy:")
    train = replace(e.train, steps=3000 if toy else 1200, batch_size=256 if toy else 64, lr=1e-3, ckpt_every=100,
                    lr_schedule="cosine", warmup_steps=50)
    chain = replace(e.chain, steps=min(e.chain.steps, 20_000), jump_every=20, ckpt_every=2_000)
    return replace(e, model=model, train=train, chain=chain, profile="quick")


# The working CPU recipe (issue 11): named departures from the paper's recipe, each an ablation row of the
# fashion-mnist-levers table. Measured, not guessed: the sigmoid output removes the drift to saturated blobs,
# EMA of the weights and a smaller walk step keep a long chain on the data (docs/deviations.md §4).
# The walk (issue 17): BAOAB instead of the official ABOBA splitting, the same cost, far less bias on class weights
# (docs/method.md §3.5, the toy integrators sweep and the drift measurements of docs/deviations.md §4.10).
CPU_RECIPE = {"model": {"sigmoid": True}, "train": {"ema_decay": 0.999, "sample_with_ema": True},
              "chain": {"delta_over_sigma": 0.25, "scheme": "baoab"}}
# The M and sigma tables measure M and sigma *with the working model*; the levers table keeps each row's own levers.
CPU_RECIPE_TABLES = ("mnist", "fashion-mnist", "fashion-mnist-M", "fashion-mnist-sigma", "fashion-mnist-clmc",
                     "fashion-mnist-schemes")
# The fashion-mnist table's cpu run samples at sigma_eff = sigma / sqrt(M) = 0.5 (M = 4 at sigma = 1) instead of
# 0.25: one chain crosses between footwear and clothing often enough to be judged (docs/deviations.md §4.10); its
# id names the M it runs (fashion-mnist-mdae-1x4). The M = 16 model stays the fashion-mnist-M table's M16 row.
CPU_RECIPE_M = {"fashion-mnist": 4}
# The clmc table's cpu model is fine-tuned in fp32 for 6,000 steps from the committed M = 16 recipe model (train.init_from,
# YbarLevels.warm_start), not 15,000 bf16 steps from scratch: bf16 ran 5x slower than fp32 on the CPU without AVX512 it
# was made on; 1,200 steps left the outer walk's score with a stationary law off the data (docs/deviations.md §4.12).
CPU_TABLE_TRAIN = {"fashion-mnist-clmc": {"steps": 6000, "precision": "fp32", "lr": 3e-4, "warmup_steps": 100,
                                          "ckpt_every": 200, "init_from": "fashion-mnist-cpu-981c0caa"}}

def _with(e: Experiment, recipe: dict) -> Experiment:
    return replace(e, **{section: replace(getattr(e, section), **values) for section, values in recipe.items()})


def _cpu(e: Experiment) -> Experiment:
    """A long CPU run (about an hour on one core): SmallUNet width 32, 15,000 bf16 steps (16 epochs), 200k-step chain.

    The CPU_RECIPE_TABLES also take CPU_RECIPE (sigmoid output, EMA 0.999, delta = sigma/4, the BAOAB walk), and the
    tables of CPU_RECIPE_M their M.
    """
    q = _quick(e)
    toy = q.dataset.startswith("toy:")
    model = _narrow(q.model, "cpu", replace(q.model, width=32) if q.model.net == "small_unet" else q.model)
    muvb = q.model.scheme == "muvb" and not toy  # MUVB: the recipe's steps in fp32, a 10,000-step chain (deviations §4.11)
    train = replace(q.train, steps=4 * q.train.steps if toy else MUVB_CPU_STEPS if muvb else 15_000, warmup_steps=200,
                    ckpt_every=500, precision="fp32" if toy or muvb else "bf16")
    chain = replace(q.chain, steps=min(e.chain.steps, MUVB_CPU_CHAIN if muvb else 200_000), burn_in=1000,
                    ckpt_every=10_000)
    if e.table == "fashion-mnist-clmc":  # CLMC: 1,000 samples, 177,000 score evaluations; plain: 40,000 (§4.12)
        chain = (replace(chain, steps=min(e.chain.steps, 101_000), jump_every=100) if chain.sampler == "clmc"
                 else replace(chain, steps=min(e.chain.steps, 40_000)))
    out = replace(q, model=model, train=train, chain=chain, profile="cpu")
    if e.table in CPU_RECIPE_M:
        M = CPU_RECIPE_M[e.table]
        out = replace(out, id=f"{e.dataset}-{e.model.scheme}-{e.model.sigma:g}x{M}", model=replace(out.model, M=M))
    out = _with(out, CPU_RECIPE) if e.table in CPU_RECIPE_TABLES else out
    out = _with(out, {"train": CPU_TABLE_TRAIN[e.table]}) if e.table in CPU_TABLE_TRAIN else out
    # The sigmoid output is an MDAE lever; MUVB's x_hat is y + sigma^2 score (docs/method.md Eq. 12).
    return replace(out, model=replace(out.model, sigmoid=False)) if out.model.scheme == "muvb" else out


def _smoke(e: Experiment) -> Experiment:
    """Seconds: the plumbing only; numbers mean nothing."""
    model = replace(e.model, net="small_unet", width=8) if e.model.net == "u2net" else replace(e.model, width=32)
    model = _narrow(e.model, "smoke", model)
    train = replace(e.train, steps=30, batch_size=16, lr=1e-3, ckpt_every=10)
    chain = replace(e.chain, steps=400, jump_every=10, ckpt_every=100, burn_in=0)
    return replace(e, model=model, train=train, chain=chain, profile="smoke")


def _lever_experiments() -> list[Experiment]:
    """Beyond the paper (issue: the method in our hands): named departures from the paper's recipe, each a row.

    fashion-mnist-levers: which lever makes chains work on CPU budgets (sigmoid output, EMA, ybar).
    fashion-mnist-M: "exact for large M" -- jump quality against M at fixed sigma = 1.
    fashion-mnist-sigma: "smoothing is key for good mixing" -- chains against sigma at fixed sigma_eff = 0.25,
      all driven by ONE ybar denoiser (a ybar model depends on sigma_eff only), so only the walk differs.
    """
    base = next(e for e in _paper_experiments() if e.id == "fashion-mnist-mdae-1x16")
    note = "beyond the paper: a named departure from the paper's recipe (ablation row)"
    sig, ema = dict(sigmoid=True), dict(ema_decay=0.999, sample_with_ema=True)
    delta4 = dict(delta_over_sigma=0.25)
    levers = [("paper", {}, {}, {}), ("sigmoid", sig, {}, {}), ("sigmoid-ema", sig, ema, {}),
              ("ybar-sigmoid-ema", dict(sig, parametrization="ybar"), ema, {}),
              # ("sigmoid-ema-delta4" would be CPU_RECIPE itself: that row is the fashion-mnist table's cpu run)
              ("ybar-sigmoid-ema-delta4", dict(sig, parametrization="ybar"), ema, delta4)]
    out = [replace(base, id=f"fmnist-lever-{name}", table="fashion-mnist-levers", model=replace(base.model, **m),
                   train=replace(base.train, **t), chain=replace(base.chain, **c), notes=note)
           for name, m, t, c in levers]
    for M in (1, 2, 4, 8, 16):
        out.append(replace(base, id=f"fmnist-M{M}", table="fashion-mnist-M", model=replace(base.model, M=M, sigmoid=True),
                           chain=replace(base.chain, steps=2_000), score=replace(base.score, denoise=True),
                           notes="beyond the paper: jump quality against M at sigma = 1 (paper parametrization)"))
    for sigma, M in ((0.5, 4), (1.0, 16), (2.0, 64)):
        out.append(replace(base, id=f"fmnist-sigma{sigma:g}-M{M}", table="fashion-mnist-sigma",
                           model=replace(base.model, sigma=sigma, M=M, parametrization="ybar", sigmoid=True),
                           train=replace(base.train, **ema),
                           notes="beyond the paper: mixing against sigma at sigma_eff = 0.25, one shared ybar denoiser"))
    levels = replace(base.model, M=16, sigmoid=True, parametrization="ybar-levels")
    clmc_note = ("beyond the paper: the chain of log-concave Markov chains (Saremi, Park & Bach 2024) against the plain "
                 "walk-jump, one noise-conditional ybar denoiser for every level sigma/sqrt(m)")
    for row, chain in (("fmnist-clmc-M16", dict(sampler="clmc")), ("fmnist-clmc-M16-walk", {})):
        out.append(replace(base, id=row, table="fashion-mnist-clmc", model=levels, train=replace(base.train, **ema),
                           chain=replace(base.chain, **chain), score=replace(base.score, denoise=True), notes=clmc_note))
    return out


def _dataset_experiments() -> list[Experiment]:
    """One experiment per registered dataset that declares its own table (data/registry.py `Dataset.table`): the
    table is named after the dataset, its settings are the spec defaults with the entry's values."""
    out = []
    for d in registry.datasets().values():
        if d.table is None or d.name in TABLES:
            continue
        spec = {s: dict(d.table.get(s, {})) for s in ("model", "train", "chain", "score")}
        spec["score"] = {k: tuple(v) if k == "fid_modes" else v for k, v in spec["score"].items()}
        try:
            model = ModelSpec(**spec["model"])
            out.append(Experiment(f"{d.name}-{model.scheme}-{model.sigma:g}x{model.M}", d.name, d.name, model,
                                  TrainSpec(**spec["train"]), ChainSpec(**spec["chain"]), ScoreSpec(**spec["score"]),
                                  notes=d.notes))
        except TypeError as err:  # a setting the specs do not have
            raise UsageError(f"dataset {d.name}: its table (Dataset.table) names a setting the specs do not have: "
                             f"{err}") from None
    return out


def _scheme_experiments() -> list[Experiment]:
    """Beyond the paper: MUVB on Fashion-MNIST (the official MUVB model at paper profile; the narrow ResNets and the
    CPU recipe under cpu/quick), beside the fashion-mnist table's MDAE recipe; toy-schemes: MUVB on the toy mixture."""
    muvb, toy = (next(e for e in _paper_experiments() if e.id == i) for i in ("mnist-muvb-1x4", "toy-mdae-1x4"))
    return [replace(toy, id="toy-muvb-1x4", table="toy-schemes", model=replace(toy.model, scheme="muvb", zdim=8),
                    notes="beyond the paper: MUVB (docs/method.md §2.4), MLP encoder and decoder, exact metrics"),
            replace(muvb, id="fmnist-muvb-1x4", table="fashion-mnist-schemes", dataset="fashion-mnist",
                    train=replace(muvb.train, seed=0), score=replace(muvb.score, denoise=True), unverified=(),
                    notes="beyond the paper: MUVB (docs/method.md §2.4) on Fashion-MNIST beside the MDAE recipe")]


TABLES = ("mnist", "cifar10", "ffhq256", "toy", "fashion-mnist", "fashion-mnist-levers", "fashion-mnist-M",
          "fashion-mnist-sigma", "fashion-mnist-clmc", "fashion-mnist-schemes", "toy-schemes")
CPU_TABLES = ("fashion-mnist-levers", "fashion-mnist-M", "fashion-mnist-sigma", "fashion-mnist-clmc",
              "fashion-mnist-schemes", "toy-schemes")  # designed for --profile quick


def tables() -> tuple[str, ...]:
    """Every table: TABLES, then the tables the registered datasets declare themselves (`_dataset_experiments`)."""
    return TABLES + tuple(e.table for e in _dataset_experiments())


def check_profile(profile: str) -> str:
    """`profile` if it is one of PROFILES, else the one error for an unknown profile (tables and the claims study)."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}")
    return profile


def resolve(table: str, profile: str = "paper", overrides: dict[str, str] | None = None) -> list[Experiment]:
    """The experiments of `table` under `profile`, with `section.key=value` overrides applied and validated."""
    if table not in tables():
        raise UsageError(f"unknown table {table!r}; known tables: {', '.join(tables())}")
    check_profile(profile)
    shrink = {"paper": lambda e: e, "cpu": _cpu, "quick": _quick, "smoke": _smoke}[profile]
    out = [apply_overrides(shrink(e), overrides or {}) for e in _paper_experiments() + _lever_experiments()
           + _scheme_experiments() + _dataset_experiments() if e.table == table]
    for e in out:
        validate(e)
    return out


def from_dict(d: dict) -> Experiment:
    """Rebuild an Experiment from `to_dict()` (as stored next to every result)."""
    d = dict(d)
    d["model"], d["train"], d["chain"] = ModelSpec(**d["model"]), TrainSpec(**d["train"]), ChainSpec(**d["chain"])
    score = dict(d["score"])
    score["fid_modes"] = tuple(score["fid_modes"])
    d["score"] = ScoreSpec(**score)
    d["unverified"] = tuple(d["unverified"])
    return Experiment(**d)
