"""Secure Boot faults on the real Secure Boot image: a module its firmware must refuse.

The session's Secure Boot bake (``secureboot_bake``, test_bake_secureboot.py)
boots itself with its certificate enrolled and the module loading. Here its
artifact is booted again, through the same ``uefi-secure-boot`` firmware, with
the modules signed once more by a key made for the test that nobody enrolled
(the plant): the variable store still carries the image's own certificate as a
MOK, so the kernel must refuse the module ("Key was rejected by service"), and
the failed check must name the module and the certificate the build enrolled.
``GOLDEN_BOOT_BUILD`` names an existing build directory of that profile;
otherwise the session's bake is used.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest

from golden import boottest
from golden.errors import StepFailed
from golden.run import run
from golden.uefivars import DKMS_CERT
from tests.conftest import require_tool
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


@pytest.fixture
def build_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    for tool in ("qemu-system-x86_64", "sgdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "ssh", "chroot"):
        require_tool(tool)
    if os.geteuid() != 0:
        pytest.skip("chroot apt-get needs root")
    given = os.environ.get("GOLDEN_BOOT_BUILD")
    baked = Path(given).resolve() if given else request.getfixturevalue("secureboot_bake").out
    out = tmp_path / "build" / SECUREBOOT
    (out / "artifacts").mkdir(parents=True)
    shutil.copyfile(baked / "expectations.json", out / "expectations.json")
    shutil.copytree(baked / "cloud-init", out / "cloud-init")
    (out / "artifacts" / "rootfs.tar.zst").symlink_to(baked / "artifacts" / "rootfs.tar.zst")
    shutil.copyfile(baked / "artifacts" / "release.json", out / "artifacts" / "release.json")
    return tmp_path / "build"


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
