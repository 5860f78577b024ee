"""Package probes: what dpkg has installed and what apt would do (holds, pins).

>>> parse_showhold("nvidia-open\\nlibcuda1:amd64\\n") == {"nvidia-open", "libcuda1"}
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from golden.probes import ProbeError, nonblank_lines

#: The apt pin priority golden's preferences file gives every pinned package:
#: above 1000 so that apt keeps (or moves to) the pinned version even where that
#: is a downgrade, and so it wins over NVIDIA's own pinning package (1000).
PIN_PRIORITY = 1001

#: dpkg-query format: one line per package, tab-separated. ``binary:Package``
#: carries ``:amd64`` for Multi-Arch "same" packages; the parser splits it off.
DPKG_FORMAT = ("${binary:Package}\t${Version}\t${db:Status-Abbrev}\t${source:Package}"
               "\t${source:Version}\n")


def dpkg_query_argv(*names: str) -> tuple[str, ...]:
    """Every known package (no names) or the named ones, in :data:`DPKG_FORMAT`."""
    return ("dpkg-query", "-W", "-f", DPKG_FORMAT, *names)


def apt_policy_argv(name: str) -> tuple[str, ...]:
    return ("apt-cache", "policy", name)


SHOWHOLD_ARGV = ("apt-mark", "showhold")


# -- parsers -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DebPackage:
    name: str
    arch: str | None        # only when dpkg printed it (Multi-Arch "same")
    version: str
    status: str             # db:Status-Abbrev, three characters: "ii ", "hi ", "rc "
    source: str
    source_version: str

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("installed",)

    @property
    def installed(self) -> bool:
        """Installed and configured, whether held (``hi``) or not (``ii``).

        The first letter is the selection (install, hold, deinstall, purge), so a
        package golden holds reads ``hi``; the second says it is installed, the
        third (a space) that it needs no reinstall.
        """
        return len(self.status) == 3 and self.status[1] == "i" and self.status[2] == " "

    @property
    def present(self) -> bool:
        """Anything left on disk beyond config files (half-installed counts)."""
        return len(self.status) >= 2 and self.status[1] not in "nc"


def parse_dpkg(text: str) -> list[DebPackage]:
    """``dpkg-query -W -f DPKG_FORMAT``: one :class:`DebPackage` per line.

    Packages dpkg knows of but never installed print an empty version; they are
    kept (status ``un``) so a caller can tell "unknown" from "not installed".
    """
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 5:
            raise ProbeError(f"expected 5 tab-separated fields from dpkg-query: {line!r}")
        full, version, status, source, source_version = parts
        name, _, arch = full.partition(":")
        out.append(DebPackage(name, arch or None, version, status, source or name,
                              source_version or version))
    return out


def parse_showhold(text: str) -> set[str]:
    """``apt-mark showhold``: held package names (any ``:arch`` suffix dropped)."""
    return {line.split(":")[0] for line in nonblank_lines(text)}


@dataclass(frozen=True)
class PolicyVersion:
    version: str
    priority: int
    installed: bool


@dataclass(frozen=True)
class AptPolicy:
    package: str
    installed: str | None
    candidate: str | None
    versions: tuple[PolicyVersion, ...]

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("pin_effective",)

    def priority_of(self, version: str) -> int | None:
        return next((v.priority for v in self.versions if v.version == version), None)

    def pin_effective(self, priority: int = PIN_PRIORITY) -> bool:
        """apt keeps what is installed: it is the candidate, at the pin's priority."""
        return (self.installed is not None and self.candidate == self.installed
                and self.priority_of(self.installed) == priority)


_POLICY_VERSION = re.compile(r"^ (\*\*\*| {3}) (\S+) (-?\d+)$")


def parse_apt_policy(text: str) -> dict[str, AptPolicy]:
    """``apt-cache policy PKG…``: installed, candidate and the version table per package.

    In the table the number after a version is the priority apt gives that
    version, pins included (``*** 535.261.03-1~deb12u1 1001``); the indented lines
    below it are where the version comes from and are not needed here.
    """
    out: dict[str, AptPolicy] = {}
    name: str | None = None
    fields: dict[str, str | None] = {}
    versions: list[PolicyVersion] = []

    def flush() -> None:
        if name is not None:
            out[name] = AptPolicy(name, fields.get("Installed"), fields.get("Candidate"),
                                  tuple(versions))

    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            flush()
            name, fields, versions = line[:-1], {}, []
        elif m := re.match(r"^  (Installed|Candidate): (.*)$", line):
            value = m.group(2).strip()
            fields[m.group(1)] = None if value == "(none)" else value
        elif m := _POLICY_VERSION.match(line):
            versions.append(PolicyVersion(m.group(2), int(m.group(3)), m.group(1) == "***"))
    flush()
    return out
