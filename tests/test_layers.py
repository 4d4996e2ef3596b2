"""Data flows one way: no module of tuneforge imports a package of a layer above its own.

Every import counts, the ones inside functions too: a lazy import is still a dependency.
docs/architecture.md draws the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tuneforge

# Top to bottom. A package may import its own layer's packages and any layer below.
LAYERS: list[set[str]] = [
    {"demo"},  # the make-demo script
    {"cli"},  # surfaces
    {"api"},
    {"ui"},  # the dashboard's templates and presenters
    {"service"},  # the operations every surface shares
    {"jobs"},  # scheduler, executors, the runner, what the service and runner both look up
    {"inference"},
    {"engine"},
    {"graders"},  # graders in OpenAI's shapes: what reinforcement tuning and its routes score with
    {"store"},
    {"models"},
    {"data"},
    {"config", "errors", "machine", "sizes", "storage", "__init__"},
]
ROOT = Path(tuneforge.__file__).parent


def layer_of(package: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if package in names)


def package_of(module: str) -> str:
    """tuneforge.jobs.runner -> jobs; tuneforge.service -> service; tuneforge -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "tuneforge" or name.startswith("tuneforge.")}


def upward_edges() -> list[str]:
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        source = relative.parts[0].removesuffix(".py")
        for target in sorted(imports_of(path)):
            if layer_of(package_of(target)) < layer_of(source):
                edges.append(f"{relative} imports {target}")
    return edges


def test_every_package_has_a_layer():
    packages = {p.name.removesuffix(".py") for p in ROOT.iterdir()}
    packages -= {"__pycache__", "py.typed"}
    assert packages <= set().union(*LAYERS), packages - set().union(*LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    assert upward_edges() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The walk itself works: a runner importing the service is reported."""
    module = tmp_path / "jobs" / "runner.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from tuneforge.service import Service\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert upward_edges() == ["jobs/runner.py imports tuneforge.service"]
