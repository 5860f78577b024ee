"""Bake: the driver's user-space libraries (what CUDA and the container toolkit load) and firmware."""

from __future__ import annotations

from typing import Any

import pytest

from golden import hostprobes
from verify.lib import DriverExpect, Record, Shell

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("driver")]


@pytest.fixture(scope="module")
def ld_cache(shell: Shell) -> dict[str, str]:
    out = shell.run(*hostprobes.LDCONFIG_ARGV)
    if not out.ok:
        raise RuntimeError(f"ldconfig -p failed (exit {out.rc}): {out.stderr.strip()[:200]}")
    return hostprobes.parse_ldconfig(out.stdout)


def test_driver_library(expect: dict[str, Any], shell: Shell, driver: DriverExpect,
                        ld_cache: dict[str, str], record: Record) -> None:
    """Each library resolves through the dynamic linker to a file of the driver's version."""
    results = []
    for soname in expect["driver"]["libraries"]:
        path = ld_cache.get(soname)
        if path is None:
            results.append(record(f"library[{soname}]", driver.describe(), "not in ld.so.cache",
                                  False, "no CUDA program or GPU container can run"))
            continue
        real = shell.run("readlink", "-f", "--", path).stdout.strip()
        version = hostprobes.library_version(soname, real)
        results.append(record(f"library[{soname}]", driver.describe(), version or real or "none",
                              driver.matches(version), real))
    assert all(results)


def test_gsp_firmware(expect: dict[str, Any], shell: Shell, driver: DriverExpect,
                      record: Record) -> None:
    """The open module loads GSP firmware named by its version (modinfo ``firmware:``)."""
    if expect["driver"]["flavor"] != "open":
        record.skip("gsp-firmware", "the proprietary module does not need GSP firmware")
    version = driver.version or driver.installed
    if version is None:
        record.fail("gsp-firmware", f"/lib/firmware/nvidia/{driver.describe()}/gsp_*.bin",
                    "no single driver version installed")
    found = [line for line in shell.run(*hostprobes.firmware_argv(version)).stdout.splitlines()
             if line.strip()]
    assert record("gsp-firmware", f"/lib/firmware/nvidia/{version}/gsp_*.bin",
                  [f.rsplit("/", 1)[-1] for f in sorted(found)] or "none", bool(found))
