"""The ``target`` section of a profile: where the image is baked and what it becomes.

``local`` bakes on this machine (a root filesystem, or a bootable disk); ``amazon-ebs``
bakes an AMI on EC2. Read by :mod:`golden.profile`, which owns the rest of a profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from golden.profile_reader import Reader, show

REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)?\.[a-z0-9]+$")
ACCOUNT = re.compile(r"^[0-9]{12}$")
OWNER = re.compile(r"^([0-9]{12}|amazon|self|aws-marketplace)$")
SSM_PARAMETER = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
AMI_NAME_FILTER = re.compile(r"^[A-Za-z0-9 ._*?()/:-]{1,128}$")

def ssm_reserved(name: str) -> bool:
    """AWS refuses SSM parameter names whose first part begins with ``aws`` or ``ssm``
    (any case): ``/aws/...``, ``/ssm``, ``/AWSfoo/...``."""
    return name.lstrip("/").split("/")[0].lower().startswith(("aws", "ssm"))


class TargetKind(StrEnum):
    AMAZON_EBS = "amazon-ebs"
    LOCAL = "local"


@dataclass(frozen=True)
class SourceImage:
    ssm_parameter: str | None = None
    name_filter: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    # amazon-ebs
    region: str = "us-east-1"
    build_instance_type: str = "c6i.2xlarge"
    source_image: SourceImage | None = None
    root_volume_gb: int = 64
    ami_regions: tuple[str, ...] = ()
    share_with_accounts: tuple[str, ...] = ()
    ssm_parameter_prefix: str = "/golden"
    # local
    boot_test: bool = True
    #: The image must boot with UEFI Secure Boot: the kernel module must be signed by a key
    #: the kernel trusts (verification fails otherwise).
    secure_boot: bool = False


def read_target(r: Reader) -> Target:
    t = r.section("target")
    assert t is not None
    kind = t.enum("kind", TargetKind)
    if kind is TargetKind.LOCAL:
        t.only("kind", "boot_test", "secure_boot")
        return Target(kind=kind, boot_test=t.flag("boot_test", True), secure_boot=t.flag("secure_boot", False))
    t.only("kind", "region", "build_instance_type", "source_image", "root_volume_gb", "ami_regions",
           "share_with_accounts", "ssm_parameter_prefix", "secure_boot")
    src = t.section("source_image", required=False)
    source_image = None
    if src is not None:
        src.only("ssm_parameter", "name_filter", "owner")
        ssm = src.text("ssm_parameter", SSM_PARAMETER, "an SSM parameter path such as /aws/service/...",
                       nullable=True)
        name_filter = src.text("name_filter", AMI_NAME_FILTER, "an AMI name pattern (letters, digits, . _ - * ? / :)",
                               nullable=True)
        owner = src.text("owner", OWNER, "a 12-digit account id, amazon, self or aws-marketplace", nullable=True)
        if (ssm is None) == (name_filter is None):
            raise src.fail(None, "exactly one of ssm_parameter or name_filter (+ owner)")
        if name_filter is not None and owner is None:
            raise src.fail("owner", "required with name_filter: the AMI owner account")
        source_image = SourceImage(ssm_parameter=ssm, name_filter=name_filter, owner=owner)
    prefix = t.required_text("ssm_parameter_prefix", SSM_PARAMETER, "an SSM path such as /golden",
                             default="/golden")
    if ssm_reserved(prefix):
        raise t.fail("ssm_parameter_prefix", f"reserved by AWS: names whose first part begins with aws or ssm "
                                             f"(any case); got {show(prefix)}")
    region = t.required_text("region", REGION, "an AWS region such as us-east-1", default="us-east-1")
    return Target(
        kind=kind,
        region=region,
        build_instance_type=t.required_text("build_instance_type", INSTANCE_TYPE,
                                            "an EC2 instance type such as c6i.2xlarge", default="c6i.2xlarge"),
        source_image=source_image,
        root_volume_gb=t.integer("root_volume_gb", 64, 16, 2048),
        ami_regions=t.texts("ami_regions", REGION, "AWS regions such as us-west-2"),
        share_with_accounts=t.texts("share_with_accounts", ACCOUNT, "12-digit AWS account ids"),
        ssm_parameter_prefix=prefix,
        secure_boot=t.flag("secure_boot", False),
    )
