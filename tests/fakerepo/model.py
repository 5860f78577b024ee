"""What a fake repository is asked to hold, and what it ended up holding.

>>> FakeDriver("595.58.03").branch
'595'
>>> FakeToolkit("1.19.0", reports="1.18.2").reports   # nvidia-ctk --version drifts
'1.18.2'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Flavor = Literal["open", "proprietary"]

_DRIVER = re.compile(r"^\d{3}\.\d{2,3}(\.\d{2})?$")
_UPSTREAM = re.compile(r"^\d+(\.\d+)+$")


@dataclass(frozen=True)
class FakeDriver:
    """One driver release in the repository, and the faults its packages carry.

    ``open=False`` plants "a proprietary module where open is required": the
    open flavour's packages keep their names, but the module they ship says
    ``license=NVIDIA``. The other fields default to the driver's own version
    and plant a mismatch when set.
    """

    version: str = "595.58.03"
    open: bool = True
    module_version: str | None = None          # what `modinfo -F version` reports
    kernel: str | None = None                  # kernel the modules are for (default: the repo's)
    fabricmanager_version: str | None = None   # upstream version of nvidia-fabricmanager
    persistenced_version: str | None = None    # upstream version of nvidia-persistenced

    def __post_init__(self) -> None:
        for name in ("version", "module_version", "fabricmanager_version", "persistenced_version"):
            value = getattr(self, name)
            if value is not None and not _DRIVER.match(value):
                raise ValueError(f"FakeDriver.{name}={value!r} is not like 595.58.03")

    @property
    def branch(self) -> str:
        return self.version.split(".")[0]


@dataclass(frozen=True)
class FakeToolkit:
    """One NVIDIA Container Toolkit release (all four packages at ``version-1``).

    ``reports`` plants "toolkit drift": ``nvidia-ctk --version`` prints it
    instead of the package version. ``writes_runtime=False`` plants "the nvidia
    runtime is missing from the runtime config": ``runtime configure`` says it
    wrote the config but leaves the nvidia runtime out.
    """

    version: str
    reports: str | None = None
    writes_runtime: bool = True

    def __post_init__(self) -> None:
        for value in (self.version, self.reports):
            if value is not None and not _UPSTREAM.match(value):
                raise ValueError(f"FakeToolkit version {value!r} is not like 1.19.0")


@dataclass(frozen=True)
class Deb:
    """A package file in the repository."""

    name: str
    version: str
    architecture: str
    source: str
    filename: str          # relative to the repository root


@dataclass(frozen=True)
class Repo:
    """A built, signed flat repository (``deb [signed-by=KEYRING] URL /``).

    ``url`` is set once a :class:`~tests.fakerepo.server.RepoServer` publishes it.
    """

    path: Path
    fingerprint: str       # 40 uppercase hex digits
    key_path: Path         # ASCII-armored public key inside the repository ("gpgkey")
    debs: tuple[Deb, ...]
    distro: str            # NVIDIA's name for the OS: debian12, ubuntu2404, ...
    kernel: str
    url: str | None = None

    @property
    def key_url(self) -> str:
        return self._served(self.key_path.name)

    def sources_line(self, keyring: Path | str) -> str:
        """The one-line source golden writes for an NVIDIA repository."""
        return f"deb [signed-by={keyring}] {self._served('')} /"

    def versions(self, name: str) -> list[str]:
        """Every version of package ``name`` in the repository."""
        return [d.version for d in self.debs if d.name == name]

    def deb(self, name: str, version: str | None = None) -> Path:
        """The file of package ``name`` (at ``version``, which may be omitted if there is one)."""
        found = [d for d in self.debs if d.name == name and version in (None, d.version)]
        if len(found) != 1:
            have = ", ".join(f"{d.name}={d.version}" for d in self.debs if d.name == name) or "none"
            raise KeyError(f"{name}={version or '*'}: {len(found)} matches (repository has {have})")
        return self.path / found[0].filename

    def _served(self, rel: str) -> str:
        if self.url is None:
            raise RuntimeError("the repository is not served yet: use RepoServer.publish(repo)")
        return self.url.rstrip("/") + "/" + rel
