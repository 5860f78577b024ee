"""Linters as tests: ruff and mypy (strict) over the whole project."""

from __future__ import annotations

import sys

from golden import ROOT
from golden.run import run


def test_ruff() -> None:
    proc = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
