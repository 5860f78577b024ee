"""A Secure Boot AMI: registered by golden from the Packer AMI's snapshot, with its UEFI store.

Packer's amazon-ebs source makes its AMI with EC2's ``CreateImage``, which
takes no UEFI variable store (packer-plugin-amazon gives ``boot_mode`` and
``uefi_data`` only to its chroot and ebssurrogate builders). A Secure Boot
AMI needs one: Microsoft's keys, so the firmware starts the distro's signed
shim, Secure Boot on, and the build's module signing certificate, so the
kernel loads the NVIDIA module golden signed (golden/uefivars.py ``aws_store``).
So after the bake, in the build region:

1. ``RegisterImage`` a new AMI from the Packer AMI's snapshots, with the same
   name plus ``-secureboot``, the same tags, ``BootMode=uefi``, the store as
   ``UefiData``, ENA and IMDSv2 only, as Packer would have;
2. wait until it is available, then deregister the Packer AMI (its snapshots
   stay: the new AMI is made of them);
3. copy the new AMI to the profile's other ``ami_regions`` (``CopyImage``
   keeps the boot mode and the store; Packer copied nothing, see
   templates/packer/sources/amazon-ebs.pkr.hcl.j2).

What this sends to EC2 is tested against moto's server, which does not keep
``BootMode``/``UefiData`` (its ``RegisterImage`` ignores both): the tests read
the request golden made. EC2 itself was not reached from this project.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from golden.aws.publish import client_token
from golden.errors import GoldenError
from golden.ui import say

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

#: The new AMI's name is the Packer AMI's plus this (AMI names are unique per region and account).
SUFFIX = "-secureboot"


def _image(ec2: EC2Client, ami: str) -> dict[str, Any]:
    images = ec2.describe_images(ImageIds=[ami])["Images"]
    if not images:
        raise GoldenError(f"the bake's AMI {ami} is not there", where=str(ec2.meta.region_name))
    return dict(images[0])


def _mappings(image: dict[str, Any]) -> list[dict[str, Any]]:
    """The Packer AMI's EBS mappings, as RegisterImage takes them (snapshot, size, type, iops)."""
    out = []
    for m in image.get("BlockDeviceMappings", []):
        ebs = m.get("Ebs")
        if not ebs or not ebs.get("SnapshotId"):
            continue
        keep = {k: ebs[k] for k in ("SnapshotId", "VolumeSize", "VolumeType", "Iops", "Throughput",
                                    "DeleteOnTermination") if k in ebs}
        out.append({"DeviceName": m["DeviceName"], "Ebs": keep})
    if not out:
        raise GoldenError(f"the bake's AMI {image.get('ImageId')} has no EBS snapshot to register from",
                          where="amazon-ebs")
    return out


def register_request(image: dict[str, Any], uefi_data: str, architecture: str) -> dict[str, Any]:
    """The ``RegisterImage`` parameters of the Secure Boot AMI made from the Packer AMI ``image``.

    >>> image = {"ImageId": "ami-1", "Name": "golden-p-b", "RootDeviceName": "/dev/sda1",
    ...          "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-1"}}],
    ...          "Tags": [{"Key": "golden:build-id", "Value": "b"}, {"Key": "aws:x", "Value": "y"}]}
    >>> r = register_request(image, "QU1aTlVFRkk=", "x86_64")
    >>> r["Name"], r["BootMode"], r["UefiData"], r["ImdsSupport"], r["TagSpecifications"][0]["Tags"]
    ('golden-p-b-secureboot', 'uefi', 'QU1aTlVFRkk=', 'v2.0', [{'Key': 'golden:build-id', 'Value': 'b'}])
    """
    tags = [t for t in image.get("Tags", []) if not str(t["Key"]).startswith("aws:")]
    request: dict[str, Any] = {
        "Name": f"{image['Name']}{SUFFIX}",
        "Description": image.get("Description") or f"{image['Name']} with Secure Boot",
        "Architecture": architecture,
        "RootDeviceName": image["RootDeviceName"],
        "BlockDeviceMappings": _mappings(image),
        "VirtualizationType": "hvm",
        "EnaSupport": True,
        "BootMode": "uefi",
        "UefiData": uefi_data,
        "ImdsSupport": "v2.0",
    }
    if tags:
        request["TagSpecifications"] = [{"ResourceType": "image", "Tags": tags}]
    return request


def register(ec2_for: Callable[[str], EC2Client], region: str, packer_ami: str, uefi_data: str,
             build_id: str, *, architecture: str, copy_to: tuple[str, ...] = ()) -> dict[str, str]:
    """The Secure Boot AMI in ``region`` and its copies in ``copy_to``: region -> AMI id.
    ``architecture`` is EC2's name of the profile's (``x86_64``, ``arm64``).

    ``ec2_for(region)`` gives a client; the Packer AMI is deregistered once the new one is
    available, never before.
    """
    ec2 = ec2_for(region)
    image = _image(ec2, packer_ami)
    request = register_request(image, uefi_data, architecture)
    new = ec2.register_image(**request)["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[new])
    say(f"{region}: registered {new} (Secure Boot: boot mode uefi, golden's UEFI variable store) "
        f"from {packer_ami}'s snapshot")
    ec2.deregister_image(ImageId=packer_ami)
    out = {region: new}
    for other in copy_to:
        if other == region:
            continue
        there = ec2_for(other)
        copy = there.copy_image(SourceRegion=region, SourceImageId=new, Name=request["Name"],
                                Description=request["Description"],
                                ClientToken=client_token(build_id, other))["ImageId"]
        tags = request.get("TagSpecifications", [{}])[0].get("Tags", [])
        if tags:  # CopyImage copies no tags
            there.create_tags(Resources=[copy], Tags=tags)
        there.get_waiter("image_available").wait(ImageIds=[copy])
        say(f"{other}: copied {new} -> {copy}")
        out[other] = copy
    return dict(sorted(out.items()))
