"""The uefi firmware: OVMF's pflash and machine arguments, the variable store, the disk it boots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from golden import boottest
from golden.boottest import firmware as fw
from golden.boottest import uefi
from golden.boottest.media import Kernel, Media
from golden.errors import GoldenError
from golden.targets import disk
from tests.conftest import require_tool

MEDIA = Media(Path("/w/d.raw"), vars=Path("/w/vars-1.fd"))


def test_plain_uefi_boots_ovmf_without_smm_from_pflash() -> None:
    argv = boottest.qemu_argv(fw.lookup("uefi"), MEDIA, Path("/w/s.img"), 40022)
    assert argv[argv.index("-machine") + 1] == "q35"
    assert "-global" not in argv and "-kernel" not in argv
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" in argv
    assert "if=pflash,format=raw,unit=1,file=/w/vars-1.fd" in argv
    assert "file=/w/d.raw,format=raw,if=virtio,cache=unsafe" in argv


def test_secure_boot_needs_smm_and_secure_flash() -> None:
    args = fw.lookup("uefi-secure-boot").qemu_args(MEDIA)
    assert args[:4] == ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd" in args


def test_secure_boot_boots_one_cpu_the_others_two() -> None:
    # OVMF's SMM build with two CPUs under TCG now and then stalls after shim (CI saw it once).
    def smp(name: str) -> str:
        media = Media(MEDIA.disk, Kernel("6.1", Path("/v"), Path("/i")), vars=MEDIA.vars)
        argv = boottest.qemu_argv(fw.lookup(name), media, Path("/w/s.img"), 40022)
        return argv[argv.index("-smp") + 1]

    assert (smp("uefi-secure-boot"), smp("uefi"), smp("linux")) == ("1", "2", "2")


def test_uefi_needs_a_variable_store() -> None:
    with pytest.raises(GoldenError, match="uefi-secure-boot firmware needs a variable store"):
        fw.lookup("uefi-secure-boot").qemu_args(Media(Path("/w/d.raw")))


def test_the_store_enrolls_microsoft_and_the_mok_only_for_secure_boot() -> None:
    plain = uefi.vars_argv(Path("v.fd"), secure_boot=False)
    assert plain[1:] == ["--input", "/usr/share/OVMF/OVMF_VARS_4M.fd", "--output", "v.fd"]
    secure = uefi.vars_argv(Path("v.fd"), secure_boot=True, mok_certs=[Path("a.der"), Path("b.der")])
    assert secure[5:] == ["--enroll-microsoft", "--secure-boot", "--add-mok", uefi.SHIM_GUID, "a.der",
                          "--add-mok", uefi.SHIM_GUID, "b.der"]


def test_each_boot_writes_its_own_copy_of_the_store(tmp_path: Path) -> None:
    store = tmp_path / "template.fd"
    store.write_bytes(b"vars")
    first, second = uefi.boot_copy(store, tmp_path), uefi.boot_copy(store, tmp_path)
    assert first != second and first.read_bytes() == second.read_bytes() == b"vars"
    first.write_bytes(b"written by the guest")
    assert store.read_bytes() == b"vars"


def _tree(work: Path, with_cert: bool) -> Path:
    tree = work / "rootfs"
    for source, _name in disk.ESP_FILES:
        (tree / source).parent.mkdir(parents=True, exist_ok=True)
        (tree / source).write_bytes(b"efi")
    (tree / "etc").mkdir()
    if with_cert:  # what DKMS makes: a self-signed certificate, DER
        (tree / uefi.DKMS_CERT).parent.mkdir(parents=True)
        subprocess.run([require_tool("openssl"), "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048",
                        "-days", "2", "-subj", "/CN=golden test", "-outform", "DER", "-keyout",
                        str(work / "mok.key"), "-out", str(tree / uefi.DKMS_CERT)], check=True, capture_output=True)
    return tree


@pytest.mark.parametrize("secure_boot", [False, True])
def test_write_media_makes_a_gpt_disk_booting_by_uuid_and_a_store(tmp_path: Path, secure_boot: bool) -> None:
    for tool in ("sgdisk", "mkfs.vfat", "mcopy", "mtype", "mkfs.ext4", "debugfs"):
        require_tool(tool)
    if not uefi.BLANK_VARS.is_file():
        pytest.skip("ovmf not installed")
    _tree(tmp_path, with_cert=True)
    firmware = uefi.UEFI_SECURE_BOOT if secure_boot else uefi.UEFI
    media = firmware.write_media(tmp_path, Kernel("6.1", Path("vmlinuz"), Path("initrd")))
    assert media.disk == tmp_path / "disk.raw" and media.kernel is None and media.vars is not None
    assert not (tmp_path / "rootfs").exists()
    assert (tmp_path / "mok.der").is_file() is secure_boot
    cfg = subprocess.run(["mtype", "-i", f"{media.disk}@@1M", "::/" + disk.GRUB_CFG], capture_output=True,
                         text=True, check=True).stdout
    root_uuid = cfg.split("--set=root ")[1].split()[0]
    assert f"linux /boot/vmlinuz-6.1 root=UUID={root_uuid} " in cfg
    dump = subprocess.run([uefi.virt_fw_vars(), "-i", str(media.vars), "--print"], capture_output=True,
                          text=True, check=True).stdout
    assert ("SecureBootEnable" in dump and "MokList" in dump) is secure_boot
