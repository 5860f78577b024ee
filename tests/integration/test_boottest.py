"""Boot the real baked image under QEMU (TCG), clean and with planted faults.

These need the artifact of a local bake of ``local-debian12-r535``
(``build/local-debian12-r535/artifacts/rootfs.tar.zst``, or ``$GOLDEN_BOOT_ARTIFACT``).
A bake takes minutes, so without one the tests skip, in CI too, and say why.
Each test boots in its own temporary build root: ``build/NAME/boot.log`` of the
real build is left alone. Every test costs one TCG boot (a few minutes on 2 cores).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from golden import ROOT, boottest
from golden.errors import StepFailed
from tests.conftest import require_tool

pytestmark = pytest.mark.integration

PROFILE = "local-debian12-r535"
BUILD = ROOT / "build" / PROFILE
ARTIFACT = Path(os.environ.get("GOLDEN_BOOT_ARTIFACT") or BUILD / "artifacts" / "rootfs.tar.zst")
MODULE = "nvidia-current-open"


@pytest.fixture
def build_root(tmp_path: Path) -> Path:
    """A build root holding what the boot test reads besides the artifact."""
    for tool in ("qemu-system-x86_64", "mkfs.ext4", "mkfs.vfat", "mcopy", "ssh", "ssh-keygen", "zstd"):
        require_tool(tool)
    if not ARTIFACT.is_file() or not (BUILD / "expectations.json").is_file():
        pytest.skip(f"no baked artifact at {ARTIFACT} (bake it: invoke build --profile {PROFILE}); "
                    "skipped in CI too, a bake takes minutes")
    out = tmp_path / "build" / PROFILE
    out.mkdir(parents=True)
    shutil.copyfile(BUILD / "expectations.json", out / "expectations.json")
    shutil.copytree(BUILD / "cloud-init", out / "cloud-init")
    return tmp_path / "build"


def _boot(build_root: Path, plant: boottest.Plant | None = None) -> boottest.BootResult:
    result = boottest.boot_test(PROFILE, build_root=build_root, artifact=ARTIFACT, plant=plant)
    # Nothing is left behind: the scratch tree, the disk and QEMU are gone.
    assert not any((build_root / ".work").iterdir())
    assert result.log.is_file()
    return result


def _failure(result: boottest.BootResult) -> str:
    with pytest.raises(StepFailed) as info:
        boottest.require_pass(result)
    message = str(info.value)
    assert str(result.log) in message
    return message


def test_clean_image_boots_and_module_fits_the_kernel(build_root: Path) -> None:
    result = _boot(build_root)
    assert result.report is not None
    by_name = {c.name: c for c in result.report.checks}
    assert by_name["multi-user-target"].passed
    module = by_name[f"modprobe[{MODULE}]"]
    assert (module.actual, module.passed) == ("no-device", True), module.detail
    assert "No NVIDIA GPU found" in module.detail or "No such device" in module.detail
    assert by_name["gpu-check-status"].actual == "no-gpu"
    assert by_name[f"module-signature[{MODULE}]"].actual.startswith(("unsigned", "signed by"))
    assert result.boot_time_s is not None and result.boot_time_s > 0
    assert result.passed, result.failures()
    assert "boot test passed" in boottest.require_pass(result)


def _module_for_another_kernel(tree: Path) -> None:
    """What a module built against another kernel's headers looks like to this kernel:
    another version in ``vermagic`` and other symbol CRCs in ``__versions``."""
    kernel = boottest.find_kernel(tree).version
    path = next((tree / "usr/lib/modules" / kernel).rglob(f"{MODULE}.ko"))
    data = bytearray(path.read_bytes())
    other = kernel.replace(kernel.split("-")[1], "9" * len(kernel.split("-")[1]), 1)
    magic = f"vermagic={kernel} ".encode()
    assert magic in data
    data[data.index(magic):data.index(magic) + len(magic)] = f"vermagic={other} ".encode()
    offset, size = _section(bytes(data), "__versions")
    # struct modversion_info: an 8-byte CRC, then a 56-byte name.
    for entry in range(offset, offset + size, 64):
        crc = struct.unpack_from("<Q", data, entry)[0]
        struct.pack_into("<Q", data, entry, crc ^ 0x5A5A5A5A)
    path.write_bytes(bytes(data))


def _section(elf: bytes, name: str) -> tuple[int, int]:
    """File offset and size of an ELF64 section by name."""
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    def header(i: int) -> tuple[int, int, int]:
        sh = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return sh[0], sh[4], sh[5]
    _, strtab, _ = header(shstrndx)
    for i in range(shnum):
        name_off, off, size = header(i)
        end = elf.index(b"\0", strtab + name_off)
        if elf[strtab + name_off:end].decode() == name:
            return off, size
    raise AssertionError(f"no {name} section")


def test_module_for_another_kernel_fails(build_root: Path) -> None:
    result = _boot(build_root, _module_for_another_kernel)
    assert not result.passed
    message = _failure(result)
    assert f"modprobe[{MODULE}] (expected no-device (or loaded), actual bad-module)" in message


def _failing_unit(tree: Path) -> None:
    unit = tree / "etc/systemd/system/golden-broken.service"
    unit.write_text("[Unit]\nDescription=planted fault\n\n[Service]\nType=oneshot\n"
                    "ExecStart=/bin/false\n\n[Install]\nWantedBy=multi-user.target\n")
    (tree / "etc/systemd/system/multi-user.target.wants/golden-broken.service").symlink_to(
        "/etc/systemd/system/golden-broken.service")


def test_unit_failing_at_boot_fails(build_root: Path) -> None:
    result = _boot(build_root, _failing_unit)
    message = _failure(result)
    assert "failed-units" in message and "golden-broken.service" in message


def test_user_data_cloud_init_rejects_fails(build_root: Path) -> None:
    tree_has_cloud_init = _artifact_has("usr/bin/cloud-init")
    if not tree_has_cloud_init:
        pytest.skip("the image has no cloud-init (the boot test reports it as not installed), "
                    "so no user-data can be rejected")
    (build_root / PROFILE / "cloud-init" / "user-data").write_text(
        "#cloud-config\nruncmd: not-a-list\nbootcmd: {also: wrong}\n")
    message = _failure(_boot(build_root))
    assert "cloud-init" in message


def _artifact_has(member: str) -> bool:
    from golden.run import run

    listing = run(["tar", "--zstd", "-tf", str(ARTIFACT), f"./{member}"], check=False, timeout=600)
    return listing.returncode == 0
