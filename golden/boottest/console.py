r"""What the serial console says about a boot that will never reach sshd.

Some failures end the boot long before the SSH timeout would: under Secure Boot,
OVMF refuses to start a boot loader that no key in ``db`` signed, says so once
on the console and then waits for a key press in its boot manager. Waiting out
the timeout for that costs minutes and ends in a message about sshd;
:func:`refusal` reads the console instead, so :func:`golden.boottest.guest.wait_for_ssh`
can fail at once with what the firmware said.

OVMF's boot manager (edk2's BdsDxe) reports each boot option it could not start
as ``BdsDxe: failed to load BootNNNN "DESCRIPTION" from DEVICE-PATH: STATUS``.
``Not Found`` (QEMU's empty DVD-ROM, Boot0001, on every boot) is normal: the next
option is tried. ``Access Denied`` is the Secure Boot verdict
(``LoadImage`` refused an image whose signature or hash is not in ``db``, or is
in ``dbx``), as is ``Security Violation``::

    >>> line = ('BdsDxe: failed to load Boot0002 "UEFI Misc Device" from '
    ...         'PciRoot(0x0)/Pci(0x3,0x0): Access Denied')
    >>> print(refusal("\x1b[2J\x1b[01;01HBdsDxe: loading Boot0002\r\n" + line + "\r\n"))
    ... # doctest: +NORMALIZE_WHITESPACE
    the firmware refused the boot loader (Access Denied): under Secure Boot, EFI/BOOT/BOOTX64.EFI
    (shim) is not signed by a key in db, or is revoked by dbx; the console: BdsDxe: failed to load
    Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0): Access Denied
    >>> refusal(line.replace("Access Denied", "Not Found")) is None
    True
"""

from __future__ import annotations

import re

#: Terminal control sequences on the console (OVMF and grub draw with them).
ESCAPES = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")

#: A boot option OVMF's boot manager would not start, and why (an ``EFI_STATUS`` as edk2's
#: ``%r`` prints it). Only the statuses that mean "refused" are matched; the others
#: ("Not Found", "Unsupported") say the option had nothing to boot, and the next one is tried.
_BDS_REFUSED = re.compile(r'BdsDxe: failed to load Boot[0-9A-Fa-f]{4} ".*?" from \S+: '
                          r"(?P<status>Access Denied|Security Violation)")


def strip_escapes(text: str) -> str:
    r"""``text`` without terminal control sequences (cursor moves, colours, clears).

    >>> strip_escapes("\x1b[2J\x1b[01;01HBdsDxe: \x1b[0mloading")
    'BdsDxe: loading'
    """
    return ESCAPES.sub("", text)


def console_lines(text: str) -> list[str]:
    r"""The console's lines with text, escapes stripped, carriage returns and blanks dropped.

    >>> console_lines("a\r\n\x1b[2J\r\n b \n")
    ['a', 'b']
    """
    return [x for x in (line.strip() for line in strip_escapes(text).splitlines()) if x]


def refusal(console: str) -> str | None:
    """Why the firmware will never start the image's boot loader, as one line that quotes the
    console; None while the console shows no such refusal (the boot may still be going)."""
    for line in console_lines(console):
        found = _BDS_REFUSED.search(line)
        if found:
            return (f"the firmware refused the boot loader ({found['status']}): under Secure Boot, "
                    "EFI/BOOT/BOOTX64.EFI (shim) is not signed by a key in db, or is revoked by dbx; "
                    f"the console: {line[found.start():]}")
    return None
