"""GPU probes: the driver and CUDA as nvidia-smi, ``/proc`` and nvcc report them.

>>> parse_smi_banner("| NVIDIA-SMI 580.95.05  Driver Version: 580.95.05  CUDA Version: 13.0 |")
SmiBanner(driver_version='580.95.05', cuda_ceiling='13.0')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import ClassVar

from golden.probes import ProbeError, head, nonblank_lines

#: What the boot checks read of ``nvidia-smi --query-gpu``, by the first branch that names the
#: driver's version that way. A field nvidia-smi no longer knows makes it reject the whole
#: query, so only these are asked. From R595 ``nvidia-smi --help-query-gpu`` marks
#: ``driver_version`` deprecated in favour of ``kmd_version`` (the R610 banner says
#: ``KMD Version``; /work/shared/facts/nvidia-facts.md section 6).
GPU_QUERY_ERAS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (595, ("index", "pci.bus_id", "kmd_version", "persistence_mode")),
    (0, ("index", "pci.bus_id", "driver_version", "persistence_mode")),
)

SMI_ARGV = ("nvidia-smi",)
PROC_VERSION_PATH = "/proc/driver/nvidia/version"
#: What golden-gpu-check.service found at boot (see :func:`parse_gpu_check_status`).
GPU_CHECK_STATUS_PATH = "/var/lib/golden/gpu-check.json"


def gpu_fields(branch: str) -> tuple[str, ...]:
    """The :data:`GPU_QUERY_ERAS` fields for a driver branch (``"595"``)."""
    return next(fields for since, fields in GPU_QUERY_ERAS if int(branch) >= since)


def gpu_query_argv(branch: str) -> tuple[str, ...]:
    return ("nvidia-smi", f"--query-gpu={','.join(gpu_fields(branch))}",
            "--format=csv,noheader,nounits")


def nvcc_argv(toolkit: str) -> tuple[str, ...]:
    """The toolkit's own nvcc, not whatever ``/usr/local/cuda`` points at."""
    return (f"/usr/local/cuda-{toolkit}/bin/nvcc", "--version")


# -- parsers -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmiBanner:
    driver_version: str
    cuda_ceiling: str


_SMI_DRIVER = re.compile(r"(?:Driver|KMD) Version:\s*(\d+\.\d+(?:\.\d+)?)")
_SMI_CUDA = re.compile(r"CUDA(?: UMD)? Version:\s*(\d+\.\d+)")


def parse_smi_banner(text: str) -> SmiBanner:
    """The ``nvidia-smi`` banner, both the classic and the R610+ field names.

    ``Driver Version:``/``CUDA Version:`` up to R595, ``KMD Version:``/``CUDA UMD
    Version:`` from R610. The CUDA number is the driver's ceiling, not a toolkit.
    """
    driver, cuda = _SMI_DRIVER.search(text), _SMI_CUDA.search(text)
    if not driver or not cuda:
        raise ProbeError("no 'Driver/KMD Version' and 'CUDA (UMD) Version' in nvidia-smi output: "
                         + head(text))
    return SmiBanner(driver.group(1), cuda.group(1))


@dataclass(frozen=True)
class GpuRow:
    """One GPU in a ``--query-gpu`` answer: its fields, or why nvidia-smi could not read it."""

    gpu: str                    # the index, or the PCI address when only that is known
    fields: dict[str, str]
    error: str | None = None

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("driver_version",)

    @property
    def driver_version(self) -> str | None:
        return self.fields.get("kmd_version") or self.fields.get("driver_version")


#: nvidia-smi's line for a GPU it cannot open; the others are still listed.
_GPU_HANDLE_ERROR = re.compile(r"^Unable to determine the device handle for (?:GPU)?(\S+?):? (.+)$")
#: Values nvidia-smi puts in a field it could not read for that GPU.
_GPU_VALUE_ERRORS = ("[Unknown Error]", "[GPU requires reset]", "[GPU is lost]")


def parse_gpu_query(text: str, fields: tuple[str, ...] = GPU_QUERY_ERAS[-1][1]) -> list[GpuRow]:
    """``nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits`` (stdout and stderr).

    A GPU that nvidia-smi cannot read is a :class:`GpuRow` with ``error`` set,
    not a failure of the whole answer; the other GPUs keep their rows.
    """
    gpus = []
    for line in nonblank_lines(text):
        if line.startswith("No devices were found"):
            return []
        if m := _GPU_HANDLE_ERROR.match(line):
            gpus.append(GpuRow(m.group(1), {}, m.group(2).strip()))
            continue
        values = line.split(", ")
        if len(values) != len(fields):
            raise ProbeError(f"expected {len(fields)} fields in nvidia-smi csv row: {line!r}")
        row = dict(zip(fields, values, strict=True))
        bad = [f"{k}: {v}" for k, v in row.items() if v in _GPU_VALUE_ERRORS]
        gpus.append(GpuRow(row.get("index", values[0]), row, "; ".join(bad) or None))
    return gpus


def parse_gpu_query_r595(text: str) -> list[GpuRow]:
    """:func:`parse_gpu_query` with the R595+ fields (``kmd_version``)."""
    return parse_gpu_query(text, gpu_fields("595"))


@dataclass(frozen=True)
class ProcVersion:
    open: bool
    version: str
    arch: str


_VERSION = r"(\d+\.\d+(?:\.\d+)?)"
_PROC_OPEN = re.compile(r"NVRM version: NVIDIA UNIX Open Kernel Module for (\S+)\s+" + _VERSION)
_PROC_PROPRIETARY = re.compile(r"NVRM version: NVIDIA UNIX (\S+) Kernel Module\s+" + _VERSION)


def parse_proc_version(text: str) -> ProcVersion:
    """Line 1 of ``/proc/driver/nvidia/version``: open or not, version, architecture."""
    first = text.splitlines()[0] if text.strip() else ""
    if m := _PROC_OPEN.search(first):
        return ProcVersion(True, m.group(2), m.group(1))
    if m := _PROC_PROPRIETARY.search(first):
        return ProcVersion(False, m.group(2), m.group(1))
    raise ProbeError(f"not an NVRM version line: {head(text)}")


@dataclass(frozen=True)
class NvccVersion:
    release: str        # "13.0": what cuda-toolkit-13-0 installs
    version: str        # "13.0.88"


_NVCC = re.compile(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)")


def parse_nvcc(text: str) -> NvccVersion:
    """``nvcc --version``: the version is on the line before the last (``Build …``)."""
    if m := _NVCC.search(text):
        return NvccVersion(m.group(1), m.group(2))
    raise ProbeError(f"no 'release X.Y, VX.Y.Z' in nvcc output: {head(text)}")


def parse_gpu_check_status(text: str) -> str:
    """The boot check's status file: JSON with a ``status`` key, or the first word."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise ProbeError(f"gpu-check status is not JSON: {e}") from None
        if isinstance(data, dict) and isinstance(data.get("status"), str):
            return str(data["status"])
        raise ProbeError("gpu-check status JSON has no 'status' string")
    if not stripped:
        raise ProbeError("gpu-check status file is empty")
    return stripped.split()[0]
