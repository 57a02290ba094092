"""The package's layout: layers import only downwards, no import cycles, no module over 400 lines, every module
says in its first docstring line what it holds. Reads the source (AST) only; imports nothing from replication."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "replication"
MAX_LINES = 400

# Bottom to top. A module may import from its own package and from packages of a lower rank only.
LAYERS = {
    "errors": 0,
    "core": 1,
    "sampling": 2,
    "data": 2,
    "train": 3,
    "evaluation": 4,
    "runs": 5,
    "pipeline": 6,
    "claims": 6,
    "report": 7,
    "cli": 8,
}


def modules() -> dict[str, Path]:
    """Dotted name (relative to replication, e.g. "core.mnm", "core" for core/__init__.py) -> path."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts) or "__init__"] = path
    return out


def is_entry_point(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`: a module's command-line entry point, which belongs to the cli layer."""
    t = node.test if isinstance(node, ast.If) else None
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in t.comparators))


def imports(name: str, path: Path, entry_points: bool = False) -> set[str]:
    """The modules of the package that `name` imports (at module level or inside functions); those its
    `if __name__ == "__main__":` blocks import instead when `entry_points`."""
    is_pkg = path.name == "__init__.py"
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    known = modules()
    found = set()
    body = [n for n in ast.parse(path.read_text()).body if is_entry_point(n) == entry_points]
    for node in (sub for top in body for sub in ast.walk(top)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "replication":
                target = node.module.split(".")[1:]
            else:
                continue
            stem = ".".join(target)
            for alias in node.names:  # `from . import x` / `from .pkg import module`
                full = f"{stem}.{alias.name}" if stem else alias.name
                found.add(full if full in known else stem)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "replication":
                    found.add(".".join(alias.name.split(".")[1:]))
    return {m for m in found if m and m in known and m != name}


def layer(name: str) -> str:
    """A module's layer: its top package; a `__main__` module (`python -m replication.x`) is an entry point: cli."""
    return "cli" if name.split(".")[-1] == "__main__" else name.split(".")[0]


def graph() -> dict[str, set[str]]:
    return {name: imports(name, path) for name, path in modules().items() if name != "__init__"}


def test_every_module_belongs_to_a_layer():
    unknown = sorted({layer(m) for m in graph()} - set(LAYERS))
    assert not unknown, f"add {unknown} to LAYERS (and to the layer list in replication/__init__.py)"


def test_layers_import_only_downwards():
    wrong = []
    for name, deps in graph().items():
        for dep in deps:
            same = layer(dep) == layer(name)
            if not same and LAYERS[layer(dep)] >= LAYERS[layer(name)]:
                wrong.append(f"{name} ({layer(name)}) imports {dep} ({layer(dep)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    g = graph()
    state: dict[str, str] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])


def test_entry_points_are_aliases_of_the_one_command_line():
    """`python -m replication.<x>` entry points (a `__main__` module, an `if __name__ == "__main__":` block) only
    hand their arguments to replication/cli.py: one parser, one --set checker."""
    found = {name: imports(name, path, entry_points=True) for name, path in modules().items()}
    found.update({name: deps for name, deps in graph().items() if name.endswith("__main__")})
    entry = {name: deps for name, deps in found.items() if deps}
    assert entry and all(deps == {"cli"} for deps in entry.values()), entry
    assert {"claims.__main__", "pipeline.drift"} <= set(entry)


def test_core_does_no_io_and_reads_no_config():
    banned = {"os", "io", "json", "pathlib", "pickle", "subprocess", "shutil", "submitit"}
    for name, path in modules().items():
        if layer(name) != "core":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            roots = ([a.name.split(".")[0] for a in node.names] if isinstance(node, ast.Import)
                     else [node.module.split(".")[0]] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            assert not banned & set(roots), f"{name} imports {banned & set(roots)}"
            assert not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open"), f"{name} opens a file"


def test_modules_are_short_and_say_what_they_hold():
    long, undocumented = [], []
    for name, path in modules().items():
        n = len(path.read_text().splitlines())
        if n > MAX_LINES:
            long.append(f"{name}: {n} lines")
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if not doc or not doc.strip():
            undocumented.append(name)
    assert not long, f"over {MAX_LINES} lines: {long}"
    assert not undocumented, f"no docstring: {undocumented}"


def test_the_checker_sees_relative_and_absolute_imports():
    g = graph()
    assert "runs.experiments" in g["runs.models"] and "core.schemes" in g["runs.models"]
    assert "runs.folders" in g["cli"] and "pipeline.executors" in g["cli"]
    assert "evaluation.fid" in g["pipeline.scoring"]  # `from ..evaluation import fid`
