"""The gate's rules as a table: id -> severity, the layer it checks, and what it checks.

golden/gate.py runs them; this table drives ``--help``, the docs and the skip
report (a rule of a layer the profile does not have is skipped, never failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from golden.plan import BASE


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str


class RuleInfo(NamedTuple):
    severity: Severity
    #: The layer the rule checks (golden/plan.py LAYERS, or "base": always); a rule of a layer
    #: the profile does not have is skipped, never failed.
    layer: str
    what: str


E, W = Severity.ERROR, Severity.WARNING
DRIVER, CTK = "driver", "container-toolkit"
#: The profile's workloads (golden/workloads.py). Not an install layer: a profile without
#: workloads has nothing of theirs to check, so their rules are neither run nor listed as
#: skipped; a profile with workloads but no driver has them skipped for the driver (LAYER_NEEDS).
WORKLOADS = "workloads"
#: Layers whose rules also need another layer: each is skipped, with that layer named, without it.
LAYER_NEEDS: dict[str, tuple[str, ...]] = {WORKLOADS: (DRIVER,)}


def _layer(layer: str, rules: dict[str, tuple[Severity, str]]) -> dict[str, RuleInfo]:
    return {rule: RuleInfo(severity, layer, what) for rule, (severity, what) in rules.items()}


#: Every rule the gate knows: id -> (severity, layer, what it checks). Drives --help and docs.
RULES: dict[str, RuleInfo] = {
    **_layer(BASE, {
        # Warnings: a driverless image is for the GPU Operator, which brings both; golden leaves
        # them off (golden/gate_driverless.py).
        "cuda-without-driver": (W, "a CUDA toolkit on an image without a driver: left off, the GPU Operator "
                                   "brings the driver"),
        "ctk-without-driver": (W, "a container toolkit on an image without a driver: left off, the GPU "
                                  "Operator's toolkit container brings it"),
        "kernel-headers-with-driver": (E, "kernel_headers: false with a driver, whose DKMS build needs them"),
        # Base: without a distro toolkit for the OS the plan has no cuda layer to skip for.
        "cuda-distro-unavailable": (E, "cuda.source: distro on an OS golden knows no packaged CUDA toolkit of"),
        "cuda-distro-release": (E, "the OS's packaged toolkit carries another CUDA release than cuda.toolkit"),
        "apptainer-install-unsupported": (E, "container.apptainer on an OS where golden cannot install it "
                                             "(Debian 12: its package needs libc6 >= 2.38)"),
        "apptainer-version-unknown": (E, "container.apptainer at a release the OS's package source does not carry"),
        "gpu-host-arch": (E, "the profile's arch is not a CPU architecture the GPU's hosts have "
                             "(Grace superchips are arm64)"),
    }),
    **_layer(DRIVER, {
        "cuda-unknown-release": (E, "the CUDA toolkit X.Y is not a known release (12.7 never existed)"),
        "cuda-release-unconfirmed": (W, "the toolkit's minimum driver is UNCONFIRMED in the data"),
        "cuda-major-above-driver": (E, "the toolkit's CUDA major is above the branch's CUDA ceiling"),
        "driver-below-mvc-floor": (E, "the driver is below the minor-version-compatibility floor "
                                      "of the toolkit's major"),
        "cuda-minor-above-driver": (W, "same major, but the toolkit's minor is above the branch's "
                                       "ceiling: it runs under minor-version compatibility only"),
        "driver-below-toolkit-driver": (W, "the pinned driver is older than the driver a release of "
                                           "the toolkit ships with (Table 3)"),
        "driver-version-outside-branch": (E, "driver.version does not belong to driver.branch"),
        "gpu-needs-newer-driver": (E, "the GPU needs a newer driver than the branch or pin gives"),
        "gpu-needs-newer-cuda": (E, "the toolkit predates the GPU: it cannot build code for it"),
        "gpu-branch-excluded": (E, "the GPU's vendor says the branch must not be used on it (AWS: R595 on "
                                   "P3/P3dn and G6f)"),
        "arch-branch-dropped": (E, "the branch is past the last branch of the GPU's architecture"),
        "arch-cuda-dropped": (E, "the toolkit's major dropped the GPU's architecture"),
        "open-module-required": (E, "proprietary kernel module on a GPU that requires the open one"),
        "open-module-recommended": (W, "proprietary kernel module where the open one is recommended"),
        "open-module-unsupported": (E, "open kernel module on a GPU only the proprietary one drives"),
        "proprietary-removed": (E, "proprietary kernel module on a branch that no longer ships it"),
        "fabric-manager-disabled": (E, "fabric_manager is false on an NVSwitch GPU"),
        "fabric-manager-without-nvswitch": (W, "fabric_manager is true on a GPU without NVSwitch"),
        "branch-eol": (W, "the driver branch is past its end of life"),
        "branch-eol-soon": (W, "the driver branch reaches its end of life within 90 days"),
        "branch-eol-unknown": (W, "the driver branch's end of life is not known"),
        "branch-superseded": (W, "a new feature branch (no end-of-life date) whose next branch has shipped"),
        "branch-unconfirmed": (W, "the driver branch's facts are UNCONFIRMED"),
        "driver-from-distro": (W, "the driver comes from the OS vendor (seed failure mode 4)"),
        "distro-driver-unbuildable": (E, "the OS vendor's module does not build against the OS's current "
                                         "kernels (Debian 13's 550.163.01)"),
        "secure-boot-signing-key": (E, "Secure Boot without target.signing_key: nothing says which key signs "
                                       "the module DKMS builds, so none the machine trusts (seed failure mode 5)"),
        "secure-boot-per-build-key": (W, "Secure Boot with a key made per build: each build's certificate must be "
                                         "enrolled anew, and no module rebuilt on the host can be signed"),
        "branch-naming": (E, "data: the branch's package naming era disagrees with its number "
                             "(<= R580 suffixed, >= R590 pinning)"),
    }),
    **_layer(CTK, {
        "ctk-unknown": (E, "the NVIDIA Container Toolkit version is not a known release"),
        "ctk-unconfirmed": (W, "the NVIDIA Container Toolkit version is UNCONFIRMED"),
        "ctk-without-runtime": (W, "a container toolkit without a container runtime to configure"),
        # Warnings: the specs are still written and the nvidia runtime still injects GPUs (and reads
        # CDI specs itself in its cdi mode); only the runtime's own CDI device requests fail.
        "cdi-runtime-too-old": (W, "container.cdi with a runtime the OS ships too old for native CDI "
                                   "(Docker < 25)"),
        "cdi-spec-runtime-too-old": (W, "the toolkit writes CDI specs (0.7.0 from 1.19) the OS's runtime "
                                        "cannot read (Docker < 26.1.0, containerd < 1.7.16)"),
        "containerd-config-v3": (E, "containerd 2.x (config version 3) with a toolkit older than 1.17.4, "
                                    "which cannot configure it"),
        "runtime-version-unknown": (W, "a runtime rule needs the OS's runtime version, which the data "
                                       "does not have"),
    }),
    **_layer(WORKLOADS, {
        "workload-cuda-unknown": (W, "a workload whose CUDA version cannot be told (not resolved, or an "
                                     "image without CUDA_VERSION or NVIDIA_REQUIRE_CUDA)"),
        "workload-cuda-major-above-driver": (E, "a workload's CUDA major is above the branch's CUDA ceiling "
                                                "and forward compatibility cannot bridge it (seed failure "
                                                "mode 3)"),
        "workload-cuda-forward-compat": (W, "a workload's CUDA major is above the branch's ceiling, bridged "
                                            "by the image's cuda-compat (forward compatibility)"),
        "workload-cuda-minor-above-driver": (W, "same major, but the workload's minor is above the branch's "
                                                "ceiling: minor-version compatibility only"),
        "workload-require-cuda-unmet": (E, "the image's NVIDIA_REQUIRE_CUDA cannot be met by the driver or GPU: "
                                           "the container toolkit refuses to start it"),
    }),
}


def finding(rule: str, message: str) -> Finding:
    return Finding(rule, RULES[rule][0], message)
