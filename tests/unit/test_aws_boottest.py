"""The EC2 boot test's orchestration against moto's server; the SSH verify step is injected."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from golden import lockfile
from golden.aws import boottest
from golden.errors import GoldenError
from tests.conftest import WriteProfile, minimal_profile
from tests.unit import test_aws_publish as pub

moto_url = pub.moto_url
aws = pub.aws


@pytest.fixture
def setup(aws: str, write_profile: WriteProfile, profiles_dir: Path, tmp_path: Path) -> dict[str, Any]:
    name = write_profile("aws-boot", minimal_profile(target={"kind": "amazon-ebs", "region": "us-east-1"}))
    old, new = pub.make_ami("us-east-1", name, "b-old"), pub.make_ami("us-east-1", name, "b-new")
    lock = tmp_path / "images.lock"
    pub.write_lock(lock, name, [
        {"id": "b-revoked", "status": "revoked", "artifacts": {"us-east-1": old}},
        {"id": "b-new", "status": "passed", "artifacts": {"us-east-1": new}},
        {"id": "b-old", "status": "passed", "artifacts": {"us-east-1": old}},
    ], {})
    return {"name": name, "new": new, "lock": lock, "profiles": profiles_dir}


def leftovers() -> dict[str, list[str]]:
    """What a boot test could leave behind in moto: live instances, its groups, its keys."""
    ec2 = pub.AWS.ec2("us-east-1")
    live = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")]
    groups = [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]
              if g["GroupName"].startswith("golden-boot-")]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    return {"instances": live, "groups": groups, "keys": keys}


def run(s: dict[str, Any], verify: boottest.Verify) -> str:
    return boottest.boot_test(s["name"], instance_type="p5.48xlarge", lock_path=s["lock"],
                              profiles_dir=s["profiles"], verify=verify)


def test_boot_test_launches_the_newest_build_records_and_terminates(setup: dict[str, Any]) -> None:
    seen: list[tuple[str, str, int, str]] = []

    def verify(profile: str, host: str, key: Path) -> boottest.Outcome:
        ec2 = pub.AWS.ec2("us-east-1")
        running = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                   if i["State"]["Name"] == "running"]
        seen.append((profile, host, stat.S_IMODE(key.stat().st_mode), running[0]["ImageId"]))
        assert running[0]["InstanceType"] == "p5.48xlarge"
        assert running[0]["MetadataOptions"]["HttpTokens"] == "required"
        return boottest.Outcome(passed=True, checks=7, failed=0)

    out = run(setup, verify)
    assert out == "boot test of aws-boot build b-new on p5.48xlarge: passed (7 checks, 0 failed)"
    profile, host, mode, image = seen[0]
    assert profile == "aws-boot" and host.startswith("ssh://ubuntu@") and mode == 0o600
    assert image == setup["new"], "the newest passed, unrevoked build"
    entry = lockfile.load(setup["lock"])["profiles"]["aws-boot"]["builds"][1]
    assert entry["boot_test"]["status"] == "passed" and entry["boot_test"]["ami"] == setup["new"]
    assert leftovers() == {"instances": [], "groups": [], "keys": []}


def test_login_user_comes_from_the_os_data() -> None:
    """Debian's cloud images log in as admin, Ubuntu's as ubuntu (not `ubuntu` everywhere)."""
    assert boottest.login_user("debian-12") == "admin"
    assert boottest.login_user("debian-13") == "admin"
    assert boottest.login_user("ubuntu-24.04") == "ubuntu"


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_instance_is_terminated_on_error_and_interrupt(setup: dict[str, Any],
                                                       error: type[BaseException]) -> None:
    def verify(profile: str, host: str, key: Path) -> boottest.Outcome:
        assert leftovers()["instances"], "an instance is running while verify runs"
        raise error("boom")

    before = setup["lock"].read_text()
    with pytest.raises(error):
        run(setup, verify)
    assert leftovers() == {"instances": [], "groups": [], "keys": []}
    assert setup["lock"].read_text() == before, "no result recorded when verify did not finish"


def test_failed_boot_test_is_recorded_and_raises(setup: dict[str, Any]) -> None:
    def verify(profile: str, host: str, key: Path) -> boottest.Outcome:
        return boottest.Outcome(passed=False, checks=7, failed=2)

    with pytest.raises(GoldenError, match="FAILED"):
        run(setup, verify)
    entry = lockfile.load(setup["lock"])["profiles"]["aws-boot"]["builds"][1]
    assert entry["boot_test"]["status"] == "failed" and entry["boot_test"]["failed"] == 2
    assert leftovers()["instances"] == []
