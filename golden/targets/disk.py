"""From a root filesystem to a bootable disk: unpack a rootfs archive, write a tree as a disk.

The boot test writes its disk here from the unpacked artifact; a target that
ships disks (issue 10) writes its artifact with the same code instead of a copy.
Today there is one format, what direct kernel boot needs: a raw ext4 filesystem
with no partition table, labelled ``golden-root`` and mounted as ``/dev/vda``.
``mkfs.ext4 -d`` copies the files itself, so there is no loop device, no mount
and nothing to clean up but the file. A GPT disk with an ESP for UEFI is a
second writer beside :func:`write_ext4`.

>>> ROOTFS_TAR_FLAGS
('--numeric-owner', '--xattrs', '--xattrs-include=*')
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

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
