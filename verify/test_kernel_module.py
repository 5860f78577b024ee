"""Bake: the driver's kernel module exists for every kernel the image can boot, and may load."""

from __future__ import annotations

from typing import Any

import pytest

from golden import hostprobes, pkgprobes
from verify.lib import DriverExpect, Record, Shell

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("driver")]


def bootable_kernels(expect: dict[str, Any], shell: Shell,
                     packages: dict[str, pkgprobes.DebPackage]) -> list[str]:
    """The pinned kernel and every other the image can boot (a bootloader picks the newest)."""
    trees = hostprobes.parse_kernels(shell.run(*hostprobes.KERNELS_ARGV).stdout)
    images = hostprobes.parse_boot_kernels(shell.run(*hostprobes.BOOT_KERNELS_ARGV).stdout)
    packaged = hostprobes.kernels_from_packages(n for n, p in packages.items() if p.installed)
    return hostprobes.bootable_kernels(expect.get("kernel"), trees, images, packaged)


def test_kernel_module(expect: dict[str, Any], shell: Shell, driver: DriverExpect,
                       packages: dict[str, pkgprobes.DebPackage], record: Record) -> None:
    module = expect["driver"]["module"]
    open_flavor = expect["driver"]["flavor"] == "open"
    kernels = bootable_kernels(expect, shell, packages)
    if not kernels:
        record.fail(f"module-version[{module}]", driver.describe(), "no kernel in /lib/modules")
    pinned = expect.get("kernel")
    results = []
    for kernel in kernels:
        out = shell.run(*hostprobes.modinfo_argv(kernel, module))
        if not out.ok:
            why = out.stderr.strip()
            if pinned and kernel != pinned:
                why = f"kernel {kernel} is bootable besides the pinned {pinned}; {why}"
            results.append(record(f"module-version[{kernel}]", driver.describe(), "no module",
                                  False, why))
            continue
        info = hostprobes.parse_modinfo(out.stdout)
        results.append(record(f"module-version[{kernel}]", driver.describe(), info.version,
                              driver.matches(info.version), info.filename or ""))
        results.append(record(f"module-vermagic[{kernel}]", kernel, info.vermagic_kernel,
                              info.vermagic_kernel == kernel))
        if open_flavor:
            results.append(record(f"module-license[{kernel}]", hostprobes.OPEN_LICENSE, info.license,
                                  info.open))
        else:
            results.append(record(f"module-license[{kernel}]", "not open (NVIDIA)", info.license,
                                  not info.open))
    assert all(results)


def test_module_not_disabled(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    """No modprobe.d file blacklists the driver's module or replaces its loading."""
    module = expect["driver"]["module"]
    out = shell.run(*hostprobes.MODPROBE_CONFIG_ARGV)
    if not out.ok:
        record.fail(f"modprobe-config[{module}]", "neither blacklisted nor replaced",
                    f"modprobe --showconfig: exit {out.rc}", out.stderr.strip()[-300:])
    name = shell.run("modinfo", "-F", "name", module).stdout.strip()
    names = {module, "nvidia", *([name] if name else [])}
    problems = hostprobes.parse_modprobe_config(out.stdout).problems(names)
    assert record(f"modprobe-config[{module}]", "neither blacklisted nor replaced",
                  problems or "neither", not problems,
                  "modprobe.d disables the driver's module" if problems else "")
