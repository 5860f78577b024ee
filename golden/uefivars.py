"""OVMF variable stores: Microsoft's keys, Secure Boot on, the image's module key as a MOK.

Shared by the local target, which ships a disk's store (``disk.vars.fd``), and
the boot test, which boots with one (golden/boottest/uefi.py); neither imports
the other. The store is written by ``virt-fw-vars`` (PyPI ``virt-firmware``)
from the blank store of Debian's ``ovmf`` package: ``--enroll-microsoft`` puts
Microsoft's certificates in ``db``/``KEK`` (they sign shim) and a platform key,
``--secure-boot`` turns enforcement on, and ``--add-mok`` appends a certificate
to shim's MOK list, owned by shim's GUID, so the kernel trusts it through its
``.machine`` keyring as if MokManager had enrolled it.

An AMI's store (``uefi_data``, the amazon-ebs target) is the same store in AWS's
format (``--output-aws``: base64 text), with the certificate both in ``db``, the
way AWS documents custom Secure Boot keys (the kernel loads ``db`` into its
``.platform`` keyring), and as a MOK, which shim mirrors for ``.machine``.
:func:`read_store` reads any store back (edk2 or AWS) through ``--output-json``
and :func:`x509_sha256` lists the certificates of one of its variables, so a
test can say what the firmware will trust without booting it.

>>> mok_certs(Path("/nonexistent"), secure_boot=True)
[]
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from golden.run import run

OVMF = Path("/usr/share/OVMF")
#: The blank variable store of Debian's ``ovmf`` (4 MiB flash layout, like the code).
BLANK_VARS = OVMF / "OVMF_VARS_4M.fd"
#: shim's vendor GUID, the owner of MOK list entries.
SHIM_GUID = "605dab50-e046-4300-abb6-3dd810dd8b23"
#: Where DKMS keeps the certificate it signs modules with (DER), inside the image.
DKMS_CERT = "var/lib/dkms/mok.pub"


def virt_fw_vars() -> str:
    """``virt-fw-vars`` beside golden's Python (the venv), else from PATH."""
    beside = Path(sys.executable).with_name("virt-fw-vars")
    return str(beside) if beside.is_file() else "virt-fw-vars"


def vars_argv(out: Path, *, secure_boot: bool, mok_certs: Sequence[Path] = (), db_certs: Sequence[Path] = (),
              aws: bool = False) -> list[str]:
    """The command that writes a variable store at ``out`` (``--output-aws`` is the AMI's form).

    >>> vars_argv(Path("v.fd"), secure_boot=True, mok_certs=[Path("c.der")])[1:]  # doctest: +NORMALIZE_WHITESPACE
    ['--input', '/usr/share/OVMF/OVMF_VARS_4M.fd', '--output', 'v.fd', '--enroll-microsoft',
     '--secure-boot', '--add-mok', '605dab50-e046-4300-abb6-3dd810dd8b23', 'c.der']
    >>> vars_argv(Path("v.fd"), secure_boot=False)[1:]
    ['--input', '/usr/share/OVMF/OVMF_VARS_4M.fd', '--output', 'v.fd']
    """
    argv = [virt_fw_vars(), "--input", str(BLANK_VARS), "--output-aws" if aws else "--output", str(out)]
    if secure_boot:
        argv += ["--enroll-microsoft", "--secure-boot"]
    for cert in db_certs:
        argv += ["--add-db", SHIM_GUID, str(cert)]
    for cert in mok_certs:
        argv += ["--add-mok", SHIM_GUID, str(cert)]
    return argv


def mok_certs(tree: Path, *, secure_boot: bool) -> list[Path]:
    """The image's DKMS certificate (``tree/var/lib/dkms/mok.pub``) when Secure Boot is asked for
    and the image has one; else none (a blank store, or Secure Boot without a MOK)."""
    cert = tree / DKMS_CERT
    return [cert] if secure_boot and cert.is_file() else []


def write_vars(out: Path, tree: Path, *, secure_boot: bool) -> Path:
    """A variable store at ``out`` for the image in ``tree``: with ``secure_boot``, Microsoft's
    keys, Secure Boot on and the image's DKMS certificate as a MOK; else a blank store."""
    run(vars_argv(out, secure_boot=secure_boot, mok_certs=mok_certs(tree, secure_boot=secure_boot)))
    return out


def aws_store(certificate: Path, out: Path) -> str:
    """An AMI's ``uefi_data``: Microsoft's keys, Secure Boot on and ``certificate`` (DER) in
    ``db`` and the MOK list, in AWS's format at ``out``; returns its text (base64)."""
    run(vars_argv(out, secure_boot=True, db_certs=[certificate], mok_certs=[certificate], aws=True))
    return out.read_text().strip()


def read_store(store: Path) -> dict[str, bytes]:
    """The variables of an edk2 or AWS store: name -> data (``virt-fw-vars --output-json``)."""
    with tempfile.TemporaryDirectory(prefix="golden-vars-") as tmp:
        dump = Path(tmp) / "vars.json"
        run([virt_fw_vars(), "--input", str(store), "--output-json", str(dump)])
        variables = json.loads(dump.read_text()).get("variables", [])
    return {str(v["name"]): bytes.fromhex(v.get("data", "")) for v in variables}


def edk2_from(store: Path, out: Path) -> Path:
    """An edk2 store at ``out`` with the variables of ``store`` (e.g. an AMI's, to boot it under OVMF)."""
    with tempfile.TemporaryDirectory(prefix="golden-vars-") as tmp:
        dump = Path(tmp) / "vars.json"
        run([virt_fw_vars(), "--input", str(store), "--output-json", str(dump)])
        run([virt_fw_vars(), "--input", str(BLANK_VARS), "--set-json", str(dump), "--output", str(out)])
    return out


#: EFI_CERT_X509_GUID as it is stored (mixed-endian), the type of a signature list of certificates.
_X509 = bytes.fromhex("a159c0a5e494a74a87b5ab155c2bf072")


def x509_sha256(data: bytes) -> list[str]:
    """The certificates in an EFI signature database (``db``, ``KEK``, ``MokList``), as
    ``sha256:`` of each DER. Its layout (UEFI 2.10, 32.4.1): signature lists of a type GUID,
    the list's size, its header's size and each signature's size (little-endian u32s),
    then signatures of an owner GUID and the certificate.

    >>> x509_sha256(_X509 + struct.pack("<III", 28 + 16 + 3, 0, 16 + 3) + bytes(16) + b"abc")
    ['sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad']
    >>> x509_sha256(b"")
    []
    """
    found, offset = [], 0
    while offset + 28 <= len(data):
        kind = data[offset:offset + 16]
        size, header, each = struct.unpack_from("<III", data, offset + 16)
        if size < 28 or offset + size > len(data) or each <= 16:
            break
        start = offset + 28 + header
        if kind == _X509:
            for at in range(start, offset + size - each + 1, each):
                found.append("sha256:" + hashlib.sha256(data[at + 16:at + each]).hexdigest())
        offset += size
    return found


def trusted(store: Mapping[str, bytes]) -> dict[str, list[str]]:
    """Per variable that says what boots and loads (``PK``, ``KEK``, ``db``, ``MokList``),
    the fingerprints of its certificates."""
    return {name: x509_sha256(store.get(name, b"")) for name in ("PK", "KEK", "db", "MokList")}


def enforcing(store: Mapping[str, bytes]) -> bool:
    """Whether the store turns Secure Boot on (``SecureBootEnable`` is 1)."""
    return store.get("SecureBootEnable", b"")[:1] == b"\x01"
