#!/usr/bin/env python3
"""Load NVIDIA's CUDA runtime (libcudart) against this machine's libcuda.so.1 and say what it got.

Runs on the image (standard library only, any python3 >= 3.8)::

    python3 cuda-probe.py CUDART_DIR [--libcuda-dir DIR]

``CUDART_DIR`` holds one ``libcudart.so.N`` (golden puts it there). The runtime
finds the driver's ``libcuda.so.1`` the way every CUDA program does, through the
dynamic linker; ``--libcuda-dir`` loads ``DIR/libcuda.so.1`` first, for a driver
library outside the linker's path (a test's extracted package).

A CUDA runtime talks to libcuda before it looks for a GPU, so without a GPU the
answer still says whether the two can work together: ``cudaGetDeviceCount``
returns 100 (cudaErrorNoDevice) when they can, 35 (cudaErrorInsufficientDriver)
when the runtime is newer than the driver's CUDA version, 803
(cudaErrorSystemDriverMismatch) when libcuda and the kernel module disagree.

Prints one JSON object on stdout and exits 0 whatever it found; ``problem`` says
why the probe itself could not run (no runtime in the directory, say), and a
missing libcuda.so.1 is ``"libcuda": null``, an answer like any other. The
verdict is golden's (golden.cudaprobe), not this script's.
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path
from typing import Any

#: Bumped when the JSON changes shape (golden.cudaprobe.PROBE_SCHEMA).
SCHEMA = 1
LIBCUDA = "libcuda.so.1"


def main(argv: list[str]) -> int:
    out: dict[str, Any] = {"schema": SCHEMA, "cudart": None, "runtime_version": None, "runtime_error": None,
                           "driver_version": None, "libcuda": None, "libcuda_error": None,
                           "device_count": None, "error": None, "error_name": None, "problem": None}
    try:
        args = parse_args(argv)
        probe(args[0], args[1], out)
    except Exception as e:  # the probe answers in JSON, never with a traceback
        out["problem"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out, sort_keys=True))
    return 0


def parse_args(argv: list[str]) -> tuple[Path, Path | None]:
    if len(argv) == 1:
        return Path(argv[0]), None
    if len(argv) == 3 and argv[1] == "--libcuda-dir":
        return Path(argv[0]), Path(argv[2])
    raise ValueError("usage: cuda-probe.py CUDART_DIR [--libcuda-dir DIR]")


def probe(cudart_dir: Path, libcuda_dir: Path | None, out: dict[str, Any]) -> None:
    """Fill ``out``: libcuda first (its absence is the answer), then the runtime's three calls."""
    libcuda_name = str(libcuda_dir / LIBCUDA) if libcuda_dir else LIBCUDA
    try:
        # RTLD_GLOBAL: the runtime's own dlopen("libcuda.so.1") then finds this one by soname.
        ctypes.CDLL(libcuda_name, mode=ctypes.RTLD_GLOBAL)
        out["libcuda"] = loaded_path("libcuda.so") or libcuda_name
    except OSError as e:
        out["libcuda_error"] = str(e)
    cudart = find_cudart(cudart_dir)
    out["cudart"] = str(cudart)
    lib = ctypes.CDLL(str(cudart))
    runtime, driver, count = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    # CUDA 11's runtime answers this only once it has a device: its error is kept instead.
    status = int(lib.cudaRuntimeGetVersion(ctypes.byref(runtime)))
    out["runtime_version"] = runtime.value if status == 0 else None
    out["runtime_error"] = status or None
    # 0 when no driver library could be loaded (the runtime's documented answer).
    if lib.cudaDriverGetVersion(ctypes.byref(driver)) == 0:
        out["driver_version"] = driver.value
    error = int(lib.cudaGetDeviceCount(ctypes.byref(count)))
    out["error"] = error
    out["device_count"] = count.value if error == 0 else None
    name = lib.cudaGetErrorName
    name.restype = ctypes.c_char_p
    name.argtypes = [ctypes.c_int]
    raw = name(error)
    out["error_name"] = raw.decode("ascii", "replace") if raw else None


def find_cudart(directory: Path) -> Path:
    """The one ``libcudart.so.N`` (``.so.11.0`` for CUDA 11) in ``directory``."""
    found = sorted(p for p in directory.glob("libcudart.so.*") if p.is_file())
    if not found:
        raise FileNotFoundError(f"no libcudart.so.* in {directory}")
    if len(found) > 1:
        raise ValueError(f"more than one CUDA runtime in {directory}: {', '.join(p.name for p in found)}")
    return found[0]


def loaded_path(stem: str) -> str | None:
    """The real file of a loaded library whose name starts with ``stem`` (from /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in maps.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and Path(fields[5].strip()).name.startswith(stem):
            return fields[5].strip()
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
