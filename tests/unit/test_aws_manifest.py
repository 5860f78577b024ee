"""Packer's manifest -> images.lock, and the amazon-ebs path of `invoke build` up to Packer.

Packer itself is faked only at ``packer.build`` (Debian's 1.6.6 refuses EC2
bakes: no IMDSv2); render and ``packer validate`` run for real.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from golden import build as build_mod
from golden import lockfile, packer
from golden.aws import manifest
from golden.errors import GoldenError
from golden.targets.ebs import source_ami_from_lock
from tests.conftest import require_tool


def write_manifest(path: Path, runs: list[tuple[str, str]], last: str) -> None:
    """``runs``: (packer_run_uuid, artifact_id), oldest first, as the post-processor appends them."""
    builds: list[dict[str, Any]] = [{"name": "image", "builder_type": "amazon-ebs", "build_time": 1700000000 + i,
               "files": None, "artifact_id": aid, "packer_run_uuid": uuid, "custom_data": {}}
              for i, (uuid, aid) in enumerate(runs)]
    path.write_text(json.dumps({"builds": builds, "last_run_uuid": last}))


def test_amis_of_the_last_run_only(tmp_path: Path) -> None:
    m = tmp_path / "manifest.json"
    write_manifest(m, [("run-1", "us-east-1:ami-0aaa,us-west-2:ami-0bbb"),
                       ("run-2", "us-east-1:ami-1ccc,us-west-2:ami-1ddd")], last="run-2")
    assert manifest.amis(m) == {"us-east-1": "ami-1ccc", "us-west-2": "ami-1ddd"}


def test_no_ami_in_the_last_run_is_an_error(tmp_path: Path) -> None:
    m = tmp_path / "manifest.json"
    write_manifest(m, [("run-1", "us-east-1:ami-0aaa")], last="run-2")
    with pytest.raises(GoldenError, match="no amazon-ebs AMI in the last run"):
        manifest.amis(m)


def write_resolved(lock: Path, ami: str) -> None:
    """A lock as `invoke lock.resolve` leaves it: nothing pinned but the base AMI (no network)."""
    data = lockfile.empty()
    data["profiles"]["h100-r595"] = {"inputs_sha256": "", "builds": [], "channels": {},
                                     "resolved": {"packages": {}, "source_image": {"ami_id": ami}}}
    lockfile.write_atomic(lock, lockfile.dump(data))


def fake_packer_build(calls: list[dict[str, Any]], artifact_id: str) -> Callable[..., packer.BuildResult]:
    def fake(build_dir: Path, *, only: str, variables: Mapping[str, str], log_path: Path,
             on_event: Callable[[packer.Event], None]) -> packer.BuildResult:
        calls.append({"only": only, **variables})
        m = Path(build_dir) / "manifest.json"
        write_manifest(m, [("old-run", "us-east-1:ami-0old"), ("this-run", artifact_id)], last="this-run")
        (Path(build_dir) / "verify-report.json").write_text(
            json.dumps({"passed": True, "checks": [{"passed": True}, {"passed": True}]}))
        (Path(build_dir) / "release.json").write_text(json.dumps({"packages": {"cuda-toolkit-13-2": "13.2.0-1"}}))
        return packer.BuildResult(only=only, log_path=log_path, manifest_path=m, run_uuid="this-run",
                                  builds=tuple(packer.read_manifest(m)), seconds=1.0, steps=())
    return fake


def test_fake_ebs_build_lands_in_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("packer")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(packer, "build",
                        fake_packer_build(calls, "us-east-1:ami-0123456789abcdef0,us-west-2:ami-0fedcba987654321f"))
    monkeypatch.setenv("GOLDEN_BUILDER_CIDR", "203.0.113.7/32")
    lock = tmp_path / "images.lock"
    write_resolved(lock, "ami-0abc1234def567890")
    summary = build_mod.build("h100-r595", None, locked=True, lock_path=lock, build_root=tmp_path / "build")
    assert calls[0]["only"] == "amazon-ebs.image" and calls[0]["builder_cidr"] == "203.0.113.7/32"
    assert calls[0]["source_ami"] == "ami-0abc1234def567890"     # --locked: the base AMI in the lock
    entry = lockfile.load(lock)["profiles"]["h100-r595"]["builds"][0]
    assert entry["artifacts"] == {"us-east-1": "ami-0123456789abcdef0", "us-west-2": "ami-0fedcba987654321f"}
    assert entry["target"] == "amazon-ebs" and entry["packer_run_uuid"] == "this-run"
    assert entry["verification"] == {"passed": True, "checks": 2, "failed": 0}
    assert entry["id"] in summary and "us-west-2  ami-0fedcba987654321f" in summary


def test_locked_source_ami_comes_from_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "images.lock"
    write_resolved(lock, "ami-0abc1234def567890")
    assert source_ami_from_lock("h100-r595", lock) == "ami-0abc1234def567890"
    with pytest.raises(GoldenError, match="no resolved base AMI for b200-r595"):
        source_ami_from_lock("b200-r595", lock)


def test_real_packer_build_still_refuses_ebs_without_imdsv2(tmp_path: Path) -> None:
    require_tool("packer")
    if packer.has_plugins():
        pytest.skip("this Packer has the amazon plugin")
    with pytest.raises(GoldenError, match="cannot require IMDSv2"):
        packer.build(tmp_path, only="amazon-ebs.image", variables={}, log_path=tmp_path / "l",
                     on_event=print)
