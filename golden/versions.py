"""Version strings: strict patterns for profiles, and comparisons.

Driver versions (``595.58.03``, ``570.26``) compare as integer tuples. Debian
package versions go through python-debian, which implements dpkg's ordering
(epochs, ``~``, revisions), so ``580.65.06-0ubuntu1 < 580.126.09-1ubuntu1``.
"""

from __future__ import annotations

import re
from functools import total_ordering

from debian.debian_support import Version as DebVersion

DRIVER_BRANCH = re.compile(r"^[0-9]{3}$")
DRIVER_VERSION = re.compile(r"^[0-9]{3}\.[0-9]{1,3}(\.[0-9]{1,3})?$")
CUDA = re.compile(r"^[0-9]{2}\.[0-9]$")
CUDA_RELEASE = re.compile(r"^[0-9]{2}\.[0-9]\.[0-9]{1,2}$")
CONTAINER_TOOLKIT = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
#: An Apptainer release as the project numbers it (1.4.5): what ``apptainer --version`` prints.
APPTAINER = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
#: A kernel ABI: Debian 12 and Ubuntu number it (6.1.0-50-cloud-amd64), Debian 13 names the
#: version (6.12.117+deb13-cloud-amd64).
KERNEL = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9]+|\+deb[0-9]+)(-[a-z0-9]+)+$")
#: A Debian package version as golden accepts it from a lock or an index.
DEB_VERSION = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$")
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@total_ordering
class DriverVersion:
    """A driver version such as ``580.95.05``; also accepts a branch ``580``."""

    def __init__(self, text: str) -> None:
        if not re.fullmatch(r"[0-9]+(\.[0-9]+){0,2}", text):
            raise ValueError(f"not a driver version: {text!r}")
        self.text = text
        self.parts = tuple(int(p) for p in text.split("."))

    @property
    def branch(self) -> str:
        return str(self.parts[0])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DriverVersion) and self._key() == other._key()

    def __lt__(self, other: DriverVersion) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[int, int, int]:
        padded = (*self.parts, 0, 0)
        return (padded[0], padded[1], padded[2])

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"DriverVersion({self.text!r})"


def cuda_tuple(text: str) -> tuple[int, int]:
    """``"13.2"`` -> ``(13, 2)``; also takes ``"13.2.1"`` (the patch is dropped)."""
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def release_tuple(text: str) -> tuple[int, ...]:
    """An upstream release ``"26.1.0"`` as ``(26, 1, 0)``, padded to three parts.

    >>> release_tuple("1.7.16") > release_tuple("1.7.2"), release_tuple("25") == release_tuple("25.0.0")
    (True, True)
    """
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", text):
        raise ValueError(f"not a release version: {text!r}")
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))


def deb_compare(a: str, b: str) -> int:
    """dpkg's ordering of two Debian versions: negative, zero or positive."""
    va, vb = DebVersion(a), DebVersion(b)
    return (va > vb) - (va < vb)


def deb_upstream(version: str) -> str:
    """The upstream part of a Debian version: ``1:4.6.0-1`` -> ``4.6.0``."""
    return str(DebVersion(version).upstream_version)
