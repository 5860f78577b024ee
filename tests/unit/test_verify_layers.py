"""The suite by layer: each check names its layer, and an image without one skips its checks.

The suite runs on the image, without golden's plan code, so it keeps its own
copy of the expectations schema; the first test holds the two together.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from golden import ROOT, plan
from golden.run import base_env, run
from tests.conftest import require_tool
from verify import conftest as suite

MODULES = sorted(p.stem for p in (ROOT / "verify").glob("test_*.py"))
KNOWN = {plan.BASE, *(spec.name for spec in plan.LAYERS)}


def _layer_marks(node: ast.AST) -> list[str]:
    """The names in every ``pytest.mark.layer("...")`` call under ``node``."""
    return [str(arg.value) for call in ast.walk(node) if isinstance(call, ast.Call)
            and ast.unparse(call.func) == "pytest.mark.layer"
            for arg in call.args if isinstance(arg, ast.Constant)]


def test_the_suite_and_the_plan_agree_on_the_schema_and_the_base_layer() -> None:
    assert suite.EXPECTATIONS_SCHEMA == plan.EXPECTATIONS_SCHEMA
    assert suite.BASE_LAYER == plan.BASE


@pytest.mark.parametrize("name", MODULES)
def test_every_check_module_declares_one_known_layer(name: str) -> None:
    """Read from the source: importing the suite's modules here would meet this project's
    --strict-markers, which does not know the suite's own ``phase`` mark."""
    tree = ast.parse((ROOT / "verify" / f"{name}.py").read_text())
    (module_marks,) = [node for node in tree.body if isinstance(node, ast.Assign)
                       and ast.unparse(node.targets[0]) == "pytestmark"]
    layers = _layer_marks(module_marks)
    assert len(layers) == 1 and layers[0] in KNOWN, layers
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_"):
            assert {m for d in fn.decorator_list for m in _layer_marks(d)} <= KNOWN, fn.name


def test_image_layers_treats_old_expectations_as_having_every_layer() -> None:
    assert suite.image_layers({"schema": 1}) is None
    assert suite.image_layers({"layers": ["runtime"]}) == frozenset({"base", "runtime"})


def _driverless_expectations(tmp_path: Path) -> Path:
    data = {
        "schema": 1, "profile": "no-driver", "os": "debian-12", "arch": "amd64", "kernel": None,
        "layers": ["kernel"], "driver": None, "packages": [], "proprietary_packages": [],
        "cuda": {"toolkit": None, "package": None},
        "container": {"runtime": "none", "service": None, "config": None, "toolkit": None,
                      "cdi": False, "cdi_refresh": False},
        "fabric_manager": {"enabled": False, "packages": []}, "driver_extras": [],
        "persistence": False, "secure_boot": False,
    }
    path = tmp_path / "expectations.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("phase", ["bake", "boot"])
def test_an_image_without_a_driver_skips_the_driver_checks_with_a_reason(tmp_path: Path, phase: str) -> None:
    """Run for real against this machine: every check of an absent layer is skipped, and
    none fails for a missing key (the report would say ``error: KeyError``)."""
    require_tool("dpkg-query")
    report = tmp_path / "report.json"
    proc = run([sys.executable, "-m", "golden.verify", "--expectations", str(_driverless_expectations(tmp_path)),
                "--host", "local://", "--phase", phase, "--report", str(report)],
               check=False, env=base_env(), timeout=300)
    assert report.is_file(), proc.stdout + proc.stderr
    checks = json.loads(report.read_text())["checks"]
    assert not [c for c in checks if "Error" in str(c["actual"])], checks
    skipped = {c["name"]: c["detail"] for c in checks if c["status"] == "skipped"}
    driver_checks = {"boot": "nvidia-smi", "bake": "kernel-module"}[phase]
    assert skipped[driver_checks] == "layer driver not in this image"
    if phase == "bake":
        assert skipped["fabric-manager-version"] == "layer fabric-manager not in this image"
        assert skipped["ctk-version"] == "layer container-toolkit not in this image"
        assert skipped["esp-files"] == "layer boot-chain not in this image"   # a rootfs image
        assert "release-manifest" not in skipped          # a base check still runs
