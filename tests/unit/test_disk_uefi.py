"""The UEFI disk writer: a GPT disk with the image's boot chain on an ESP, made without loop devices."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from golden.errors import GoldenError
from golden.targets import disk
from tests.conftest import require_tool


def _tree(tmp_path: Path) -> Path:
    """A tiny image with Debian's boot chain in place, one file behind an absolute link."""
    tree = tmp_path / "tree"
    for source, _name in disk.ESP_FILES:
        (tree / source).parent.mkdir(parents=True, exist_ok=True)
    (tree / "usr/lib/shim/shimx64.efi.signed.latest").write_bytes(b"shim")
    (tree / "usr/lib/shim/shimx64.efi.signed").symlink_to("shimx64.efi.signed.latest")
    (tree / "usr/lib/shim/mm.real").write_bytes(b"mokmanager")
    (tree / "usr/lib/shim/mmx64.efi.signed").symlink_to("/usr/lib/shim/mm.real")
    (tree / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed").write_bytes(b"grub")
    (tree / "etc").mkdir()
    (tree / "etc/hostname").write_text("golden\n")
    return tree


def _out(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_links_resolve_inside_the_image_not_on_the_host(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    assert disk.in_tree(tree, "usr/lib/shim/mmx64.efi.signed") == tree / "usr/lib/shim/mm.real"
    assert disk.in_tree(tree, "usr/lib/shim/shimx64.efi.signed").read_bytes() == b"shim"
    (tree / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed").unlink()
    with pytest.raises(GoldenError, match=r"no usr/lib/grub/x86_64-efi-signed/grubx64\.efi\.signed .*"
                                           r"grub-efi-amd64-signed installed"):
        disk.in_tree(tree, "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")


def test_grub_boots_the_pinned_kernel_by_the_root_uuid() -> None:
    cfg = disk.grub_cfg("0b1c", "6.1.0-50-cloud-amd64").splitlines()
    assert "search --no-floppy --fs-uuid --set=root 0b1c" in cfg
    assert "initrd /boot/initrd.img-6.1.0-50-cloud-amd64" in cfg
    assert cfg[-1] == "boot" and cfg[0] == "set timeout=0"


def test_a_uefi_disk_holds_a_gpt_an_esp_and_the_root(tmp_path: Path) -> None:
    for tool in ("sgdisk", "mkfs.vfat", "mcopy", "mtype", "mkfs.ext4", "debugfs", "dd"):
        require_tool(tool)
    tree, image = _tree(tmp_path), tmp_path / "disk.raw"
    made = disk.write_uefi_disk(tree, image, "6.1.0-50-cloud-amd64", root_uuid="5e0a0d4b-3f7e-4c1c-9d7a-2b1e0c9f8a11")
    table = _out("sgdisk", "-p", str(image))
    assert "   1            2048          133119   64.0 MiB    EF00  ESP" in table
    assert "8304  golden-root" in table
    assert image.stat().st_size == (2 + disk.ESP_MB + made.root_mb) << 20
    esp = f"{image}@@1M"
    assert _out("mtype", "-i", esp, "::/EFI/BOOT/BOOTX64.EFI") == "shim"
    assert _out("mtype", "-i", esp, "::/EFI/BOOT/mmx64.efi") == "mokmanager"
    assert _out("mtype", "-i", esp, "::/EFI/BOOT/grubx64.efi") == "grub"
    assert _out("mtype", "-i", esp, "::/" + disk.GRUB_CFG) == disk.grub_cfg(made.root_uuid, made.kernel)
    root = tmp_path / "root.img"
    with image.open("rb") as src, root.open("wb") as dst:
        src.seek((1 + disk.ESP_MB) << 20)
        dst.write(src.read(made.root_mb << 20))
    stats = _out("debugfs", "-R", "stats", str(root))
    assert "Filesystem UUID:          5e0a0d4b-3f7e-4c1c-9d7a-2b1e0c9f8a11" in stats
    assert _out("debugfs", "-R", "cat /etc/hostname", str(root)) == "golden\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.raw", "root.img", "tree"]


def test_a_uefi_disk_can_also_be_qcow2(tmp_path: Path) -> None:
    for tool in ("sgdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "qemu-img"):
        require_tool(tool)
    image, qcow2 = tmp_path / "disk.raw", tmp_path / "disk.qcow2"
    disk.write_uefi_disk(_tree(tmp_path), image, "6.1", qcow2=qcow2)
    info = _out("qemu-img", "info", "--output=json", str(qcow2))
    assert '"format": "qcow2"' in info and f'"virtual-size": {image.stat().st_size}' in info


def test_a_tree_without_the_boot_chain_writes_no_disk(tmp_path: Path) -> None:
    require_tool("mkfs.vfat")
    tree = _tree(tmp_path)
    (tree / "usr/lib/shim/shimx64.efi.signed").unlink()
    with pytest.raises(GoldenError, match="shim-signed"):
        disk.write_uefi_disk(tree, tmp_path / "disk.raw", "6.1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]
