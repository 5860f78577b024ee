"""The disk artifacts of a local ``target.format: disk`` bake: ``disk.raw``, ``disk.qcow2``, ``disk.vars.fd``.

Written from the bake's working copy after its root filesystem was exported
(rootfs.tar.zst is always shipped too), into the bake's staging directory, so a
failed build leaves the old artifacts as they were. The raw disk is GPT, made by
:func:`golden.targets.disk.write_uefi_disk` (the boot test's writer): the image's
own signed shim, MokManager and grub on the ESP, the root filesystem found by
its UUID. Only the disk's copy of ``/etc/fstab`` names that UUID: the working
copy's fstab is rewritten after the tarball was made, and the tree is removed
after. ``disk.qcow2`` is the same disk converted by ``qemu-img``, compressed with
zstd (see :data:`QCOW2_ARGS`), and
``disk.vars.fd`` an OVMF variable store for it (golden/uefivars.py): with
``target.secure_boot``, Microsoft's keys, Secure Boot on and the image's DKMS
certificate as a MOK; otherwise a blank store.

>>> DISK_FILES["raw"], DISK_FILES["qcow2"], DISK_FILES["vars"]
('disk.raw', 'disk.qcow2', 'disk.vars.fd')
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from golden import uefivars
from golden.errors import GoldenError
from golden.files import sha256_file, shown
from golden.run import run
from golden.targets.disk import write_root_fstab, write_uefi_disk

#: ``artifacts.disk`` key (images.lock) -> the file's name under ``build/NAME/artifacts/``.
DISK_FILES: Mapping[str, str] = {"raw": "disk.raw", "qcow2": "disk.qcow2", "vars": "disk.vars.fd"}
#: qemu-img's conversion, compressed with zstd. Measured here (2 cores, QEMU 7.2) on the disk of
#: a 691 MB Debian 12 tree: plain 0.3 s and 795 MB; ``-c`` (zlib) 19.7 s and 294 MB; ``-c`` with
#: zstd 4.4 s and 287 MB. zstd-compressed qcow2 needs QEMU 5.1 or later to read.
QCOW2_ARGS = ("qemu-img", "convert", "-c", "-o", "compression_type=zstd", "-f", "raw", "-O", "qcow2")


def image_kernel(tree: Path, pinned: str | None) -> str:
    """The kernel the disk boots: the profile's pinned one, else the one Debian's ``/vmlinuz``
    link names (the image's default)."""
    if pinned:
        return pinned
    link = tree / "vmlinuz"
    if link.is_symlink():
        return Path(link.readlink()).name.removeprefix("vmlinuz-")
    raise GoldenError("the image has no /vmlinuz link and the profile pins no kernel: "
                      "which kernel should the disk boot?", where=tree)


def write_disk(tree: Path, staging: Path, *, kernel: str, secure_boot: bool) -> dict[str, Path]:
    """The three disk files in ``staging`` from ``tree`` (its /etc/fstab is rewritten: only call
    this after the tree was exported), by their ``artifacts.disk`` key."""
    files = {key: staging / name for key, name in DISK_FILES.items()}
    root_uuid = str(uuid.uuid4())
    write_root_fstab(tree, root_uuid)
    write_uefi_disk(tree, files["raw"], kernel, root_uuid=root_uuid)
    run([*QCOW2_ARGS, str(files["raw"]), str(files["qcow2"])], timeout=1800)
    uefivars.write_vars(files["vars"], tree, secure_boot=secure_boot)
    return files


def disk_record(files: Mapping[str, Path], final_dir: Path) -> dict[str, dict[str, Any]]:
    """``artifacts.disk`` of the build entry: each file's path (where it lies once swapped in),
    sha256 and size, like ``artifacts.local``."""
    return {key: {"path": shown(final_dir / path.name), "sha256": sha256_file(path), "size": path.stat().st_size}
            for key, path in files.items()}
