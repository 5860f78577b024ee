"""Boot firmware: how QEMU starts the guest, chosen from the artifact (mkosi's ``Firmware``).

Each firmware lives in its own module as an object with a ``name`` and
``qemu_args(media)``, the arguments that boot the :class:`~golden.boottest.media.Media`;
:data:`FIRMWARE` names them, imported only when chosen. Today there is one:

- ``linux``: direct kernel boot (``-kernel``/``-initrd``/``-append``), for a rootfs
  artifact, which carries no bootloader (:mod:`golden.boottest.linux`).

Adding one (issue 13: ``uefi``, ``uefi-secure-boot``) is its module and one line::

    FIRMWARE = {
        "linux": "golden.boottest.linux:LINUX",
        "uefi": "golden.boottest.uefi:UEFI",   # OVMF pflash; the disk's own shim and grub
    }

:func:`finalize_firmware` already asks for those names for a disk artifact, so
until they exist such a boot stops with one line naming the firmware there is.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, cast

from golden.boottest.media import Media
from golden.errors import GoldenError


class Firmware(Protocol):
    """One way to boot the guest."""

    @property
    def name(self) -> str: ...

    def qemu_args(self, media: Media) -> list[str]:
        """QEMU arguments that start the guest from ``media`` (not the disk drive itself)."""
        ...


#: Firmware name -> ``module:attribute`` of its :class:`Firmware`.
FIRMWARE: dict[str, str] = {
    "linux": "golden.boottest.linux:LINUX",
}

#: File names of the two artifact formats: a root filesystem archive, or a bootable disk.
ROOTFS_SUFFIXES = (".tar", ".tar.zst")
DISK_SUFFIXES = (".raw", ".qcow2")


def lookup(name: str) -> Firmware:
    """The registered firmware ``name``; a :class:`GoldenError` naming those there are otherwise."""
    spec = FIRMWARE.get(name)
    if spec is None:
        raise GoldenError(f"the boot test has no {name!r} firmware; it has: {', '.join(sorted(FIRMWARE))}")
    module, _, attribute = spec.partition(":")
    return cast(Firmware, getattr(importlib.import_module(module), attribute))


def finalize_firmware(artifact: Path, *, secure_boot: bool = False) -> Firmware:
    """The firmware that boots ``artifact`` (mkosi's ``finalize_firmware``).

    A rootfs has no bootloader, so it boots ``linux``, with or without
    ``target.secure_boot`` (the module's signature is still checked in the guest);
    a disk boots its own bootloader with ``uefi``, or ``uefi-secure-boot`` when the
    profile asks for Secure Boot.
    """
    if artifact.name.endswith(ROOTFS_SUFFIXES):
        return lookup("linux")
    if artifact.name.endswith(DISK_SUFFIXES):
        return lookup("uefi-secure-boot" if secure_boot else "uefi")
    raise GoldenError(f"the boot test boots a rootfs ({', '.join(ROOTFS_SUFFIXES)}) or a disk "
                      f"({', '.join(DISK_SUFFIXES)}), not {artifact.name}", where=artifact)
