"""The ``amazon-ebs`` target: bake on an EC2 build instance; the artifacts are AMIs per region.

Packer's amazon-ebs source launches the instance from the profile's base image
(the exact AMI in images.lock with ``--locked``, else the newest matching the
vendor's name filter), admits SSH from ``GOLDEN_BUILDER_CIDR`` only, and copies
the encrypted AMI to ``ami_regions``. Packer's manifest names the AMIs.

With ``target.secure_boot`` the AMI boots UEFI with a variable store golden
writes for the build (``uefi_data``: Microsoft's keys, Secure Boot on, the
module signing certificate in ``db`` and the MOK list, golden/uefivars.py), and
the signing key travels to a tmpfs of the build instance by Packer's file
provisioner (only its path is on Packer's command line), where
42-module-signing signs the modules with it and destroys it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from golden import lockfile, packer, secureboot, uefivars
from golden.aws import clients, manifest, uefi_image
from golden.aws.clients import builder_cidr
from golden.errors import GoldenError
from golden.plan import BuildPlan
from golden.targets import Bake
from golden.targets.entry import build_entry, git_commit, progress
from golden.ui import step


def source_ami_from_lock(name: str, lock_path: Path) -> str:
    """The exact base AMI that `invoke lock.resolve` recorded (``resolved.source_image.ami_id``)."""
    resolved = (lockfile.load(lock_path)["profiles"].get(name) or {}).get("resolved") or {}
    image = resolved.get("source_image") if isinstance(resolved, dict) else None
    ami = image.get("ami_id") if isinstance(image, dict) else None
    if not isinstance(ami, str) or not ami.startswith("ami-"):
        raise GoldenError(f"no resolved base AMI for {name}; run `invoke lock.resolve --profile {name}` "
                          "or build without --locked", where="images.lock",
                          key=f"profiles.{name}.resolved.source_image.ami_id")
    return ami


#: The AMI's UEFI variable store (AWS's format) beside the build's files; public, like the certificate.
UEFI_DATA = "uefi-data.aws"


def signing_variables(how: Bake, out_dir: Path) -> dict[str, str]:
    """Packer's variables that upload the signing key and its certificate (Secure Boot), else none.

    The certificate is copied beside the build (``module-signing.der``, public, to enrol
    elsewhere); the key stays in the build's key directory, where Packer reads it.
    """
    if how.signing is None:
        return {}
    cert = out_dir / secureboot.CERT_ARTIFACT
    cert.write_bytes(how.signing.certificate.read_bytes())
    return {"signing_key_file": str(how.signing.key), "signing_certificate_file": str(cert)}


def secure_boot_amis(plan: BuildPlan, amis: dict[str, str], out_dir: Path, build_id: str) -> dict[str, str]:
    """Packer's AMI registered again with a UEFI store (golden/aws/uefi_image.py), and copied."""
    t = plan.profile.target
    store = uefivars.aws_store(out_dir / secureboot.CERT_ARTIFACT, out_dir / UEFI_DATA)
    with (step("Registering the Secure Boot AMI (boot mode uefi, golden's UEFI variable store)"),
          clients.aws_errors("build")):
        return uefi_image.register(clients.Clients().ec2, t.region, amis[t.region], store, build_id,
                                   architecture=packer.settings()["ec2_arch"][plan.profile.arch.value],
                                   copy_to=tuple(t.ami_regions))


class AmazonEbs:
    """Bake on EC2 with Packer's amazon-ebs source."""

    kind = "amazon-ebs"
    packer_source = "amazon-ebs.image"
    publishable = True
    max_tags = 50    # AWS's limit of user tags per AMI
    #: tmpfs on the build instance: the key never touches the volume that becomes the AMI.
    signing_dir = "/dev/shm/golden-signing"

    def check(self) -> None:
        builder_cidr()  # refuse a bad GOLDEN_BUILDER_CIDR before anything is written

    def template_context(self, plan: BuildPlan) -> dict[str, Any]:
        """The build instance, its base image's filter and the AMI's regions (golden/data/packer.yaml)."""
        p = plan.profile
        settings = packer.settings()
        image = settings["images"][p.os.value]
        t = p.target
        name_filter, owner = image["name_filter"].format(arch=p.arch.value), image["owner"]
        if t.source_image is not None and t.source_image.name_filter is not None:
            name_filter, owner = t.source_image.name_filter, str(t.source_image.owner)
        return {
            "region": t.region,
            "instance_type": t.build_instance_type,
            "ssh_username": image["ssh_username"],
            "root_device": image["root_device"],
            "root_volume_gb": int(t.root_volume_gb),
            "ami_regions": list(t.ami_regions),
            "ec2_arch": settings["ec2_arch"][p.arch.value],
            "name_filter": name_filter,
            "owner": owner,
            # Only an image with a driver has modules to sign (the gate says the same).
            "secure_boot": bool(t.secure_boot and plan.layer("driver")),
            "signing_dir": self.signing_dir,
        }

    def source_image(self, plan: BuildPlan) -> dict[str, Any]:
        """The profile's selector: the exact AMI id belongs to the AWS code, not to resolve."""
        t = plan.profile.target
        src = t.source_image
        selector = {k: v for k, v in dataclasses.asdict(src).items() if v is not None} if src else {}
        return {"kind": self.kind, "region": t.region, **selector}

    def describe(self, plan: BuildPlan) -> str:
        t = plan.profile.target
        line = (f"EC2 {t.region} on a {t.build_instance_type} build instance, "
                f"AMI copied to {', '.join(t.ami_regions) or t.region}")
        if t.secure_boot and plan.layer("driver"):
            line += ("; Secure Boot: the signing key on the builder's tmpfs, the AMI registered again by "
                     "golden with boot mode uefi and its UEFI store")
        return line

    def artifacts(self, entry: dict[str, Any], out_dir: Path) -> list[str]:
        return [f"  {region}  {ami}" for region, ami in entry["artifacts"].items()]

    def bake(self, plan: BuildPlan, out_dir: Path, build_id: str, how: Bake) -> dict[str, Any]:
        """The build entry's artifacts are region -> AMI id.

        Packer's manifest is read after the build: only the last run's entries count.
        """
        source_ami = source_ami_from_lock(plan.profile.name, how.lock_path) if how.locked else ""
        variables = {"build_id": build_id, "git_commit": git_commit(), "source_ami": source_ami,
                     "builder_cidr": builder_cidr(), **signing_variables(how, out_dir)}
        with step("Baking with packer (amazon-ebs)"):
            result = packer.build(out_dir, only=self.packer_source, variables=variables,
                                  log_path=out_dir / "packer.log", on_event=progress)
        amis = manifest.amis(result.manifest_path)
        if how.signing is not None:
            amis = secure_boot_amis(plan, amis, out_dir, build_id)
        report_path, release_path = out_dir / "verify-report.json", out_dir / "release.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        release = json.loads(release_path.read_text()) if release_path.is_file() else {}
        return build_entry(build_id, self.kind, report, release, artifacts=amis,
                           packer_run_uuid=result.run_uuid or "")
