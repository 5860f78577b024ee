"""The gate's rules of an image without a driver (``driver: none``, for the GPU Operator),
and of a driver the OS's own archive cannot build.

Without a driver the host-driver rules are skipped (their layer is absent); what
is left to say: a host CUDA toolkit or container toolkit is left off the image
(the Operator's driver and toolkit containers bring them, workloads bring CUDA),
the kernel's headers cannot be switched off where DKMS needs them, and the GPU
still decides which driver the Operator must bring (:func:`operator_note`, an
information line of ``invoke check``, not a finding: ``--strict`` does not
refuse a driverless profile for it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from golden.gate_rules import Finding, finding
from golden.kb import KnowledgeBase
from golden.profile import Profile
from golden.versions import DriverVersion

#: The id of the information line :func:`operator_note` gives.
OPERATOR_NOTE = "operator-driver-branch"


def without_driver(profile: Profile, kb: KnowledgeBase) -> Iterator[Finding]:
    """Base rules: what a profile asks for that needs a driver golden does not install."""
    if profile.driver is not None:
        if not profile.kernel_headers:
            yield finding("kernel-headers-with-driver",
                          "kernel_headers: false with a driver: DKMS builds the driver's module against "
                          "the kernel's headers on the image; remove kernel_headers or set driver: none")
        return
    operator = "the GPU Operator brings the driver"
    if profile.cuda_toolkit:
        yield finding("cuda-without-driver",
                      f"cuda.toolkit {profile.cuda_toolkit} on an image without a driver: golden leaves the "
                      f"host toolkit off ({operator}; workloads bring CUDA in their containers); set "
                      f"cuda.toolkit: null")
    if profile.container.toolkit:
        yield finding("ctk-without-driver",
                      f"container.toolkit {profile.container.toolkit} on an image without a driver: golden "
                      f"leaves it off ({operator}, and its toolkit container installs and configures the "
                      f"NVIDIA Container Toolkit); set container.toolkit: null")


def build_failures(kb: KnowledgeBase) -> list[dict[str, Any]]:
    """golden/data/packages.yaml ``driver_build_failures``: driver builds known to fail."""
    return list(kb.packages.get("driver_build_failures", ()))


def distro_build(profile: Profile, kb: KnowledgeBase) -> Iterator[Finding]:
    """A driver rule: the OS's own module that the data says does not build on its kernels."""
    d = profile.driver
    if d is None:
        return
    for fact in build_failures(kb):
        if fact["os"] == profile.os.value and fact["driver_source"] == d.source.value:
            yield finding("distro-driver-unbuildable",
                          f"{profile.os.value}'s own NVIDIA module {fact['version']} does not build against "
                          f"{fact['kernels']}: {fact['reason']} (checked {fact['checked']}) [{fact['source']}]; "
                          f"no {profile.os.value} image with driver.source {d.source.value} can bake: use "
                          f"driver.source: nvidia, or driver: none for the GPU Operator")


def operator_note(profile: Profile, kb: KnowledgeBase) -> str | None:
    """What driver the GPU Operator must bring for the profile's GPU (None with a driver):
    the GPU's floor, its architecture's kernel module and last branch, branches excluded."""
    if profile.driver is not None:
        return None
    gpu = kb.gpus[profile.gpu]
    arch = kb.architectures[gpu.arch]
    parts = []
    if gpu.min_driver:
        floor = DriverVersion(gpu.min_driver)
        exact = f" (>= {gpu.min_driver})" if "." in gpu.min_driver else ""
        parts.append(f"R{floor.parts[0]}+{exact}")
    if arch.last_branch is not None:
        parts.append(f"up to R{arch.last_branch}")
    if gpu.not_with_branches:
        parts.append("not " + ", ".join(f"R{b}" for b in gpu.not_with_branches))
    module = {"required": "the open kernel module (required)",
              "recommended": "the open kernel module (recommended)",
              "unsupported": "the proprietary kernel module (the open one does not drive it)"}.get(
                  arch.open_module, f"kernel module: {arch.open_module}")
    fabric = ", and the fabric manager at the driver's version (NVSwitch)" if gpu.nvswitch else ""
    return (f"the GPU Operator must bring driver {', '.join(parts) or 'of any branch'} with {module}{fabric} "
            f"for {gpu.name} ({arch.name}) {gpu.cite}")


def format_note(profile_name: str, note: str) -> str:
    """``local-debian13-driverless: info[operator-driver-branch]: the GPU Operator must ...``"""
    return f"{profile_name}: info[{OPERATOR_NOTE}]: {note}"
