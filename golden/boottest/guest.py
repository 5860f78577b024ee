"""The guest: QEMU's command line, running it, and a root shell in it over SSH.

QEMU's network is user-mode with only the guest's sshd forwarded, to 127.0.0.1;
the serial console goes to the boot log. Whatever happens (success, failure,
Ctrl-C, SIGTERM) QEMU is stopped on the way out of :func:`guest`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from golden.boottest.console import refusal, strip_escapes
from golden.boottest.firmware import Firmware
from golden.boottest.media import GUEST_MAC, Media
from golden.errors import GoldenError, StepFailed
from golden.run import run, spawn, stop

#: Guest memory; the module and systemd fit easily, TCG is the cost.
MEMORY_MB = 2048
#: From QEMU start to sshd answering; TCG on 2 busy cores boots in well under this.
SSH_TIMEOUT_S = 420.0


def qemu_accel() -> str:
    """``tcg`` unless ``GOLDEN_QEMU_ACCEL`` says otherwise: KVM on these build machines fails
    (MSR errors, or a guest that hangs once the kernel is decompressed); TCG works everywhere."""
    return os.environ.get("GOLDEN_QEMU_ACCEL", "tcg")


def nvme_args(disks: tuple[Path, ...]) -> list[str]:
    """Emulated NVMe disks (the guest sees the model "QEMU NVMe Ctrl"): the data disks' stand-ins.

    >>> nvme_args((Path("n0.raw"),))
    ['-drive', 'file=n0.raw,if=none,id=nvme0,format=raw', '-device', 'nvme,serial=golden-nvme-0,drive=nvme0']
    """
    out: list[str] = []
    for i, disk in enumerate(disks):
        out += ["-drive", f"file={disk},if=none,id=nvme{i},format=raw",
                "-device", f"nvme,serial=golden-nvme-{i},drive=nvme{i}"]
    return out


def qemu_argv(firmware: Firmware, media: Media, seed: Path, port: int, *, accel: str = "tcg",
              memory_mb: int = MEMORY_MB, cpus: int = 2, nvme: tuple[Path, ...] = ()) -> list[str]:
    """The QEMU command line: ``firmware`` boots ``media``, virtio disks (and ``nvme`` as NVMe
    disks), sshd forwarded to loopback only.

    >>> from golden.boottest.linux import LINUX
    >>> from golden.boottest.media import Kernel
    >>> media = Media(Path("d"), Kernel("6.1", Path("/v"), Path("/i")))
    >>> [a for a in qemu_argv(LINUX, media, Path("s"), 2222) if "hostfwd" in a]
    ['user,id=net0,restrict=off,hostfwd=tcp:127.0.0.1:2222-:22']
    """
    cpus = min(cpus, firmware.max_cpus or cpus)
    return ["qemu-system-x86_64", "-accel", accel, "-m", str(memory_mb), "-smp", str(cpus),
            "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none",
            *firmware.qemu_args(media),
            "-drive", f"file={media.disk},format=raw,if=virtio,cache=unsafe",
            "-drive", f"file={seed},format=raw,if=virtio,readonly=on",
            *nvme_args(nvme),
            "-netdev", f"user,id=net0,restrict=off,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}"]


@dataclass(frozen=True)
class GuestShell:
    """Commands in the guest as root over SSH, sharing one connection.

    Its host keys are new every boot, so they are not checked (it listens on
    127.0.0.1 only). An SSH handshake costs seconds of emulated CPU under TCG, so
    every command after the first rides the first one's connection (``control``).
    """

    port: int
    key: Path
    control: Path

    def argv(self, *command: str) -> list[str]:
        return ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.control}", "-o", "ControlPersist=60", "root@127.0.0.1", *command]

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run(self.argv(*command), check=False, timeout=timeout)

    def close(self) -> None:
        """Stop the shared connection (it would linger for ControlPersist otherwise)."""
        with contextlib.suppress(GoldenError, subprocess.TimeoutExpired):
            run(["ssh", "-o", f"ControlPath={self.control}", "-p", str(self.port), "-O", "exit",
                 "root@127.0.0.1"], check=False, timeout=30)


def _log_tail(log: Path, n: int = 3) -> str:
    r"""The console's last ``n`` lines with text, without terminal escapes.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
    ...     _ = f.write("a\n\x1b[2J\x1b[01;01H\nb\n\x1b[0mc\n")
    >>> _log_tail(Path(f.name), 2)
    'b | c'
    """
    with contextlib.suppress(OSError):
        lines = [strip_escapes(x).strip() for x in log.read_text(errors="replace").splitlines()]
        return " | ".join([x for x in lines if x][-n:])
    return ""


def wait_for_ssh(shell: GuestShell, proc: subprocess.Popen[str], log: Path,
                 timeout: float = SSH_TIMEOUT_S) -> None:
    """Until root can run a command over SSH; fails early when QEMU exits or the console shows
    a refusal that no waiting mends (:mod:`.console`: the firmware would not start the boot loader)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            refused = refusal(log.read_text(errors="replace"))
            if refused:
                raise StepFailed(refused, where=str(log))
        if proc.poll() is not None:
            raise StepFailed(f"the guest stopped before sshd answered (QEMU exit {proc.returncode}): "
                             f"{_log_tail(log)}", where=str(log))
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", shell.port), timeout=2) as s:
            s.settimeout(5)
            if s.recv(4).startswith(b"SSH-") and shell.run("true", timeout=30).returncode == 0:
                return
        time.sleep(2)
    # Where the guest got to says why: the firmware, grub, the kernel or a unit.
    raise StepFailed(f"sshd in the guest did not answer on 127.0.0.1:{shell.port} within {timeout:.0f}s; "
                     f"the console's last lines: {_log_tail(log, 5)}", where=str(log))


@contextlib.contextmanager
def guest(firmware: Firmware, media: Media, seed: Path, log: Path, port: int,
          accel: str, nvme: tuple[Path, ...] = ()) -> Iterator[subprocess.Popen[str]]:
    """QEMU running with the serial console in ``log``; always stopped on the way out."""
    with log.open("w") as fh:
        proc = spawn(qemu_argv(firmware, media, seed, port, accel=accel, nvme=nvme),
                     stdout=fh.fileno(), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop(proc, grace=5)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, ``kill``) unwinds like Ctrl-C, so QEMU is stopped and
    the scratch files removed instead of being left behind by a dying process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
