"""Run sshd inside a root filesystem, in a private mount namespace.

Started as ``unshare --mount --propagation private -- python -m
golden.targets.chroot_sshd ROOTFS PORT``. The mounts that a bake needs inside
the tree (/proc, /sys, /dev, /run) are made in this process's own namespace,
so they are invisible to the host and vanish when sshd and its children exit:
no mount can outlive the build, whatever kills it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from golden.run import run

MOUNTS = (
    ("proc", "proc", ["-t", "proc"]),
    ("sysfs", "sys", ["-t", "sysfs"]),
    ("/dev", "dev", ["--rbind"]),
    ("tmpfs", "run", ["-t", "tmpfs", "-o", "mode=0755"]),
)


def main(rootfs: Path, port: int) -> None:
    for source, target, opts in MOUNTS:
        run(["mount", *opts, source, str(rootfs / target)])
    (rootfs / "run/sshd").mkdir(mode=0o755, exist_ok=True)
    sshd = [
        "chroot", str(rootfs), "/usr/sbin/sshd", "-D", "-e",
        "-o", "ListenAddress=127.0.0.1", "-o", f"Port={port}",
        "-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no", "-o", "UsePAM=no",
        "-o", "AuthorizedKeysFile=.ssh/authorized_keys", "-o", "PidFile=none",
        "-o", "HostKey=/etc/ssh/ssh_host_ed25519_key",
    ]
    os.execvp(sshd[0], sshd)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
