"""lock.resolve against a real flat apt repository served over HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from golden import ROOT, lockfile, resolve
from golden.build import resolved_from_lock
from golden.errors import GoldenError
from tests.fakerepo import FakeDriver, RepoServer, build_repo, missing_tools

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    root = tmp_path_factory.mktemp("mirror")
    repo = build_repo(
        root / "cuda",
        drivers=[FakeDriver("595.58.03"), FakeDriver("595.71.05"),
                 # newest of the branch, but its fabric manager was not published at it
                 FakeDriver("595.80.01", fabricmanager_version="595.75.01"),
                 FakeDriver("580.105.08"), FakeDriver("570.86.15")],
        ctk_versions=["1.18.2", "1.19.0"], cuda=["13.2.0", "13.2.1", "13.0.2"],
        distro="debian12")
    with RepoServer(root) as server:
        yield str(server.publish(repo).url)


def _profiles(tmp: Path, url: str, **profiles: dict[str, object]) -> Path:
    pdir = tmp / "profiles"
    shutil.copytree(ROOT / "profiles" / "base", pdir / "base")
    for name, over in profiles.items():
        data: dict[str, object] = {
            "description": name, "extends": "base/common", "os": "debian-12",
            "kernel": "6.1.0-50-cloud-amd64", "gpu": "h100-sxm",
            "driver": {"branch": "595"}, "cuda": {"toolkit": "13.2"},
            "container": {"runtime": "docker", "toolkit": "1.19.0"},
            "repos": {"cuda": {"url": url}, "container_toolkit": {"url": url}},
            "target": {"kind": "local"},
        }
        data.update(over)
        (pdir / f"{name}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return pdir


def test_resolve_writes_newest_inside_each_pin(tmp_path: Path, mirror: str) -> None:
    pdir = _profiles(tmp_path, mirror, r595={}, r580={"driver": {"branch": "580"}, "cuda": {"toolkit": "13.0"}},
                     exact={"driver": {"branch": "595", "version": "595.58.03"}})
    lock_path = tmp_path / "images.lock"
    resolve.resolve(["r595", "r580", "exact"], lock_path=lock_path, profiles_dir=pdir)
    lock = lockfile.load(lock_path)
    r595 = lock["profiles"]["r595"]["resolved"]
    # 595.80.01 lacks its fabric manager, so 595.71.05 is the newest complete release.
    assert r595["driver_version"] == "595.71.05"
    pk = r595["packages"]
    assert pk["nvidia-open"] == "595.71.05-1"
    assert pk["nvidia-fabricmanager"] == "595.71.05-1"
    assert pk["nvidia-driver-pinning-595"] == "595-1"
    assert pk["cuda-toolkit-13-2"] == "13.2.1-1"
    for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container1",
                 "libnvidia-container-tools"):
        assert pk[name] == "1.19.0-1"
    assert r595["source_image"] == {"suite": "bookworm", "kernel": "6.1.0-50-cloud-amd64"}
    assert lock["profiles"]["r595"]["inputs_sha256"] == lockfile.inputs_sha256("r595", profiles_dir=pdir)
    r580 = lock["profiles"]["r580"]["resolved"]
    assert r580["driver_version"] == "580.105.08"
    assert r580["packages"]["cuda-toolkit-13-0"] == "13.0.2-1"
    assert lock["profiles"]["exact"]["resolved"]["packages"]["nvidia-open"] == "595.58.03-1"
    # What build --locked reads back.
    assert resolved_from_lock("r595", lock_path)["packages"]["nvidia-open"] == "595.71.05-1"


def test_no_version_inside_the_pin_is_a_clear_error(tmp_path: Path, mirror: str) -> None:
    pdir = _profiles(tmp_path, mirror, r610={"driver": {"branch": "610"}},
                     ctk={"container": {"runtime": "docker", "toolkit": "1.17.8"}})
    lock_path = tmp_path / "images.lock"
    with pytest.raises(GoldenError, match=r"has no nvidia-open inside driver.branch R610"):
        resolve.resolve(["r610"], lock_path=lock_path, profiles_dir=pdir)
    with pytest.raises(GoldenError, match=r"has no [a-z0-9-]+ at container.toolkit 1.17.8"):
        resolve.resolve(["ctk"], lock_path=lock_path, profiles_dir=pdir)
    assert not lock_path.exists()


def test_never_resolves_what_the_gate_rejects(tmp_path: Path, mirror: str) -> None:
    # B200 needs >= 570.133.20; the mirror's only R570 release is 570.86.15.
    pdir = _profiles(tmp_path, mirror, b200={"gpu": "b200", "driver": {"branch": "570"},
                                             "cuda": {"toolkit": None}})
    with pytest.raises(GoldenError, match=r"refused: 570\.86\.15 \(gate\)"):
        resolve.resolve(["b200"], lock_path=tmp_path / "images.lock", profiles_dir=pdir)
