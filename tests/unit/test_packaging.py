"""`pip install .` gives a golden that can bake: every third-party module that golden/
and the verification suite import at run time is a declared runtime dependency."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from golden import ROOT


def runtime_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {normalize(re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> set[str]:
    """Top-level modules a file imports outside `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.add(child.module.split(".")[0])
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def third_party(modules: set[str]) -> set[str]:
    own = {"golden", "verify", "tests", "tasks"}
    return {m for m in modules if m not in own and m not in sys.stdlib_module_names}


def test_every_runtime_import_is_a_declared_dependency() -> None:
    files = [*ROOT.glob("golden/**/*.py"), *ROOT.glob("verify/*.py"), ROOT / "tasks.py"]
    imported: set[str] = set()
    for path in files:
        imported |= runtime_imports(path)
    dists = packages_distributions()
    declared = runtime_dependencies()
    missing = {
        module: sorted(dists.get(module, [module]))
        for module in sorted(third_party(imported))
        if not declared & {normalize(d) for d in dists.get(module, [module])}
    }
    assert not missing, f"imported at run time but not in [project].dependencies: {missing}"


def test_the_verification_suite_plugin_is_a_runtime_dependency() -> None:
    """verify/ uses testinfra's `host` fixture: the plugin is never imported by name."""
    assert "pytest-testinfra" in runtime_dependencies()
    assert "pytest" in runtime_dependencies()


def test_the_check_sees_test_only_packages(tmp_path: Path) -> None:
    """The import scan finds a module moto provides, which is only a test dependency."""
    sample = tmp_path / "x.py"
    sample.write_text("import moto\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import boto3\n")
    assert third_party(runtime_imports(sample)) == {"moto"}
    assert not runtime_dependencies() & {normalize(d) for d in packages_distributions()["moto"]}
