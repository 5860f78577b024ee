"""Shared test helpers: write profiles into a temporary profiles/ tree."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from golden import ROOT

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """The path of a tool; skip the test when it is missing, except in CI where that fails."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI (./golden.sh installs it)")
        pytest.skip(f"{name} not installed")
    return path


WriteProfile = Callable[..., str]


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    """A copy of the shipped profiles/ tree that a test may change."""
    dest = tmp_path / "profiles"
    shutil.copytree(ROOT / "profiles", dest)
    return dest


@pytest.fixture
def write_profile(profiles_dir: Path) -> WriteProfile:
    """write_profile("x", {...}) writes profiles/x.yaml (a dict is dumped as YAML, a str as is)."""

    def write(name: str, content: dict[str, object] | str) -> str:
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path = profiles_dir / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return name

    return write


def minimal_profile(**overrides: object) -> dict[str, object]:
    """A valid profile as a dict; keyword arguments replace top-level keys."""
    data: dict[str, object] = {
        "description": "test profile",
        "extends": "base/ubuntu-24.04-aws",
        "gpu": "h100-sxm",
        "driver": {"branch": "595"},
        "cuda": {"toolkit": "13.2"},
        "container": {"runtime": "docker", "toolkit": "1.19.0"},
    }
    data.update(overrides)
    return data


def load_bench(name: str) -> ModuleType:
    """``bench/NAME.py`` as a module (bench scripts are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
