"""Bake: the driver's kernel module exists for every kernel, at the driver version."""

from __future__ import annotations

from typing import Any

import pytest

from golden import probes
from verify.lib import DriverExpect, Record, Shell

pytestmark = pytest.mark.phase("bake")


def test_kernel_module(expect: dict[str, Any], shell: Shell, driver: DriverExpect,
                       record: Record) -> None:
    module = expect["driver"]["module"]
    open_flavor = expect["driver"]["flavor"] == "open"
    if expect.get("kernel"):
        kernels = [str(expect["kernel"])]
    else:
        kernels = probes.parse_kernels(shell.run(*probes.KERNELS_ARGV).stdout)
    if not kernels:
        record.fail(f"module-version[{module}]", driver.describe(), "no kernel in /lib/modules")
    results = []
    for kernel in kernels:
        out = shell.run(*probes.modinfo_argv(kernel, module))
        if not out.ok:
            results.append(record(f"module-version[{kernel}]", driver.describe(), "no module",
                                  False, out.stderr.strip()))
            continue
        info = probes.parse_modinfo(out.stdout)
        results.append(record(f"module-version[{kernel}]", driver.describe(), info.version,
                              driver.matches(info.version), info.filename or ""))
        results.append(record(f"module-vermagic[{kernel}]", kernel, info.vermagic_kernel,
                              info.vermagic_kernel == kernel))
        if open_flavor:
            results.append(record(f"module-license[{kernel}]", probes.OPEN_LICENSE, info.license,
                                  info.open))
        else:
            results.append(record(f"module-license[{kernel}]", "not open (NVIDIA)", info.license,
                                  not info.open))
    assert all(results)
