"""Bake: the planned packages are installed at the planned versions, held and pinned."""

from __future__ import annotations

from typing import Any

import pytest

from golden import pkgprobes
from golden.versions import deb_upstream
from verify.lib import (
    DriverExpect,
    Record,
    Shell,
    driver_built,
    package_expectation,
    package_problems,
)

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("base")]


def test_package(package: dict[str, Any], packages: dict[str, pkgprobes.DebPackage],
                 record: Record) -> None:
    name = package["name"]
    expected = package_expectation(package)
    pkg = packages.get(name)
    if pkg is None or not pkg.installed:
        actual = f"status {pkg.status.strip()} {pkg.version}".strip() if pkg else "not installed"
        record.fail(f"package[{name}]", expected, actual)
    problems = package_problems(package, pkg)
    assert record(f"package[{name}]", expected, f"installed, version {pkg.version}", not problems,
                  "; ".join(problems))


@pytest.fixture(scope="module")
def holds(shell: Shell) -> set[str]:
    out = shell.run(*pkgprobes.SHOWHOLD_ARGV)
    if not out.ok:
        raise RuntimeError(f"apt-mark showhold failed (exit {out.rc}): {out.stderr.strip()}")
    return pkgprobes.parse_showhold(out.stdout)


def test_held(held_package: dict[str, Any], holds: set[str], record: Record) -> None:
    name = held_package["name"]
    assert record(f"held[{name}]", "held", "held" if name in holds else "not held", name in holds)


def test_pinned(pinned_package: dict[str, Any], shell: Shell, record: Record) -> None:
    name = pinned_package["name"]
    policy = pkgprobes.parse_apt_policy(shell.run(*pkgprobes.apt_policy_argv(name)).stdout).get(name)
    expected = f"candidate = installed, at priority {pkgprobes.PIN_PRIORITY}"
    if policy is None:
        record.fail(f"pinned[{name}]", expected, "unknown to apt")
    prio = policy.priority_of(policy.candidate) if policy.candidate else None
    actual = (f"installed {policy.installed or 'none'}, candidate {policy.candidate or 'none'}"
              f" at priority {prio if prio is not None else 'none'}")
    assert record(f"pinned[{name}]", expected, actual, policy.pin_effective(pkgprobes.PIN_PRIORITY))


@pytest.mark.layer("driver")
def test_driver_packages_agree(expect: dict[str, Any], packages: dict[str, pkgprobes.DebPackage],
                               driver: DriverExpect, record: Record) -> None:
    """Every package built from the driver's sources carries one driver version."""
    built = driver_built(expect, packages)
    versions = {p.name: deb_upstream(p.version) for p in built}
    expected = (f"all at {driver.version}" if driver.version
                else f"all at one version of branch {driver.branch}")
    broken = [f"{p.name} ({p.status.strip()})" for p in built if not p.installed]
    found = sorted(set(versions.values()))
    if driver.version:
        passed = bool(found) and found == [driver.version]
    else:
        passed = len(found) == 1 and found[0].startswith(f"{driver.branch}.")
    detail = ", ".join(f"{n}={v}" for n, v in versions.items())
    if broken:
        detail = f"not fully installed: {', '.join(broken)}; {detail}"
    assert record("driver-packages-agree", expected, found or "no driver package installed",
                  passed and not broken, detail)


@pytest.mark.layer("driver")
def test_no_proprietary_packages(expect: dict[str, Any], packages: dict[str, pkgprobes.DebPackage],
                                 record: Record) -> None:
    if not expect["driver"]["open_required"]:
        record.skip("no-proprietary-packages", "the GPU does not require the open module")
    found = sorted(n for n in expect["proprietary_packages"]
                   if n in packages and packages[n].present)
    assert record("no-proprietary-packages", "none installed", found or "none", not found)
