"""The Secure Boot image under other variable stores: the AMI's, and one without its key.

The disk is the one the Secure Boot build boots (``secureboot_build_root``);
only the firmware's store changes:

- the AMI's ``uefi_data`` (golden/uefivars.py ``aws_store``, AWS's format, the
  build's certificate in ``db`` and the MOK list), read back into OVMF's format:
  what an EC2 instance of that AMI starts with. The module must load.
- Microsoft's keys and Secure Boot on, but not the image's certificate (a
  machine nobody enrolled it on): the kernel must refuse the module, and the
  failure must name the module and the certificate to enrol.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from golden import boottest, uefivars
from golden.boottest.uefi import UEFI_SECURE_BOOT
from golden.errors import StepFailed
from golden.run import run
from tests.integration.workspace import SECUREBOOT

pytestmark = pytest.mark.integration


def _certificate(build_root: Path, tmp_path: Path) -> Path:
    """The build's certificate, as the image keeps it (the one the AMI's store must hold)."""
    tree = tmp_path / "cert-tree"
    tree.mkdir()
    run(["tar", "--zstd", "-xf", str(build_root / SECUREBOOT / "artifacts" / "rootfs.tar.zst"), "-C", str(tree),
         f"./{uefivars.DKMS_CERT}"])
    return tree / uefivars.DKMS_CERT


def test_the_amis_store_boots_the_image_with_its_module_trusted(secureboot_build_root: Path,
                                                                 tmp_path: Path) -> None:
    store = tmp_path / "uefi-data.aws"
    uefivars.aws_store(_certificate(secureboot_build_root, tmp_path), store)
    firmware = dataclasses.replace(UEFI_SECURE_BOOT, store=store)
    result = boottest.boot_test(SECUREBOOT, build_root=secureboot_build_root, firmware=firmware)
    print(f"the AMI's store under OVMF: {result.wall_s:.0f}s wall")
    assert "secureboot: Secure boot enabled" in result.log.read_text(errors="replace")
    boottest.require_pass(result)
    checks = {c.name: c for c in result.report.checks} if result.report else {}
    assert checks["secure-boot-state"].actual == "enforcing"
    assert checks["module-signature[nvidia-current-open]"].passed


def test_a_machine_that_never_enrolled_the_key_refuses_the_module(secureboot_build_root: Path,
                                                                   tmp_path: Path) -> None:
    store = tmp_path / "no-mok.fd"
    run(uefivars.vars_argv(store, secure_boot=True))
    firmware = dataclasses.replace(UEFI_SECURE_BOOT, store=store)
    result = boottest.boot_test(SECUREBOOT, build_root=secureboot_build_root, firmware=firmware)
    print(f"without the certificate: {result.wall_s:.0f}s wall")
    assert "secureboot: Secure boot enabled" in result.log.read_text(errors="replace")
    with pytest.raises(StepFailed) as info:
        boottest.require_pass(result)
    assert "modprobe[nvidia-current-open]" in str(info.value)
    enrolled = json.loads((secureboot_build_root / SECUREBOOT / "expectations.json").read_text())["signing"]
    report = result.report_path.read_text()
    assert "Key was rejected by service" in report and enrolled["certificate_sha256"] in report
