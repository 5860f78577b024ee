"""The CUDA toolkit layer for real: local-debian12-r535-cuda (Debian's CUDA 11.8 on R535, containerd).

The session's second real bake (tests/integration/conftest.py ``cuda_bake``): the
toolkit from Debian's non-free, a CUDA program compiled at bake with the image's
own nvcc for the GPU's architecture and run against the image's real libcuda,
the driver's module restored from the module cache the R535 bake filled, and a
QEMU boot that runs the program again and starts a container under containerd.
"""

from __future__ import annotations

import json

import pytest

from golden import lockfile
from tests.integration.workspace import CUDA, Baked, need_root_and_bake_tools, report_checks

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    need_root_and_bake_tools()



def test_the_toolkit_is_debians_11_8_and_builds_code_that_runs_on_the_driver(cuda_bake: Baked) -> None:
    assert "verification passed" in cuda_bake.summary
    bake = report_checks(cuda_bake.artifact.parent / "verify-report.json")
    nvcc = bake["nvcc-version"]
    assert nvcc["passed"] and nvcc["actual"] == "11.8" and "/usr/bin/nvcc (distro)" in nvcc["detail"], nvcc
    assert bake["cuda-ceiling"]["passed"]
    # cuda-check, compiled at bake for the L40S (sm_89), against the image's libcuda 535.261.03.
    assert "sm_89" in bake["cuda-check-installed"]["detail"]
    assert bake["cuda-check-runtime"]["actual"] == "11.8" and bake["cuda-check-driver"]["actual"] == "12.2"
    answer = bake["cuda-check-answer"]
    assert answer["passed"] and answer["actual"] == "no-device" and "cudaErrorNoDevice" in answer["detail"], answer
    entry = lockfile.load(cuda_bake.ws.lock)["profiles"][CUDA]["builds"][0]
    assert entry["installed"]["nvidia-cuda-toolkit"].startswith("11.8.89~11.8.0-")
    assert entry["driver"] == {"branch": "535", "version": "535.261.03", "cuda_ceiling": "12.2"}
    release = json.loads((cuda_bake.artifact.parent / "release.json").read_text())
    assert release["runtime"]["name"] == "containerd"


def test_the_module_came_from_the_cache_and_is_checked_as_if_built(cuda_bake: Baked) -> None:
    log = (cuda_bake.out / "packer.log").read_text(errors="replace")
    assert "module cache hit for 6.1.0-50-cloud-amd64" in log and "nothing compiled" in log
    bake = report_checks(cuda_bake.artifact.parent / "verify-report.json")
    assert all(c["passed"] for name, c in bake.items() if name.startswith(("module-version[", "modinfo")))


def test_the_boot_runs_the_program_and_a_container_under_containerd(cuda_bake: Baked) -> None:
    boot = lockfile.load(cuda_bake.ws.lock)["profiles"][CUDA]["builds"][0]["boot_test"]
    assert boot["status"] == "passed" and boot["failed"] == 0
    booted = report_checks(cuda_bake.out / "verify-report-boot.json")
    answer = booted["cuda-check-answer"]
    assert answer["passed"] and answer["actual"] == "no-device", answer      # module loaded, no GPU
    assert booted["cuda-check-runtime"]["actual"] == "11.8" and booted["cuda-check-driver"]["actual"] == "12.2"
    run = booted["container-run[containerd]"]
    assert run["passed"] and run["actual"] == "golden-container-ok", run
