"""An image for the GPU Operator (``driver: none``): nothing of NVIDIA's on it, nouveau kept off,
the kernel's headers there for the Operator's driver container to build against.

The Operator brings the driver, CUDA and the container toolkit in its own
containers: a module or package of NVIDIA's left on the image would fight it.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from golden import hostprobes, pkgprobes
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("bake", "boot-nogpu"), pytest.mark.layer("driverless")]

NOUVEAU = "nouveau"


def test_no_nvidia_module(shell: Shell, record: Record) -> None:
    """No ``nvidia*.ko*`` for any installed kernel, in either module tree."""
    out = shell.run(*hostprobes.NVIDIA_MODULE_FILES_ARGV)
    if not out.ok and not hostprobes.only_missing_trees(out.stderr):
        record.fail("nvidia-modules", "none", f"find: exit {out.rc}", out.stderr.strip()[-300:])
    found = hostprobes.parse_module_files(out.stdout)
    assert record("nvidia-modules", "none", found or "none", not found,
                  "an NVIDIA kernel module on a driverless image" if found else "")


def test_no_nvidia_package(expect: dict[str, Any], packages: dict[str, pkgprobes.DebPackage],
                           record: Record) -> None:
    """No package named like the driver's, CUDA's or the container toolkit's is on the image."""
    patterns = expect["driverless"]["forbidden_packages"]
    found = sorted(name for name, p in packages.items()
                   if p.present and any(fnmatch.fnmatchcase(name, pat) for pat in patterns))
    assert record("nvidia-packages", f"none matching {' '.join(patterns)}", found or "none", not found)


def test_nouveau_blacklisted(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    """modprobe's effective configuration blacklists nouveau and turns off its modeset."""
    wanted = "blacklist nouveau, options nouveau modeset=0"
    out = shell.run(*hostprobes.MODPROBE_CONFIG_ARGV)
    if not out.ok:
        record.fail("nouveau-blacklist", wanted, f"modprobe --showconfig: exit {out.rc}",
                    out.stderr.strip()[-300:])
    config = hostprobes.parse_modprobe_config(out.stdout)
    blacklisted = NOUVEAU in config.blacklist
    modeset_off = "modeset=0" in config.options.get(NOUVEAU, ())
    actual = [*(["blacklist nouveau"] if blacklisted else []),
              *(["options nouveau modeset=0"] if modeset_off else [])]
    assert record("nouveau-blacklist", wanted, actual or "neither", blacklisted and modeset_off,
                  f"written by the driverless step to {expect['driverless']['blacklist']}")


def _headers_kernels(expect: dict[str, Any], shell: Shell) -> list[str]:
    """The pinned kernel, or (none pinned) every kernel with an image in /boot."""
    if expect.get("kernel"):
        return [str(expect["kernel"])]
    return hostprobes.parse_boot_kernels(shell.run(*hostprobes.BOOT_KERNELS_ARGV).stdout)


def _image_package(packages: dict[str, pkgprobes.DebPackage], kernel: str) -> pkgprobes.DebPackage | None:
    names = (f"linux-image-{kernel}", f"linux-image-{kernel}-unsigned", f"linux-image-unsigned-{kernel}")
    return next((packages[n] for n in names if n in packages and packages[n].installed), None)


def test_kernel_headers(expect: dict[str, Any], shell: Shell, packages: dict[str, pkgprobes.DebPackage],
                        record: Record) -> None:
    """The kernel's headers, at exactly its image's version, with their build tree (or, with
    ``kernel_headers: false``, none)."""
    wanted = bool(expect["driverless"]["kernel_headers"])
    kernels = _headers_kernels(expect, shell)
    if not kernels:
        record.fail("kernel-headers", "a kernel in /boot", "none")
    results = []
    for kernel in kernels:
        headers = packages.get(f"linux-headers-{kernel}")
        have = headers is not None and headers.installed
        if not wanted:
            results.append(record(f"kernel-headers[{kernel}]", "not installed (kernel_headers: false)",
                                  headers.version if headers and have else "not installed", not have))
            continue
        image = _image_package(packages, kernel)
        expected = f"installed, version {image.version}" if image else "installed, at the kernel's version"
        actual = f"installed, version {headers.version}" if headers and have else "not installed"
        same = headers is not None and have and image is not None and headers.version == image.version
        results.append(record(f"kernel-headers[{kernel}]", expected, actual, same,
                              "" if image else f"no installed linux-image package for {kernel}"))
        tree = shell.run("stat", "--format=%F", f"/lib/modules/{kernel}/build/include")
        results.append(record(f"kernel-build-tree[{kernel}]", f"/lib/modules/{kernel}/build/include",
                              "present" if tree.ok else "missing", tree.ok))
    assert all(results)


@pytest.mark.phase("boot", "boot-nogpu")
def test_nouveau_and_nvidia_not_loaded(shell: Shell, record: Record) -> None:
    """Booted: neither nouveau nor an NVIDIA module is loaded (the Operator loads its own)."""
    out = shell.run(*hostprobes.LSMOD_ARGV)
    if not out.ok:
        record.fail("loaded-modules", "no nouveau, no nvidia*", f"lsmod: exit {out.rc}", out.stderr.strip()[-300:])
    loaded = [m for m in hostprobes.parse_lsmod(out.stdout) if m == NOUVEAU or m.startswith("nvidia")]
    assert record("loaded-modules", "no nouveau, no nvidia*", loaded or "neither", not loaded)
