"""The networks the benchmarks time: the quick-profile nets and the paper's U2Nets (docs/official-settings.md §2, §4).

| case    | net                       | (sigma, M) | S = data shape | sigmoid | as in                  |
|---------|---------------------------|------------|----------------|---------|------------------------|
| quick   | SmallUNet(16, 16, w=16)   | (1, 16)    | (1, 28, 28)    | no      | quick profile (F-MNIST) |
| cpu     | SmallUNet(16, 16, w=32)   | (1, 16)    | (1, 28, 28)    | no      | cpu profile (F-MNIST)   |
| mlp     | MLP(16, 16, 256 x 3)      | (1, 8)     | (2,)           | no      | toy 2-D data            |
| u2net28 | U2Net(16, 16, f=1)        | (1, 16)    | (1, 28, 28)    | no      | MNIST MDAE config       |
| u2net32 | U2Net(24, 24, f=2)        | (1, 8)     | (3, 32, 32)    | yes     | CIFAR-10 MDAE config    |

Each case walks with the walk of the registry experiment it stands for (`walk_of`: table and profile; delta =
that experiment's chain.delta_over_sigma times the case's sigma), so a changed registry setting reaches the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from replication.core.nets import build_net
from replication.core.schemes import MDAE
from replication.runs.experiments import resolve
from replication.sampling.integrators import Walk


@dataclass(frozen=True)
class Case:
    net: str
    M: int
    shape: tuple[int, ...]  # per-measurement data shape S
    sigma: float = 1.0
    sigmoid: bool = False
    kw: dict = field(default_factory=dict)
    walk_of: tuple[str, str] = ("fashion-mnist", "quick")  # (table, profile) of the experiment whose walk this case uses

    @property
    def channels(self) -> int:
        """Input/output width of the net: M*C for images, M*D for vectors."""
        return self.M * self.shape[0]

    @property
    def walk(self) -> Walk:
        c = resolve(*self.walk_of)[0].chain
        return Walk(c.delta_over_sigma * self.sigma, c.gamma, c.u, c.scheme)

    def with_(self, **changes) -> "Case":
        d = self.__dict__ | changes
        return Case(**d)


def _profile_width(profile: str) -> int:
    """The SmallUNet width of a CPU profile, read from the registry so the benchmark follows the profile."""
    return resolve("fashion-mnist", profile)[0].model.width


CASES = {
    "quick": Case("small_unet", 16, (1, 28, 28), kw={"width": _profile_width("quick")}),
    "cpu": Case("small_unet", 16, (1, 28, 28), kw={"width": _profile_width("cpu")}, walk_of=("fashion-mnist", "cpu")),
    "mlp": Case("mlp", 8, (2,), kw={"hidden": 256, "depth": 3}, walk_of=("toy", "paper")),
    "u2net28": Case("u2net", 16, (1, 28, 28), kw={"width_factor": 1}, walk_of=("mnist", "paper")),
    "u2net32": Case("u2net", 8, (3, 32, 32), sigmoid=True, kw={"width_factor": 2}, walk_of=("cifar10", "paper")),
}


def build(case: Case, device: str | torch.device = "cpu", seed: int = 0) -> MDAE:
    """The MDAE scheme around a freshly initialised net (eval mode; timings do not depend on the weights)."""
    torch.manual_seed(seed)
    net = build_net(case.net, case.channels, case.channels, **case.kw)
    return MDAE(net, case.sigma, case.M, sigmoid=case.sigmoid).to(device).eval()


def is_image(case: Case) -> bool:
    return len(case.shape) == 3
