"""The toy 2-D Gaussian mixtures (`toy:<mixture>`, data/datasets.py TOY_MIXTURES): generated, exact metrics."""

from __future__ import annotations

from ..registry import Dataset

DATASET = Dataset(
    name="toy", title="Toy 2-D Gaussian mixture", shape=(2,), splits={}, load=None,
    get="nothing to get: the points are drawn from a known mixture (`toy:ring8` etc., data/datasets.py TOY_MIXTURES)",
    section="Toy 2-D Gaussian mixture (beyond the paper)", needs_gpu=False,
)
