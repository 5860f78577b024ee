"""The ``linux`` firmware: QEMU loads the image's own kernel and initrd from the host.

No bootloader runs, so the root disk can be a bare filesystem (``/dev/vda``, see
:mod:`golden.targets.disk`) and the console is the serial line QEMU writes to the
boot log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from golden.boottest.media import Kernel, Media, write_disk
from golden.errors import GoldenError

#: The kernel command line: root on the virtio disk, console on the serial line, and a
#: panic stops QEMU (``-no-reboot``) instead of waiting for the SSH timeout.
CMDLINE = "root=/dev/vda rw console=ttyS0 panic=-1"


@dataclass(frozen=True)
class Linux:
    """Direct kernel boot."""

    name: str = "linux"
    max_cpus: int | None = None

    def qemu_args(self, media: Media) -> list[str]:
        if media.kernel is None:
            raise GoldenError("the linux firmware boots a kernel from the host; none was taken "
                              "out of the image", where=media.disk)
        return ["-kernel", str(media.kernel.vmlinuz), "-initrd", str(media.kernel.initrd),
                "-append", CMDLINE]

    def write_media(self, work: Path, kernel: Kernel) -> Media:
        """A bare ext4 disk (:func:`~golden.boottest.media.write_disk`) and the kernel beside it."""
        return write_disk(work, kernel)


LINUX = Linux()
