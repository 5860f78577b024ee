"""The same booted disk again, with another number of NVMe disks: the data disks' fault boots.

EC2's instance store is blank after every stop/start, and an instance can come
back with fewer of its disks. After the boot test's first boot (and its clean
poweroff) :func:`boot_again` starts the same disk image again with ``disks``
fresh, blank NVMe files (one missing: a single-disk ``/data``; none: no
``/data``, the runtime on the root disk) and runs the ``boot-nogpu`` checks
once more. Nothing is unpacked or written again: it costs one boot and one
verification. Each is reported beside the first boot's
(``verify-report-boot-nvme{N}.json``, ``boot-nvme{N}.log``); a failed check is a
problem of the boot test's result, so it fails like the first boot's.

    GOLDEN_BOOT_NVME_REBOOTS=1,0   # boot_test's default for ``reboots``
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

from golden import bootkit
from golden.boottest.firmware import Firmware
from golden.boottest.guest import GuestShell, guest, wait_for_ssh
from golden.boottest.media import Media, nvme_files
from golden.boottest.result import BootResult
from golden.errors import GoldenError
from golden.targets.local import free_port
from golden.ui import say, step
from golden.verify import run_verify

#: The environment variable that asks every boot test for these boots: NVMe disk counts, "1,0".
REBOOTS_ENV = "GOLDEN_BOOT_NVME_REBOOTS"
#: The most NVMe disks a boot attaches.
MAX_DISKS = 8


def reboots_from_env() -> tuple[int, ...]:
    """The disk counts :data:`REBOOTS_ENV` names (none when unset or empty).

    >>> os.environ[REBOOTS_ENV] = "1,0"; reboots_from_env()
    (1, 0)
    """
    text = os.environ.get(REBOOTS_ENV, "").strip()
    if not text:
        return ()
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) <= MAX_DISKS for p in parts):
        raise GoldenError(f"NVMe disk counts 0 to {MAX_DISKS}, comma-separated, such as 1,0; got {text!r}",
                          where=REBOOTS_ENV)
    return tuple(int(p) for p in parts)


def boot_again(result: BootResult, work: Path, boot_with: Firmware, media: Media, key: Path,
               expectations: Path, disks: int, ssh_timeout: float) -> None:
    """Boot ``media`` (already booted once, powered off) with ``disks`` blank NVMe disks and run
    the ``boot-nogpu`` checks; the time goes in ``result.phases`` (``nvme{N}``), a failed check
    or an unreachable guest in ``result.problems``."""
    out_dir = expectations.parent
    log, report_path = out_dir / f"boot-nvme{disks}.log", out_dir / f"verify-report-boot-nvme{disks}.json"
    name, started = f"boot with {disks} NVMe disk{'' if disks == 1 else 's'}", time.monotonic()
    with contextlib.ExitStack() as stack:
        control = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="golden-ssh-"))) / "%C"
        shell = GuestShell(free_port(), key, control)
        seed = work / "seed.img"
        try:
            # Fresh files each boot: blank, like an instance store after a stop/start.
            (work / f"nvme{disks}").mkdir(exist_ok=True)
            nvme = nvme_files(work / f"nvme{disks}", disks)
            with (step(f"Booting the same disk again with {disks} blank NVMe disk(s), console in {log}"),
                  guest(boot_with, media, seed, log, shell.port, result.accel, nvme) as proc):
                stack.callback(shell.close)
                wait_for_ssh(shell, proc, log, timeout=ssh_timeout)
                shell.run("timeout", "300", "systemctl", "is-system-running", "--wait", timeout=330)
                report = run_verify(expectations, f"ssh://root@127.0.0.1:{shell.port}", "boot-nogpu",
                                    report_path, ssh_key=key, uploads=bootkit.uploads(out_dir, work))
                with contextlib.suppress(GoldenError, subprocess.TimeoutExpired):
                    shell.run("systemctl", "poweroff", timeout=30)
                    proc.wait(timeout=60)
        except GoldenError as e:
            result.problems.append(f"{name}: {e.line()}")
            return
        finally:
            result.phases[f"nvme{disks}"] = time.monotonic() - started
    failed = [f"{c.name} (expected {c.expected}, actual {c.actual})" for c in report.failed]
    result.problems.extend(f"{name}: {f}" for f in failed)
    say(f"{name}: {'passed' if not failed else 'failed'} ({report_path.name}, "
        f"{result.phases[f'nvme{disks}']:.0f}s)")
