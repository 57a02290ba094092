"""The names of the metrics the score stage records and the report reads back: one place for the producer
(pipeline/scoring.py, pipeline/statistics.py) and the readers (report/), so neither spells a name the other parses.

A metric on the thinned jumps is `thinned(name)`, e.g. "FD_classifier (1,000 thinned)"; a calibration point of a
metric is `calibration(name, point)`, e.g. "FD_classifier[calibration: uniform noise]", read back by
`calibration_point`.
"""

from __future__ import annotations

from .traces import N_WINDOWS

THINNED_N = 1000  # jumps committed per chain and scored as "thinned" (issue 11 item 6)

CLASSIFIER_ACCURACY = "classifier_test_accuracy"
FD_CLASSIFIER = "FD_classifier"  # Fréchet distance in the suite's classifier features, to held-out images
CLASS_COVERAGE = "class_coverage"  # classes holding >= 2% of the samples
TOP_CLASS_SHARE = "top_class_share"
MEAN_PIXEL_DATA = "mean_pixel[data: test images]"
WINDOW_TV = f"class_shares_tv[{N_WINDOWS} windows vs whole chain, mean]"  # the trace (evaluation/traces.py)
ENERGY_DISTANCE = "energy_distance"
DENOISE_MSE = "denoise_mse"  # one-step jumps of noised held-out images
CLMC_SETTLE_STEP = "clmc_inner_settle_step"  # CLMC's inner walks, per level (`at_level`)
CLMC_INNER_R = "clmc_inner_r"

# Calibration points of FD_classifier (at the samples' n) and of the toy's energy distance.
REAL, BLURRED, NOISE = "real train images", "3x3 box-blurred real", "uniform noise"
EXACT = "exact vs exact"
CLIPPED_YBAR = "clipped y_bar"  # of denoise_mse

_CALIBRATION = "[calibration: "


def thinned(name: str, n: int = THINNED_N) -> str:
    """The name of `name` measured on n thinned jumps of the chain."""
    return f"{name} ({n:,} thinned)"


def calibration(name: str, point: str) -> str:
    """The name of the calibration point `point` of the metric `name`."""
    return f"{name}{_CALIBRATION}{point}]"


def calibration_point(name: str) -> tuple[str, str] | None:
    """(metric, point) of a calibration point's name (`calibration`); None for any other name."""
    metric, sep, rest = name.partition(_CALIBRATION)
    return (metric, rest[:-1]) if sep and rest.endswith("]") else None


def at_level(name: str, m: int, detail: str = "") -> str:
    """The name of `name` at level m of a ybar-levels model or a CLMC chain, e.g. "denoise_mse[m=4]"."""
    return f"{name}[m={m}{', ' + detail if detail else ''}]"
