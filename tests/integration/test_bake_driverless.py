"""A driverless image for the GPU Operator, for real: local-debian13-driverless.

The session's third real bake (tests/integration/conftest.py ``driverless_bake``):
Debian 13 from Debian's archive (its own cached base), no NVIDIA module, package,
CUDA or container toolkit, nouveau blacklisted with the initramfs rebuilt, the
pinned kernel's headers held for the Operator's driver container, containerd
left for the Operator to configure; booted under QEMU, where neither nouveau nor
an NVIDIA module is loaded and containerd starts a container.
"""

from __future__ import annotations

import json

import pytest

from golden import lockfile
from tests.integration.workspace import DRIVERLESS, Baked, need_root_and_bake_tools, report_checks

pytestmark = pytest.mark.integration

KERNEL = "6.12.117+deb13-cloud-amd64"


@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    need_root_and_bake_tools()



def test_the_image_has_no_nvidia_stack_and_holds_the_headers(driverless_bake: Baked) -> None:
    assert "verification passed" in driverless_bake.summary
    bake = report_checks(driverless_bake.artifact.parent / "verify-report.json")
    for name in ("nvidia-modules", "nvidia-packages", "nouveau-blacklist", f"kernel-headers[{KERNEL}]"):
        assert bake[name]["passed"], bake[name]
    assert bake["nvidia-modules"]["actual"] == "none" and bake["nvidia-packages"]["actual"] == "none"
    entry = lockfile.load(driverless_bake.ws.lock)["profiles"][DRIVERLESS]["builds"][0]
    assert entry["driver"] is None and entry["workloads"] == []
    assert entry["installed"][f"linux-headers-{KERNEL}"]
    assert not any(n.startswith(("nvidia", "libnvidia", "cuda", "libcuda")) for n in entry["installed"])
    release = json.loads((driverless_bake.artifact.parent / "release.json").read_text())
    assert release["driver"] is None and release["runtime"]["name"] == "containerd"


def test_booted_without_nouveau_with_data_disks_and_a_container(driverless_bake: Baked) -> None:
    boot = lockfile.load(driverless_bake.ws.lock)["profiles"][DRIVERLESS]["builds"][0]["boot_test"]
    assert boot["status"] == "passed" and boot["kernel"] == KERNEL
    booted = report_checks(driverless_bake.out / "verify-report-boot.json")
    assert booted["loaded-modules"]["passed"] and booted["loaded-modules"]["actual"] == "neither"
    run = booted["container-run[containerd]"]
    assert run["passed"] and run["actual"] == "golden-container-ok", run
    # Two emulated NVMe disks (model "QEMU NVMe Ctrl", as the profile says): one RAID0 at /data,
    # with containerd's storage on it.
    disks = booted["data-disks"]
    assert disks["passed"] and "'status': 'raid0'" in disks["actual"] and "/dev/md" in disks["actual"], disks
    assert booted["data-disks-storage"]["passed"], booted["data-disks-storage"]
