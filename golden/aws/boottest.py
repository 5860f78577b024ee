"""`invoke verify --profile NAME --boot-test`: boot the newest build on a GPU instance.

Launches the profile's newest passed build once (its AMI in the profile's
region) on ``instance_type``, waits until it runs, runs the ``boot`` phase of
``verify/`` over SSH, records the result in the build entry, and always
terminates the instance and removes its throwaway key pair and security
group, also on an error or Ctrl-C::

    >>> print(boot_test("h100-r595", instance_type="p5.48xlarge"))
    boot test of h100-r595 build 3f1c... on p5.48xlarge: passed (41 checks)

A Secure Boot build (its lock entry has ``secure_boot``) boots only on an
instance type that boots UEFI (EC2's ``SupportedBootModes``, asked before
anything is launched), and the result records what the firmware said
(``secure_boot``: the ``secure-boot-state`` check of verify/test_module_signing.py).

``verify`` is the step run over SSH; tests inject their own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from golden import ROOT, bootkit, lockfile, packer
from golden.aws import clients
from golden.aws.publish import ami_artifacts, is_revoked
from golden.errors import GoldenError
from golden.profile import PROFILES, load_profile
from golden.ui import say
from golden.verify import Check

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

DEFAULT_INSTANCE_TYPE = "p5.48xlarge"


@dataclass(frozen=True)
class Outcome:
    passed: bool
    checks: int
    failed: int
    #: What the instance's firmware said of Secure Boot (enforcing | off | unknown); None: not asked.
    secure_boot: str | None = None


#: (profile, ssh://user@host, private key file) -> what the boot phase found.
Verify = Callable[[str, str, Path], Outcome]


def ssh_verify(profile: str, host: str, key: Path) -> Outcome:
    """The boot phase of verify/ over SSH, with the rendered expectations of build/NAME/."""
    from golden import verify

    expectations = ROOT / "build" / profile / "expectations.json"
    with tempfile.TemporaryDirectory(prefix="golden-probe-") as scratch:
        report = verify.run_verify(expectations, host, "boot", ROOT / "build" / profile / "verify-boot.json",
                                   ssh_key=key, uploads=bootkit.uploads(expectations.parent, Path(scratch)))
    return Outcome(passed=report.passed, checks=len(report.checks), failed=len(report.failed),
                   secure_boot=firmware_state(report.checks))


def firmware_state(checks: Iterable[Check]) -> str | None:
    """``enforcing``, ``off`` or ``unknown`` from the ``secure-boot-state`` check; None when it
    was skipped or not run (a profile without Secure Boot).

    >>> firmware_state([Check("secure-boot-state", "enforcing", "off", False)])
    'off'
    >>> firmware_state([Check("secure-boot-state", "enforcing", "no UEFI firmware", False)]), firmware_state([])
    ('unknown', None)
    """
    state = next((c for c in checks if c.name == "secure-boot-state" and not c.skipped), None)
    if state is None:
        return None
    return state.actual if state.actual in ("enforcing", "off") else "unknown"


def login_user(os_key: str) -> str:
    """The cloud image's login user for the OS (`ubuntu` on Ubuntu, `admin` on Debian), from
    golden/data/packer.yaml: the same user the bake's amazon-ebs source logs in as."""
    return str(packer.settings()["images"][os_key]["ssh_username"])


def newest_build(lock: lockfile.Lock, profile: str, region: str) -> dict[str, Any]:
    """The build entry of the newest passed, unrevoked build with an AMI in ``region``."""
    for b in (lock["profiles"].get(profile) or {}).get("builds", []):
        ami = ami_artifacts(b).get(region)
        if ami and b.get("status") == "passed" and not is_revoked(b):
            return dict(b)
    raise GoldenError(f"no passed build of {profile} with an AMI in {region}; run `invoke build`",
                      where="images.lock", key=f"profiles.{profile}.builds")


def boot_test(profile: str, *, instance_type: str = DEFAULT_INSTANCE_TYPE,
              lock_path: Path = lockfile.LOCK_PATH, profiles_dir: Path = PROFILES,
              verify: Verify = ssh_verify) -> str:
    """Launch, verify, record, terminate; return one line and raise if verification failed."""
    loaded = load_profile(profile, profiles_dir)
    region = loaded.target.region
    user = login_user(loaded.os.value)
    build = newest_build(lockfile.load(lock_path), profile, region)
    build_id, ami = str(build["id"]), ami_artifacts(build)[region]
    with clients.aws_errors("boot-test"):
        ec2 = clients.Clients().ec2(region)
        if build.get("secure_boot"):
            require_uefi(ec2, instance_type)
        with _instance(ec2, ami, instance_type, build_id) as (host, key):
            outcome = verify(profile, f"ssh://{user}@{host}", key)
    result: dict[str, Any] = {
        "status": "passed" if outcome.passed else "failed",
        "time": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "where": f"ec2:{instance_type}", "instance_type": instance_type, "region": region, "ami": ami,
        "checks": outcome.checks, "failed": outcome.failed}
    if outcome.secure_boot is not None:
        result["secure_boot"] = outcome.secure_boot
    lockfile.update(lambda lock: lockfile.record_boot_test(lock, profile, build_id, result), lock_path)
    line = (f"boot test of {profile} build {build_id} on {instance_type}: "
            f"{'passed' if outcome.passed else 'FAILED'} ({outcome.checks} checks, {outcome.failed} failed)")
    if not outcome.passed:
        raise GoldenError(line, where=region)
    return line


def require_uefi(ec2: EC2Client, instance_type: str) -> None:
    """Refuse, before launching anything, an instance type that cannot boot a UEFI AMI."""
    found = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]  # type: ignore[list-item]
    modes = list(found[0].get("SupportedBootModes", [])) if found else []
    if "uefi" not in modes:
        raise GoldenError(f"{instance_type} boots {' and '.join(modes) or 'no known boot mode'}, not uefi: a "
                          "Secure Boot AMI needs an instance type that boots UEFI", where="--instance-type")


@contextlib.contextmanager
def _instance(ec2: EC2Client, ami: str, instance_type: str, build_id: str) -> Iterator[tuple[str, Path]]:
    """A running instance of ``ami``: yields (address, SSH key file); always cleaned up."""
    name = f"golden-boot-{build_id[:8]}-{uuid.uuid4().hex[:8]}"
    cidr = clients.builder_cidr()
    instance_id: str | None = None
    group_id: str | None = None
    key_made = False
    with tempfile.TemporaryDirectory(prefix="golden-boot-") as tmp:
        try:
            material = ec2.create_key_pair(KeyName=name, KeyType="ed25519")["KeyMaterial"]
            key_made = True
            key = Path(tmp) / "id"
            key.touch(mode=0o600)
            key.write_text(material)
            group_id = ec2.create_security_group(GroupName=name, Description="golden boot test: SSH from "
                                                 "the builder only")["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}])
            tags: list[Any] = [{"Key": "Name", "Value": name}, {"Key": "golden:build-id", "Value": build_id}]
            reservation = ec2.run_instances(
                ImageId=ami, InstanceType=instance_type,  # type: ignore[arg-type]
                MinCount=1, MaxCount=1, KeyName=name, SecurityGroupIds=[group_id],
                MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
                InstanceInitiatedShutdownBehavior="terminate",
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
            instance_id = reservation["Instances"][0]["InstanceId"]
            say(f"launched {instance_id} ({instance_type}) from {ami}")
            ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id])
            desc = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
            host = desc.get("PublicIpAddress") or desc.get("PrivateIpAddress")
            if not host:
                raise GoldenError(f"instance {instance_id} has no address", where=str(ec2.meta.region_name))
            yield str(host), key
        finally:
            _cleanup(ec2, instance_id, group_id, name if key_made else None)


def _cleanup(ec2: EC2Client, instance_id: str | None, group_id: str | None, key_name: str | None) -> None:
    """Terminate first (a second Ctrl-C must not leave the GPU instance running), then the rest."""
    while True:
        try:
            if instance_id is not None:
                ec2.terminate_instances(InstanceIds=[instance_id])
                say(f"terminating {instance_id}")
                ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id])
            if group_id is not None:
                ec2.delete_security_group(GroupId=group_id)
            if key_name is not None:
                ec2.delete_key_pair(KeyName=key_name)
            return
        except KeyboardInterrupt:
            say("still cleaning up the boot test instance; interrupt again after it is gone")
            continue
