"""The CUDA runtime probe: what scripts/cuda-probe.py prints, read, and the verdict on it.

The probe loads NVIDIA's libcudart of one CUDA version against the image's own
``libcuda.so.1`` and calls ``cudaDriverGetVersion`` and ``cudaGetDeviceCount``.
A runtime reaches the driver library before it looks for a GPU, so the error
``cudaGetDeviceCount`` returns says, without a GPU, whether that runtime can use
this driver (measured with Debian's libcuda1 535.261.03: driver CUDA 12020; a
12.9 runtime gets 100, a 13.5 runtime gets 35)::

>>> p = parse_cuda_probe('{"schema": 1, "driver_version": 12020, "error": 35, '
...                      '"error_name": "cudaErrorInsufficientDriver", "libcuda": "/x/libcuda.so.1"}')
>>> p.driver_cuda, p.verdict, p.describe()
('12.2', 'insufficient-driver', '35 cudaErrorInsufficientDriver')
>>> cuda_number(13050), api_version("12.2")
('13.5', 12020)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from golden.probes import ProbeError
from golden.versions import cuda_tuple

#: Must equal SCHEMA in scripts/cuda-probe.py (a unit test holds them together).
PROBE_SCHEMA = 1
#: Where the stage step puts scripts/ on the image (golden.render.STAGE_DIR + "/scripts").
PROBE_SCRIPT = "/tmp/golden/scripts/cuda-probe.py"

SUCCESS = 0
NO_DEVICE = 100
INSUFFICIENT_DRIVER = 35
SYSTEM_DRIVER_MISMATCH = 803
#: The errors the verdicts are about, for output that lacks a name.
ERROR_NAMES = {SUCCESS: "cudaSuccess", NO_DEVICE: "cudaErrorNoDevice",
               INSUFFICIENT_DRIVER: "cudaErrorInsufficientDriver",
               SYSTEM_DRIVER_MISMATCH: "cudaErrorSystemDriverMismatch"}
#: Verdicts that mean the runtime can use the driver.
OK = "ok"


def cuda_probe_argv(cudart_dir: str, script: str = PROBE_SCRIPT) -> tuple[str, ...]:
    return ("python3", script, cudart_dir)


def cuda_number(version: int) -> str:
    """A CUDA version as the API encodes it (``1000 * major + 10 * minor``) -> ``"12.2"``."""
    return f"{version // 1000}.{version % 1000 // 10}"


def api_version(cuda: str) -> int:
    """``"12.2"`` -> ``12020``, as ``cudaDriverGetVersion`` reports it."""
    major, minor = cuda_tuple(cuda)
    return major * 1000 + minor * 10


@dataclass(frozen=True)
class CudaProbe:
    """One probe's answer; ``None`` where the probe could not tell."""

    runtime_version: int | None
    driver_version: int | None
    error: int | None
    error_name: str | None
    device_count: int | None
    libcuda: str | None
    libcuda_error: str | None

    @property
    def driver_cuda(self) -> str | None:
        """The driver's CUDA version (its ceiling), ``"12.2"``; None without a driver library."""
        return cuda_number(self.driver_version) if self.driver_version else None

    @property
    def runtime_cuda(self) -> str | None:
        return cuda_number(self.runtime_version) if self.runtime_version else None

    @property
    def verdict(self) -> str:
        """``ok`` (a GPU found, or none to find), ``insufficient-driver``, ``driver-mismatch``,
        ``no-libcuda`` or ``error N``."""
        if self.libcuda is None or not self.driver_version:
            return "no-libcuda"
        if self.error in (SUCCESS, NO_DEVICE):
            return OK
        if self.error == INSUFFICIENT_DRIVER:
            return "insufficient-driver"
        if self.error == SYSTEM_DRIVER_MISMATCH:
            return "driver-mismatch"
        return f"error {self.error}"

    @property
    def found_device(self) -> bool:
        return self.error == SUCCESS and bool(self.device_count)

    def describe(self) -> str:
        """``100 cudaErrorNoDevice``, ``no libcuda.so.1 (…)``: the CUDA error as reports name it."""
        if self.libcuda is None or not self.driver_version:
            return f"no libcuda.so.1 ({self.libcuda_error or 'the runtime found no driver'})"
        name = self.error_name or ERROR_NAMES.get(self.error or 0, "")
        return f"{self.error} {name}".strip()


def parse_cuda_probe(text: str) -> CudaProbe:
    """The probe's JSON line; a probe that could not run (``problem``) is a ProbeError."""
    try:
        data = json.loads(text.strip().splitlines()[-1] if text.strip() else "")
    except ValueError:
        raise ProbeError(f"cuda-probe printed no JSON: {text.strip()[:200]!r}") from None
    if not isinstance(data, dict) or data.get("schema") != PROBE_SCHEMA:
        raise ProbeError(f"cuda-probe output is not schema {PROBE_SCHEMA}: {text.strip()[:200]!r}")
    if data.get("problem"):
        raise ProbeError(f"cuda-probe could not run: {data['problem']}")
    if data.get("libcuda") and not isinstance(data.get("error"), int):
        raise ProbeError(f"cuda-probe found libcuda but no cudaGetDeviceCount result: {text.strip()[:200]!r}")
    return CudaProbe(runtime_version=_int(data, "runtime_version"), driver_version=_int(data, "driver_version"),
                     error=_int(data, "error"), error_name=_str(data, "error_name"),
                     device_count=_int(data, "device_count"), libcuda=_str(data, "libcuda"),
                     libcuda_error=_str(data, "libcuda_error"))


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProbeError(f"cuda-probe {key} is not a number: {value!r}")
    return value


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)
