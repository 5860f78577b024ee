"""From a root filesystem to a bootable disk: unpack a rootfs archive, write a tree as a disk.

The boot test writes its disk here from the unpacked artifact; a target that
ships disks (issue 10) writes its artifact with the same code instead of a copy.
Today there is one format, what direct kernel boot needs: a raw ext4 filesystem
with no partition table, labelled ``golden-root`` and mounted as ``/dev/vda``.
``mkfs.ext4 -d`` copies the files itself, so there is no loop device, no mount
and nothing to clean up but the file.

The second writer, :func:`write_uefi_disk`, makes a GPT disk that firmware boots
(OVMF, a cloud's UEFI, bare metal): an EFI system partition holding the image's
own signed shim, MokManager and grub, and the root filesystem, each written as a
file (``mkfs.vfat -C`` + ``mmd``/``mcopy``, ``mkfs.ext4 -d``) and put at its
offset with ``dd conv=notrunc,sparse`` after ``sgdisk`` wrote the table. Still no
loop device and no mount. (gdisk 1.0.9's ``sgdisk -q`` writes no partitions at
all, so it is never passed.)

>>> ROOTFS_TAR_FLAGS
('--numeric-owner', '--xattrs', '--xattrs-include=*')
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from golden.errors import GoldenError
from golden.run import run

#: Free space on a disk beyond the files (journal, cloud-init, DKMS logs of a first boot).
DISK_SLACK_BYTES = 768 << 20
#: How a root filesystem archive is read and written: owners as numbers (the host's
#: names differ from the image's) and extended attributes, which hold file capabilities.
ROOTFS_TAR_FLAGS = ("--numeric-owner", "--xattrs", "--xattrs-include=*")


def unpack_rootfs(archive: Path, tree: Path) -> None:
    """Extract a rootfs archive (``.tar``, ``.tar.zst``) into ``tree`` with its permissions."""
    run(["tar", *ROOTFS_TAR_FLAGS, "-xpf", str(archive), "-C", str(tree)], timeout=1800)


def tree_bytes(tree: Path) -> int:
    """Bytes of the files below ``tree`` (links not followed), for sizing the disk."""
    total = 0
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def ext4_size_mb(tree_size: int) -> int:
    """The disk's size for ``tree_size`` bytes of files: a quarter more for ext4's own
    blocks and inodes, plus :data:`DISK_SLACK_BYTES` for what the first boot writes.

    >>> ext4_size_mb(0), ext4_size_mb(1 << 30)
    (768, 2048)
    """
    return (int(tree_size * 1.25) + DISK_SLACK_BYTES) >> 20


def write_ext4(tree: Path, disk: Path, *, label: str = "golden-root") -> None:
    """A raw ext4 image of ``tree`` at ``disk`` (replaced if present)."""
    run(["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(tree), str(disk),
         f"{ext4_size_mb(tree_bytes(tree))}M"], timeout=1800)


#: Where Debian's packages put the signed boot chain (``shim-signed``,
#: ``shim-helpers-amd64-signed``, ``grub-efi-amd64-signed``), inside the image, and the
#: name each has on the ESP. The firmware's fallback path ``EFI/BOOT/BOOTX64.EFI`` is shim,
#: which loads ``grubx64.efi`` (and ``mmx64.efi``, MokManager) from its own directory.
ESP_FILES = (("usr/lib/shim/shimx64.efi.signed", "EFI/BOOT/BOOTX64.EFI"),
             ("usr/lib/shim/mmx64.efi.signed", "EFI/BOOT/mmx64.efi"),
             ("usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "EFI/BOOT/grubx64.efi"))
#: Where Debian's signed grub reads its configuration (its prefix is built in).
GRUB_CFG = "EFI/debian/grub.cfg"
#: The EFI system partition's size: the boot chain is ~4 MiB; FAT32 needs ~33 MiB at least.
ESP_MB = 64
#: Partition alignment and the room GPT takes at each end (primary and backup tables).
ALIGN_MB = 1
#: The kernel command line after ``root=``: serial console first (the boot log), then the screen.
KERNEL_ARGS = "ro console=tty0 console=ttyS0 panic=-1"


@dataclass(frozen=True)
class UefiDisk:
    """A GPT disk written by :func:`write_uefi_disk`; ``root_uuid`` is what fstab should name."""

    path: Path
    root_uuid: str
    kernel: str
    esp_mb: int
    root_mb: int


def in_tree(tree: Path, path: str) -> Path:
    """``tree/path`` with symbolic links resolved inside ``tree`` (an absolute link in the
    image names a file of the image, not of the host); a missing file is a GoldenError."""
    current = tree / path
    for _ in range(40):
        if not current.is_symlink():
            break
        target = current.readlink()
        current = tree / str(target).lstrip("/") if target.is_absolute() else current.parent / target
    if not current.is_file():
        raise GoldenError(f"the image has no {path} (a UEFI disk needs shim-signed, "
                          "shim-helpers-amd64-signed and grub-efi-amd64-signed installed in it)",
                          where=tree / path)
    return current


def grub_cfg(root_uuid: str, kernel: str, args: str = KERNEL_ARGS) -> str:
    """grub's configuration: the pinned kernel, found by the root filesystem's UUID, at once.

    >>> print(grub_cfg("U", "6.1.0-50-cloud-amd64").splitlines()[3])
    linux /boot/vmlinuz-6.1.0-50-cloud-amd64 root=UUID=U ro console=tty0 console=ttyS0 panic=-1
    """
    return (f"set timeout=0\nsearch --no-floppy --fs-uuid --set=root {root_uuid}\n"
            f"echo 'golden: booting {kernel}'\n"
            f"linux /boot/vmlinuz-{kernel} root=UUID={root_uuid} {args}\n"
            f"initrd /boot/initrd.img-{kernel}\nboot\n")


def write_esp(tree: Path, esp: Path, cfg: str, size_mb: int = ESP_MB) -> None:
    """The EFI system partition as a FAT32 file: the image's boot chain and ``cfg``."""
    run(["mkfs.vfat", "-F", "32", "-n", "ESP", "-C", str(esp), str(size_mb << 10)])
    run(["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT", "::/EFI/debian"])
    for source, name in ESP_FILES:
        run(["mcopy", "-o", "-i", str(esp), str(in_tree(tree, source)), f"::/{name}"])
    cfg_file = esp.with_name(esp.name + ".grub.cfg")
    cfg_file.write_text(cfg)
    try:
        run(["mcopy", "-o", "-i", str(esp), str(cfg_file), f"::/{GRUB_CFG}"])
    finally:
        cfg_file.unlink()


def gpt_argv(disk: Path, esp_mb: int, root_mb: int) -> list[str]:
    """``sgdisk``'s command line: a new table, the ESP (``ef00``) and the x86-64 root (``8304``).

    >>> gpt_argv(Path("d"), 64, 100)[2:6]
    ['--new=1:1M:+64M', '--typecode=1:ef00', '--change-name=1:ESP', '--new=2:65M:+100M']
    """
    start = ALIGN_MB + esp_mb
    return ["sgdisk", "--clear", f"--new=1:{ALIGN_MB}M:+{esp_mb}M", "--typecode=1:ef00",
            "--change-name=1:ESP", f"--new=2:{start}M:+{root_mb}M", "--typecode=2:8304",
            "--change-name=2:golden-root", str(disk)]


def _place(part: Path, disk: Path, offset_mb: int) -> None:
    run(["dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={offset_mb}", "conv=notrunc,sparse",
         "status=none"], timeout=1800)


def write_root_fstab(tree: Path, root_uuid: str) -> None:
    """``tree/etc/fstab``: the root filesystem by its UUID (the disk's root partition), replacing
    the file. Only ever on a tree a disk is written from, never before a rootfs is exported."""
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc/fstab").write_text(f"UUID={root_uuid} / ext4 rw,errors=remount-ro 0 1\n")


def write_uefi_disk(tree: Path, disk: Path, kernel: str, *, root_uuid: str | None = None,
                    label: str = "golden-root", qcow2: Path | None = None) -> UefiDisk:
    """A GPT raw disk at ``disk`` that UEFI firmware boots into ``tree``'s kernel ``kernel``.

    The partitions are made as files next to ``disk`` and removed once placed;
    ``qcow2``, when given, is the same disk converted (``qemu-img convert``).
    """
    root_uuid = root_uuid or str(uuid.uuid4())
    root_mb = ext4_size_mb(tree_bytes(tree))
    esp, root = disk.with_name(disk.name + ".esp"), disk.with_name(disk.name + ".root")
    try:
        write_esp(tree, esp, grub_cfg(root_uuid, kernel))
        run(["mkfs.ext4", "-q", "-F", "-L", label, "-U", root_uuid, "-d", str(tree), str(root),
             f"{root_mb}M"], timeout=1800)
        with disk.open("wb") as fh:
            fh.truncate((2 * ALIGN_MB + ESP_MB + root_mb) << 20)
        run(gpt_argv(disk, ESP_MB, root_mb))
        _place(esp, disk, ALIGN_MB)
        _place(root, disk, ALIGN_MB + ESP_MB)
    finally:
        esp.unlink(missing_ok=True)
        root.unlink(missing_ok=True)
    if qcow2 is not None:
        run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(disk), str(qcow2)], timeout=1800)
    return UefiDisk(disk, root_uuid, kernel, ESP_MB, root_mb)
