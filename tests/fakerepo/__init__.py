"""A local signed apt repository of NVIDIA look-alike packages (integration tests only).

golden's real provisioning scripts and verification suite run unchanged
against it; see README.md in this directory for what each look-alike models
and which faults a test can plant.

Use::

    from tests.fakerepo import FakeDriver, RepoServer, build_repo

    repo = build_repo(tmp / "nvidia", drivers=[FakeDriver()], ctk_versions=["1.19.0"])
    with RepoServer(tmp) as server:
        repo = server.publish(repo)
        repo.sources_line("/usr/share/keyrings/nvidia.gpg")
        # -> 'deb [signed-by=/usr/share/keyrings/nvidia.gpg] http://127.0.0.1:PORT/nvidia/ /'
"""

from __future__ import annotations

import shutil

from tests.fakerepo.builder import REQUIRED_TOOLS, build_repo
from tests.fakerepo.model import Deb, FakeDriver, FakeToolkit, Flavor, Repo
from tests.fakerepo.server import RepoServer
from tests.fakerepo.signing import SigningKey, signing_key

__all__ = ["REQUIRED_TOOLS", "Deb", "FakeDriver", "FakeToolkit", "Flavor", "Repo", "RepoServer",
           "SigningKey", "build_repo", "missing_tools", "signing_key"]


def missing_tools() -> list[str]:
    """The tools build_repo needs that are not installed (apt-utils, dpkg, gnupg)."""
    return [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
