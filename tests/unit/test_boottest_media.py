"""What the boot test boots: the firmware registry and the disk written from the artifact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from golden import boottest
from golden.boottest import firmware as fw
from golden.boottest.linux import CMDLINE
from golden.boottest.media import Kernel, Media, unpack, write_disk
from golden.errors import GoldenError
from golden.targets import disk
from tests.conftest import require_tool

MEDIA = Media(Path("/w/d.raw"), Kernel("6.1", Path("/w/vmlinuz"), Path("/w/initrd")), vars=Path("/w/vars.fd"))


def test_every_registered_firmware_loads_under_its_name() -> None:
    for name in fw.FIRMWARE:
        loaded = fw.lookup(name)
        assert loaded.name == name
        assert isinstance(loaded.qemu_args(MEDIA), list)


def test_linux_boots_the_kernel_from_the_host_before_the_disks() -> None:
    argv = boottest.qemu_argv(fw.lookup("linux"), MEDIA, Path("/w/s.img"), 40022)
    assert argv[argv.index("-kernel"):argv.index("-kernel") + 6] == [
        "-kernel", "/w/vmlinuz", "-initrd", "/w/initrd", "-append", CMDLINE]
    assert argv.index("-append") < argv.index("-drive")
    assert "file=/w/d.raw,format=raw,if=virtio,cache=unsafe" in argv


def test_linux_needs_a_kernel_outside_the_disk() -> None:
    with pytest.raises(GoldenError, match="boots a kernel from the host"):
        fw.lookup("linux").qemu_args(Media(Path("/w/d.raw")))


def test_unknown_firmware_names_those_there_are() -> None:
    with pytest.raises(GoldenError) as e:
        fw.lookup("bios")
    assert str(e.value.args[0]) == "the boot test has no 'bios' firmware; it has: linux, uefi, uefi-secure-boot"


@pytest.mark.parametrize("secure_boot", [False, True])
def test_a_rootfs_boots_linux_with_or_without_secure_boot(secure_boot: bool) -> None:
    for name in ("rootfs.tar.zst", "base.tar"):
        assert fw.finalize_firmware(Path(name), secure_boot=secure_boot).name == "linux"


@pytest.mark.parametrize(("secure_boot", "wanted"), [(False, "uefi"), (True, "uefi-secure-boot")])
def test_a_disk_boots_uefi_and_secure_boot_asks_for_it(secure_boot: bool, wanted: str) -> None:
    for name in ("disk.raw", "disk.qcow2"):
        assert fw.finalize_firmware(Path(name), secure_boot=secure_boot).name == wanted
    with pytest.raises(GoldenError, match=r"a rootfs .* or a disk .*, not image\.iso"):
        fw.finalize_firmware(Path("image.iso"))


def test_boot_test_refuses_an_unbootable_artifact_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "p"
    (out / "cloud-init").mkdir(parents=True)
    for name in ("cloud-init/user-data", "cloud-init/meta-data", "disk.raw"):
        (out / name).write_text("x")
    (out / "expectations.json").write_text(json.dumps({"secure_boot": True}))
    with pytest.raises(GoldenError, match=r"from a rootfs artifact .*; booting a disk artifact"):
        boottest.boot_test("p", build_root=tmp_path, artifact=out / "disk.raw")
    with pytest.raises(GoldenError, match="no 'bios' firmware"):
        boottest.boot_test("p", build_root=tmp_path, artifact=out / "disk.raw", firmware="bios")
    assert not (tmp_path / ".work").exists() and not (out / "boot.log").exists()


def _debugfs(image: Path, request: str) -> str:
    debugfs = require_tool("debugfs")
    return subprocess.run([debugfs, "-R", request, str(image)], capture_output=True, text=True,
                          check=True).stdout


def test_write_ext4_holds_the_tree(tmp_path: Path) -> None:
    require_tool("mkfs.ext4")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("golden\n")
    (tree / "hostname").symlink_to("etc/hostname")
    image = tmp_path / "disk.raw"
    disk.write_ext4(tree, image)
    assert _debugfs(image, "cat /etc/hostname") == "golden\n"
    assert "Fast link dest: \"etc/hostname\"" in _debugfs(image, "stat /hostname")
    assert "Filesystem volume name:   golden-root" in _debugfs(image, "stats")
    assert image.stat().st_size == disk.ext4_size_mb(disk.tree_bytes(tree)) << 20


def test_a_rootfs_artifact_becomes_a_disk_and_a_kernel_outside_it(tmp_path: Path) -> None:
    """unpack then write_disk, as the boot test runs them, on a tiny rootfs archive."""
    for tool in ("tar", "ssh-keygen", "mkfs.ext4"):
        require_tool(tool)
    src = tmp_path / "src"
    (src / "boot").mkdir(parents=True)
    (src / "boot/vmlinuz-6.1.0-50-cloud-amd64").write_bytes(b"kernel")
    (src / "boot/initrd.img-6.1.0-50-cloud-amd64").write_bytes(b"initrd")
    (src / "etc").mkdir()
    (src / "etc/fstab").write_text("# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
    archive = tmp_path / "rootfs.tar"
    subprocess.run(["tar", *disk.ROOTFS_TAR_FLAGS, "-cf", str(archive), "-C", str(src), "."], check=True)
    work = tmp_path / "work"
    planted: list[Path] = []
    kernel = unpack(archive, work, work / "id_ed25519", plant=planted.append)
    assert planted == [work / "rootfs"]
    assert (kernel.version, kernel.vmlinuz.read_bytes(), kernel.initrd.read_bytes()) == (
        "6.1.0-50-cloud-amd64", b"kernel", b"initrd")
    assert kernel.vmlinuz.parent == work                        # out of the tree: QEMU reads it
    media = write_disk(work, kernel)
    assert media == Media(work / "disk.raw", kernel) and not (work / "rootfs").exists()
    public = (work / "id_ed25519.pub").read_text()
    assert _debugfs(media.disk, "cat /root/.ssh/authorized_keys") == public
    assert _debugfs(media.disk, "cat /etc/fstab").startswith("/dev/vda / ext4")
    assert _debugfs(media.disk, "cat /boot/initrd.img-6.1.0-50-cloud-amd64") == "initrd"
