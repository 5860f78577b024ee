"""Bake and no-GPU boot: /etc/golden/release.json says what the expectations say."""

from __future__ import annotations

import json
from typing import Any

import pytest

from golden import pkgprobes, systemprobes
from verify.lib import Record, Shell, driver_expect, lookup

pytestmark = [pytest.mark.phase("bake", "boot-nogpu"), pytest.mark.layer("base")]


def test_release_manifest(expect: dict[str, Any], shell: Shell, packages: dict[str, pkgprobes.DebPackage],
                          record: Record) -> None:
    text = shell.read(systemprobes.RELEASE_PATH)
    if text is None:
        record.fail("release[file]", systemprobes.RELEASE_PATH, "missing")
    try:
        release = json.loads(text)
    except ValueError as e:
        record.fail("release[file]", "JSON", "not JSON", str(e))
    # The manifest's layout is scripts/90-release.sh's; an image without a driver has none there.
    drv = expect.get("driver") or {}
    wanted: dict[str, Any] = {
        "profile": expect["profile"],
        "driver.branch": drv.get("branch"),
        "driver.flavor": drv.get("flavor"),
        "cuda.toolkit": expect["cuda"]["toolkit"],
        "container_toolkit.version": expect["container"]["toolkit"],
    }
    results = [record(f"release[{key}]", value, lookup(release, key), lookup(release, key) == value)
               for key, value in wanted.items()]
    version = lookup(release, "driver.version")
    if drv:
        driver = driver_expect(expect, packages)
        results.append(record("release[driver.version]", driver.describe(), version,
                              driver.matches(version if isinstance(version, str) else None)))
    else:
        results.append(record("release[driver.version]", None, version, version is None))
    build_id = lookup(release, "build_id")
    results.append(record("release[build_id]", "not empty", build_id,
                          isinstance(build_id, str) and bool(build_id.strip())))
    assert all(results)
