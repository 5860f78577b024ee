"""The ``uefi`` and ``uefi-secure-boot`` firmware: OVMF boots the disk's own shim and grub.

The disk is a GPT disk from :func:`golden.targets.disk.write_uefi_disk`; OVMF's
code is read-only pflash, its variable store a per-boot copy (the guest writes
to it). ``uefi-secure-boot`` is OVMF's Secure Boot build, which needs SMM and the
flash's secure property on a q35 machine, and a store made by ``virt-fw-vars``
with Microsoft's keys enrolled (they sign shim), Secure Boot on, and the image's
module signing certificate as a MOK (owner: shim's GUID), so the kernel trusts
it through the ``.machine`` keyring as if MokManager had enrolled it.

``Uefi.store`` boots with a given store instead (edk2's or AWS's format, read
through ``virt-fw-vars``): the AMI's ``uefi_data`` golden registers, booted
here under OVMF, is the firmware an EC2 instance of that AMI starts with.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from golden.boottest.media import Kernel, Media
from golden.errors import GoldenError
from golden.run import run
from golden.targets.disk import write_root_fstab, write_uefi_disk
from golden.uefivars import BLANK_VARS, DKMS_CERT, OVMF, SHIM_GUID, edk2_from, vars_argv, virt_fw_vars

# The variable store's pieces live in golden/uefivars.py (the local target's disk artifacts use them too).
__all__ = ["BLANK_VARS", "DKMS_CERT", "OVMF", "SHIM_GUID", "UEFI", "UEFI_SECURE_BOOT", "Uefi", "boot_copy",
           "vars_argv", "virt_fw_vars"]


def boot_copy(store: Path, work: Path) -> Path:
    """A copy of ``store`` for one boot: the guest writes its variables, the template stays."""
    copy = work / f"vars-{uuid.uuid4().hex[:8]}.fd"
    shutil.copyfile(store, copy)
    return copy


@dataclass(frozen=True)
class Uefi:
    """OVMF from pflash; ``secure_boot`` picks the Secure Boot build and an enrolled store."""

    name: str
    secure_boot: bool
    code: Path
    max_cpus: int | None = None
    #: Boot with this variable store (edk2 or AWS format) instead of one made for the image.
    store: Path | None = None

    def machine_args(self) -> list[str]:
        if not self.secure_boot:
            return ["-machine", "q35"]
        return ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]

    def qemu_args(self, media: Media) -> list[str]:
        if media.vars is None:
            raise GoldenError(f"the {self.name} firmware needs a variable store; none was made",
                              where=media.disk)
        return [*self.machine_args(),
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={self.code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={media.vars}"]

    def write_media(self, work: Path, kernel: Kernel) -> Media:
        """``work/rootfs`` as a GPT disk booting ``kernel`` by its root UUID (the tree is removed),
        and this boot's variable store, with the image's DKMS certificate when it has one."""
        tree, root_uuid = work / "rootfs", str(uuid.uuid4())
        write_root_fstab(tree, root_uuid)
        certs = []
        if self.secure_boot and (tree / DKMS_CERT).is_file():
            certs.append(work / "mok.der")
            shutil.copyfile(tree / DKMS_CERT, certs[0])
        disk = write_uefi_disk(tree, work / "disk.raw", kernel.version, root_uuid=root_uuid)
        shutil.rmtree(tree)
        template = work / "vars-template.fd"
        if self.store is not None:
            edk2_from(self.store, template)
        else:
            run(vars_argv(template, secure_boot=self.secure_boot, mok_certs=certs))
        return Media(disk=disk.path, vars=boot_copy(template, work))


UEFI = Uefi("uefi", secure_boot=False, code=OVMF / "OVMF_CODE_4M.fd")
#: One virtual CPU: OVMF's SMM build with two under TCG now and then never gets past shim
#: (an SMI rendezvous between the CPUs; lxd and Proxmox report the same stall with SMM on).
UEFI_SECURE_BOOT = Uefi("uefi-secure-boot", secure_boot=True, code=OVMF / "OVMF_CODE_4M.secboot.fd", max_cpus=1)
