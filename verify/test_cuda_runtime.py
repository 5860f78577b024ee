"""The CUDA runtimes the image must run, loaded against its own driver library.

For each CUDA version in ``expectations["cuda_probe"]`` (the host toolkit's and
each workload's; golden.cudart.stage puts NVIDIA's libcudart of that version in
``dir`` on the image), scripts/cuda-probe.py loads the runtime against the
image's libcuda.so.1 (see golden.cudaprobe; an entry's optional ``script`` says where
the probe is, by default where the stage step puts scripts/). Two facts are checked:

* the CUDA version the driver library reports is the knowledge base's ceiling
  for the branch (``driver.cuda_ceiling``): a disagreement means the data is
  wrong or the wrong driver is installed, and the check names both numbers;
* each runtime can use the driver: success or "no device" (no GPU at bake
  time), never cudaErrorInsufficientDriver (35), cudaErrorSystemDriverMismatch
  (803) or any other error. On a GPU host (the ``boot`` phase) it must find a GPU.

The runtimes are uploaded with the build's other files (/tmp/golden), which the
cleanup step removes: nothing of them stays in the image. A boot test reaches a
machine made from the finished image, so there a runtime that was not uploaded
again is skipped, with that reason; at bake time it is a failure.
"""

from __future__ import annotations

from typing import Any

import pytest

from golden import cudaprobe, probes
from golden.versions import cuda_tuple
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("bake", "boot-nogpu", "boot"), pytest.mark.layer("driver")]


def _probes(expect: dict[str, Any]) -> list[dict[str, Any]]:
    return list(expect.get("cuda_probe") or [])


@pytest.fixture(scope="module")
def answers(expect: dict[str, Any], shell: Shell,
            pytestconfig: pytest.Config) -> dict[str, cudaprobe.CudaProbe | str]:
    """CUDA version -> the probe's answer, or why there is none (a one-line reason)."""
    bake = pytestconfig.getoption("golden_phase") == "bake"
    out: dict[str, cudaprobe.CudaProbe | str] = {}
    for spec in _probes(expect):
        cuda, where = str(spec["cuda"]), str(spec["dir"])
        if not bake and not shell.run("test", "-d", where).ok:
            out[cuda] = f"skip: the CUDA {cuda} runtime is not on this machine ({where})"
            continue
        result = shell.run(*cudaprobe.cuda_probe_argv(where, str(spec.get("script") or cudaprobe.PROBE_SCRIPT)))
        try:
            out[cuda] = cudaprobe.parse_cuda_probe(result.stdout)
        except probes.ProbeError as e:
            out[cuda] = f"{e} (exit {result.rc}{', ' + result.stderr.strip()[-200:] if result.stderr.strip() else ''})"
    return out


def test_driver_cuda_version(expect: dict[str, Any], answers: dict[str, cudaprobe.CudaProbe | str],
                             record: Record) -> None:
    """The driver library's own CUDA version is the branch's ceiling in golden's data."""
    if not _probes(expect):
        record.skip("driver-cuda-version", "the expectations list no CUDA runtime to probe (cuda_probe)")
    ceiling = str(expect["driver"]["cuda_ceiling"])
    want = f"{ceiling} ({cudaprobe.api_version(ceiling)})"
    found = {c: a for c, a in answers.items() if isinstance(a, cudaprobe.CudaProbe) and a.driver_version}
    if not found:
        reasons = "; ".join(f"CUDA {c}: {a if isinstance(a, str) else a.describe()}" for c, a in answers.items())
        if all(isinstance(a, str) and a.startswith("skip: ") for a in answers.values()):
            record.skip("driver-cuda-version", reasons.replace("skip: ", ""))
        record.fail("driver-cuda-version", want, "no driver CUDA version", reasons)
    reported = sorted({a.driver_version for a in found.values() if a.driver_version})
    results = [record("driver-cuda-version", want,
                      ", ".join(f"{cudaprobe.cuda_number(v)} ({v})" for v in reported),
                      reported == [cudaprobe.api_version(ceiling)],
                      "cudaDriverGetVersion through the image's libcuda.so.1 "
                      f"({next(iter(found.values())).libcuda}); a different number means golden's "
                      "ceiling for the branch is wrong or the wrong driver is installed")]
    assert all(results)


def test_cuda_runtime(expect: dict[str, Any], answers: dict[str, cudaprobe.CudaProbe | str],
                      pytestconfig: pytest.Config, record: Record) -> None:
    """Each runtime the image must run can use its driver (and finds a GPU on a GPU host)."""
    specs = _probes(expect)
    if not specs:
        record.skip("cuda-runtime", "the expectations list no CUDA runtime to probe (cuda_probe)")
    gpu = pytestconfig.getoption("golden_phase") == "boot"
    want = "success, a GPU found" if gpu else "ok (success or cudaErrorNoDevice)"
    results = []
    for spec in specs:
        cuda = str(spec["cuda"])
        users = ", ".join(str(x) for x in spec.get("for") or []) or "unnamed"
        name = f"cuda-runtime[{cuda}]"
        answer = answers[cuda]
        if isinstance(answer, str):
            if answer.startswith("skip: "):
                results.append(record(name, want, "not checked", True, f"{users}: {answer[6:]}"))
            else:
                results.append(record(name, want, "probe failed", False, f"{users}: {answer}"))
            continue
        passed = answer.verdict == cudaprobe.OK and (answer.found_device or not gpu)
        runtime = answer.runtime_cuda
        if runtime is not None and cuda_tuple(runtime) != cuda_tuple(cuda):
            passed = False
        detail = (f"{users}: CUDA {runtime or cuda} runtime on a driver of CUDA "
                  f"{answer.driver_cuda or 'unknown'}: {answer.describe()}")
        if answer.device_count is not None:
            detail += f", {answer.device_count} GPU(s)"
        results.append(record(name, want, answer.verdict, passed, detail))
    assert all(results)
