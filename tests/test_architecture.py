"""The package's import graph: no circle anywhere, and each room of ``streams/`` imports only what
its ``__init__`` says it may (docs/reference/architecture.md)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "detectors", "alerts", "schemas")

#: room -> rooms of ``streams`` it must never import
FORBIDDEN = {
    "streams.core": ("streams.worker", "streams.api", "streams.cli", "streams.dev", "streams.sources",
                     "streams.config", "streams.producer", "streams.app"),
    "streams.sources": ("streams.worker", "streams.api", "streams.cli", "streams.dev", "streams.app"),
    "streams.worker": ("streams.api", "streams.cli", "streams.dev", "streams.app"),
    "streams.api": ("streams.worker", "streams.cli", "streams.dev", "streams.app"),
    "streams.config": ("streams.worker", "streams.api", "streams.cli", "streams.dev", "streams.app"),
    "streams.producer": ("streams.worker", "streams.api", "streams.cli", "streams.dev", "streams.app"),
    "detectors": ("streams",),
    "alerts": ("streams",),
    "schemas": ("streams", "detectors"),
}


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (at any depth of its code, TYPE_CHECKING included)."""
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def within(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def test_no_import_circle() -> None:
    assert cycles(import_graph(modules())) == []


def test_each_room_imports_only_what_it_may() -> None:
    graph = import_graph(modules())
    broken = sorted(f"{name} imports {target}" for name, targets in graph.items() for target in targets
                    for room, banned in FORBIDDEN.items() if within(name, room)
                    for other in banned if within(target, other))
    assert broken == []


def test_no_two_modules_share_a_name() -> None:
    names = Counter(path.stem for name, path in modules().items() if path.stem not in ("__init__", "__main__"))
    assert [name for name, count in names.items() if count > 1] == []


def test_the_checks_see_a_circle(tmp_path: Path) -> None:
    """The graph walk finds a circle made through a relative and an absolute import."""
    package = tmp_path / "streams"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("import streams.a\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()
    assert cycles(import_graph(modules(tmp_path))) == [["streams.a", "streams.b"]]


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_every_room_exists(room: str) -> None:
    assert room in modules(), f"{room} is named in FORBIDDEN but is not a module"
