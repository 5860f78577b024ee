"""Bake: fabric manager at the driver version, persistence daemon, the boot check unit."""

from __future__ import annotations

from typing import Any

import pytest

from golden import pkgprobes, systemprobes
from golden.versions import deb_upstream
from verify.lib import DriverExpect, Record, Shell

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("base")]

FABRIC_MANAGER_SERVICE = "nvidia-fabricmanager.service"
PERSISTENCED_SERVICE = "nvidia-persistenced.service"
GPU_CHECK_SERVICE = "golden-gpu-check.service"


@pytest.mark.layer("fabric-manager")
def test_fabric_manager_version(expect: dict[str, Any], packages: dict[str, pkgprobes.DebPackage],
                                driver: DriverExpect, record: Record) -> None:
    fm = expect["fabric_manager"]
    if not fm["enabled"]:
        record.skip("fabric-manager-version", "the GPU has no NVSwitch fabric")
    name = fm["packages"][0]
    pkg = packages.get(name)
    got = deb_upstream(pkg.version) if pkg and pkg.installed else None
    assert record(f"fabric-manager-version[{name}]", driver.describe(), got or "not installed",
                  driver.matches(got))


@pytest.mark.layer("fabric-manager")
def test_fabric_manager_enabled(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    if not expect["fabric_manager"]["enabled"]:
        record.skip(f"enabled[{FABRIC_MANAGER_SERVICE}]", "the GPU has no NVSwitch fabric")
    state = shell.unit_file_state(FABRIC_MANAGER_SERVICE)
    assert record(f"enabled[{FABRIC_MANAGER_SERVICE}]", "enabled", state,
                  state in systemprobes.ENABLED_STATES)


@pytest.mark.layer("persistence")
def test_persistenced_enabled(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    if not expect["persistence"]:
        record.skip(f"enabled[{PERSISTENCED_SERVICE}]", "persistence is off in the profile")
    state = shell.unit_file_state(PERSISTENCED_SERVICE)
    assert record(f"enabled[{PERSISTENCED_SERVICE}]", "enabled", state,
                  state in systemprobes.ENABLED_STATES)


@pytest.mark.layer("driver")
def test_gpu_check_enabled(shell: Shell, record: Record) -> None:
    state = shell.unit_file_state(GPU_CHECK_SERVICE)
    assert record(f"enabled[{GPU_CHECK_SERVICE}]", "enabled", state,
                  state in systemprobes.ENABLED_STATES)
