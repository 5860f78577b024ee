"""Secure Boot AMIs: the UEFI store golden writes (real virt-fw-vars), the key's upload in the
rendered HCL (packer validate), the registration against moto's server, the EC2 boot test's checks."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from golden import packer, render, secureboot, targets, uefivars
from golden.aws import boottest, uefi_image
from golden.errors import GoldenError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile
from golden.verify import Check
from tests.conftest import WriteProfile, minimal_profile, require_tool
from tests.unit import test_aws_boottest as aws_boot
from tests.unit import test_aws_publish as pub

moto_url = pub.moto_url
aws = pub.aws

#: Debian 12 on amazon-ebs with Secure Boot and the user's key (the R535 driver is Debian's).
SB_EBS = {"os": "debian-12", "kernel": "6.1.0-50-cloud-amd64",
          "target": {"kind": "amazon-ebs", "region": "us-east-1", "ami_regions": ["us-west-2"],
                     "secure_boot": True, "signing_key": "per-build"}}


def _cert(tmp: Path) -> Path:
    signing = secureboot.per_build(tmp / "keys", "p", "a" * 36)
    return signing.certificate


def test_the_amis_store_trusts_microsoft_and_the_build_certificate(tmp_path: Path) -> None:
    require_tool("openssl")
    cert = _cert(tmp_path)
    text = uefivars.aws_store(cert, tmp_path / "uefi-data.aws")
    assert base64.b64decode(text)[:8] == b"AMZNUEFI"      # AWS's store: its magic, then compressed variables
    store = uefivars.read_store(tmp_path / "uefi-data.aws")
    trusted = uefivars.trusted(store)
    ours = "sha256:" + hashlib.sha256(cert.read_bytes()).hexdigest()
    assert uefivars.enforcing(store)
    assert ours in trusted["db"] and trusted["MokList"] == [ours]
    assert len(trusted["db"]) >= 3 and trusted["KEK"] and len(trusted["PK"]) == 1   # Microsoft's, and ours
    # Read back into OVMF's format, it is the same store: what the boot test can boot.
    again = uefivars.read_store(uefivars.edk2_from(tmp_path / "uefi-data.aws", tmp_path / "vars.fd"))
    assert uefivars.trusted(again) == trusted and uefivars.enforcing(again)
    assert (tmp_path / "vars.fd").stat().st_size == uefivars.BLANK_VARS.stat().st_size


def _render(write_profile: WriteProfile, profiles_dir: Path, tmp_path: Path) -> Path:
    write_profile("sb-ebs", minimal_profile(extends="base/common", **SB_EBS))
    plan = make_plan(load_profile("sb-ebs", root=profiles_dir), load())
    out = tmp_path / "build" / "sb-ebs"
    render.render(plan, out)
    return out


def test_the_key_goes_to_a_tmpfs_of_the_builder_and_packer_validates(write_profile: WriteProfile,
                                                                      profiles_dir: Path, tmp_path: Path) -> None:
    require_tool("packer")
    out = _render(write_profile, profiles_dir, tmp_path)
    build = (out / "build.pkr.hcl").read_text()
    sources = (out / "sources.pkr.hcl").read_text()
    assert 'destination = "/dev/shm/golden-signing/mok.key"' in build
    assert "source      = var.signing_key_file" in build and "BEGIN" not in build
    # Uploaded after staging, before the driver layer's steps sign with it.
    assert (build.index("golden-signing/mok.key") < build.index("scripts/40-driver.sh")
            < build.index("scripts/42-module-signing.sh"))
    assert "GOLDEN_SIGNING_DIR=/dev/shm/golden-signing" in build
    assert "ami_regions = []" in sources     # golden copies the Secure Boot AMI itself
    plan = make_plan(load_profile("sb-ebs", root=profiles_dir), load())
    assert "registered again by golden with boot mode uefi" in targets.get("amazon-ebs").describe(plan)
    packer.validate(out)
    packer.fmt_check(out)


def test_without_secure_boot_nothing_is_uploaded(write_profile: WriteProfile, profiles_dir: Path,
                                                 tmp_path: Path) -> None:
    write_profile("ebs", minimal_profile(extends="base/common", os="debian-12", kernel="6.1.0-50-cloud-amd64",
                                         target={"kind": "amazon-ebs", "region": "us-east-1"}))
    out = tmp_path / "build" / "ebs"
    render.render(make_plan(load_profile("ebs", root=profiles_dir), load()), out)
    assert "mok.key" not in (out / "build.pkr.hcl").read_text()


def _packer_ami(region: str) -> str:
    """What Packer's amazon-ebs leaves: an AMI with the build's tags (moto gives it a snapshot)."""
    ec2 = pub.AWS.ec2(region)
    ami = ec2.register_image(Name="golden-sb-ebs-b1", RootDeviceName="/dev/xvda", Architecture="x86_64",
                             VirtualizationType="hvm")["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "golden:build-id", "Value": "b1"}])
    return ami


def test_the_secure_boot_ami_is_registered_with_the_store_and_copied(aws: str, tmp_path: Path) -> None:
    ami = _packer_ami("us-east-1")
    sent: list[dict[str, Any]] = []
    clients: dict[str, Any] = {}

    def ec2_for(region: str) -> Any:
        if region not in clients:
            client = pub.AWS.ec2(region)
            client.meta.events.register("provide-client-params.ec2.RegisterImage",
                                        lambda params, **_: sent.append(dict(params)))
            clients[region] = client
        return clients[region]

    # moto keeps its own snapshot for a registered AMI: that one is what must be registered again.
    (snap,) = [m["Ebs"]["SnapshotId"] for m in pub.AWS.ec2("us-east-1").describe_images(
        ImageIds=[ami])["Images"][0]["BlockDeviceMappings"]]
    amis = uefi_image.register(ec2_for, "us-east-1", ami, "QU1aTlVFRkk=", "b1", architecture="x86_64",
                               copy_to=("us-east-1", "us-west-2"))
    assert set(amis) == {"us-east-1", "us-west-2"} and ami not in amis.values()
    # What EC2 is asked for (moto keeps neither BootMode nor UefiData, so the request is what is checked).
    (request,) = sent
    assert request["BootMode"] == "uefi" and request["UefiData"] == "QU1aTlVFRkk="
    assert request["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == snap
    assert request["ImdsSupport"] == "v2.0" and request["EnaSupport"] is True and request["Architecture"] == "x86_64"
    east, west = pub.AWS.ec2("us-east-1"), pub.AWS.ec2("us-west-2")
    assert not east.describe_images(ImageIds=[ami])["Images"]          # the Packer AMI is gone
    copy = west.describe_images(ImageIds=[amis["us-west-2"]])["Images"][0]
    assert {"Key": "golden:build-id", "Value": "b1"} in copy.get("Tags", [])


def test_an_ami_without_a_snapshot_is_refused(aws: str) -> None:
    ec2 = pub.AWS.ec2("us-east-1")
    ami = ec2.register_image(Name="bare", RootDeviceName="/dev/xvda", Architecture="x86_64",
                             VirtualizationType="hvm")["ImageId"]
    image = dict(ec2.describe_images(ImageIds=[ami])["Images"][0])
    image["BlockDeviceMappings"] = []
    with pytest.raises(GoldenError, match="no EBS snapshot"):
        uefi_image.register_request(image, "x", "x86_64")


def _sb_setup(aws: str, write_profile: WriteProfile, profiles_dir: Path, tmp_path: Path) -> dict[str, Any]:
    name = write_profile("aws-sb-boot", minimal_profile(target={"kind": "amazon-ebs", "region": "us-east-1"}))
    ami = pub.make_ami("us-east-1", name, "b-sb")
    signing = secureboot.per_build(tmp_path / "keys", name, "c" * 36).record()
    lock = tmp_path / "images.lock"
    pub.write_lock(lock, name, [{"id": "b-sb", "status": "passed", "artifacts": {"us-east-1": ami},
                                 "secure_boot": signing}], {})
    return {"name": name, "lock": lock, "profiles": profiles_dir}


def test_a_secure_boot_build_is_never_launched_on_a_bios_only_instance_type(
        aws: str, write_profile: WriteProfile, profiles_dir: Path, tmp_path: Path) -> None:
    s = _sb_setup(aws, write_profile, profiles_dir, tmp_path)
    called: list[str] = []

    def verify(profile: str, host: str, key: Path) -> boottest.Outcome:
        called.append(host)
        return boottest.Outcome(True, 1, 0)

    with pytest.raises(GoldenError, match=r"t2\.micro boots legacy-bios, not uefi"):
        boottest.boot_test(s["name"], instance_type="t2.micro", lock_path=s["lock"], profiles_dir=s["profiles"],
                           verify=verify)
    assert not called and aws_boot.leftovers()["instances"] == []


def test_the_firmwares_secure_boot_state_is_recorded(aws: str, write_profile: WriteProfile, profiles_dir: Path,
                                                     tmp_path: Path) -> None:
    s = _sb_setup(aws, write_profile, profiles_dir, tmp_path)
    boottest.boot_test(s["name"], instance_type="p5.48xlarge", lock_path=s["lock"], profiles_dir=s["profiles"],
                       verify=lambda *a: boottest.Outcome(True, 9, 0, secure_boot="enforcing"))
    from golden import lockfile
    entry = lockfile.load(s["lock"])["profiles"][s["name"]]["builds"][0]
    assert entry["boot_test"]["secure_boot"] == "enforcing"
    assert boottest.firmware_state([Check("secure-boot-state", "enforcing", "enforcing", True)]) == "enforcing"
    assert boottest.firmware_state([Check("secure-boot-state", "", "", True, skipped=True)]) is None
