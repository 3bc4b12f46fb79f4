"""The layers import downward only, and no two modules import each other.

    cli  →  chat (and doctor)  →  backends / templates / store  →  registry, gguf  →  transport
         →  config, errors, keys, version

Every `import` in the package counts, including those inside functions (the lazy imports that
keep start-up fast are imports all the same). `modelctl/__init__.py`, the public API, may name
anything: it imports lazily, on attribute access."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "modelctl"
RANKS = {"cli": 4, "__main__": 4, "serve": 3.5, "chat": 3, "doctor": 3, "tasks": 3, "backends": 2, "templates": 2, "store": 2,
         "history": 2, "tools": 2, "registry": 1, "gguf": 1, "transport": 0.5, "config": 0, "config_edit": 0, "errors": 0, "keys": 0, "keyfile": 0, "redaction": 0, "files": 0, "units": 0,
         "numbers": 0, "version": 0, "refs": 0, "resolver": 2.5, "engines": 2,
         "terminal_text": 0}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The modelctl modules `path` imports (absolute and relative imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path).split(".")
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("modelctl"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("modelctl"):
                continue
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    known = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in known}


def _rank(module: str) -> float | None:
    parts = module.split(".")
    if len(parts) == 1:
        return None  # the package itself: the public API
    return RANKS.get(parts[1])


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer():
    unranked = [m for m in _graph() if m != "modelctl" and _rank(m) is None]
    assert not unranked, f"add these to RANKS (and docs/architecture.md): {unranked}"


def test_imports_go_down_only():
    upward = []
    for module, imported in _graph().items():
        mine = _rank(module)
        if mine is None:
            continue
        upward += [f"{module} imports {other}" for other in sorted(imported)
                   if _rank(other) is not None and _rank(other) > mine]
    assert not upward, "\n".join(upward)


def test_no_module_below_the_cli_imports_it():
    offenders = [f"{m} imports {o}" for m, imported in _graph().items() if not m.startswith("modelctl.cli")
                 and m not in ("modelctl.__main__",) for o in imported if o.startswith("modelctl.cli")]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("package, other", [("backends", "store"), ("store", "backends")])
def test_backends_and_store_do_not_import_each_other(package, other):
    """Both sit on `transport` (HTTP) and `gguf` (GGUF headers); neither reaches into the other."""
    offenders = [f"{m} imports {o}" for m, imported in _graph().items() if m.startswith(f"modelctl.{package}.")
                 or m == f"modelctl.{package}" for o in sorted(imported) if o.split(".")[:2] == ["modelctl", other]]
    assert not offenders, "\n".join(offenders)


def test_transport_imports_only_base_modules():
    """The HTTP plumbing sits below everything that talks to a service."""
    offenders = [f"{m} imports {o}" for m, imported in _graph().items() if m.startswith("modelctl.transport")
                 for o in sorted(imported) if not o.startswith("modelctl.transport") and (_rank(o) or 0) > 0]
    assert not offenders, "\n".join(offenders)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_modules():
    """Packages' __init__ files re-export their modules, so they are left out of the graph."""
    graph = _graph()
    packages = {m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    modules = {m: {o for o in imported if o in graph and o not in packages and o != m}
               for m, imported in graph.items() if m not in packages}
    assert _cycles(modules) == []


@pytest.mark.parametrize("module", ["modelctl.cli.main", "modelctl.registry.loader"])
def test_the_graph_reader_sees_imports(module):
    assert _graph()[module], f"no imports found in {module}: the reader is broken"
