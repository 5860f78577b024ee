"""The ``linux`` firmware: QEMU loads the image's own kernel and initrd from the host.

No bootloader runs, so the root disk can be a bare filesystem (``/dev/vda``, see
:mod:`golden.targets.disk`) and the console is the serial line QEMU writes to the
boot log.
"""

from __future__ import annotations

from dataclasses import dataclass

from golden.boottest.media import Media
from golden.errors import GoldenError

#: The kernel command line: root on the virtio disk, console on the serial line, and a
#: panic stops QEMU (``-no-reboot``) instead of waiting for the SSH timeout.
CMDLINE = "root=/dev/vda rw console=ttyS0 panic=-1"


@dataclass(frozen=True)
class Linux:
    """Direct kernel boot."""

    name: str = "linux"

    def qemu_args(self, media: Media) -> list[str]:
        if media.kernel is None:
            raise GoldenError("the linux firmware boots a kernel from the host; none was taken "
                              "out of the image", where=media.disk)
        return ["-kernel", str(media.kernel.vmlinuz), "-initrd", str(media.kernel.initrd),
                "-append", CMDLINE]


LINUX = Linux()
