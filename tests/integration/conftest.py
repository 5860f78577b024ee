"""The session's one real bake, shared by the bake and boot tests.

The real bake of ``local-debian12-r535`` (Debian's archive, DKMS, a QEMU boot)
takes minutes, so it runs once per test session: ``test_bake.py`` checks what
it produced and ``test_boottest.py`` boots its artifact again with planted
faults. The workspace's copy of the profile lists two workloads, so the bake
probes their CUDA runtimes against the image's real libcuda (and the boot test
again in the booted guest): one declared (CUDA 12.2), one a real image in a
registry on 127.0.0.1 (CUDA 12.9), which resolve pins by digest.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from golden import ROOT
from golden.boottest.reboot import REBOOTS_ENV
from tests.conftest import require_tool
from tests.integration.workspace import (
    CUDA,
    DRIVERLESS,
    R535,
    SECUREBOOT,
    WORKLOADS,
    Baked,
    Workspace,
    assert_nothing_left,
    need_root_and_bake_tools,
)
from tests.ociimage import Layout, cuda_image
from tests.registry import local_registry, push, skopeo_env


@contextmanager
def trainer_image(root: Path) -> Iterator[str]:
    """A CUDA 12.9 image (``trainer:12.9``) in a registry on 127.0.0.1, seen by golden's skopeo
    (and nothing else) for as long as the block runs; yields its reference."""
    require_tool("skopeo")
    layout = Layout(root / "oci")
    # NVIDIA's own NVIDIA_REQUIRE_CUDA of its 12.9.1 image: cuda>=12.9, or a driver of one of the
    # listed branches (R535 among them), which is what lets it run on R535 (minor-version
    # compatibility); a bare cuda>=12.9 would be refused (workload-require-cuda-unmet).
    require = (ROOT / "tests/fixtures/require_cuda/cuda-12.9.1-ubi9-base.txt").read_text().strip()
    layout.tag("12.9", [cuda_image("12.9.1", require)])
    with local_registry(root / "registry") as reg:
        env = skopeo_env(reg.registries_conf())
        ref = push(root / "oci", "12.9", reg, "team/trainer", env)
        keys = ("CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG")
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update({k: env[k] for k in keys[:2]})
        os.environ.pop("DOCKER_CONFIG", None)
        try:
            yield ref
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="session")
def r535_bake(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """``invoke build --profile local-debian12-r535``, for real, once per session.

    A failure is raised again in every test that asks for the bake.
    """
    need_root_and_bake_tools()
    ws = Workspace(tmp_path_factory.mktemp("r535"))
    with trainer_image(tmp_path_factory.mktemp("r535-registry")) as trainer:
        ws.add_workloads(R535, [*WORKLOADS, {"name": "trainer-12-9", "image": trainer}])
        summary = ws.bake(R535)
    assert_nothing_left(ws)
    return Baked(ws, summary)


@pytest.fixture(scope="session")
def cuda_bake(r535_bake: Baked, tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """``invoke build --profile local-debian12-r535-cuda``, for real, once per session: Debian's
    CUDA 11.8 toolkit and containerd on the R535 image. It asks for the R535 bake first, so it
    shares that bake's cached base and finds its module in the module cache (build/cache/modules:
    the same driver, kernel and compiler), as a second bake on a build machine would."""
    ws = Workspace(tmp_path_factory.mktemp("r535-cuda"))
    summary = ws.bake(CUDA)
    assert_nothing_left(ws)
    return Baked(ws, summary, CUDA)


@pytest.fixture(scope="session")
def secureboot_bake(r535_bake: Baked, tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """``invoke build --profile local-debian12-r535-secureboot``, for real, once per session: the
    R535 image with its modules signed by a key made for the build, booted through OVMF with
    Secure Boot enforcing. After the R535 bake, so its module comes from the module cache and is
    signed again with this build's key (42-module-signing)."""
    ws = Workspace(tmp_path_factory.mktemp("r535-secureboot"))
    summary = ws.bake(SECUREBOOT)
    assert_nothing_left(ws)
    return Baked(ws, summary, SECUREBOOT)


@pytest.fixture(scope="session")
def driverless_bake(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """``invoke build --profile local-debian13-driverless``, for real, once per session: a clean
    Debian 13 host for the GPU Operator (no driver, nouveau blacklisted, headers held, containerd),
    booted under QEMU with two NVMe disks, then the same disk again with one and with none
    (golden/boottest/reboot.py: the data disks' fault boots, no second unpack)."""
    need_root_and_bake_tools()
    ws = Workspace(tmp_path_factory.mktemp("driverless"))
    saved = os.environ.get(REBOOTS_ENV)
    os.environ[REBOOTS_ENV] = "1,0"
    try:
        summary = ws.bake(DRIVERLESS)
    finally:
        if saved is None:
            os.environ.pop(REBOOTS_ENV, None)
        else:
            os.environ[REBOOTS_ENV] = saved
    assert_nothing_left(ws)
    return Baked(ws, summary, DRIVERLESS)


@pytest.fixture
def secureboot_build_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A build root holding the Secure Boot build's files for a boot test that changes what it
    boots (its artifact linked, not copied): ``GOLDEN_BOOT_BUILD`` names an existing build
    directory of that profile; otherwise the session's bake is used."""
    for tool in ("qemu-system-x86_64", "sgdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "ssh"):
        require_tool(tool)
    if os.geteuid() != 0:
        pytest.skip("unpacking an image with its owners needs root")
    given = os.environ.get("GOLDEN_BOOT_BUILD")
    baked = Path(given).resolve() if given else request.getfixturevalue("secureboot_bake").out
    out = tmp_path / "build" / SECUREBOOT
    (out / "artifacts").mkdir(parents=True)
    shutil.copyfile(baked / "expectations.json", out / "expectations.json")
    shutil.copytree(baked / "cloud-init", out / "cloud-init")
    (out / "artifacts" / "rootfs.tar.zst").symlink_to(baked / "artifacts" / "rootfs.tar.zst")
    shutil.copyfile(baked / "artifacts" / "release.json", out / "artifacts" / "release.json")
    return tmp_path / "build"
