"""The harness's import graph is acyclic, counting imports inside functions as edges.

Imports inside functions used to hold a cycle of eight modules together (api, distributed, progress, registry,
runner, spec, sweep, tracking): it imported, but which module could be read or changed on its own was unclear and
moving one import to the top of a file could break the package.  Every ``import``/``from ... import`` anywhere in
a module of ``suite/`` (function bodies and ``TYPE_CHECKING`` blocks included) counts as an edge here; the
implicit import of a module's parent packages does not (``suite/__init__.py`` imports only ``suite.numerics``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "suite"


def _module_names(root: Path) -> dict[str, Path]:
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ``suite`` that ``name`` (a module or ``module.attribute``) lives in, if any."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = SUITE) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports, anywhere in its source."""
    modules = _module_names(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import: climb from this module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from a import b` imports package a and, if b is a submodule, a.b as well
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(owner for name in names if (owner := _owner(name, modules)) not in (None, module))
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [m1, m2, ..., m1], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import f\n")
    (package / "b.py").write_text("def f():\n    from pkg import a\n    from . import c\n")
    (package / "c.py").write_text("")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg", "pkg.a", "pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


def test_suite_import_graph_has_no_cycle():
    graph = import_graph()
    assert {"suite", "suite.runner", "suite.sweep", "suite.jobs"} <= set(graph)  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in suite/: " + " -> ".join(cycle or [])
