"""The toy-claims study's settings: the sweeps, the walk they share, their sizes at the registry's profiles."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import UsageError
from ..runs.experiments import ChainSpec, Experiment, check_profile, resolve
from ..sampling.integrators import Walk
from ..train.spec import TrainSpec

SWEEPS = ("large_m", "smoothing", "stability", "integrators", "clmc")
WALK_SETTINGS = ("chain.delta_over_sigma", "chain.gamma", "chain.u", "chain.scheme")  # what --set may change here
MIXTURE = "ring8"
DEFAULT = "quick"  # the study's profile by default (as the command line's): its outputs, committed, carry no profile suffix


def toy_experiment(profile: str) -> Experiment:
    """The registry's `toy` experiment (the MLP MDAE on the ring) at `profile`."""
    return resolve("toy", profile)[0]


def _toy_muvb(key: str):
    """A field defaulting to the registry's `toy-muvb-1x4` model's `key` (MUVB on the ring: zdim, beta)."""
    model = lambda: next(e for e in resolve("toy-schemes", "paper") if e.id == "toy-muvb-1x4").model  # noqa: E731
    return field(default_factory=lambda: getattr(model(), key))


def toy_chain(overrides: dict[str, str] | None = None) -> ChainSpec:
    """The registry's `toy` experiment's chain settings, with the walk's settings (WALK_SETTINGS) overridden and
    checked by the registry."""
    other = sorted(set(overrides or {}) - set(WALK_SETTINGS))
    if other:
        raise UsageError(f"--set {', '.join(other)}: the claims study's --set takes the walk's settings only: "
                         f"{', '.join(WALK_SETTINGS)}")
    return resolve("toy", "paper", overrides)[0].chain


@dataclass(frozen=True)
class Profile:
    """Sizes of every sweep at a registry profile (runs/experiments.py PROFILES; `sizes` looks them up). The learned
    MLPs (the MDAEs, and the MUVBs of `schemes` with encoder and decoder of the same width) train as the registry's
    `toy` experiment does at that profile (`train`; `hidden` its width), with a seed per model (chains.train_cfg); the
    walk (delta/sigma, gamma, u, integrator) is `chain`'s, the `toy` experiment's (`--set chain.delta_over_sigma=...`
    changes it); the sweeps set their own lengths and sigma."""

    name: str
    train: TrainSpec
    hidden: int
    seed: int = 0
    chain: ChainSpec = field(default_factory=toy_chain)
    # large_m
    Ms: tuple[int, ...] = (1, 2, 4, 8, 16)
    sigma: float = 1.0
    mc_n: int = 200_000  # Monte Carlo samples for the MSEs (common random numbers across M)
    n_eval: int = 4000  # samples per sampler row (and per exact reference set)
    depth: int = 3
    parametrizations: tuple[str, ...] = ("mdae", "ybar")
    schemes: tuple[str, ...] = ("muvb",)  # learned beside the MDAEs (large_m, and stability's chain if st_learned)
    muvb_zdim: int = _toy_muvb("zdim")
    muvb_beta: float = _toy_muvb("beta")
    lm_chains: int = 40
    lm_burn_in: int = 1000
    lm_jump_every: int = 20  # the paper's FID protocol spacing (1M steps / 50k samples)
    # smoothing
    sigma_effs: tuple[float, ...] = (0.5, 0.25)
    sigmas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    fixed_M: int = 4  # the fixed-M rows: sigma in `sigmas` at this M
    sm_chains: int = 16
    sm_steps: int = 10_000
    sm_burn_in: int = 1000
    sm_jump_every: int = 10
    sm_controls: bool = True
    # stability
    st_sigma: float = 1.0
    st_M: int = 4
    st_steps: int = 200_000
    st_jump_every: int = 20
    st_learned: bool = True  # chains of the learned MDAE and `schemes` at (st_sigma, st_M)
    # integrators
    in_deltas: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5)
    in_integrators: tuple[str, ...] = ("aboba", "baoab", "cheng", "ghmc")
    in_chains: int = 64
    in_steps: int = 6000
    in_burn_in: int = 1000
    in_jump_every: int = 10
    # clmc (the chain's sizes are the smoothing sweep's; the inner walks are chain.clmc_inner_*)
    cl_Ms: tuple[int, ...] = (2, 4, 8, 16)  # per sigma_eff, sigma = sigma_eff sqrt(M): where CLMC starts to help
    cl_inner_chains: int = 400  # the inner-walk trace: chains (one batch), steps per level
    cl_inner_trace_steps: int = 16

    @property
    def learned(self) -> tuple[str, ...]:
        """The learned rows of large_m: the MDAE parametrizations, then the other schemes (chains.learned_model)."""
        return self.parametrizations + self.schemes

    def walk(self, sigma: float, gamma: float | None = None) -> Walk:
        """The walk at noise level sigma (delta = chain.delta_over_sigma * sigma), optionally at another friction."""
        c = self.chain
        return Walk(c.delta_over_sigma * sigma, c.gamma if gamma is None else gamma, c.u, c.scheme)

    @property
    def suffix(self) -> str:
        """Output-name suffix: the profile (none for DEFAULT) and any walk setting that is not the toy experiment's."""
        default = toy_chain()
        walk = [f"{k}{getattr(self.chain, k)}" for k in ("scheme", "delta_over_sigma", "gamma", "u")
                if getattr(self.chain, k) != getattr(default, k)]
        return "".join(f"_{part}" for part in ([] if self.name == DEFAULT else [self.name]) + walk)


def _quick() -> Profile:
    """Minutes: the sizes the committed outputs were made with; the MLPs are the `toy` experiment's at quick (3,000
    steps of batch 256, lr 1e-3 cosine after 50 warm-up steps, width 128)."""
    toy = toy_experiment("quick")
    return Profile("quick", toy.train, toy.model.width)


def _smoke() -> Profile:
    """Seconds, for the tests: the `toy` experiment's smoke training (30 steps) on batches of 256 after 3 warm-up
    steps, width-16 MLPs; every sweep shortened."""
    train = replace(toy_experiment("smoke").train, batch_size=256, warmup_steps=3)
    return Profile("smoke", train, 16, Ms=(1, 4, 16), mc_n=20_000, n_eval=200, parametrizations=("mdae",), lm_chains=4,
                   lm_burn_in=100, lm_jump_every=10, sigma_effs=(0.5,), sigmas=(0.5, 1.0, 2.0), sm_chains=8,
                   sm_steps=1200, sm_burn_in=200, sm_jump_every=10, sm_controls=False, cl_Ms=(4, 16), cl_inner_chains=50,
                   st_steps=1500, st_learned=True, in_deltas=(0.5, 1.5), in_chains=8, in_steps=600, in_burn_in=100)


SIZES = {"quick": _quick(), "smoke": _smoke()}  # the registry's profiles the study has sizes for


def sizes(profile: str) -> Profile:
    """The study's sizes at `profile`: a registry profile (the registry's error for an unknown one) that SIZES holds."""
    check_profile(profile)
    if profile not in SIZES:
        raise UsageError(f"the claims study has no {profile!r} sizes (a toy on the CPU); its profiles: "
                         f"quick (minutes, the committed outputs), smoke (seconds, for the tests)")
    return SIZES[profile]
