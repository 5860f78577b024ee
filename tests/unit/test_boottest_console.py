"""The console's verdicts (golden/boottest/console.py), on consoles OVMF really printed, and
wait_for_ssh giving up at once when the console shows one."""

from __future__ import annotations

import doctest
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from golden.boottest import console
from golden.boottest.guest import GuestShell, wait_for_ssh
from golden.errors import StepFailed
from golden.run import spawn, stop
from golden.targets.local import free_port

#: The whole boot.log of OVMF_CODE_4M.secboot.fd (Microsoft's keys enrolled, Secure Boot on)
#: booting local-debian12-r535-secureboot's disk with shim's signature stripped
#: (tests/integration/test_boot_uefi.py's plant), until the boot test stopped QEMU: the DVD-ROM
#: has nothing to boot, the disk's shim is refused, iPXE comes next.
REFUSED = (
    '\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J\x1b[01;01H\x1b['
    '=3h\x1b[2J\x1b[01;01HBdsDxe: failed to load Boot0001 "UEFI QEMU DVD-ROM QM0000'
    '5 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x2,0xFFFF,0x0): Not Found\r\n'
    'BdsDxe: loading Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x'
    '0)\r\n'
    'BdsDxe: failed to load Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci'
    '(0x3,0x0): Access Denied\r\n'
    'BdsDxe: failed to load Boot0003 "UEFI Non-Block Boot Device" from PciRoo'
    't(0x0)/Pci(0x4,0x0): Not Found\r\n'
    '\r\n'
    '\r\n'
    '\r\n'
    '\x1b[1m\x1b[37m\x1b[40miPXE 1.0.0+git-20190125.36a4c85-5.1\x1b[0m\x1b[37m\x1b[40m -- Open '
    'Source Network Boot Firmware -- \x1b[0m\x1b[36m\x1b[40mhttp://ipxe.org\x1b[0m\x1b[37m\x1b['
    '40m\r\n'
    'Features: DNS HTTP iSCSI NFS TFTP AoE EFI Menu\r\n'
    '\r\n'
    'Press Ctrl-B for the iPXE command line...qemu-system-x86_64: terminating'
    ' on signal 15 from pid 16387 (/work/main/.venv/bin/python3)\n'
)
#: The same firmware booting the bake's own disk (signed shim), its console until the kernel:
#: the DVD-ROM is "Not Found" here too, and that is no refusal.
BOOTED = (
    '\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J\x1b[01;01H\x1b['
    '=3h\x1b[2J\x1b[01;01HBdsDxe: failed to load Boot0001 "UEFI QEMU DVD-ROM QM0000'
    '5 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x2,0xFFFF,0x0): Not Found\r\n'
    'BdsDxe: loading Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x'
    '0)\r\n'
    'BdsDxe: starting Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0'
    'x0)\r\n'
    '\x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\n'
    '\r\n'
    '\r'
    '\x1b[0m\x1b[37m\x1b[40mgolden: booting 6.1.0-50-cloud-amd64\n'
    '\r'
    'EFI stub: UEFI Secure Boot is enabled.\r\n'
)


def test_doctests() -> None:
    assert doctest.testmod(console).failed == 0


def test_the_firmware_refusing_shim_is_named_with_its_line_and_no_escapes() -> None:
    why = console.refusal(REFUSED)
    assert why is not None
    assert why.startswith("the firmware refused the boot loader (Access Denied): under Secure Boot, "
                          "EFI/BOOT/BOOTX64.EFI (shim) is not signed by a key in db")
    # The disk's line, quoted whole; not the DVD-ROM's "Not Found" before it.
    assert why.endswith('; the console: BdsDxe: failed to load Boot0002 "UEFI Misc Device" from '
                        "PciRoot(0x0)/Pci(0x3,0x0): Access Denied")
    assert "\x1b" not in why and "\r" not in why


def test_a_boot_option_with_nothing_to_boot_is_no_refusal() -> None:
    assert console.refusal(BOOTED) is None
    assert console.refusal("") is None
    assert console.refusal('BdsDxe: failed to load Boot0002 "UEFI Misc Device 2" from '
                           "PciRoot(0x0)/Pci(0x4,0x0): Not Found") is None


def test_security_violation_is_a_refusal_too() -> None:
    line = 'BdsDxe: failed to load Boot0003 "UEFI PXEv4 (MAC:525400123456)" from PciRoot(0x0): Security Violation'
    why = console.refusal(f"\x1b[0m{line}\r\n")
    assert why is not None and why.startswith("the firmware refused the boot loader (Security Violation)")
    assert why.endswith(line)


def test_lines_lose_escapes_carriage_returns_and_blanks() -> None:
    assert console.console_lines("\x1b[2J\x1b[01;01H\r\nBdsDxe: loading\r\n\r\n  x \n") == ["BdsDxe: loading", "x"]


@pytest.fixture
def qemu_stand_in() -> Iterator[subprocess.Popen[str]]:
    """A process that stays up, as QEMU does while OVMF waits at its boot manager."""
    proc = spawn(["sleep", "60"])
    yield proc
    stop(proc, grace=1)


def test_wait_for_ssh_gives_up_when_the_console_shows_the_refusal(tmp_path: Path,
                                                                 qemu_stand_in: subprocess.Popen[str]) -> None:
    log = tmp_path / "boot.log"
    log.write_text(REFUSED)
    shell = GuestShell(free_port(), tmp_path / "id_ed25519", tmp_path / "%C")
    with pytest.raises(StepFailed) as info:      # the refusal's own line, not the timeout's
        wait_for_ssh(shell, qemu_stand_in, log, timeout=120)
    assert info.value.where == str(log)
    assert info.value.message == console.refusal(REFUSED)


def test_wait_for_ssh_still_waits_while_the_console_shows_none(tmp_path: Path,
                                                              qemu_stand_in: subprocess.Popen[str]) -> None:
    log = tmp_path / "boot.log"
    log.write_text(BOOTED)
    shell = GuestShell(free_port(), tmp_path / "id_ed25519", tmp_path / "%C")
    with pytest.raises(StepFailed, match=r"did not answer on 127\.0\.0\.1:\d+ within 3s"):
        wait_for_ssh(shell, qemu_stand_in, log, timeout=3)
