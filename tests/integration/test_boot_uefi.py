"""Secure Boot faults on the real Secure Boot image: a module its kernel must refuse, a boot
loader its firmware must refuse.

The session's Secure Boot bake (``secureboot_bake``, test_bake_secureboot.py)
boots itself with its certificate enrolled and the module loading. Here its
artifact is booted again, through the same ``uefi-secure-boot`` firmware, with
the modules signed once more by a key made for the test that nobody enrolled
(the plant): the variable store still carries the image's own certificate as a
MOK, so the kernel must refuse the module ("Key was rejected by service"), and
the failed check must name the module and the certificate the build enrolled.
The same artifact with shim's signature stripped (the other plant) must not
boot at all: OVMF refuses to start it, and the boot test says so at once
instead of waiting out the SSH timeout.
``GOLDEN_BOOT_BUILD`` names an existing build directory of that profile;
otherwise the session's bake is used.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import pytest

from golden import boottest
from golden.errors import GoldenError, StepFailed
from golden.run import run
from golden.targets.disk import ESP_FILES, in_tree
from golden.uefivars import DKMS_CERT
from tests.integration.workspace import SECUREBOOT

pytestmark = pytest.mark.integration

#: The trailer of a signed kernel module: signature, ``struct module_signature`` (12 bytes), magic.
SIG_MAGIC = b"~Module signature appended~\n"


def resign_modules(tree: Path, *, enroll: bool) -> None:
    """The DKMS modules signed again by a new key; its certificate (DER) where DKMS keeps it
    when ``enroll`` (the ``uefi-secure-boot`` firmware puts that one in the MOK list), else
    thrown away, so the image's own certificate is enrolled and the modules' key is not."""
    key, cert = tree / "tmp/golden-test.key", tree / "tmp/golden-test.der"
    run(["openssl", "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "2", "-subj",
         "/CN=golden test module signing/", "-outform", "DER", "-keyout", str(key), "-out", str(cert)])
    sign_file = next(tree.glob("usr/lib/linux-kbuild-*/scripts/sign-file"))
    for ko in tree.glob("usr/lib/modules/*/updates/dkms/*.ko"):
        data = ko.read_bytes()
        if data.endswith(SIG_MAGIC):
            (sig_len,) = struct.unpack(">I", data[-len(SIG_MAGIC) - 4:-len(SIG_MAGIC)])
            ko.write_bytes(data[:-(len(SIG_MAGIC) + 12 + sig_len)])
        run([str(sign_file), "sha256", str(key), str(cert), str(ko)])
    key.unlink()
    if enroll:
        (tree / DKMS_CERT).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(cert, tree / DKMS_CERT)
    else:
        cert.unlink()


#: PE/COFF, as far as finding the signature goes: the DOS header's ``e_lfanew`` (a u32 at 0x3C)
#: is the offset of ``PE\0\0``; the 20-byte COFF header follows, then the optional header,
#: whose magic (u16) says PE32 (0x10b) or PE32+ (0x20b, what x86-64 EFI binaries are). Its data
#: directories (8 bytes each: u32 address, u32 size) start 96 (PE32) or 112 (PE32+) bytes in;
#: index 4 is the certificate table, the Authenticode signature, whose "address" is a file
#: offset (not an RVA): the signature is the file's tail from there, outside every section.
PE_MAGIC_OFFSET, COFF_HEADER_BYTES, CERT_TABLE = 0x3C, 20, 4
DATA_DIRECTORIES = {0x10B: 96, 0x20B: 112}


def cert_table_entry(data: bytes) -> tuple[int, int, int]:
    """Where the certificate table's data directory entry is in a PE file, and its offset and size."""
    assert data[:2] == b"MZ", "no DOS header"
    (pe,) = struct.unpack_from("<I", data, PE_MAGIC_OFFSET)
    assert data[pe:pe + 4] == b"PE\0\0", "no PE signature"
    optional = pe + 4 + COFF_HEADER_BYTES
    (magic,) = struct.unpack_from("<H", data, optional)
    entry = optional + DATA_DIRECTORIES[magic] + 8 * CERT_TABLE
    offset, size = struct.unpack_from("<II", data, entry)
    return entry, offset, size


def strip_signature(efi: Path) -> None:
    """``efi`` without its Authenticode signature: the certificate table's entry zeroed and the
    file cut where the table began (the PE checksum is left alone: firmware does not read it)."""
    data = bytearray(efi.read_bytes())
    entry, offset, size = cert_table_entry(bytes(data))
    assert size > 0 and offset + size <= len(data), f"{efi} carries no signature to strip"
    struct.pack_into("<II", data, entry, 0, 0)
    efi.write_bytes(bytes(data[:offset]))
    assert cert_table_entry(efi.read_bytes())[1:] == (0, 0) and efi.stat().st_size == offset


@pytest.fixture
def build_root(secureboot_build_root: Path) -> Path:
    """The Secure Boot build's files, its artifact linked (tests/integration/conftest.py)."""
    return secureboot_build_root


def test_secure_boot_refuses_a_module_signed_by_a_key_that_is_not_enrolled(build_root: Path) -> None:
    def plant(tree: Path) -> None:
        resign_modules(tree, enroll=False)

    result = boottest.boot_test(SECUREBOOT, build_root=build_root, firmware="uefi-secure-boot", plant=plant)
    assert "secureboot: Secure boot enabled" in result.log.read_text(errors="replace")
    with pytest.raises(StepFailed) as info:
        boottest.require_pass(result)
    assert "modprobe[nvidia-current-open]" in str(info.value)
    assert "module-signer" in str(info.value)
    expected = json.loads((build_root / SECUREBOOT / "expectations.json").read_text())["signing"]
    report = result.report_path.read_text()
    assert expected["certificate_sha256"] in report and "golden test module signing" in report
    # The check's own line, as the run printed it: the kernel's refusal, named.
    assert "Key was rejected by service" in result.report_path.read_text()


def test_secure_boot_firmware_refuses_an_unsigned_shim_and_the_boot_test_says_so(build_root: Path) -> None:
    shim, esp_name = ESP_FILES[0]
    assert esp_name == "EFI/BOOT/BOOTX64.EFI"

    def plant(tree: Path) -> None:
        strip_signature(in_tree(tree, shim))       # the file the disk writer copies (links followed in the image)

    started = time.monotonic()
    with pytest.raises(GoldenError) as info:
        boottest.boot_test(SECUREBOOT, build_root=build_root, firmware="uefi-secure-boot", plant=plant)
    print(f"refused after {time.monotonic() - started:.0f}s of boot test: {info.value}")
    message = info.value.message
    assert isinstance(info.value, StepFailed) and info.value.where == str(build_root / SECUREBOOT / "boot.log")
    assert message.startswith("the firmware refused the boot loader (Access Denied): under Secure Boot, "
                              "EFI/BOOT/BOOTX64.EFI (shim)")
    assert "BdsDxe: failed to load Boot" in message and "\x1b" not in message
    # The refusal, not the timeout: sshd was never waited for, and grub never ran.
    assert "did not answer" not in message
    log = (build_root / SECUREBOOT / "boot.log").read_text(errors="replace")
    assert "Access Denied" in log and "golden: booting" not in log
