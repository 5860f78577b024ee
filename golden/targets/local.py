"""The ``local`` target: bake on this machine, no cloud account.

A working copy of a cached base root filesystem gets an sshd on 127.0.0.1 (in a
private mount namespace, see chroot_sshd), and Packer's ``null`` source reaches
it over SSH, so the very same provisioners and verification run as on EC2.
Whatever happens (success, failure, Ctrl-C) sshd is stopped, the namespace and
its mounts go with it, and the working copy is removed.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from golden.errors import StepFailed
from golden.run import run, spawn, stop
from golden.ui import say, step


@dataclass(frozen=True)
class Session:
    rootfs: Path
    host: str
    port: int
    user: str
    key: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_ssh(port: int, proc: subprocess.Popen[str], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise StepFailed("sshd inside the root filesystem exited: " + " | ".join(tail), where=str(log))
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if s.recv(4).startswith(b"SSH-"):
                return
        time.sleep(0.2)
    raise StepFailed(f"sshd did not answer on 127.0.0.1:{port} within {timeout:.0f}s", where=str(log))


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` visible in this namespace (should be none)."""
    prefix = str(path.resolve())
    with Path("/proc/mounts").open() as fh:
        points = [line.split()[1] for line in fh]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def remove_tree(path: Path) -> None:
    """Remove a working copy, refusing if anything is still mounted below it."""
    if not path.exists():
        return
    left = mounts_under(path)
    if left:
        raise StepFailed(f"refusing to remove {path}: still mounted: {', '.join(left)}", where=str(path))
    shutil.rmtree(path)


@contextlib.contextmanager
def session(base: Path, work: Path, log_dir: Path) -> Iterator[Session]:
    """Extract ``base`` into ``work/rootfs``, start sshd on loopback, yield, always clean up."""
    work.mkdir(parents=True, exist_ok=True)
    rootfs = work / "rootfs"
    keys = Path(tempfile.mkdtemp(prefix="golden-ssh-"))
    proc: subprocess.Popen[str] | None = None
    try:
        with step("Preparing the working copy"):
            rootfs.mkdir()
            run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", str(base), "-C", str(rootfs)])
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "golden-build", "-f", str(keys / "id")])
            # Throwaway host keys for this build (cleanup removes them from the image).
            for old in (rootfs / "etc/ssh").glob("ssh_host_*"):
                old.unlink()
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(rootfs / "etc/ssh/ssh_host_ed25519_key")])
            ssh_dir = rootfs / "root/.ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            shutil.copyfile(keys / "id.pub", ssh_dir / "authorized_keys")
            (ssh_dir / "authorized_keys").chmod(0o600)
            # apt inside the tree resolves names like the host does.
            resolv = rootfs / "etc/resolv.conf"
            resolv.unlink(missing_ok=True)
            shutil.copyfile("/etc/resolv.conf", resolv)
        port = free_port()
        log = log_dir / "sshd.log"
        with log.open("w") as log_fh:
            proc = spawn(["unshare", "--mount", "--propagation", "private", "--",
                          sys.executable, "-m", "golden.targets.chroot_sshd", str(rootfs), str(port)],
                         stdout=log_fh.fileno(), stderr=subprocess.STDOUT)
        _wait_for_ssh(port, proc, log)
        say(f"sshd inside the root filesystem on 127.0.0.1:{port}")
        yield Session(rootfs=rootfs, host="127.0.0.1", port=port, user="root", key=keys / "id")
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(keys, ignore_errors=True)
        with step("Removing the working copy"):
            remove_tree(work)



#: Where a local bake's image lies in its build directory (``build/NAME/``).
ARTIFACT = Path("artifacts") / "rootfs.tar.zst"


def artifact_path(out_dir: Path) -> Path:
    """``build/NAME/artifacts/rootfs.tar.zst``: the local image the bake swaps in and the boot test boots."""
    return out_dir / ARTIFACT


def export(rootfs: Path, dest: Path) -> None:
    """The root filesystem as a reproducible-ordered .tar.zst."""
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", "--zstd",
         "-cf", str(dest), "-C", str(rootfs), "."], timeout=3600)
