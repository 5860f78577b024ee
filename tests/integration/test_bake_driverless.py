"""A driverless image for the GPU Operator, for real: local-debian13-driverless.

The session's third real bake (tests/integration/conftest.py ``driverless_bake``):
Debian 13 from Debian's archive (its own cached base), no NVIDIA module, package,
CUDA or container toolkit, nouveau blacklisted with the initramfs rebuilt, the
pinned kernel's headers held for the Operator's driver container, containerd
left for the Operator to configure, Apptainer 1.4.5 from Debian's unstable (the
suite gone again after the step); booted under QEMU, where neither nouveau nor
an NVIDIA module is loaded, containerd starts a container and an unprivileged
user builds a SIF and runs it. The same disk is then booted again with one NVMe
disk and with none (golden/boottest/reboot.py): /data single, then no /data and
the runtime on the root disk, each reported and passed.
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


def test_apptainer_is_the_pin_and_runs_a_sif_rootless(driverless_bake: Baked) -> None:
    bake = report_checks(driverless_bake.artifact.parent / "verify-report.json")
    assert bake["apptainer-version"]["passed"] and bake["apptainer-version"]["actual"] == "1.4.5"
    assert bake["apptainer-rootless-setup"]["passed"], bake["apptainer-rootless-setup"]
    entry = lockfile.load(driverless_bake.ws.lock)["profiles"][DRIVERLESS]["builds"][0]
    assert entry["installed"]["apptainer"].startswith("1.4.5-")
    booted = report_checks(driverless_bake.out / "verify-report-boot.json")
    run = booted["apptainer-rootless-exec"]
    # The marker and the user's own uid (not 0): the container ran rootless.
    assert run["passed"] and run["actual"].startswith("golden-apptainer-ok ") and run["actual"] != \
        "golden-apptainer-ok 0", run


def test_the_same_disk_boots_with_one_and_with_no_nvme_disk(driverless_bake: Baked) -> None:
    """Issue 14's faults: one disk missing -> single-disk /data; none -> no /data, containerd's
    storage on the root disk; both reported as passed, and everything else still verifies."""
    one = report_checks(driverless_bake.out / "verify-report-boot-nvme1.json")
    assert one["data-disks"]["passed"] and "'status': 'single'" in one["data-disks"]["actual"], one["data-disks"]
    assert one["data-disks-storage"]["passed"], one["data-disks-storage"]
    none = report_checks(driverless_bake.out / "verify-report-boot-nvme0.json")
    assert none["data-disks"]["passed"] and none["data-disks"]["actual"] == "none", none["data-disks"]
    assert "data-disks-storage" not in none
    for report in (one, none):
        assert all(c["passed"] for c in report.values()), [c for c in report.values() if not c["passed"]]
        assert report["container-run[containerd]"]["actual"] == "golden-container-ok"
        assert report["apptainer-rootless-exec"]["passed"]
