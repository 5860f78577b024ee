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


#: A file of the signing key or certificate: relative to the repository root, or absolute.
KEY_PATH = re.compile(r"^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
#: An environment variable's name (it names the private key's file).
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")


class ImageFormat(StrEnum):
    """What a local bake ships: the root filesystem, or also a bootable GPT disk (raw, qcow2, and
    an OVMF variable store) with the distribution's signed shim and grub."""

    ROOTFS = "rootfs"
    DISK = "disk"


@dataclass(frozen=True)
class SigningKeySource:
    """Where the module signing key comes from (``target.signing_key``): made for each build
    (``per-build``: its private half is destroyed after signing), or a certificate and a private
    key the user keeps (``key``: a file; ``key_env``: an environment variable naming the file)."""

    per_build: bool = False
    certificate: str | None = None
    key: str | None = None
    key_env: str | None = None


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
    #: The key DKMS signs the modules with (only with ``secure_boot``); None: not said (the gate
    #: refuses that).
    signing_key: SigningKeySource | None = None
    #: local only: a root filesystem, or also a bootable disk.
    format: ImageFormat = ImageFormat.ROOTFS


def read_signing_key(t: Reader, secure_boot: bool) -> SigningKeySource | None:
    """``signing_key: per-build``, or a mapping of ``certificate`` and ``key`` or ``key_env``."""
    raw = t.data.get("signing_key")
    if raw is None:
        return None
    if not secure_boot:
        raise t.fail("signing_key", "only with secure_boot: true (nothing is signed otherwise)")
    if raw == "per-build":
        return SigningKeySource(per_build=True)
    if isinstance(raw, str):
        raise t.fail("signing_key", f"per-build, or a mapping of certificate and key or key_env; got {show(raw)}")
    s = t.section("signing_key")
    assert s is not None
    s.only("certificate", "key", "key_env")
    cert = s.required_text("certificate", KEY_PATH, "the signing certificate's file (DER or PEM), relative to "
                           "the repository or absolute (letters, digits, . _ - /)")
    key = s.text("key", KEY_PATH, "the private key's file (PEM), absolute or relative to the repository",
                 nullable=True)
    key_env = s.text("key_env", ENV_NAME, "the name of an environment variable that holds the private key's "
                     "file name (A-Z, 0-9, _)", nullable=True)
    if (key is None) == (key_env is None):
        raise s.fail(None, "exactly one of key (a file) or key_env (a variable naming the file)")
    return SigningKeySource(certificate=cert, key=key, key_env=key_env)


def read_target(r: Reader) -> Target:
    t = r.section("target")
    assert t is not None
    kind = t.enum("kind", TargetKind)
    secure_boot = t.flag("secure_boot", False)
    signing = read_signing_key(t, secure_boot)
    if kind is TargetKind.LOCAL:
        t.only("kind", "boot_test", "secure_boot", "signing_key", "format")
        return Target(kind=kind, boot_test=t.flag("boot_test", True), secure_boot=secure_boot, signing_key=signing,
                      format=t.enum("format", ImageFormat, ImageFormat.ROOTFS))
    t.only("kind", "region", "build_instance_type", "source_image", "root_volume_gb", "ami_regions",
           "share_with_accounts", "ssm_parameter_prefix", "secure_boot", "signing_key")
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
        secure_boot=secure_boot,
        signing_key=signing,
    )
