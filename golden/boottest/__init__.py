"""Boot a baked image under QEMU without a GPU and verify it from inside.

The artifact (``build/NAME/artifacts/rootfs.tar.zst``) is made into what QEMU
boots (:mod:`.media`: unpacked into a scratch directory, given what a throwaway
test boot needs, written as a raw ext4 disk by :mod:`golden.targets.disk`) and
booted by the firmware the artifact needs (:mod:`.firmware`: a rootfs boots
``linux``, the image's own kernel and initrd). The profile's first-boot
cloud-init goes in a NoCloud ``cidata`` seed. Once sshd answers on a loopback
port (:mod:`.guest`), the ``boot-nogpu`` phase of ``verify/`` runs over SSH and
the harness adds its own checks (:mod:`.result`).

    result = boot_test("local-debian12-r535")
    result.passed, result.boot_time_s, result.log

Whatever happens (success, failure, Ctrl-C) QEMU is stopped and the scratch
directory removed; only ``build/NAME/boot.log`` and the verify report stay.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from golden import bootkit
from golden.boottest.firmware import FIRMWARE, Firmware, finalize_firmware, lookup, recorded_format
from golden.boottest.guest import (
    MEMORY_MB,
    SSH_TIMEOUT_S,
    GuestShell,
    guest,
    qemu_accel,
    qemu_argv,
    terminate_as_interrupt,
    wait_for_ssh,
)
from golden.boottest.media import (
    NVME_DISKS,
    Kernel,
    Media,
    Plant,
    find_kernel,
    make_seed,
    nvme_files,
    prepare_tree,
    unpack,
)
from golden.boottest.reboot import boot_again, reboots_from_env
from golden.boottest.result import BootResult, log_problems, release_problems, require_pass, seed_problems
from golden.errors import GoldenError
from golden.systemprobes import (
    BLAME_ARGV,
    BOOT_TIME_ARGV,
    MULTI_USER_ARGV,
    RELEASE_PATH,
    parse_blame,
    parse_boot_time,
    parse_multi_user,
)
from golden.targets.local import artifact_path, free_port
from golden.ui import say, step
from golden.verify import run_verify

__all__ = ["FIRMWARE", "MEMORY_MB", "SSH_TIMEOUT_S", "BootResult", "Firmware", "GuestShell", "Kernel", "Media",
           "Plant", "boot_test", "finalize_firmware", "find_kernel", "guest", "log_problems",
           "make_seed", "parse_boot_time", "parse_multi_user", "prepare_tree", "qemu_accel", "qemu_argv",
           "release_problems", "require_pass", "seed_problems", "terminate_as_interrupt", "wait_for_ssh"]


def boot_test(name: str, *, build_root: Path, artifact: Path | None = None, plant: Plant | None = None,
              ssh_timeout: float = SSH_TIMEOUT_S, nvme_disks: int | None = None,
              firmware: str | Firmware | None = None, reboots: tuple[int, ...] | None = None) -> BootResult:
    """Boot ``build_root/NAME``'s artifact and run the ``boot-nogpu`` checks in it.

    ``nvme_disks``: how many emulated NVMe disks to attach (default: two when the profile has
    data disks, else none); 1 or 0 boot the data disks' fault cases. ``firmware``: one of
    :data:`FIRMWARE` (or a :class:`Firmware`) instead of the artifact's own (``uefi`` boots a
    rootfs as a GPT disk).
    ``reboots``: after the first boot, boot the same disk again once per count with that many
    blank NVMe disks and check it again (:mod:`.reboot`; default ``GOLDEN_BOOT_NVME_REBOOTS``).

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
    chosen = lookup(firmware) if isinstance(firmware, str) else firmware
    boot_with = chosen or finalize_firmware(
        artifact, secure_boot=_secure_boot(expectations), image_format=recorded_format(expectations))
    disks = _nvme_default(expectations) if nvme_disks is None else nvme_disks
    log, report_path = out_dir / "boot.log", out_dir / "verify-report-boot.json"
    result = BootResult(profile=name, log=log, report_path=report_path)
    work = build_root / ".work" / f"boot-{uuid.uuid4()}"
    with terminate_as_interrupt():
        _boot(result, work, boot_with, artifact, expectations, user_data, meta_data, plant, ssh_timeout, disks,
              reboots_from_env() if reboots is None else reboots)
    with contextlib.suppress(OSError):
        result.problems.extend(log_problems(log.read_text(errors="replace")))
    return result


def _secure_boot(expectations: Path) -> bool:
    """Whether the profile asks for Secure Boot, as the build recorded it."""
    try:
        return bool(json.loads(expectations.read_text()).get("secure_boot"))
    except (ValueError, AttributeError) as e:
        raise GoldenError(f"not the expectations a build writes: {e}", where=expectations) from e


def _nvme_default(expectations: Path) -> int:
    """Two NVMe disks when the build's expectations have data disks, else none."""
    with contextlib.suppress(ValueError, AttributeError):
        return NVME_DISKS if json.loads(expectations.read_text()).get("data_disks") else 0
    return 0


def _boot(result: BootResult, work: Path, boot_with: Firmware, artifact: Path, expectations: Path,
          user_data: Path, meta_data: Path, plant: Plant | None, ssh_timeout: float, disks: int,
          reboots: tuple[int, ...] = ()) -> None:
    log, report_path, started = result.log, result.report_path, time.monotonic()
    stack = contextlib.ExitStack()
    try:
        key = work / "id_ed25519"
        with step("Unpacking the image for the boot test"):
            kernel = unpack(artifact, work, key, plant)
            result.kernel = kernel.version
        result.phases["unpack"] = time.monotonic() - started
        mark = time.monotonic()
        with step(f"Writing the disk image for {boot_with.name} and the cloud-init seed"):
            media = boot_with.write_media(work, kernel)
            make_seed(user_data, meta_data, work / "seed.img")
            nvme = nvme_files(work, disks)
        result.phases["disk"] = time.monotonic() - mark
        mark = time.monotonic()
        # A short socket path: unix sockets allow about 100 bytes, build roots can be deep.
        control = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="golden-ssh-"))) / "%C"
        shell = GuestShell(free_port(), key, control)
        with (step(f"Booting {kernel.version} under QEMU ({result.accel}), console in {log}"),
              guest(boot_with, media, work / "seed.img", log, shell.port, result.accel, nvme) as proc):
            stack.callback(shell.close)
            wait_for_ssh(shell, proc, log, timeout=ssh_timeout)
            say(f"sshd in the guest on 127.0.0.1:{shell.port} after {time.monotonic() - mark:.0f}s")
            # Wait for the boot to finish (bounded) so systemd-analyze has its total.
            shell.run("timeout", "300", "systemctl", "is-system-running", "--wait", timeout=330)
            result.boot_time_s = parse_boot_time(shell.run(*BOOT_TIME_ARGV).stdout)
            result.multi_user_s = parse_multi_user(shell.run(*MULTI_USER_ARGV).stdout)
            result.slowest = parse_blame(shell.run(*BLAME_ARGV).stdout)
            result.phases["boot"] = time.monotonic() - mark
            mark = time.monotonic()
            # What the checks need there (golden/bootkit.py): the CUDA runtimes, the check image.
            result.report = run_verify(expectations, f"ssh://root@127.0.0.1:{shell.port}", "boot-nogpu",
                                       report_path, ssh_key=key,
                                       uploads=bootkit.uploads(expectations.parent, work))
            result.phases["verify"] = time.monotonic() - mark
            result.problems.extend(release_problems(shell.run("cat", RELEASE_PATH).stdout,
                                                    artifact.parent / "release.json"))
            if shell.run("command", "-v", "cloud-init").returncode == 0:
                result.problems.extend(seed_problems(shell.run("hostname").stdout,
                                                     shell.run("cloud-init", "query", "userdata", timeout=120).stdout,
                                                     user_data, meta_data))
            # A clean poweroff when it comes in time; guest() kills QEMU otherwise.
            with contextlib.suppress(GoldenError, subprocess.TimeoutExpired):
                shell.run("systemctl", "poweroff", timeout=30)
                proc.wait(timeout=60)
        for count in reboots:
            boot_again(result, work, boot_with, media, key, expectations, count, ssh_timeout)
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)
        result.wall_s = time.monotonic() - started
