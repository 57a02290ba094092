"""The one registry of numbers the paper (and its follow-up) report. Nothing else in the suite types a paper number.

Sources (see docs/official-settings.md §1, §6):
  poster  S. Saremi, R. K. Srivastava, "Multimeasurement Generative Models", ICLR 2022 poster.
  USSF    S. Saremi, R. K. Srivastava, F. Bach, "Universal Smoothed Score Functions for Generative Modeling",
          arXiv 2303.11669 (abstract) -- a follow-up, shown as a reference row only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperNumber:
    table: str
    row: str  # the experiment id in experiments.py this number is compared with ("" = reference row only)
    metric: str
    value: float
    source: str
    setting: str
    verified_setting: bool  # False where docs/deviations.md §2 marks the (sigma, M, model) behind the number as unverified


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    PaperNumber("cifar10", "cifar10-mdae-1x8", "FID", 43.95, "ICLR 2022 poster (CIFAR-10 panel)",
                "one MCMC chain of 1,000,000 steps, 50,000 samples; (sigma=1, M=8) MDAE assumed from the released "
                "config [docs/deviations.md §2.2, U?]", False),
    PaperNumber("cifar10", "", "FID", 21.74, "ICLR 2022 poster (CIFAR-10 panel)",
                "'by increasing M and improved training (work in progress)'; sigma, M and architecture not given", False),
    PaperNumber("cifar10", "", "FID", 14.15, "USSF, arXiv 2303.11669 abstract (follow-up paper)",
                "single noise level, long-run chains; (sigma, M) not given", False),
)

@dataclass(frozen=True)
class PaperClaim:
    """A claim of the poster, as the report's scoreboard lists it; `key` names the rule in report/scoreboard.py
    that turns records into a verdict. The one place a claim is written: the tables' sections quote it
    (`quotes_for`) and the toy-claims study names the claim each sweep tests (claims/texts.py)."""

    key: str
    claim: str
    target: str
    source: str
    tables: tuple[str, ...]  # the paper tables the claim is about (their sections are linked)
    quoted: bool = False  # the sections of `tables` quote the poster's sentence (`quote`)
    detail: str = ""  # the rest of the poster's sentence after `claim`, as the sections quote it

    @property
    def quote(self) -> str:
        """The poster's sentence: the claim and its detail."""
        return f"{self.claim} {self.detail}." if self.detail else f"{self.claim}."


POSTER, POSTER_TITLE = "poster", "ICLR 2022 poster"  # how the scoreboard and the tables' sections cite it
CLAIMS: tuple[PaperClaim, ...] = (
    PaperClaim("stable_1m", "Stable chains with 1 million steps on MNIST and CIFAR-10",
               "single chains of 1,000,000 walk steps that stay finite and do not drift", f"{POSTER}, M-densities panel",
               ("mnist", "cifar10"), quoted=True),
    PaperClaim("fid_one_chain", "CIFAR-10 FID from a single MCMC chain",
               "FID 43.95 from 50,000 samples of one 1,000,000-step chain", f"{POSTER}, CIFAR-10 panel", ("cifar10",)),
    PaperClaim("fid_larger_m", "CIFAR-10 FID with larger M and improved training (work in progress)",
               "FID 21.74; sigma, M and architecture not given", f"{POSTER}, CIFAR-10 panel", ("cifar10",)),
    PaperClaim("ffhq256", "First unconditional MCMC-based generative model on FFHQ-256",
               "chains of a sigma=4, M=8 MDAE on FFHQ-256, 10 walk steps per image, from noise",
               f"{POSTER}, M-densities panel", ("ffhq256",), quoted=True,
               detail="(sigma=4, M=8); only 10 steps per image in the visualised chain, starting from noise"),
    PaperClaim("exact_large_m", "This sampling scheme is exact for large M",
               "walk-jump samples approach p_X as M grows", f"{POSTER}, walk-jump panel", ("toy",)),
    PaperClaim("smoothing", "Smoothing is key for good mixing",
               "more smoothing, faster mixing between modes", f"{POSTER}, M-densities panel", ("toy",)),
)

# Parameter counts of the paper's networks (the official U2Net configs; docs/official-settings.md §2, checked in core/nets.py), keyed by
# (net, width factor, input channels = M x image channels): the scale the report compares runs with.
NET_PARAMS: dict[tuple[str, int, int], int] = {("u2net", 1, 16): 28_259_552, ("u2net", 2, 24): 112_856_784}


def numbers_for(table: str) -> list[PaperNumber]:
    return [n for n in PAPER_NUMBERS if n.table == table]


def claim(key: str) -> PaperClaim:
    """The claim of that key (CLAIMS)."""
    return next(c for c in CLAIMS if c.key == key)


def quotes_for(table: str) -> list[str]:
    """The poster's sentences the table's section quotes (the claims about it that are `quoted`)."""
    return [c.quote for c in CLAIMS if c.quoted and table in c.tables]
