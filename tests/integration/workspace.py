"""A workspace to bake in (profiles, build root, lock) and the checks every bake ends with."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import ROOT, lockfile
from golden.build import build
from tests.conftest import IN_CI, require_tool

#: The profile of the session's real bake (tests/integration/conftest.py).
R535 = "local-debian12-r535"
#: The session's second real bake: R535 with Debian's CUDA 11.8 toolkit and containerd.
CUDA = "local-debian12-r535-cuda"
#: The session's third: Debian 13 without a driver, for the GPU Operator.
DRIVERLESS = "local-debian13-driverless"
#: The session's fourth: the R535 image signed for Secure Boot, a UEFI disk.
SECUREBOOT = "local-debian12-r535-secureboot"
#: What the session's bake declares will run on it: CUDA 12.2 is R535's own ceiling. (The
#: session's bake adds trainer-12-9, an image in a local registry: CUDA 12.9 is above the ceiling
#: in the same major; the gate warns, minor-version compatibility lets it run.)
WORKLOADS = [{"name": "solver-12-2", "cuda": "12.2"}]

def need_root_and_bake_tools() -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("local bakes need root in CI")
        pytest.skip("local bakes need root")
    for tool in ("packer", "mmdebstrap", "unshare", "ssh", "zstd"):
        require_tool(tool)


class Workspace:
    """A profiles/ copy, a build root and an images.lock with an earlier build in it."""

    def __init__(self, tmp: Path) -> None:
        self.profiles = tmp / "profiles"
        shutil.copytree(ROOT / "profiles", self.profiles)
        self.build_root = tmp / "build"
        self.lock = tmp / "images.lock"
        earlier = {"id": "00000000-0000-4000-8000-000000000000", "status": "passed", "target": "local"}
        lockfile.update(lambda lock: lockfile.add_build(lock, "earlier", earlier, inputs_sha256="x"), self.lock)

    def plant_earlier_artifacts(self, name: str) -> Path:
        art = self.build_root / name / "artifacts"
        art.mkdir(parents=True)
        (art / "rootfs.tar.zst").write_bytes(b"an earlier image")
        return art

    def snapshot(self, name: str) -> tuple[bytes, dict[str, bytes]]:
        art = self.build_root / name / "artifacts"
        files = {str(p.relative_to(art)): p.read_bytes() for p in art.rglob("*") if p.is_file()}
        return self.lock.read_bytes(), files

    def write_profile(self, name: str, data: dict[str, object]) -> None:
        (self.profiles / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    def add_workloads(self, name: str, workloads: list[dict[str, str]]) -> None:
        """Give this workspace's copy of a profile ``workloads``."""
        path = self.profiles / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        self.write_profile(name, {**data, "workloads": workloads})

    def bake(self, name: str, **kwargs: object) -> str:
        return build(name, None, lock_path=self.lock, build_root=self.build_root,
                     profiles_dir=self.profiles, **kwargs)  # type: ignore[arg-type]


def report_checks(path: Path) -> dict[str, dict[str, Any]]:
    """A verification report's checks by name."""
    return {c["name"]: c for c in json.loads(path.read_text())["checks"]}


def assert_nothing_left(ws: Workspace) -> None:
    """No mount, no sshd, no QEMU and no working copy outlive a build."""
    mounts = Path("/proc/mounts").read_text()
    assert str(ws.build_root) not in mounts
    work = ws.build_root / ".work"
    assert not work.exists() or not any(work.iterdir())
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        assert str(ws.build_root) not in cmdline, f"left running: {cmdline}"


class Baked:
    """One of the session's real bakes: its workspace, summary line and build directory."""

    def __init__(self, ws: Workspace, summary: str, name: str = R535) -> None:
        self.ws, self.summary, self.name = ws, summary, name
        self.out = ws.build_root / name
        self.artifact = self.out / "artifacts" / "rootfs.tar.zst"
