"""OVMF variable stores: Microsoft's keys, Secure Boot on, the image's module key as a MOK.

Shared by the local target, which ships a disk's store (``disk.vars.fd``), and
the boot test, which boots with one (golden/boottest/uefi.py); neither imports
the other. The store is written by ``virt-fw-vars`` (PyPI ``virt-firmware``)
from the blank store of Debian's ``ovmf`` package: ``--enroll-microsoft`` puts
Microsoft's certificates in ``db``/``KEK`` (they sign shim) and a platform key,
``--secure-boot`` turns enforcement on, and ``--add-mok`` appends a certificate
to shim's MOK list, owned by shim's GUID, so the kernel trusts it through its
``.machine`` keyring as if MokManager had enrolled it.

>>> mok_certs(Path("/nonexistent"), secure_boot=True)
[]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
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


def vars_argv(out: Path, *, secure_boot: bool, mok_certs: Sequence[Path] = ()) -> list[str]:
    """The command that writes a variable store at ``out`` (``--output-aws`` is the AMI's form).

    >>> vars_argv(Path("v.fd"), secure_boot=True, mok_certs=[Path("c.der")])[1:]  # doctest: +NORMALIZE_WHITESPACE
    ['--input', '/usr/share/OVMF/OVMF_VARS_4M.fd', '--output', 'v.fd', '--enroll-microsoft',
     '--secure-boot', '--add-mok', '605dab50-e046-4300-abb6-3dd810dd8b23', 'c.der']
    >>> vars_argv(Path("v.fd"), secure_boot=False)[1:]
    ['--input', '/usr/share/OVMF/OVMF_VARS_4M.fd', '--output', 'v.fd']
    """
    argv = [virt_fw_vars(), "--input", str(BLANK_VARS), "--output", str(out)]
    if secure_boot:
        argv += ["--enroll-microsoft", "--secure-boot"]
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
