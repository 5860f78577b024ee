"""What the checks share: the expected driver version and how a package is judged.

>>> DriverExpect("595", None, "595.58.03").matches("595.58.03")
True
>>> DriverExpect("595", None, None).describe()
'595.x'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from golden import pkgprobes, probes, systemprobes
from golden.verify import Check
from golden.versions import deb_compare, deb_upstream

PINNING_PREFIX = "nvidia-driver-pinning-"


@dataclass(frozen=True)
class DriverExpect:
    """The driver version a component must report.

    ``version`` is the profile's exact version when it pins one; otherwise any
    version in ``branch`` will do, as long as it is the one the driver packages
    on the image agree on (``installed``).
    """

    branch: str
    version: str | None
    installed: str | None

    def matches(self, version: str | None) -> bool:
        if version is None:
            return False
        if self.version:
            return version == self.version
        return version.startswith(f"{self.branch}.") and self.installed in (None, version)

    def describe(self) -> str:
        if self.version:
            return self.version
        return f"{self.installed} (branch {self.branch})" if self.installed else f"{self.branch}.x"


def driver_built(expect: Mapping[str, Any],
                 packages: Mapping[str, pkgprobes.DebPackage]) -> list[pkgprobes.DebPackage]:
    """The packages on the image built from one of the driver's source packages.

    NVIDIA's ``nvidia-driver-pinning-<branch>`` packages are left out: their
    version is a branch (``595-1ubuntu1``), not a driver version.
    """
    sources = set(expect["driver"]["sources"])
    return sorted((p for p in packages.values() if p.source in sources and p.present
                   and not p.name.startswith(PINNING_PREFIX)), key=lambda p: p.name)


def driver_expect(expect: Mapping[str, Any],
                  packages: Mapping[str, pkgprobes.DebPackage]) -> DriverExpect:
    drv = expect["driver"]
    upstreams = {deb_upstream(p.version) for p in driver_built(expect, packages) if p.installed}
    installed = upstreams.pop() if len(upstreams) == 1 else None
    return DriverExpect(str(drv["branch"]), drv.get("version"), installed)


def package_expectation(spec: Mapping[str, Any]) -> str:
    """``installed``, plus the version constraints, as the report states them."""
    parts = ["installed"]
    if spec.get("version"):
        parts.append(f"version {spec['version']}")
    if spec.get("pattern"):
        parts.append(f"matching {spec['pattern']}")
    if spec.get("upstream"):
        parts.append(f"upstream {spec['upstream']}")
    return ", ".join(parts)


def package_problems(spec: Mapping[str, Any], pkg: pkgprobes.DebPackage) -> list[str]:
    """Why an installed package does not meet its spec (empty when it does).

    Versions compare with dpkg's ordering (epochs, ``~``), never as strings; the
    pattern is the apt pin's glob.
    """
    problems = []
    if spec.get("version") and deb_compare(pkg.version, str(spec["version"])) != 0:
        problems.append(f"version {pkg.version} is not {spec['version']}")
    if spec.get("pattern") and not fnmatch.fnmatchcase(pkg.version, str(spec["pattern"])):
        problems.append(f"version {pkg.version} does not match {spec['pattern']}")
    if spec.get("upstream") and deb_upstream(pkg.version) != spec["upstream"]:
        problems.append(f"upstream {deb_upstream(pkg.version)} is not {spec['upstream']}")
    return problems


def lookup(data: Any, dotted: str) -> Any:
    """``lookup({"driver": {"branch": "595"}}, "driver.branch")`` -> ``"595"``; None if absent."""
    node = data
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _text(value: object) -> str:
    """How a value reads in the report and in ``FAILED check`` lines."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return ", ".join(_text(v) for v in items) or "none"
    text = str(value)
    return text if text else "(empty)"


class Record:
    """The ``record`` fixture: ``record(name, expected, actual, passed, detail="") -> passed``."""

    def __init__(self, sink: Callable[[Check], None]) -> None:
        self._sink = sink

    def __call__(self, name: str, expected: object, actual: object, passed: bool,
                 detail: str = "") -> bool:
        self._sink(Check(name, _text(expected), _text(actual), bool(passed),
                                               detail))
        return bool(passed)

    def fail(self, name: str, expected: object, actual: object, detail: str = "") -> NoReturn:
        """Record a failed check and end the test (for a fact that stops the rest)."""
        self(name, expected, actual, False, detail)
        pytest.fail(f"{name}: expected {_text(expected)}, actual {_text(actual)}", pytrace=False)

    def skip(self, name: str, reason: str) -> NoReturn:
        """Record ``name`` as skipped (the component is absent by design) and skip the test."""
        self._sink(Check(name, "not checked", "not checked", True, reason,
                                               skipped=True))
        pytest.skip(reason)


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


#: Hosts whose connection failed, with the reason (see :meth:`Shell.run`).
_UNREACHABLE: dict[str, str] = {}


class Shell:
    """Commands on the image as argv lists, quoted and in the C locale.

    >>> shell.run("dpkg-query", "-W", "bash").stdout  # doctest: +SKIP
    'bash\\t5.2.15-2+b8\\n'
    """

    def __init__(self, host: Any) -> None:
        self.host = host
        self.key = str(host.backend.get_pytest_id())

    def run(self, *argv: str) -> Result:
        # Once the host has been found unreachable every later command fails at
        # once, instead of each waiting for its own connection timeout.
        if self.key in _UNREACHABLE:
            raise ConnectionError(_UNREACHABLE[self.key])
        try:
            out = self.host.run(probes.command(*argv))
        except RuntimeError as e:
            # testinfra's ssh backend raises with the CommandResult when ssh itself fails.
            stderr = getattr(e.args[0], "stderr", None) if e.args else None
            if stderr is None:
                raise
            _UNREACHABLE[self.key] = f"cannot reach {self.key}: {str(stderr).strip()}"
            raise ConnectionError(_UNREACHABLE[self.key]) from None
        return Result(int(out.rc), str(out.stdout), str(out.stderr))

    def read(self, path: str) -> str | None:
        """A file's text, or None when it cannot be read."""
        out = self.run("cat", "--", path)
        return out.stdout if out.ok else None

    def unit_file_state(self, unit: str) -> str:
        return systemprobes.parse_unit_state(self.run(*systemprobes.is_enabled_argv(unit)).stdout)
