"""The shape of golden/: imports go one way (no cycle among golden's modules), modules stay small.

Read from the source with :mod:`ast`, not by importing: an import inside a
function counts as much as one at the top (it only hides the cycle until that
function runs). Imports under ``if TYPE_CHECKING:`` are left out: they never
run, and they are how a type may name a module that imports this one.
Dynamic imports (the targets registry's ``"module:Class"`` strings) are not
seen here; the registry's own tests import each entry.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

from golden import ROOT

PACKAGE = ROOT / "golden"
MAX_LINES = 500


def module_name(path: Path) -> str:
    """golden/packer/cli.py -> golden.packer.cli; golden/packer/__init__.py -> golden.packer."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _type_checking_only(node: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks (not their ``else``)."""
    skipped: set[int] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.If) and (
                (isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING")
                or (isinstance(n.test, ast.Attribute) and n.test.attr == "TYPE_CHECKING")):
            for stmt in n.body:
                skipped.update(id(m) for m in ast.walk(stmt))
    return skipped


def imports(name: str, path: Path, known: set[str]) -> dict[str, int]:
    """The golden modules ``name`` imports -> the line of the first such import.

    ``from golden.packer import cli`` is an import of ``golden.packer.cli`` when
    that is a module, else of ``golden.packer`` (a name in its ``__init__``).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in known and target != name:
            out.setdefault(target, line)

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base, node.lineno)
    return out


def graph() -> dict[str, dict[str, int]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected component (Tarjan), as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return [_a_cycle(c, edges) for c in sorted(components)]


def _a_cycle(component: list[str], edges: dict[str, dict[str, int]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first inside it)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v]):
            if w == start:
                return [*paths[v], start]
            if w in members and w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start} in {component}")   # Tarjan said there is one


def describe(cycle: list[str], edges: dict[str, dict[str, int]]) -> str:
    """``golden.a (golden/a.py:3) -> golden.b (golden/b.py:9) -> golden.a``."""
    mods = modules()
    steps = [f"{a} ({mods[a].relative_to(ROOT)}:{edges[a][b]})" for a, b in pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def test_the_graph_reader_sees_what_python_would_import() -> None:
    """The reader itself, on golden's own modules: nested, relative and from-package imports."""
    edges = graph()
    assert "golden.errors" in edges["golden.run"]
    assert "golden.packer.cli" in edges["golden.packer.stream"]       # from golden.packer import cli
    assert "golden.packer" in edges["golden.aws.manifest"]             # from golden import packer
    assert "golden" in edges["golden.files"]                           # from golden import ROOT
    assert "golden.plan" not in edges["golden.targets"]                # under TYPE_CHECKING only
    assert cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycle_among_golden_modules() -> None:
    edges = graph()
    found = [describe(c, edges) for c in cycles(edges)]
    assert not found, "import cycles (imports go one way):\n  " + "\n  ".join(found)


def test_no_module_over_500_lines() -> None:
    big = {str(p.relative_to(ROOT)): n for p in modules().values()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concern): {big}"
