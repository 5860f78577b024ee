"""The CUDA check: what the bake's compiled scripts/cuda-check.cu prints, read, and judged.

The cuda step compiles it with the image's own nvcc and installs it at
``/usr/lib/golden/cuda-check``; verification runs it at bake (no GPU, no module
loaded in the chroot) and on GPU hosts. Its runtime is the toolkit's, linked
statically, so its answer says whether code built with that toolkit runs on the
image's driver: without a GPU ``cudaGetDeviceCount`` returns 100
(cudaErrorNoDevice) when it can and 35 (cudaErrorInsufficientDriver) when the
runtime is newer than the driver's CUDA version::

>>> c = parse_cuda_check('{"schema": 1, "driver": 12020, "driver_error": 0, "runtime": 0, '
...                      '"runtime_error": 100, "cudart": 11080, "device_count": 0, "error": 100, '
...                      '"error_name": "cudaErrorNoDevice", "devices": []}')
>>> c.driver_cuda, c.runtime_cuda, c.verdict, c.describe()
('12.2', '11.8', 'no-device', '100 cudaErrorNoDevice')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from golden.cudaprobe import ERROR_NAMES, INSUFFICIENT_DRIVER, NO_DEVICE, SUCCESS, cuda_number
from golden.probes import ProbeError

#: Must equal kSchema in scripts/cuda-check.cu (a unit test holds them together).
CHECK_SCHEMA = 1


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    cc: str
    #: cudaSuccess when the trivial kernel ran and its results came back right.
    kernel: str


@dataclass(frozen=True)
class CudaCheck:
    driver: int             # cudaDriverGetVersion, 12020; 0 without a driver library
    runtime: int            # cudaRuntimeGetVersion, 11080; 0 where it failed (CUDA 11.8 without a GPU)
    cudart: int             # CUDART_VERSION, the runtime the program was compiled against
    error: int              # cudaGetDeviceCount's
    error_name: str
    devices: tuple[Device, ...]

    @property
    def driver_cuda(self) -> str | None:
        return cuda_number(self.driver) if self.driver else None

    @property
    def runtime_cuda(self) -> str | None:
        """The runtime's CUDA version: as it reports it, else as it was compiled (the same
        library: linked statically)."""
        version = self.runtime or self.cudart
        return cuda_number(version) if version else None

    @property
    def verdict(self) -> str:
        """``gpus`` (every device ran the kernel), ``no-device`` (the runtime can use the driver,
        there is no GPU), ``no-driver``, ``insufficient-driver``, ``kernel-failed`` or ``error N``."""
        if not self.driver:
            return "no-driver"
        if self.error == NO_DEVICE:
            return "no-device"
        if self.error == INSUFFICIENT_DRIVER:
            return "insufficient-driver"
        if self.error != SUCCESS:
            return f"error {self.error}"
        if not self.devices or any(d.kernel != "cudaSuccess" for d in self.devices):
            return "kernel-failed"
        return "gpus"

    def describe(self) -> str:
        """``100 cudaErrorNoDevice``: the device count's error as reports name it."""
        return f"{self.error} {self.error_name or ERROR_NAMES.get(self.error, '')}".strip()


def cuda_check_argv(path: str) -> tuple[str, ...]:
    return (path,)


def parse_cuda_check(text: str) -> CudaCheck:
    """The program's JSON line (its last line); anything else is a ProbeError."""
    lines = text.strip().splitlines()
    try:
        data = json.loads(lines[-1] if lines else "")
    except ValueError:
        raise ProbeError(f"cuda-check printed no JSON: {text.strip()[:200]!r}") from None
    if not isinstance(data, dict) or data.get("schema") != CHECK_SCHEMA:
        raise ProbeError(f"cuda-check output is not schema {CHECK_SCHEMA}: {text.strip()[:200]!r}")
    devices = data.get("devices")
    if not isinstance(devices, list):
        raise ProbeError(f"cuda-check devices is not a list: {devices!r}")
    return CudaCheck(driver=_int(data, "driver"), runtime=_int(data, "runtime"), cudart=_int(data, "cudart"),
                     error=_int(data, "error"),
                     error_name=str(data.get("error_name") or ""),
                     devices=tuple(_device(d) for d in devices))


def _device(d: Any) -> Device:
    if not isinstance(d, dict):
        raise ProbeError(f"cuda-check device is not a mapping: {d!r}")
    return Device(index=_int(d, "index"), name=str(d.get("name", "")), cc=str(d.get("cc", "")),
                  kernel=str(d.get("kernel", "")))


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProbeError(f"cuda-check {key} is not a number: {value!r}")
    return value
