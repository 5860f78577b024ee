"""Boot chain (``target.format: disk``): the files the disk's ESP is made of are in the image.

golden/targets/disk.py copies shim, MokManager and grub from these paths of the
image onto the EFI system partition (``ESP_FILES``); expectations.json names
them (``boot_chain.files``). Each must be a file on the image, belong to one of
the boot chain's packages, and that package must be the planned, held one (the
package checks say the same of each package; this says it of the files the
disk is written from). Skipped, and recorded so, on a rootfs image.
"""

from __future__ import annotations

from typing import Any

import pytest

from golden import pkgprobes
from verify.lib import Record, Shell, package_problems

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("boot-chain")]


def owner(shell: Shell, path: str) -> str | None:
    """The package that ships ``path`` (``dpkg-query -S``), or None."""
    out = shell.run("dpkg-query", "-S", path)
    if not out.ok:
        return None
    name = out.stdout.strip().splitlines()[0].split(":")[0].strip() if out.stdout.strip() else ""
    return name or None


def file_problems(path: str, chain: dict[str, Any], expect: dict[str, Any], shell: Shell,
                  packages: dict[str, pkgprobes.DebPackage]) -> tuple[str, list[str]]:
    """What the image has at ``path`` and what is wrong with it (empty: nothing)."""
    if not shell.run("test", "-f", path).ok:
        return "missing", ["not a file on the image"]
    pkg_name = owner(shell, path)
    if pkg_name is None or pkg_name not in chain["packages"]:
        return f"shipped by {pkg_name or 'no package'}", [f"not shipped by {', '.join(chain['packages'])}"]
    pkg = packages.get(pkg_name)
    if pkg is None or not pkg.installed:
        return f"{pkg_name} not installed", ["its package is not installed"]
    spec = next((p for p in expect["packages"] if p["name"] == pkg_name), {"name": pkg_name})
    problems = package_problems(spec, pkg)
    if not pkg.status.startswith("h"):
        problems.append(f"{pkg_name} is not held")
    return f"{pkg_name} {pkg.version} ({pkg.status.strip()})", problems


def test_esp_files(expect: dict[str, Any], shell: Shell, packages: dict[str, pkgprobes.DebPackage],
                   record: Record) -> None:
    """Each file the ESP is written from: there, from a boot chain package, that package held."""
    chain = expect["boot_chain"]
    failed = []
    for source in chain["files"]:
        path = "/" + str(source).lstrip("/")
        actual, problems = file_problems(path, chain, expect, shell, packages)
        name = f"esp-file[{path.rsplit('/', 1)[-1]}]"
        if not record(name, "a file of a planned, held boot chain package", actual, not problems,
                      "; ".join(problems)):
            failed.append(name)
    assert not failed, f"{', '.join(failed)}: see the report"
