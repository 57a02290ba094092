"""The dataset registry: one `Dataset` entry per dataset, each in its own module of `replication/data/sets/`.

An entry says everything the suite needs to know about a dataset: its shape and splits, how to load it and how to
get it, its class names and the groups of classes the chain statistics trace, the reference statistics FID needs,
and the title of its section in REPORT.md. Adding a dataset is adding one module to `replication/data/sets/` that
defines `DATASET = Dataset(...)` (a dataset with no table in `runs/experiments.py` gives its own in `table`);
`temporary()` adds entries for the length of a `with` block (the tests' synthetic dataset).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UsageError

SETS_PACKAGE = "replication.data.sets"
Loader = Callable[[Path | None, str], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class Dataset:
    name: str  # the name experiments, --download and the records use, e.g. "fashion-mnist"
    title: str  # how the report and error messages name it, e.g. "Fashion-MNIST"
    shape: tuple[int, ...]  # one item: (C, H, W) for images, (d,) for points
    splits: Mapping[str, int]  # split -> number of items, in the order the loader knows them
    load: Loader | None  # (root or None for the default folder, split) -> (uint8 images, int64 labels or None)
    get: str  # how to get it: one line, shown with DatasetMissing and in the docs
    download: Callable[[Path], None] | None = None  # fetch into a root folder (users' machines only)
    section: str = ""  # the heading of its table in REPORT.md; "" = title
    class_names: tuple[str, ...] = ()  # label names, in label order (no labels: ())
    # Groups of classes whose shares the chain statistics trace (docs/statistics.md), in order: the first two are the
    # pair whose switches S counts. No groups: {}.
    class_groups: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    fid_stats: str | None = None  # clean-fid's name for its staged reference statistics (None: computed from the data)
    fid_res: int = 0  # the resolution of those statistics
    needs_gpu: bool = True  # its paper-profile table needs a GPU cluster (the report's "not run" reasons)
    # Its own table, for a dataset that has none in runs/experiments.py: section -> {setting: value}, applied to the
    # spec defaults at the paper profile (e.g. {"model": {"M": 4}, "score": {"classifier": True}}). None: no table.
    table: Mapping[str, Mapping] | None = None
    notes: str = ""

    @property
    def heading(self) -> str:
        return self.section or self.title

    @property
    def classifier_file(self) -> str:
        """The file name of its committed classifier in results/models/ (runs/model_store.py)."""
        return f"classifier-{self.name}.pt"


_registry: dict[str, Dataset] = {}
_extra: list[dict[str, Dataset]] = []  # temporary() entries, innermost last


def _discover() -> dict[str, Dataset]:
    """Every `DATASET` of the modules of replication/data/sets/, in module-name order (imported once)."""
    if not _registry:
        found: dict[str, Dataset] = {}
        package = importlib.import_module(SETS_PACKAGE)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            entry = getattr(importlib.import_module(f"{SETS_PACKAGE}.{info.name}"), "DATASET", None)
            if not isinstance(entry, Dataset):
                raise TypeError(f"{SETS_PACKAGE}.{info.name} defines no DATASET = Dataset(...)")
            if entry.name in found:
                raise ValueError(f"dataset {entry.name!r} is registered twice (second in {SETS_PACKAGE}.{info.name})")
            found[entry.name] = entry
        _registry.update(found)  # all or nothing
    return _registry


def datasets() -> dict[str, Dataset]:
    """name -> entry: the registered datasets, then those of `temporary()` blocks."""
    out = dict(_discover())
    for extra in _extra:
        out.update(extra)
    return out


def names() -> tuple[str, ...]:
    return tuple(datasets())


def get(name: str) -> Dataset:
    """The entry of `name` ("toy:ring8" -> the `toy` entry); UsageError naming the known ones and how to add one."""
    entry = datasets().get(name.split(":")[0])
    if entry is None:
        raise UsageError(f"unknown dataset {name!r}; known: {', '.join(names())} "
                         f"(to add one: a module in replication/data/sets/ defining DATASET = Dataset(...))")
    return entry


def gpu_data(name: str) -> str | None:
    """The title of a dataset whose paper-profile runs need its files and a GPU cluster (`needs_gpu`); None for the
    others and for names that are no dataset (e.g. a table that is not named after one)."""
    entry = datasets().get(name)
    return entry.title if entry and entry.needs_gpu else None


@contextlib.contextmanager
def temporary(*entries: Dataset) -> Iterator[None]:
    """Register `entries` for the length of the block (tests); they may not replace a registered dataset."""
    taken = sorted({e.name for e in entries} & set(datasets()))
    if taken:
        raise ValueError(f"dataset(s) {taken} are registered already")
    _extra.append({e.name: e for e in entries})
    try:
        yield
    finally:
        _extra.pop()


class _Field(Mapping):
    """A read-only view name -> one field of every entry that has it set (follows `temporary()` blocks)."""

    def __init__(self, attr: str):
        self.attr = attr

    def _items(self) -> dict:
        return {n: getattr(d, self.attr) for n, d in datasets().items() if getattr(d, self.attr)}

    def __getitem__(self, name: str):
        return self._items()[name]

    def __iter__(self):
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


CLASS_NAMES: Mapping[str, tuple[str, ...]] = _Field("class_names")  # dataset -> label names, in label order
CLASS_GROUPS: Mapping[str, Mapping[str, tuple[int, ...]]] = _Field("class_groups")  # dataset -> traced groups
