"""The CUDA toolkit layer for real: local-debian12-r535-cuda (Debian's CUDA 11.8 on R535, containerd).

The session's second real bake (tests/integration/conftest.py ``cuda_bake``): the
toolkit from Debian's non-free, a CUDA program compiled at bake with the image's
own nvcc for the GPU's architecture and run against the image's real libcuda,
the driver's module restored from the module cache the R535 bake filled, and a
QEMU boot that runs the program again and starts a container under containerd.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from golden import boottest, cudart, lockfile
from golden.errors import StepFailed
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


#: A CUDA check program whose runtime is CUDA 13.0: NVIDIA's libcudart 13.0 (the pinned wheel,
#: golden/data/cudart.yaml) called the way cuda-check.cu calls it, printing cuda-check's line.
NEWER_CHECK = '''#!/usr/bin/python3
import ctypes, json
rt = ctypes.CDLL("/usr/lib/golden/cudart-13.0/libcudart.so.13")
def call(name):
    value = ctypes.c_int(0)
    return getattr(rt, name)(ctypes.byref(value)), value.value
driver_error, driver = call("cudaDriverGetVersion")
runtime_error, runtime = call("cudaRuntimeGetVersion")
error, count = call("cudaGetDeviceCount")
rt.cudaGetErrorName.restype = ctypes.c_char_p
print(json.dumps({"schema": 1, "driver": driver, "driver_error": driver_error, "runtime": runtime,
                  "runtime_error": runtime_error, "cudart": 13000, "device_count": count, "error": error,
                  "error_name": rt.cudaGetErrorName(error).decode(), "devices": []}))
'''


def test_a_newer_runtime_and_a_broken_runtime_config_fail_the_boot_test(cuda_bake: Baked, tmp_path: Path) -> None:
    """Two planted faults, one boot: the CUDA check replaced by one carrying CUDA 13.0's runtime
    (newer than R535's ceiling, 12.2) fails with cudaErrorInsufficientDriver; containerd's
    config.toml left invalid after golden configured it fails the container run, naming containerd."""
    cudart13 = cudart.fetch("13.0")

    def plant(tree: Path) -> None:
        shutil.copytree(cudart13, tree / "usr/lib/golden/cudart-13.0")
        check = tree / "usr/lib/golden/cuda-check"
        check.write_text(NEWER_CHECK)
        check.chmod(0o755)
        (tree / "etc/containerd/config.toml").write_text("version = 2\n[plugins\nplanted = fault\n")

    build_root = tmp_path / "build"
    (build_root / CUDA).mkdir(parents=True)
    shutil.copyfile(cuda_bake.out / "expectations.json", build_root / CUDA / "expectations.json")
    shutil.copytree(cuda_bake.out / "cloud-init", build_root / CUDA / "cloud-init")
    result = boottest.boot_test(CUDA, build_root=build_root, artifact=cuda_bake.artifact, plant=plant)
    assert not result.passed
    with pytest.raises(StepFailed) as info:
        boottest.require_pass(result)
    message = str(info.value)
    assert "cuda-check-answer (expected no-device, actual insufficient-driver)" in message, message
    assert "cuda-check-runtime (expected 11.8, actual 13.0)" in message, message
    assert "container-run[containerd]" in message, message
    booted = report_checks(result.report_path)
    assert "35 cudaErrorInsufficientDriver" in booted["cuda-check-answer"]["detail"]
    assert booted["container-run[containerd]"]["detail"].startswith("containerd: ")
