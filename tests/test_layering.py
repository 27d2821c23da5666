"""The package's layering, read from its source with ast (docs/design.md §1).

Fails on an import that points up the layer table (``protocol``/``coordination`` at the
bottom, ``cli`` on top), on ``protocol/`` importing trio, on kazoo imported outside
``coordination/``, and on an import circle between modules that is not in ``KNOWN_CIRCLES``
(today's debt, which only shrinks: a listed circle that no longer exists fails too, so the
list is kept exact). Imports inside functions and under ``TYPE_CHECKING`` count: hiding an
import in a function does not remove the dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kafkalike"

#: layer of each top-level folder; a module may import its own layer's folder and lower ones
LAYERS = {
    "protocol": 0, "coordination": 0,
    "storage": 1, "client": 1, "image": 1,
    "controller": 2, "coordinator": 2, "raft": 2, "kraft": 2,
    "broker": 3,
    "cluster": 4,
    "chaos": 5, "bench": 5, "demo": 5, "dashboard": 5, "schema_registry": 5,
    "cli": 6,
}

#: import circles between modules that exist today; each entry is one strongly connected set
#: of modules. Empty since the broker's components are built from their dependencies
#: (docs/architecture.md): a new circle fails the test.
KNOWN_CIRCLES: list[frozenset[str]] = []


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Modules of kafkalike (names relative to the package) that ``name`` imports anywhere."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["kafkalike"] + (package.split(".") if package else [])
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from pkg import submodule`` depends on the submodule; on ``pkg`` itself only
            # when a name that is not a submodule is taken from it
            submodules = [f"{module}.{a.name}" for a in node.names]
            plain = any(sub[len("kafkalike."):] not in mods for sub in submodules)
            targets = ([module] if plain or not module.startswith("kafkalike.") else []) + submodules
        else:
            continue
        for target in targets:
            if target.startswith("kafkalike."):
                rel = target[len("kafkalike."):]
                if rel in mods and rel != name:
                    found.add(rel)
            elif target == "kafkalike" and "" in mods:
                found.add("")
    return found


def _third_party(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected sets of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[frozenset[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1:
                    result.append(frozenset(members))
    return result


def _layer(module: str) -> int | None:
    return LAYERS.get(module.split(".")[0]) if module else None


def test_every_folder_has_a_layer() -> None:
    """Each folder of the package is placed in the layer table, so the checks cover it."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(LAYERS), folders - set(LAYERS)


def test_imports_point_only_down() -> None:
    """No module imports a folder of a higher layer (cli on top, protocol/coordination at the bottom)."""
    upward = []
    for module, targets in _graph().items():
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if here is not None and there is not None and there > here:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_protocol_is_sans_io_and_only_coordination_touches_kazoo() -> None:
    """protocol/ never imports trio; nothing outside coordination/ imports kazoo."""
    offenders = []
    for module, path in _modules().items():
        third = _third_party(path)
        if module.startswith("protocol") and "trio" in third:
            offenders.append(f"{module} imports trio")
        if "kazoo" in third and not module.startswith("coordination"):
            offenders.append(f"{module} imports kazoo")
    assert offenders == []


def test_no_new_import_circle() -> None:
    """Every import circle between modules is one of KNOWN_CIRCLES, and every known one still
    exists (remove it from the list when it is broken)."""
    found = set(_circles(_graph()))
    assert found - set(KNOWN_CIRCLES) == set(), "new import circle"
    assert set(KNOWN_CIRCLES) - found == set(), "a known circle is gone: delete it from KNOWN_CIRCLES"


def test_circle_finder_finds_a_circle() -> None:
    """The circle finder itself reports a three-module circle and ignores a chain."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(graph) == [frozenset({"a", "b", "c"})]
