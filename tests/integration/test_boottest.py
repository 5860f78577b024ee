"""Boot the real baked image under QEMU (TCG) with planted faults.

The image is the session's real bake of ``local-debian12-r535``
(tests/integration/conftest.py), which already booted it clean; set
``GOLDEN_BOOT_BUILD`` to an existing build directory (``build/local-debian12-r535``,
holding artifacts/rootfs.tar.zst, expectations.json and cloud-init/) to boot that
instead of baking. Each test boots in its own temporary build root and costs one
TCG boot (a few minutes on 2 cores); each fault must fail the boot test naming
what failed, with the boot log's path.
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
from tests.conftest import require_tool
from tests.integration.workspace import R535

pytestmark = pytest.mark.integration

MODULE = "nvidia-current-open"


@pytest.fixture
def baked(request: pytest.FixtureRequest) -> Path:
    """The build directory whose artifact is booted."""
    for tool in ("qemu-system-x86_64", "mkfs.ext4", "mkfs.vfat", "mcopy", "ssh", "ssh-keygen", "zstd"):
        require_tool(tool)
    given = os.environ.get("GOLDEN_BOOT_BUILD")
    if given:
        return Path(given).resolve()
    out: Path = request.getfixturevalue("r535_bake").out
    return out


@pytest.fixture
def build_root(baked: Path, tmp_path: Path) -> Path:
    """A build root holding what the boot test reads besides the artifact (a test may change it)."""
    out = tmp_path / "build" / R535
    out.mkdir(parents=True)
    shutil.copyfile(baked / "expectations.json", out / "expectations.json")
    shutil.copytree(baked / "cloud-init", out / "cloud-init")
    return tmp_path / "build"


@pytest.fixture
def artifact(baked: Path) -> Path:
    return baked / "artifacts" / "rootfs.tar.zst"


def _boot(build_root: Path, artifact: Path, plant: boottest.Plant | None = None) -> boottest.BootResult:
    result = boottest.boot_test(R535, build_root=build_root, artifact=artifact, plant=plant)
    # Nothing is left behind: the scratch tree, the disk and QEMU are gone.
    assert not any((build_root / ".work").iterdir())
    assert result.log.is_file()
    return result


def _failure(result: boottest.BootResult) -> str:
    assert not result.passed
    with pytest.raises(StepFailed) as info:
        boottest.require_pass(result)
    message = str(info.value)
    assert str(result.log) in message
    return message


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


def test_module_for_another_kernel_fails(build_root: Path, artifact: Path) -> None:
    message = _failure(_boot(build_root, artifact, _module_for_another_kernel))
    assert f"modprobe[{MODULE}] (expected no-device (or loaded), actual bad-module)" in message


def _broken_runtime_config(tree: Path) -> None:
    """The runtime's configuration left invalid after golden configured it: dockerd refuses
    to start (a unit failing at boot) and no container can run."""
    (tree / "etc/docker").mkdir(parents=True, exist_ok=True)
    (tree / "etc/docker/daemon.json").write_text('{"log-driver": "json-file",, "planted": fault}\n')


def test_three_faults_in_one_boot_are_each_named(build_root: Path, artifact: Path) -> None:
    """One boot (minutes under TCG) for three independent faults, each named in the failure:
    docker's daemon.json left invalid (docker.service fails at boot, and the check container
    does not start under docker), user-data that cloud-init rejects, and ``secure_boot`` asked
    of a module whose signing key no kernel keyring holds (DKMS's key, made on the image)."""
    (build_root / R535 / "cloud-init" / "user-data").write_text(
        "#cloud-config\nruncmd: not-a-list\nbootcmd: {also: wrong}\n")
    expectations = build_root / R535 / "expectations.json"
    data = json.loads(expectations.read_text())
    data["secure_boot"] = True
    expectations.write_text(json.dumps(data))
    message = _failure(_boot(build_root, artifact, _broken_runtime_config))
    assert "failed-units" in message and "docker.service" in message, message
    assert "container-run[docker] (expected golden-container-ok" in message, message
    assert "cloud-init (expected done without errors" in message, message
    assert f"module-signature[{MODULE}] (expected signed, key trusted" in message, message
