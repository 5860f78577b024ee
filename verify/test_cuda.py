"""Bake: the CUDA toolkit is the planned one and under the driver's CUDA ceiling, and it builds code.

The toolkit's nvcc is where its source puts it (``expect["cuda"]["nvcc"]``:
``/usr/local/cuda-X.Y/bin/nvcc`` for NVIDIA's, ``/usr/bin/nvcc`` for the OS
vendor's). The cuda step compiled scripts/cuda-check.cu with it; the program
must be installed and executable, carry the pinned toolkit's runtime, see the
driver's CUDA version at the branch's ceiling, and answer "no device" without a
GPU (its runtime can use the driver), never cudaErrorInsufficientDriver.
"""

from __future__ import annotations

from typing import Any

import pytest

from golden import cudacheck, gpuprobes, probes
from golden.versions import cuda_tuple
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("cuda")]


def test_nvcc(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    toolkit = expect["cuda"]["toolkit"]
    if not toolkit:
        record.skip("nvcc-version", "the profile has no CUDA toolkit")
    nvcc_path = str(expect["cuda"]["nvcc"])
    out = shell.run(nvcc_path, "--version")
    if not out.ok:
        record.fail("nvcc-version", toolkit, "no nvcc", f"{nvcc_path}: exit {out.rc} {out.stderr.strip()}")
    nvcc = gpuprobes.parse_nvcc(out.stdout)
    ceiling = expect["driver"]["cuda_ceiling"]
    results = [
        record("nvcc-version", toolkit, nvcc.release, nvcc.release == toolkit,
               f"{nvcc_path} ({expect['cuda']['source']}): {nvcc.version}"),
        record("cuda-ceiling", f"<= {ceiling}", nvcc.release,
               cuda_tuple(nvcc.release) <= cuda_tuple(ceiling),
               "the toolkit must not be newer than the CUDA version the driver supports"),
    ]
    assert all(results)


@pytest.mark.phase("bake", "boot-nogpu", "boot")
def test_cuda_check(expect: dict[str, Any], shell: Shell, record: Record, pytestconfig: pytest.Config) -> None:
    """The program the bake compiled runs against the image's driver library: at bake and on
    a booted machine without a GPU it must answer "no device"; on a GPU host (``boot``) it
    must run its kernel on every GPU nvidia-smi lists."""
    cuda = expect["cuda"]
    path, toolkit, ceiling = str(cuda["check"]), str(cuda["toolkit"]), str(expect["driver"]["cuda_ceiling"])
    built_for = f"compiled by the cuda step for {cuda['gpu_arch'] or 'nvcc default'}"
    if not shell.run("test", "-x", path).ok:
        record.fail("cuda-check-installed", f"{path} executable", "missing", built_for)
    record("cuda-check-installed", f"{path} executable", "executable", True, built_for)
    out = shell.run(*cudacheck.cuda_check_argv(path))
    try:
        answer = cudacheck.parse_cuda_check(out.stdout)
    except probes.ProbeError as e:
        record.fail("cuda-check-answer", "one JSON line", "no answer",
                    f"{e} (exit {out.rc}{', ' + out.stderr.strip()[-200:] if out.stderr.strip() else ''})")
    phase = pytestconfig.getoption("golden_phase")
    ok_verdicts = {"bake": ("no-device", "gpus"), "boot-nogpu": ("no-device",), "boot": ("gpus",)}[phase]
    results = []
    if phase == "boot":
        listed = shell.run("nvidia-smi", "-L")
        want = sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
        ran = [d for d in answer.devices if d.kernel == "cudaSuccess"]
        results.append(record("cuda-check-gpus", f"{want} GPU(s) (nvidia-smi -L)", len(ran),
                              want > 0 and len(ran) == want,
                              "; ".join(f"{d.index} {d.name} sm {d.cc}: {d.kernel}" for d in answer.devices)))
    results += [
        record("cuda-check-runtime", toolkit, answer.runtime_cuda, answer.runtime_cuda == toolkit,
               f"cudaRuntimeGetVersion {answer.runtime}, compiled against {answer.cudart}: "
               "the runtime nvcc linked in"),
        record("cuda-check-driver", ceiling, answer.driver_cuda, answer.driver_cuda == ceiling,
               f"cudaDriverGetVersion {answer.driver}: the driver library's CUDA version"),
        record("cuda-check-answer", " or ".join(ok_verdicts), answer.verdict, answer.verdict in ok_verdicts,
               f"cudaGetDeviceCount: {answer.describe()}; {len(answer.devices)} device(s)"),
    ]
    assert all(results)
