"""Boot firmware: how QEMU starts the guest, chosen from the artifact (mkosi's ``Firmware``).

Each firmware lives in its own module as an object with a ``name`` and
``write_media(work, kernel)``, which makes the :class:`~golden.boottest.media.Media`
it boots from the prepared tree, and ``qemu_args(media)``, the arguments that boot it;
:data:`FIRMWARE` names them, imported only when chosen:

- ``linux``: direct kernel boot (``-kernel``/``-initrd``/``-append``), for a rootfs
  artifact, which carries no bootloader (:mod:`golden.boottest.linux`);
- ``uefi`` and ``uefi-secure-boot``: OVMF from pflash boots a GPT disk's own shim and
  grub, the second with Secure Boot enforcing (:mod:`golden.boottest.uefi`).

Adding one is its module and one line in :data:`FIRMWARE`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Protocol, cast

from golden.boottest.media import Kernel, Media
from golden.errors import GoldenError
from golden.profile_target import ImageFormat


class Firmware(Protocol):
    """One way to boot the guest."""

    @property
    def name(self) -> str: ...

    @property
    def max_cpus(self) -> int | None:
        """At most this many virtual CPUs, or None for the boot test's default."""
        ...

    def qemu_args(self, media: Media) -> list[str]:
        """QEMU arguments that start the guest from ``media`` (not the disk drive itself)."""
        ...

    def write_media(self, work: Path, kernel: Kernel) -> Media:
        """What this firmware boots, made from the prepared tree ``work/rootfs`` (then removed)."""
        ...


#: Firmware name -> ``module:attribute`` of its :class:`Firmware`.
FIRMWARE: dict[str, str] = {
    "linux": "golden.boottest.linux:LINUX",
    "uefi": "golden.boottest.uefi:UEFI",
    "uefi-secure-boot": "golden.boottest.uefi:UEFI_SECURE_BOOT",
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


def finalize_firmware(artifact: Path, *, secure_boot: bool = False,
                      image_format: ImageFormat = ImageFormat.ROOTFS) -> Firmware:
    """The firmware that boots ``artifact`` (mkosi's ``finalize_firmware``).

    A rootfs has no bootloader, so it boots ``linux``, with or without
    ``target.secure_boot`` (the module's signature is still checked in the guest);
    a disk boots its own bootloader with ``uefi``, or ``uefi-secure-boot`` when the
    profile asks for Secure Boot. A ``target.format: disk`` build (``image_format``,
    from its expectations.json: :func:`recorded_format`) boots through OVMF the same way
    even when the artifact handed over is its rootfs: the boot test writes its own
    disk from the same tree with the same writer
    (:func:`golden.targets.disk.write_uefi_disk`), plus its SSH key, so the bake's
    disk.raw itself is never changed.
    """
    uefi = "uefi-secure-boot" if secure_boot else "uefi"
    if artifact.name.endswith(ROOTFS_SUFFIXES):
        return lookup(uefi if image_format is ImageFormat.DISK else "linux")
    if artifact.name.endswith(DISK_SUFFIXES):
        return lookup(uefi)
    raise GoldenError(f"the boot test boots a rootfs ({', '.join(ROOTFS_SUFFIXES)}) or a disk "
                      f"({', '.join(DISK_SUFFIXES)}), not {artifact.name}", where=artifact)


def recorded_format(expectations: Path) -> ImageFormat:
    """``rootfs`` or ``disk``: the profile's ``target.format`` as the build recorded it in
    expectations.json (``rootfs`` for expectations written before the key existed)."""
    try:
        value = json.loads(expectations.read_text()).get("format") or "rootfs"
    except (OSError, ValueError, AttributeError) as e:
        raise GoldenError(f"not the expectations a build writes: {e}", where=expectations) from e
    if value not in tuple(ImageFormat):
        raise GoldenError(f"format: {' or '.join(ImageFormat)} expected, not {value!r}", where=expectations)
    return ImageFormat(value)
