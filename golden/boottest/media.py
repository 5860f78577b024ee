"""What the boot test boots, made from the artifact: the disk, the kernel, the cloud-init seed.

A rootfs artifact is unpacked into a scratch tree, given what a throwaway test
boot needs (:func:`prepare_tree`), written as a disk by :mod:`golden.targets.disk`
(the same writer a disk target uses), and its kernel and initrd are taken out
for direct kernel boot. The artifact itself is never changed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from golden.errors import GoldenError
from golden.run import run
from golden.targets.disk import unpack_rootfs, write_ext4

#: Changes a test makes to the unpacked tree before the disk is made (planted faults).
Plant = Callable[[Path], None]


@dataclass(frozen=True)
class Kernel:
    """The image's kernel and initrd (as paths inside an unpacked tree, or copied out of it)."""

    version: str
    vmlinuz: Path
    initrd: Path


@dataclass(frozen=True)
class Media:
    """What QEMU is given: the root disk, the kernel when the firmware boots one
    from the host (``linux``) rather than from the disk (``uefi``), and UEFI's
    variable store (a copy for this boot)."""

    disk: Path
    kernel: Kernel | None = None
    vars: Path | None = None


def find_kernel(tree: Path) -> Kernel:
    """The newest kernel under ``tree/boot`` that has an initrd, as the image would boot it.

    Debian's ``/vmlinuz`` link names the default kernel; it wins when present.
    """
    boot = tree / "boot"
    link = tree / "vmlinuz"
    if link.is_symlink():
        version = Path(link.readlink()).name.removeprefix("vmlinuz-")
        kernel = _kernel_files(boot, version)
        if kernel:
            return kernel
    versions = sorted((p.name.removeprefix("vmlinuz-") for p in boot.glob("vmlinuz-*")),
                      key=_version_key, reverse=True)
    for version in versions:
        kernel = _kernel_files(boot, version)
        if kernel:
            return kernel
    raise GoldenError("no kernel with an initrd in the image (boot/vmlinuz-*, boot/initrd.img-*)",
                      where=boot)


def _kernel_files(boot: Path, version: str) -> Kernel | None:
    vmlinuz, initrd = boot / f"vmlinuz-{version}", boot / f"initrd.img-{version}"
    return Kernel(version, vmlinuz, initrd) if vmlinuz.is_file() and initrd.is_file() else None


def _version_key(version: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", version)]


def prepare_tree(tree: Path, public_key: str) -> None:
    """Make an unpacked image bootable for this test only (the artifact is not changed).

    Root logs in with ``public_key``; sshd gets host keys (the bake's cleanup
    removed them; cloud-init makes new ones at first boot where it runs); ``/dev/vda``
    is the root in fstab. The network is the image's own: cloud-init configures DHCP
    on the first NIC, as it would on a cloud instance.
    """
    ssh_dir = tree / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key.strip() + "\n")
    keys.chmod(0o600)
    (tree / "etc/ssh").mkdir(parents=True, exist_ok=True)
    # ssh-keygen -A -f ROOT writes ROOT/etc/ssh/ssh_host_*_key.
    run(["ssh-keygen", "-A", "-f", str(tree)])
    (tree / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")


def unpack(artifact: Path, work: Path, key: Path, plant: Plant | None = None) -> Kernel:
    """``work/rootfs`` from the rootfs artifact, prepared (and planted) for the test, with
    a new SSH key pair at ``key``; returns the kernel, copied out to ``work`` for QEMU."""
    if not artifact.name.endswith((".tar", ".tar.zst")):
        raise GoldenError("the boot test makes its disk from a rootfs artifact (.tar, .tar.zst); "
                          "booting a disk artifact as it is is not built yet", where=artifact)
    tree = work / "rootfs"
    tree.mkdir(parents=True)
    unpack_rootfs(artifact, tree)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "golden-boottest", "-f", str(key)])
    prepare_tree(tree, key.with_name(key.name + ".pub").read_text())
    if plant is not None:
        plant(tree)
    kernel = find_kernel(tree)
    # The kernel and initrd leave the tree: QEMU reads them from the host.
    boot_files = Kernel(kernel.version, work / "vmlinuz", work / "initrd")
    shutil.copyfile(kernel.vmlinuz, boot_files.vmlinuz)
    shutil.copyfile(kernel.initrd, boot_files.initrd)
    return boot_files


def write_disk(work: Path, kernel: Kernel) -> Media:
    """The unpacked ``work/rootfs`` as ``work/disk.raw`` (the tree is removed once written)."""
    tree, disk = work / "rootfs", work / "disk.raw"
    write_ext4(tree, disk)
    shutil.rmtree(tree)
    return Media(disk=disk, kernel=kernel)


#: The boot test's network: DHCP over IPv4 on the guest's one card, matched by its MAC
#: (guest.GUEST_MAC; the eni renderer ifupdown uses cannot match names by pattern). QEMU's
#: user-mode network has no DHCPv6 server, and cloud-init 25 (Debian 13) falls back to dhcp4
#: *and* dhcp6, which kept ifupdown's networking.service waiting until its 5-minute timeout.
#: The guest's one network card (golden.boottest.guest gives QEMU this MAC).
GUEST_MAC = "52:54:00:12:34:56"
NETWORK_CONFIG = f"""\
version: 2
ethernets:
  boot0:
    match:
      macaddress: "{GUEST_MAC}"
    set-name: boot0
    dhcp4: true
    dhcp6: false
"""


def make_seed(user_data: Path, meta_data: Path, seed: Path) -> None:
    """A NoCloud seed: a small FAT image labelled ``cidata`` with user-data, meta-data and the
    boot test's network-config (NETWORK_CONFIG)."""
    run(["mkfs.vfat", "-n", "CIDATA", "-C", str(seed), "1024"])
    run(["mcopy", "-o", "-i", str(seed), str(user_data), "::user-data"])
    run(["mcopy", "-o", "-i", str(seed), str(meta_data), "::meta-data"])
    network = seed.with_name(seed.name + ".network-config")
    network.write_text(NETWORK_CONFIG)
    run(["mcopy", "-o", "-i", str(seed), str(network), "::network-config"])
    network.unlink()


#: Emulated NVMe disks a profile with data disks boots with, and each one's size (sparse files).
NVME_DISKS, NVME_DISK_BYTES = 2, 256 << 20


def nvme_files(work: Path, count: int) -> tuple[Path, ...]:
    """``count`` sparse raw files in the scratch directory, blank like a fresh instance store."""
    files = tuple(work / f"nvme{i}.raw" for i in range(count))
    for f in files:
        with f.open("wb") as fh:
            fh.truncate(NVME_DISK_BYTES)
    return files
