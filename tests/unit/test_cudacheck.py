"""scripts/cuda-check.cu's answer (golden/cudacheck.py) and verify/test_cuda.py run against this machine.

The fixtures are what the program prints: without a GPU, built with CUDA 11.8,
on Debian's libcuda1 535.261.03 (driver CUDA 12020, cudaErrorNoDevice: the same
answer Debian's libcuda gives the runtime probe, golden/cudaprobe.py) and on a
driver too old for its runtime (cudaErrorInsufficientDriver).
"""

from __future__ import annotations

import doctest
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from golden import cudacheck
from golden.probes import ProbeError
from golden.run import base_env, run

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "scripts" / "cuda-check.cu"
#: Printed for real: scripts/cuda-check.cu built by Debian's nvcc 11.8.89 (-ccbin g++-11 -arch sm_89)
#: and run in a bookworm chroot with libcuda1 535.261.03, no GPU and no module (2026-12-02).
NO_DEVICE = {"schema": 1, "driver": 12020, "driver_error": 0, "runtime": 0, "runtime_error": 100, "cudart": 11080,
             "device_count": 0, "error": 100, "error_name": "cudaErrorNoDevice", "devices": []}
INSUFFICIENT = {**NO_DEVICE, "driver": 11040, "error": 35, "error_name": "cudaErrorInsufficientDriver"}
L40S = {"index": 0, "name": "NVIDIA L40S", "cc": "8.9", "kernel": "cudaSuccess"}
ONE_GPU = {**NO_DEVICE, "runtime": 11080, "runtime_error": 0, "device_count": 1, "error": 0,
           "error_name": "cudaSuccess", "devices": [L40S]}


@pytest.mark.parametrize("data, verdict, described", [
    (NO_DEVICE, "no-device", "100 cudaErrorNoDevice"),
    (INSUFFICIENT, "insufficient-driver", "35 cudaErrorInsufficientDriver"),
    (ONE_GPU, "gpus", "0 cudaSuccess"),
    ({**ONE_GPU, "devices": [{**L40S, "kernel": "cudaErrorLaunchFailure"}]}, "kernel-failed",
     "0 cudaSuccess"),
    ({**NO_DEVICE, "driver": 0, "error": 35, "error_name": ""}, "no-driver", "35 cudaErrorInsufficientDriver"),
    ({**NO_DEVICE, "error": 803, "error_name": "cudaErrorSystemDriverMismatch"}, "error 803",
     "803 cudaErrorSystemDriverMismatch"),
])
def test_verdicts(data: dict[str, Any], verdict: str, described: str) -> None:
    check = cudacheck.parse_cuda_check("noise\n" + json.dumps(data))
    assert (check.verdict, check.describe()) == (verdict, described)


def test_versions_read_as_cuda_numbers() -> None:
    check = cudacheck.parse_cuda_check(json.dumps(ONE_GPU))
    assert (check.driver_cuda, check.runtime_cuda) == ("12.2", "11.8")
    # Without a GPU CUDA 11.8's cudaRuntimeGetVersion fails: the compiled-in version stands in.
    assert cudacheck.parse_cuda_check(json.dumps(NO_DEVICE)).runtime_cuda == "11.8"
    assert check.devices == (cudacheck.Device(0, "NVIDIA L40S", "8.9", "cudaSuccess"),)


@pytest.mark.parametrize("text, message", [
    ("", "printed no JSON"),
    ("Segmentation fault", "printed no JSON"),
    ('{"schema": 2}', "not schema 1"),
    (json.dumps({**NO_DEVICE, "devices": None}), "devices is not a list"),
    (json.dumps({**NO_DEVICE, "runtime": "11.8"}), "runtime is not a number"),
    (json.dumps({**NO_DEVICE, "devices": ["gpu"]}), "device is not a mapping"),
])
def test_malformed_output_is_a_probe_error(text: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        cudacheck.parse_cuda_check(text)


def test_program_and_parser_agree() -> None:
    """The schema, every key the parser reads and the calls the issue names are in the source."""
    text = SOURCE.read_text()
    assert re.search(r"kSchema = (\d+);", text)[1] == str(cudacheck.CHECK_SCHEMA)  # type: ignore[index]
    for key in (*NO_DEVICE, "index", "name", "cc", "kernel"):
        assert f'\\"{key}\\": ' in text, key
    for call in ("cudaDriverGetVersion", "cudaRuntimeGetVersion", "cudaGetDeviceCount", "<<<1, kThreads>>>"):
        assert call in text, call


# -- verify/test_cuda.py, run for real against this machine with look-alike programs -------------

def _program(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def run_suite(tmp_path: Path, answer: dict[str, Any] | None, *, nvcc_release: str = "11.8",
              ceiling: str = "12.2") -> dict[str, dict[str, Any]]:
    nvcc = _program(tmp_path / "nvcc", "echo 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                    f"echo 'Cuda compilation tools, release {nvcc_release}, V{nvcc_release}.89'\n")
    check = str(tmp_path / "cuda-check")
    if answer is not None:
        _program(tmp_path / "cuda-check", f"echo '{json.dumps(answer)}'\n")
    exp = tmp_path / "expectations.json"
    exp.write_text(json.dumps({"schema": 1, "profile": "p", "layers": ["driver", "cuda"],
                               "driver": {"cuda_ceiling": ceiling},
                               "cuda": {"toolkit": "11.8", "package": "nvidia-cuda-toolkit", "source": "distro",
                                        "nvcc": nvcc, "gpu_arch": "sm_89", "check": check}}))
    report = tmp_path / "report.json"
    suite = ROOT / "verify"
    proc = run([sys.executable, "-m", "pytest", suite / "test_cuda.py", "-c", suite / "pytest.ini",
                "--rootdir", suite, "-q", "-p", "no:cacheprovider", f"--golden-expectations={exp}",
                "--golden-phase=bake", f"--golden-report={report}", "--hosts=local://"],
               check=False, cwd=ROOT, timeout=300, env=base_env({"PYTHONDONTWRITEBYTECODE": "1"}))
    assert report.is_file(), proc.stdout + proc.stderr
    return {c["name"]: c for c in json.loads(report.read_text())["checks"]}


def test_suite_passes_a_toolkit_that_builds_code_the_driver_runs(tmp_path: Path) -> None:
    checks = run_suite(tmp_path, NO_DEVICE)
    assert {n: c["status"] for n, c in checks.items()} == {
        "nvcc-version": "passed", "cuda-ceiling": "passed", "cuda-check-installed": "passed",
        "cuda-check-runtime": "passed", "cuda-check-driver": "passed", "cuda-check-answer": "passed"}
    assert checks["nvcc-version"]["detail"].startswith(f"{tmp_path}/nvcc (distro): ")
    assert checks["cuda-check-answer"]["detail"] == "cudaGetDeviceCount: 100 cudaErrorNoDevice; 0 device(s)"


def test_suite_fails_an_nvcc_of_another_release_naming_both(tmp_path: Path) -> None:
    check = run_suite(tmp_path, NO_DEVICE, nvcc_release="12.4")["nvcc-version"]
    assert (check["status"], check["expected"], check["actual"]) == ("failed", "11.8", "12.4")


def test_suite_fails_a_runtime_the_driver_refuses(tmp_path: Path) -> None:
    checks = run_suite(tmp_path, INSUFFICIENT)
    assert (checks["cuda-check-answer"]["status"], checks["cuda-check-answer"]["actual"]) == (
        "failed", "insufficient-driver")
    assert checks["cuda-check-driver"]["status"] == "failed"


def test_suite_fails_a_missing_program(tmp_path: Path) -> None:
    check = run_suite(tmp_path, None)["cuda-check-installed"]
    assert (check["status"], check["actual"]) == ("failed", "missing")


def test_doctests() -> None:
    assert doctest.testmod(cudacheck).failed == 0
