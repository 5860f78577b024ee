"""Which Packer golden runs, and whether it can bake on EC2.

In this order:

1. ``GOLDEN_PACKER`` (a path, or a command on the PATH), whatever its version:
   the user named it; an EC2 bake refuses it when its version is outside the
   pin's range (``packer.accepts`` in golden/data/packer.yaml).
2. ``packer`` on the PATH when its version is inside that range.
3. The pinned release `invoke setup.packer` installed into :data:`TOOLS`
   (``<version>/packer``), a directory golden owns; never the system's.
4. ``packer`` on the PATH of any version: Debian's 1.6.6 renders, validates and
   bakes locally, and is refused for EC2 bakes.

Every Packer command golden runs (golden.packer) uses :func:`choose`, and
``build --dry-run`` prints its :meth:`Choice.describe`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from golden import ROOT
from golden import run as runner
from golden.errors import GoldenError, StepFailed

DATA = Path(__file__).resolve().parent / "data" / "packer.yaml"

#: Where `invoke setup.packer` installs: TOOLS/<version>/packer (inside .venv, which golden owns).
TOOLS = ROOT / ".venv" / "golden-tools" / "packer"

ENV_VAR = "GOLDEN_PACKER"

_VERSION = re.compile(r"Packer v?([0-9]+\.[0-9]+\.[0-9]+)")
_CLAUSE = re.compile(r"^(>=|<=|==|>|<)\s*([0-9]+(?:\.[0-9]+){0,2})$")


@cache
def pin() -> dict[str, Any]:
    """The ``packer:`` mapping of golden/data/packer.yaml (version, accepts, url, sha256, key)."""
    with DATA.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    section = data.get("packer") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise GoldenError("expected a mapping", where=str(DATA), key="packer")
    return section


def _tuple(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts))


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` (``"1.9.5"``) is inside ``spec`` (``">=1.7.0, <2.0.0"``)."""
    have = _tuple(version)
    for clause in (c.strip() for c in spec.split(",") if c.strip()):
        m = _CLAUSE.match(clause)
        if m is None:
            raise GoldenError(f"not a version range clause: {clause!r} (use e.g. '>=1.7.0, <2.0.0')",
                              where=str(DATA), key="packer.accepts")
        op, want = m.group(1), _tuple(m.group(2))
        ok = {">=": have >= want, "<=": have <= want, "==": have == want,
              ">": have > want, "<": have < want}[op]
        if not ok:
            return False
    return True


def accepts() -> str:
    """The range of Packer versions golden bakes on EC2 with, e.g. ``">=1.7.0, <2.0.0"``."""
    return str(pin()["accepts"])


def pinned_version() -> str:
    return str(pin()["version"])


@cache
def _version_of(path: str, mtime_ns: int, size: int) -> str:
    out = runner.run([path, "version"], env=runner.base_env({"CHECKPOINT_DISABLE": "1"}),
                     timeout=60).stdout
    match = _VERSION.search(out)
    if match is None:
        raise StepFailed(f"cannot read the version from `{path} version`: {out.strip()[:80]!r}",
                         where="packer")
    return match.group(1)


def version_of(path: str | Path) -> str:
    """``path version`` read as ``"1.9.5"`` (remembered while the file is unchanged)."""
    st = Path(path).stat()
    return _version_of(str(path), st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class Choice:
    """The Packer golden runs: its path, version and why it was chosen."""

    path: str
    version: str
    origin: str

    @property
    def ec2_ok(self) -> bool:
        """Whether this Packer's version is inside the range golden bakes on EC2 with."""
        return satisfies(self.version, accepts())

    def describe(self) -> str:
        """``Packer 1.9.5 at /…/packer (golden's pinned install)``, with its EC2 standing."""
        ec2 = "bakes on EC2" if self.ec2_ok else f"local bakes only: EC2 bakes need Packer {accepts()}"
        return f"Packer {self.version} at {self.path} ({self.origin}; {ec2})"


def installed(tools: Path = TOOLS) -> Path | None:
    """The pinned Packer that `invoke setup.packer` installed, if it is there."""
    path = tools / pinned_version() / "packer"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _named() -> Choice | None:
    name = os.environ.get(ENV_VAR, "").strip()
    if not name:
        return None
    path = name if "/" in name else shutil.which(name, path=runner.base_env().get("PATH"))
    if path is None or not Path(path).is_file() or not os.access(path, os.X_OK):
        raise GoldenError(f"no such executable: {name!r} (a path to a Packer binary, or unset it)",
                          where=ENV_VAR)
    return Choice(str(Path(path).resolve()), version_of(path), ENV_VAR)


def choose(tools: Path = TOOLS) -> Choice:
    """The Packer to run (see the module docstring); raise when there is none."""
    named = _named()
    if named is not None:
        return named
    on_path = shutil.which("packer", path=runner.base_env().get("PATH"))
    path_choice = Choice(on_path, version_of(on_path), "on the PATH") if on_path else None
    if path_choice is not None and path_choice.ec2_ok:
        return path_choice
    own = installed(tools)
    if own is not None:
        return Choice(str(own), version_of(own), "golden's pinned install, `invoke setup.packer`")
    if path_choice is not None:
        return path_choice
    raise StepFailed("packer not found: ./golden.sh installs Debian's (local bakes), "
                     "`invoke setup.packer` the pinned release (EC2 bakes)", where="packer")


def require_ec2(choice: Choice) -> None:
    """Refuse an EC2 bake with a Packer outside the pin's range, saying how to get one."""
    if choice.ec2_ok:
        return
    raise StepFailed(
        f"Packer {choice.version} ({choice.origin}: {choice.path}) cannot require IMDSv2 on the "
        f"build instance (metadata_options came with the amazon plugin): bake on EC2 with Packer "
        f"{accepts()}; `invoke setup.packer` installs the pinned {pinned_version()}", where="packer")
