"""Boot a baked image under QEMU without a GPU and verify it from inside.

The local artifact (``build/NAME/artifacts/rootfs.tar.zst``) is unpacked into a
scratch directory, given what a throwaway test boot needs (an SSH key for root,
SSH host keys, an fstab for ``/dev/vda``, DHCP on the virtual NIC), written into a
raw ext4 disk with ``mkfs.ext4 -d`` (no loop devices, no mounts) and booted with
the image's own kernel and initrd. The profile's first-boot cloud-init goes in a
NoCloud ``cidata`` seed. Once sshd answers on a loopback port, the ``boot-nogpu``
phase of ``verify/`` runs over SSH.

    result = boot_test("local-debian12-r535")
    result.passed, result.boot_time_s, result.log

Whatever happens (success, failure, Ctrl-C) QEMU is stopped and the scratch
directory removed; only ``build/NAME/boot.log`` and the verify report stay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from golden.errors import GoldenError, StepFailed
from golden.run import run, spawn, stop
from golden.targets.local import artifact_path
from golden.ui import say, step
from golden.verify import Report, run_verify

#: Changes a test makes to the unpacked tree before the disk is made (planted faults).
Plant = Callable[[Path], None]

#: Guest memory; the module and systemd fit easily, TCG is the cost.
MEMORY_MB = 2048
#: From QEMU start to sshd answering; TCG on 2 busy cores boots in well under this.
SSH_TIMEOUT_S = 420.0
#: Free space on the test disk beyond the files (journal, cloud-init, DKMS logs).
DISK_SLACK_BYTES = 768 << 20
#: Lines in the serial log that always mean the module does not fit the kernel.
BAD_MODULE_LOG = ("Invalid module format", "Unknown symbol", "disagrees about version",
                  "version magic")


def qemu_accel() -> str:
    """``tcg`` unless ``GOLDEN_QEMU_ACCEL`` says otherwise: KVM on these build machines fails
    (MSR errors, or a guest that hangs once the kernel is decompressed); TCG works everywhere."""
    return os.environ.get("GOLDEN_QEMU_ACCEL", "tcg")


@dataclass(frozen=True)
class Kernel:
    """The image's kernel and initrd (as paths inside an unpacked tree)."""

    version: str
    vmlinuz: Path
    initrd: Path


@dataclass
class BootResult:
    """What a boot test found; ``passed`` only when the guest booted and verified clean."""

    profile: str
    log: Path
    report_path: Path
    kernel: str = ""
    #: QEMU's accelerator for this boot (``GOLDEN_QEMU_ACCEL``, read once).
    accel: str = field(default_factory=qemu_accel)
    report: Report | None = None
    boot_time_s: float | None = None
    multi_user_s: float | None = None
    wall_s: float = 0.0
    #: Wall seconds per stage (unpack, disk, boot to SSH, verify), for bench/boot.py.
    phases: dict[str, float] = field(default_factory=dict)
    #: The slowest units of the guest's boot (``systemd-analyze blame``), for bench/boot.py.
    slowest: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed and not self.problems

    def failures(self) -> list[str]:
        """One phrase per failed fact: the failed checks by name, then other problems."""
        out = [f"{c.name} (expected {c.expected}, actual {c.actual})"
               for c in (self.report.failed if self.report else ())]
        return out + self.problems

    def record(self) -> dict[str, Any]:
        """The result as images.lock's build entry holds it (``boot_test``)."""
        counts = self.report.counts if self.report else {"passed": 0, "failed": 0}
        out: dict[str, Any] = {
            "status": "passed" if self.passed else "failed",
            "time": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "where": f"qemu-{self.accel.split(',')[0]}", "kernel": self.kernel,
            "guest_boot_s": self.boot_time_s, "multi_user_s": self.multi_user_s,
            "wall_s": round(self.wall_s, 1), "checks": counts["passed"] + counts["failed"],
            "failed": counts["failed"]}
        if not self.passed:
            out["failures"] = self.failures()
        return out

    def summary(self) -> str:
        boot = f"{self.boot_time_s:.1f}s" if self.boot_time_s is not None else "unknown"
        phases = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self.phases.items())
        return (f"boot test {'passed' if self.passed else 'failed'} for {self.profile} "
                f"(kernel {self.kernel or 'unknown'}, guest boot {boot}, wall {self.wall_s:.0f}s"
                f"{': ' + phases if phases else ''})\n"
                + "".join(f"  {line}\n" for line in self.module_lines())
                + f"  boot log {self.log}\n  report   {self.report_path}")

    def module_lines(self) -> list[str]:
        """What the module did in the guest, in words (from the modprobe and signature checks)."""
        lines = []
        for check in self.report.checks if self.report else ():
            module = check.name.partition("[")[2].rstrip("]")
            if check.name.startswith("modprobe["):
                lines.append({
                    "no-device": f"module {module}: ABI-compatible with {self.kernel or 'the kernel'} "
                                 "(loads up to \"No NVIDIA GPU found\")",
                    "loaded": f"module {module}: loaded",
                }.get(check.actual, f"module {module}: {check.actual}"))
            elif check.name.startswith("module-signature["):
                lines.append(f"module {module}: {check.actual}")
        return lines


def find_kernel(tree: Path) -> Kernel:
    """The newest kernel under ``tree/boot`` that has an initrd, as the image would boot it.

    Debian's ``/vmlinuz`` link names the default kernel; it wins when present.
    """
    boot = tree / "boot"
    link = tree / "vmlinuz"
    if link.is_symlink():
        target = link.readlink()
        version = Path(target).name.removeprefix("vmlinuz-")
        kernel = _kernel_files(boot, version)
        if kernel:
            return kernel
    versions = sorted((p.name.removeprefix("vmlinuz-") for p in boot.glob("vmlinuz-*")),
                      key=_version_key, reverse=True)
    for version in versions:
        kernel = _kernel_files(boot, version)
        if kernel:
            return kernel
    raise GoldenError("no kernel with an initrd in the image (boot/vmlinuz-*, boot/initrd.img-*)",
                      where=boot)


def _kernel_files(boot: Path, version: str) -> Kernel | None:
    vmlinuz, initrd = boot / f"vmlinuz-{version}", boot / f"initrd.img-{version}"
    return Kernel(version, vmlinuz, initrd) if vmlinuz.is_file() and initrd.is_file() else None


def _version_key(version: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", version)]


def prepare_tree(tree: Path, public_key: str) -> None:
    """Make an unpacked image bootable for this test only (the artifact is not changed).

    Root logs in with ``public_key``; sshd gets host keys (the bake's cleanup
    removed them; cloud-init makes new ones at first boot where it runs); ``/dev/vda``
    is the root in fstab. The network is the image's own: cloud-init configures DHCP
    on the first NIC, as it would on a cloud instance.
    """
    ssh_dir = tree / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key.strip() + "\n")
    keys.chmod(0o600)
    (tree / "etc/ssh").mkdir(parents=True, exist_ok=True)
    # ssh-keygen -A -f ROOT writes ROOT/etc/ssh/ssh_host_*_key.
    run(["ssh-keygen", "-A", "-f", str(tree)])
    (tree / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")


def tree_bytes(tree: Path) -> int:
    """Bytes of the files below ``tree`` (links not followed), for sizing the disk."""
    total = 0
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def make_disk(tree: Path, disk: Path) -> None:
    """A raw ext4 image of ``tree``: mkfs.ext4 copies the files itself (no loop device)."""
    size_mb = (int(tree_bytes(tree) * 1.25) + DISK_SLACK_BYTES) >> 20
    run(["mkfs.ext4", "-q", "-F", "-L", "golden-root", "-d", str(tree), str(disk), f"{size_mb}M"],
        timeout=1800)


def make_seed(user_data: Path, meta_data: Path, seed: Path) -> None:
    """A NoCloud seed: a small FAT image labelled ``cidata`` with user-data and meta-data."""
    run(["mkfs.vfat", "-n", "CIDATA", "-C", str(seed), "1024"])
    run(["mcopy", "-o", "-i", str(seed), str(user_data), "::user-data"])
    run(["mcopy", "-o", "-i", str(seed), str(meta_data), "::meta-data"])


def qemu_argv(kernel: Kernel, disk: Path, seed: Path, port: int, *, accel: str = "tcg",
              memory_mb: int = MEMORY_MB, cpus: int = 2) -> list[str]:
    """The QEMU command line: image's own kernel, virtio disk, sshd forwarded to loopback only.

    >>> argv = qemu_argv(Kernel("6.1", Path("/v"), Path("/i")), Path("d"), Path("s"), 2222)
    >>> [a for a in argv if "hostfwd" in a]
    ['user,id=net0,restrict=off,hostfwd=tcp:127.0.0.1:2222-:22']
    """
    return ["qemu-system-x86_64", "-accel", accel, "-m", str(memory_mb), "-smp", str(cpus),
            "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none",
            "-kernel", str(kernel.vmlinuz), "-initrd", str(kernel.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 panic=-1",
            "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe",
            "-drive", f"file={seed},format=raw,if=virtio,readonly=on",
            "-netdev", f"user,id=net0,restrict=off,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=net0"]


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


def _seconds(text: str) -> float:
    """``1min 2.5s`` -> 62.5 (systemd's time spans)."""
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(min|ms|s)", text):
        total += float(num) * {"min": 60.0, "s": 1.0, "ms": 0.001}[unit]
    return round(total, 3)


def parse_multi_user(text: str) -> float | None:
    r"""Userspace seconds to ``multi-user.target``: ``systemd-analyze critical-chain
    multi-user.target`` prints ``multi-user.target @9.310s`` (``systemd-analyze``
    itself names only the default target, graphical.target on Debian).

    >>> parse_multi_user("The time ...\nmulti-user.target @1min 9.310s\n`-docker.service @8s +1s")
    69.31
    >>> parse_multi_user("multi-user.target reached after 9.310s in userspace.")
    9.31
    """
    m = (re.search(r"^multi-user\.target @((?:\d+min\s*)?[\d.]+m?s)", text, re.MULTILINE)
         or re.search(r"multi-user\.target reached after ((?:\d+min\s*)?[\d.]+m?s)", text))
    return _seconds(m.group(1)) if m else None


def parse_boot_time(text: str) -> float | None:
    """Seconds to reach userspace's end from ``systemd-analyze`` (the ``= N`` total).

    >>> parse_boot_time("Startup finished in 2.1s (kernel) + 9.6s (userspace) = 11.741s")
    11.741
    >>> parse_boot_time("Startup finished in 1min 2.500s (kernel) + 3s (userspace) = 1min 5.5s")
    65.5
    >>> parse_boot_time("Bootup is not yet finished.") is None
    True
    """
    m = re.search(r"=\s*((?:\d+min\s*)?[\d.]+m?s)\s*$", text.strip().splitlines()[0] if text.strip() else "")
    return _seconds(m.group(1)) if m else None


def release_problems(guest_text: str, recorded: Path) -> list[str]:
    """The guest's /etc/golden/release.json must equal the one the build records
    (beside the artifact; the lock's build entry is made from it)."""
    if not recorded.is_file():
        return []
    try:
        same = json.loads(guest_text) == json.loads(recorded.read_text())
    except ValueError:
        same = False
    return [] if same else [f"release.json in the guest differs from {recorded}"]


def seed_problems(hostname: str, user_data_seen: str, user_data: Path, meta_data: Path) -> list[str]:
    """cloud-init must have read the NoCloud seed: the guest carries the meta-data's
    ``local-hostname`` and cloud-init holds the seed's user-data as what it ran."""
    problems = []
    meta = yaml.safe_load(meta_data.read_text()) or {}
    want_host = str(meta.get("local-hostname") or "")
    if want_host and hostname.strip() != want_host:
        problems.append(f"cloud-init: hostname is {hostname.strip()!r}, the seed's meta-data says {want_host!r}")
    if user_data_seen.strip() != user_data.read_text().strip():
        problems.append("cloud-init: the user-data it ran is not the seed's (cloud-init query userdata)")
    return problems


def log_problems(text: str) -> list[str]:
    """Lines of the serial log that name a module that does not fit the kernel."""
    return [f"boot log: {line.strip()[:200]}" for line in text.splitlines()
            if any(s in line for s in BAD_MODULE_LOG)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_tail(log: Path, n: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-n:])
    return ""


def wait_for_ssh(shell: GuestShell, proc: subprocess.Popen[str], log: Path,
                 timeout: float = SSH_TIMEOUT_S) -> None:
    """Until root can run a command over SSH; fails early when QEMU exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StepFailed(f"the guest stopped before sshd answered (QEMU exit {proc.returncode}): "
                             f"{_log_tail(log)}", where=str(log))
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", shell.port), timeout=2) as s:
            s.settimeout(5)
            if s.recv(4).startswith(b"SSH-") and shell.run("true", timeout=30).returncode == 0:
                return
        time.sleep(2)
    raise StepFailed(f"sshd in the guest did not answer on 127.0.0.1:{shell.port} within {timeout:.0f}s",
                     where=str(log))


@contextlib.contextmanager
def guest(kernel: Kernel, disk: Path, seed: Path, log: Path, port: int, accel: str) -> Iterator[subprocess.Popen[str]]:
    """QEMU running with the serial console in ``log``; always stopped on the way out."""
    with log.open("w") as fh:
        proc = spawn(qemu_argv(kernel, disk, seed, port, accel=accel),
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


def boot_test(name: str, *, build_root: Path, artifact: Path | None = None, plant: Plant | None = None,
              ssh_timeout: float = SSH_TIMEOUT_S) -> BootResult:
    """Boot ``build_root/NAME``'s artifact and run the ``boot-nogpu`` checks in it.

    Returns the result (a failed check is a failed result, not an exception);
    raises :class:`GoldenError` when the guest could not be booted or reached.
    """
    out_dir = build_root / name
    artifact = artifact or artifact_path(out_dir)
    expectations = out_dir / "expectations.json"
    user_data, meta_data = out_dir / "cloud-init" / "user-data", out_dir / "cloud-init" / "meta-data"
    for needed in (artifact, expectations, user_data, meta_data):
        if not needed.is_file():
            raise GoldenError(f"not found (bake {name} first: invoke build --profile {name})", where=needed)
    log, report_path = out_dir / "boot.log", out_dir / "verify-report-boot.json"
    result = BootResult(profile=name, log=log, report_path=report_path)
    work = build_root / ".work" / f"boot-{uuid.uuid4()}"
    with terminate_as_interrupt():
        _boot(result, work, artifact, expectations, user_data, meta_data, plant, ssh_timeout)
    with contextlib.suppress(OSError):
        result.problems.extend(log_problems(log.read_text(errors="replace")))
    return result


def _boot(result: BootResult, work: Path, artifact: Path, expectations: Path, user_data: Path,
          meta_data: Path, plant: Plant | None, ssh_timeout: float) -> None:
    log, report_path, started = result.log, result.report_path, time.monotonic()
    stack = contextlib.ExitStack()
    try:
        tree, key = work / "rootfs", work / "id_ed25519"
        tree.mkdir(parents=True)
        with step("Unpacking the image for the boot test"):
            run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", str(artifact),
                 "-C", str(tree)], timeout=1800)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "golden-boottest", "-f", str(key)])
            prepare_tree(tree, (work / "id_ed25519.pub").read_text())
            if plant is not None:
                plant(tree)
            kernel = find_kernel(tree)
            result.kernel = kernel.version
            # The kernel and initrd leave the tree: QEMU reads them from the host.
            boot_files = Kernel(kernel.version, work / "vmlinuz", work / "initrd")
            shutil.copyfile(kernel.vmlinuz, boot_files.vmlinuz)
            shutil.copyfile(kernel.initrd, boot_files.initrd)
        result.phases["unpack"] = time.monotonic() - started
        mark = time.monotonic()
        with step("Writing the disk image (mkfs.ext4 -d) and the cloud-init seed"):
            make_disk(tree, work / "disk.raw")
            shutil.rmtree(tree)
            make_seed(user_data, meta_data, work / "seed.img")
        result.phases["disk"] = time.monotonic() - mark
        mark = time.monotonic()
        # A short socket path: unix sockets allow about 100 bytes, build roots can be deep.
        control = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="golden-ssh-"))) / "%C"
        shell = GuestShell(_free_port(), key, control)
        with (step(f"Booting {kernel.version} under QEMU ({result.accel}), console in {log}"),
              guest(boot_files, work / "disk.raw", work / "seed.img", log, shell.port, result.accel) as proc):
            stack.callback(shell.close)
            wait_for_ssh(shell, proc, log, timeout=ssh_timeout)
            say(f"sshd in the guest on 127.0.0.1:{shell.port} after {time.monotonic() - mark:.0f}s")
            # Wait for the boot to finish (bounded) so systemd-analyze has its total.
            shell.run("timeout", "300", "systemctl", "is-system-running", "--wait", timeout=330)
            result.boot_time_s = parse_boot_time(shell.run("systemd-analyze").stdout)
            result.multi_user_s = parse_multi_user(
                shell.run("systemd-analyze", "critical-chain", "multi-user.target").stdout)
            result.slowest = [" ".join(line.split()) for line in
                              shell.run("systemd-analyze", "blame", "--no-pager").stdout.splitlines()[:8]]
            result.phases["boot"] = time.monotonic() - mark
            mark = time.monotonic()
            result.report = run_verify(expectations, f"ssh://root@127.0.0.1:{shell.port}", "boot-nogpu",
                                       report_path, ssh_key=key)
            result.phases["verify"] = time.monotonic() - mark
            result.problems.extend(release_problems(shell.run("cat", "/etc/golden/release.json").stdout,
                                                    artifact.parent / "release.json"))
            if shell.run("command", "-v", "cloud-init").returncode == 0:
                result.problems.extend(seed_problems(shell.run("hostname").stdout,
                                                     shell.run("cloud-init", "query", "userdata", timeout=120).stdout,
                                                     user_data, meta_data))
            # A clean poweroff when it comes in time; guest() kills QEMU otherwise.
            with contextlib.suppress(GoldenError, subprocess.TimeoutExpired):
                shell.run("systemctl", "poweroff", timeout=30)
                proc.wait(timeout=60)
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)
        result.wall_s = time.monotonic() - started


def require_pass(result: BootResult) -> str:
    """The summary when the boot test passed; else a StepFailed naming what failed and the log."""
    if result.passed:
        return result.summary()
    failed = "; ".join(result.failures()) or "no checks ran"
    raise StepFailed(f"boot test failed for {result.profile}: {failed} (boot log {result.log})",
                     where=str(result.log))
