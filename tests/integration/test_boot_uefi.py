"""Boot the real R535 image as a GPT disk through OVMF (TCG): shim, grub, the pinned kernel.

The artifact is a rootfs without a bootloader, so the plant installs Debian's
signed boot chain into the unpacked tree with the image's own apt sources (this
needs the network); the ``uefi`` firmware then writes the GPT disk
(:func:`golden.targets.disk.write_uefi_disk`) and boots it with a blank variable
store. The Secure Boot tests re-sign the DKMS modules with a key made for the
test (the bake destroyed its own) and boot ``uefi-secure-boot``: with the
certificate where DKMS keeps it, the firmware enrolls it as a MOK; without it,
the kernel must refuse the module. ``GOLDEN_BOOT_BUILD`` names an existing build
directory, as in test_boottest.py; otherwise the session's bake is used.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from golden import boottest
from golden.boottest.uefi import DKMS_CERT
from golden.errors import StepFailed
from golden.run import base_env, run
from golden.targets.disk import ESP_FILES
from tests.conftest import require_tool
from tests.integration.workspace import R535

pytestmark = pytest.mark.integration

#: Debian's signed boot chain: shim, MokManager (shim-helpers), grub.
BOOT_CHAIN = ("shim-signed", "shim-helpers-amd64-signed", "grub-efi-amd64-signed")


def install_boot_chain(tree: Path) -> None:
    """The plant: the boot chain from the image's own apt sources, no mounts needed."""
    env = base_env({"DEBIAN_FRONTEND": "noninteractive"})
    run(["chroot", str(tree), "apt-get", "update", "-qq"], env=env, timeout=600)
    run(["chroot", str(tree), "apt-get", "install", "-y", "-qq", "--no-install-recommends", *BOOT_CHAIN],
        env=env, timeout=900)
    assert all((tree / source).exists() for source, _name in ESP_FILES)


#: The trailer of a signed kernel module: signature, ``struct module_signature`` (12 bytes), magic.
SIG_MAGIC = b"~Module signature appended~\n"


def resign_modules(tree: Path, *, enroll: bool) -> None:
    """The DKMS modules signed again by a new key; its certificate (DER) where DKMS keeps it
    when ``enroll``, so the ``uefi-secure-boot`` firmware puts it in the MOK list."""
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
    baked = Path(given).resolve() if given else request.getfixturevalue("r535_bake").out
    out = tmp_path / "build" / R535
    (out / "artifacts").mkdir(parents=True)
    shutil.copyfile(baked / "expectations.json", out / "expectations.json")
    shutil.copytree(baked / "cloud-init", out / "cloud-init")
    (out / "artifacts" / "rootfs.tar.zst").symlink_to(baked / "artifacts" / "rootfs.tar.zst")
    shutil.copyfile(baked / "artifacts" / "release.json", out / "artifacts" / "release.json")
    return tmp_path / "build"


def test_secure_boot_loads_the_module_signed_by_the_enrolled_key(build_root: Path) -> None:
    def plant(tree: Path) -> None:
        install_boot_chain(tree)
        resign_modules(tree, enroll=True)

    result = boottest.boot_test(R535, build_root=build_root, firmware="uefi-secure-boot", plant=plant)
    log = result.log.read_text(errors="replace")
    # OVMF started the disk's shim, which started grub, which read EFI/debian/grub.cfg.
    assert "BdsDxe: starting Boot" in log, "OVMF did not start a boot entry"
    assert f"golden: booting {result.kernel}" in log, "grub did not read EFI/debian/grub.cfg"
    assert "secureboot: Secure boot enabled" in log
    assert "Loaded X.509 cert 'golden test module signing" in log, "the MOK was not loaded"
    assert "NVRM: No NVIDIA GPU found." in log
    boottest.require_pass(result)


def test_secure_boot_refuses_the_module_when_its_key_is_not_enrolled(build_root: Path) -> None:
    def plant(tree: Path) -> None:
        install_boot_chain(tree)
        resign_modules(tree, enroll=False)

    result = boottest.boot_test(R535, build_root=build_root, firmware="uefi-secure-boot", plant=plant)
    assert "secureboot: Secure boot enabled" in result.log.read_text(errors="replace")
    with pytest.raises(StepFailed) as info:
        boottest.require_pass(result)
    assert "modprobe[nvidia-current-open]" in str(info.value)
    # The check's own line, as the run printed it: the kernel's refusal, named.
    assert "Key was rejected by service" in result.report_path.read_text()
