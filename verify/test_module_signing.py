"""Secure Boot: every DKMS module is signed by the build's certificate, its key is gone, and
at boot the firmware enforces Secure Boot.

The signature is read off each module (``modinfo -F sig_key`` is the signing
certificate's serial number, ``signer`` its CN) and compared with what the
build recorded of its certificate (expectations.json ``signing``, golden/secureboot.py);
the certificate the image keeps for DKMS must be that one (its SHA-256), and the
private key must not be on the image (42-module-signing removed it).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from golden.hostprobes import EFI_DIR, SECURE_BOOT_ARGV, SECURE_BOOT_VAR, parse_secure_boot
from golden.secureboot import IMAGE_CERT, IMAGE_KEY, normal_serial
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("bake", "boot-nogpu", "boot"), pytest.mark.layer("driver")]


def _signing(expect: dict[str, Any], record: Record, name: str) -> dict[str, Any]:
    if not expect.get("secure_boot"):
        record.skip(name, "target.secure_boot is off: DKMS's own key signs the module")
    signing = expect.get("signing")
    if not signing:
        record.skip(name, "no signing key was prepared (`invoke render` alone): nothing to compare with")
    return dict(signing)


def test_modules_are_signed_by_the_builds_certificate(expect: dict[str, Any], shell: Shell,
                                                      record: Record) -> None:
    signing = _signing(expect, record, "module-signer")
    kernel = expect.get("kernel") or shell.run("uname", "-r").stdout.strip()
    out = shell.run("find", f"/lib/modules/{kernel}/updates/dkms", "-maxdepth", "1", "-name", "*.ko*")
    modules = sorted(x for x in out.stdout.split() if x)
    wanted = f"{signing['signer']} (serial {signing['serial']})"
    if not modules:
        record.fail("module-signer", wanted, "no DKMS module", f"none under /lib/modules/{kernel}/updates/dkms")
    wrong = []
    for ko in modules:
        serial = normal_serial(shell.run("modinfo", "-F", "sig_key", ko).stdout)
        signer = shell.run("modinfo", "-F", "signer", ko).stdout.strip()
        if serial != signing["serial"] or signer != signing["signer"]:
            wrong.append(f"{ko.rsplit('/', 1)[-1]}: {signer or 'unsigned'} (serial {serial or 'none'})")
    assert record("module-signer", wanted, "; ".join(wrong) or f"all {len(modules)} modules", not wrong,
                  f"certificate {signing['certificate_sha256']}")


def test_the_image_keeps_the_certificate_and_not_the_key(expect: dict[str, Any], shell: Shell,
                                                          record: Record) -> None:
    signing = _signing(expect, record, "signing-key-removed")
    key_there = shell.run("test", "-e", f"/{IMAGE_KEY}").ok
    cert = shell.run("base64", "-w0", f"/{IMAGE_CERT}")
    digest = ("sha256:" + hashlib.sha256(base64.b64decode(cert.stdout)).hexdigest()
              if cert.ok else "none")
    assert record("signing-key-removed", f"no /{IMAGE_KEY}", f"/{IMAGE_KEY} present" if key_there else "absent",
                  not key_there, "42-module-signing removes the private key after signing")
    assert record("signing-certificate", signing["certificate_sha256"], digest,
                  digest == signing["certificate_sha256"], f"/{IMAGE_CERT}, the certificate to enrol")


@pytest.mark.phase("boot-nogpu", "boot")
def test_the_firmware_enforces_secure_boot(expect: dict[str, Any], shell: Shell, record: Record,
                                           pytestconfig: pytest.Config) -> None:
    """The firmware's own ``SecureBoot`` variable, as the booted kernel sees it.

    A rootfs image boots its kernel directly in the local boot test, without firmware, so
    there is nothing to ask; a disk image (OVMF) and an AMI (EC2's UEFI) must say enforcing.
    """
    if not expect.get("secure_boot"):
        record.skip("secure-boot-state", "target.secure_boot is off")
    if not shell.run("test", "-d", EFI_DIR).ok:
        if pytestconfig.getoption("golden_phase") == "boot-nogpu" and expect.get("format") != "disk":
            record.skip("secure-boot-state", "a rootfs boots its kernel without firmware here: nothing to ask")
        record.fail("secure-boot-state", "enforcing", "no UEFI firmware",
                    f"{EFI_DIR} is absent: the machine booted without UEFI (legacy BIOS or direct kernel)")
    state = parse_secure_boot(shell.run(*SECURE_BOOT_ARGV).stdout)
    assert record("secure-boot-state", "enforcing", state, state == "enforcing",
                  f"{SECURE_BOOT_VAR}: the firmware {'enforces' if state == 'enforcing' else 'does not enforce'} "
                  "signatures on the boot chain; the kernel then enforces module signatures")
