"""The compatibility gate: every rule fires on a failing profile and stays quiet on a passing one.

Profiles are built from one explicit, known-good baseline (H100 SXM, R595 open,
CUDA 13.2, Docker + CTK 1.19.0) with ``dataclasses.replace``, and checked on a
fixed date so end-of-life rules do not depend on the day the tests run.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from golden import gate_workloads
from golden.gate import (
    _RULES,
    RULES,
    Finding,
    Severity,
    _context,
    check,
    expected_naming,
    format_finding,
    has_errors,
)
from golden.gate_rules import WORKLOADS
from golden.gate_workloads import CompatFacts, load_compat
from golden.kb import Architecture, KnowledgeBase, ShippedRuntimes, load
from golden.plan import BASE, LAYERS
from golden.profile import (
    Arch,
    CudaSource,
    DriverSource,
    Flavor,
    OsName,
    Profile,
    Runtime,
    load_all,
    load_profile,
    profile_names,
)
from golden.profile_target import SigningKeySource
from golden.workloads import Workload, WorkloadFacts

TODAY = datetime.date(2026, 11, 20)
KB = load()


@cache
def _loaded(name: str) -> Profile:
    return load_profile(name)


def variant(*, driver: Mapping[str, Any] | None = None, container: Mapping[str, Any] | None = None,
            driverless: bool = False,
            target: Mapping[str, Any] | None = None, **top: Any) -> Profile:
    """The baseline with some fields changed; ``driver``/``container``/``target`` change those sections."""
    p = _loaded("h100-r595")
    assert p.driver is not None
    base = replace(
        p, gpu="h100-sxm", cuda_toolkit="13.2", fabric_manager=None,
        driver=replace(p.driver, branch="595", flavor=Flavor.OPEN, source=DriverSource.NVIDIA,
                       version=None),
        container=replace(p.container, runtime=Runtime.DOCKER, toolkit="1.19.0"),
    )
    assert base.driver is not None
    return replace(base, driver=None if driverless else replace(base.driver, **(driver or {})),
                   container=replace(base.container, **(container or {})),
                   target=replace(base.target, **(target or {})), **top)


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


@dataclass(frozen=True)
class Arch13(Architecture):
    """An architecture that carries ``last_cuda_major`` (not yet a field of kb.Architecture)."""

    last_cuda_major: str | None = None


def with_volta_cuda_limit(kb: KnowledgeBase) -> KnowledgeBase:
    volta = {k: v for k, v in asdict(kb.architectures["volta"]).items() if k != "last_cuda_major"}
    return replace(kb, architectures={**kb.architectures,
                                      "volta": Arch13(**volta, last_cuda_major="12")})


def with_naming(branch: str, naming: str) -> Callable[[KnowledgeBase], KnowledgeBase]:
    def change(kb: KnowledgeBase) -> KnowledgeBase:
        return replace(kb, branches={**kb.branches,
                                     branch: replace(kb.branches[branch], naming=naming)})
    return change


def with_branch(branch: str, **changes: Any) -> Callable[[KnowledgeBase], KnowledgeBase]:
    def change(kb: KnowledgeBase) -> KnowledgeBase:
        return replace(kb, branches={**kb.branches,
                                     branch: replace(kb.branches[branch], **changes)})
    return change


def without_branch(branch: str) -> Callable[[KnowledgeBase], KnowledgeBase]:
    def change(kb: KnowledgeBase) -> KnowledgeBase:
        return replace(kb, branches={k: v for k, v in kb.branches.items() if k != branch})
    return change


def with_shipped(os_name: str, **versions: str | None) -> Callable[[KnowledgeBase], KnowledgeBase]:
    """The data's runtime versions of one OS, some changed."""
    def change(kb: KnowledgeBase) -> KnowledgeBase:
        old = kb.runtimes.shipped[os_name]
        new = replace(old, versions=tuple({**dict(old.versions), **versions}.items()))
        shipped: dict[str, ShippedRuntimes] = {**kb.runtimes.shipped, os_name: new}
        return replace(kb, runtimes=replace(kb.runtimes, shipped=shipped))
    return change


@dataclass(frozen=True)
class Case:
    rule: str
    bad: dict[str, Any]                     # keyword arguments of variant()
    good: dict[str, Any]
    says: tuple[str, ...]                   # numbers the message must cite
    today: datetime.date = TODAY            # the day the failing profile is checked on
    kb: Callable[[KnowledgeBase], KnowledgeBase] | None = None       # data the failing one sees
    good_kb: Callable[[KnowledgeBase], KnowledgeBase] | None = None  # data the passing one sees
    id: str = field(default="")
    #: What resolve read of the workloads' images, for the failing and the passing one.
    resolved: tuple[WorkloadFacts, ...] | None = None
    good_resolved: tuple[WorkloadFacts, ...] | None = None
    #: Forward-compatibility data both see instead of golden/data/workloads.yaml's.
    compat: CompatFacts | None = None


PROP = {"flavor": Flavor.PROPRIETARY}
R535 = {"driver": {"branch": "535"}, "cuda_toolkit": "12.2"}
CUDA13 = Workload("cuda13", "nvcr.io/nvidia/cuda:13.1.1-base-ubuntu24.04", None)
CUDA13_FACTS = WorkloadFacts(
    "cuda13", "nvcr.io/nvidia/cuda:13.1.1-base-ubuntu24.04", "sha256:" + "ef" * 32, "amd64", "13.1.1",
    (Path(__file__).resolve().parents[1] / "fixtures/require_cuda/cuda-13.1.1-ubuntu2404-base.txt")
    .read_text(encoding="utf-8").strip(), "yes")


def declared(cuda: str) -> tuple[Workload, ...]:
    return (Workload("solver", None, cuda),)


R580 = {"branch": "580"}
B200 = {"gpu": "b200", "cuda_toolkit": None}
DISTRO_CUDA = {"os": OsName.DEBIAN_12, "cuda_source": CudaSource.DISTRO}
CASES = [
    Case("cuda-distro-unavailable", {"os": OsName.UBUNTU_2404, "cuda_source": CudaSource.DISTRO},
         {**DISTRO_CUDA, "cuda_toolkit": "11.8"}, ("ubuntu-24.04", "debian-12", "cuda.source: nvidia")),
    Case("cuda-distro-release", {**DISTRO_CUDA, "cuda_toolkit": "12.2"}, {**DISTRO_CUDA, "cuda_toolkit": "11.8"},
         ("nvidia-cuda-toolkit 11.8.89~11.8.0-5~deb12u1", "CUDA 11.8", "12.2", "[DEBCUDA]")),
    Case("cuda-unknown-release", {"cuda_toolkit": "12.7"}, {"cuda_toolkit": "12.8"},
         ("12.7", "12.6, 12.8", "[RN]")),
    Case("cuda-unknown-release", {"cuda_toolkit": "11.7"}, {"cuda_toolkit": "11.8"},
         ("11.7", "11.8 to 13.5"), id="outside-data"),
    Case("cuda-release-unconfirmed", {"cuda_toolkit": "13.5", "driver": {"branch": "620"}},
         {"cuda_toolkit": "13.3", "driver": {"branch": "610"}}, ("13.5", "UNCONFIRMED")),
    Case("cuda-major-above-driver", {"cuda_toolkit": "13.2", "driver": {"branch": "535"}},
         {"cuda_toolkit": "12.2", "driver": {"branch": "535"}}, ("13.2", "R535", "12.2", "[")),
    Case("cuda-major-above-driver", {"cuda_toolkit": "13.0", "driver": {"branch": "575"}},
         {"cuda_toolkit": "13.0", "driver": {"branch": "580"}}, ("13.0", "R575", "12.9"),
         id="r575"),
    Case("driver-below-mvc-floor",
         {"cuda_toolkit": "12.0", "driver": {"branch": "525", "version": "525.47.07"}},
         {"cuda_toolkit": "12.0", "driver": {"branch": "525", "version": "525.60.13"}},
         ("525.60.13", "525.47.07", "[MVC]")),
    Case("cuda-minor-above-driver", {"cuda_toolkit": "13.2", "driver": {"branch": "580"}},
         {"cuda_toolkit": "13.0", "driver": {"branch": "580"}}, ("13.2", "R580", "13.0", "[MVC]")),
    Case("cuda-minor-above-driver",
         {"cuda_toolkit": "12.8", "gpu": "l40s", "driver": {"branch": "565"}},
         {"cuda_toolkit": "12.6", "gpu": "l40s", "driver": {"branch": "565"}},
         ("12.8", "R565", "12.7"), id="r565"),
    Case("driver-below-toolkit-driver", {"driver": {"version": "595.58.03"}},
         {"driver": {"version": "595.71.05"}}, ("595.58.03", "595.71.05", "13.2.2", "[RN]")),
    Case("driver-version-outside-branch", {"driver": {"version": "580.95.05"}},
         {"driver": {"version": "595.91.07"}}, ("580.95.05", "R580", "R595")),
    Case("gpu-needs-newer-driver", {**B200, "driver": {"branch": "565"}},
         {**B200, "driver": {"branch": "570"}}, ("570.133.20", "R565", "[")),
    Case("gpu-needs-newer-driver", {**B200, "driver": {"branch": "570", "version": "570.124.06"}},
         {**B200, "driver": {"branch": "570", "version": "570.133.20"}},
         ("570.133.20", "570.124.06"), id="b200-pinned"),
    Case("gpu-needs-newer-driver",
         {"gpu": "b300", "cuda_toolkit": None, "driver": {"branch": "580", "version": "580.65.06"}},
         {"gpu": "b300", "cuda_toolkit": None, "driver": {"branch": "580", "version": "580.82.07"}},
         ("580.82.07", "580.65.06"), id="b300-pinned"),
    Case("gpu-needs-newer-driver", {"gpu": "rtx-pro-6000", "cuda_toolkit": None,
                                    "driver": {"branch": "570"}},
         {"gpu": "rtx-pro-6000", "cuda_toolkit": None, "driver": {"branch": "575"}},
         ("575.57.08", "R570"), id="rtx-pro-6000"),
    Case("gpu-needs-newer-driver", {"gpu": "h200-sxm", "cuda_toolkit": None,
                                    "driver": {"branch": "535"}},
         {"gpu": "h200-sxm", "cuda_toolkit": None, "driver": {"branch": "550"}},
         ("550.90.07", "R535"), id="h200"),
    # Minimums from main releases: side releases (535.43.09 for L40S) sort below
    # main releases that do not support the GPU (535.54.03 .. 535.98).
    Case("gpu-needs-newer-driver",
         {"gpu": "l40s", "cuda_toolkit": None, "driver": {"branch": "535", "version": "535.54.03"}},
         {"gpu": "l40s", "cuda_toolkit": None, "driver": {"branch": "535", "version": "535.104.05"}},
         ("L40S", "535.104.05", "535.54.03"), id="l40s-main-release"),
    Case("gpu-needs-newer-driver",
         {"gpu": "gh200", "cuda_toolkit": None, "driver": {"branch": "535", "version": "535.113.01"}},
         {"gpu": "gh200", "cuda_toolkit": None, "driver": {"branch": "535", "version": "535.129.03"}},
         ("535.129.03", "535.113.01"), id="gh200-main-release"),
    Case("gpu-needs-newer-driver",
         {"cuda_toolkit": None, "driver": {"branch": "525", "version": "525.60.13"}},
         {"cuda_toolkit": None, "driver": {"branch": "525", "version": "525.85.05"}},
         ("525.85.05", "525.60.13"), id="h100-main-release"),
    Case("gpu-needs-newer-driver",
         {**B200, "gpu": "gb200", "driver": {"branch": "570", "version": "570.86.15"}},
         {**B200, "gpu": "gb200", "driver": {"branch": "570", "version": "570.124.04"}},
         ("570.124.04", "570.86.15"), id="gb200"),
    Case("gpu-needs-newer-driver", {**B200, "gpu": "rtx-pro-4500", "driver": R580},
         {**B200, "gpu": "rtx-pro-4500"}, ("RTX PRO 4500", ">= 595", "R580", "[EKS"),
         id="aws-g7"),
    Case("gpu-branch-excluded", {"gpu": "l4-g6f", "cuda_toolkit": None},
         {"gpu": "l4-g6f", "cuda_toolkit": None, "driver": R580}, ("R595", "g6f", "[EKS")),
    Case("gpu-branch-excluded",
         {"gpu": "v100", "cuda_toolkit": None, "driver": {"branch": "595", **PROP}},
         {"gpu": "v100", "cuda_toolkit": None, "driver": {"branch": "580", **PROP}},
         ("R595", "V100", "p3", "EKS"), id="v100"),
    Case("gpu-needs-newer-cuda", {"gpu": "b200", "cuda_toolkit": "12.6", "driver": R580},
         {"gpu": "b200", "cuda_toolkit": "12.8", "driver": R580}, ("12.8", "12.6")),
    Case("arch-branch-dropped",
         {"gpu": "v100", "cuda_toolkit": None, "driver": {"branch": "595", **PROP}},
         {"gpu": "v100", "cuda_toolkit": None, "driver": {"branch": "580", **PROP}},
         ("R580", "R595", "volta")),
    Case("arch-cuda-dropped",
         {"gpu": "v100", "cuda_toolkit": "13.0", "driver": {"branch": "580", **PROP}},
         {"gpu": "v100", "cuda_toolkit": "12.9", "driver": {"branch": "580", **PROP}},
         ("13.0", "12.x", "volta"), kb=with_volta_cuda_limit, good_kb=with_volta_cuda_limit),
    Case("open-module-required", {"gpu": "b200", "cuda_toolkit": None, "driver": PROP},
         {"gpu": "b200", "cuda_toolkit": None}, ("B200", "blackwell", "[")),
    Case("open-module-required", {"gpu": "gh200", "driver": PROP}, {"gpu": "gh200"},
         ("GH200", "grace-hopper"), id="gh200"),
    Case("open-module-recommended", {"driver": PROP}, {}, ("H100", "hopper", "[")),
    Case("open-module-unsupported",
         {"gpu": "v100", "cuda_toolkit": None, "driver": {"branch": "580"}},
         {"gpu": "v100", "cuda_toolkit": None, "driver": {"branch": "580", **PROP}},
         ("V100", "volta", "proprietary")),
    Case("proprietary-removed", {"cuda_toolkit": None, "driver": {"branch": "620", **PROP}},
         {"cuda_toolkit": None, "driver": {"branch": "595", **PROP}}, ("R620", "[")),
    Case("fabric-manager-disabled", {"fabric_manager": False}, {"fabric_manager": True},
         ("H100", "NVSwitch")),
    Case("fabric-manager-without-nvswitch", {"gpu": "l40s", "fabric_manager": True},
         {"gpu": "l40s", "fabric_manager": None}, ("L40S",)),
    Case("ctk-unknown", {"container": {"toolkit": "1.19.7"}}, {"container": {"toolkit": "1.19.1"}},
         ("1.19.7", "1.19.0, 1.19.1")),
    Case("ctk-unconfirmed", {"container": {"toolkit": "1.20.1"}},
         {"container": {"toolkit": "1.20.0"}}, ("1.20.1", "UNCONFIRMED")),
    Case("ctk-without-runtime", {"container": {"runtime": Runtime.NONE}},
         {"container": {"runtime": Runtime.CONTAINERD}}, ("1.19.0", "none")),
    Case("branch-eol", {"gpu": "l40s", "cuda_toolkit": None, "driver": {"branch": "535"}},
         {"gpu": "l40s", "cuda_toolkit": None, "driver": {"branch": "580"}},
         ("R535", "2026-06-30", "[")),
    Case("branch-eol", {"gpu": "l40s", "cuda_toolkit": None, "driver": {"branch": "575"}},
         {"gpu": "l40s", "cuda_toolkit": None, "driver": {"branch": "595"}},
         ("R575", "already"), id="ended"),
    Case("branch-eol-soon", {}, {}, ("R595", "2027-03-31", "75 days"),
         today=datetime.date(2027, 1, 15)),
    Case("branch-eol", {"cuda_toolkit": "13.1", "driver": {"branch": "590"}},
         {"cuda_toolkit": "13.1", "driver": {"branch": "595"}}, ("R590", "2026-02-28", "[FORUM"),
         id="r590"),
    Case("branch-eol-unknown", {}, {}, ("R595",), kb=with_branch("595", eol=None)),
    Case("branch-superseded", {"cuda_toolkit": "13.3", "driver": {"branch": "615"}},
         {"cuda_toolkit": "13.3", "driver": {"branch": "620"}}, ("R615", "new feature", "R620",
                                                                  "LTSB")),
    Case("branch-unconfirmed", {"cuda_toolkit": "13.3", "driver": {"branch": "615"}},
         {"cuda_toolkit": "13.3", "driver": {"branch": "615"}}, ("R615", "13.4", "UNCONFIRMED"),
         kb=with_branch("615", confidence="unconfirmed")),
    # Runtimes: the versions each OS ships (golden/data/runtimes.yaml).
    Case("cdi-runtime-too-old", {"os": OsName.DEBIAN_12},
         {"os": OsName.DEBIAN_12, "container": {"cdi": False}},
         ("docker >= 25.0.0", "debian-12 ships docker 20.10.24", "container.cdi: false", "[CTKD")),
    Case("cdi-runtime-too-old", {"os": OsName.DEBIAN_12, "container": {"runtime": Runtime.CONTAINERD}},
         {"os": OsName.DEBIAN_12, "container": {"runtime": Runtime.CONTAINERD, "cdi": False}},
         ("containerd >= 1.7.0", "containerd 1.6.20"), id="debian12-containerd"),
    Case("cdi-spec-runtime-too-old", {}, {"container": {"toolkit": "1.18.2"}},
         ("1.19.0", "CDI 0.7.0", "docker >= 26.1.0", "docker 25.0.3", "[CTKD"),
         kb=with_shipped("ubuntu-24.04", docker="25.0.3"),
         good_kb=with_shipped("ubuntu-24.04", docker="25.0.3")),
    Case("containerd-config-v3", {"container": {"runtime": Runtime.CONTAINERD, "toolkit": "1.17.3"}},
         {"container": {"runtime": Runtime.CONTAINERD, "toolkit": "1.17.4"}},
         ("containerd 2.2.1", "1.17.3", "1.17.4", "version 3")),
    Case("runtime-version-unknown", {"os": OsName.UBUNTU_2204}, {},
         ("docker", "ubuntu-22.04", ">= 25.0.0", ">= 26.1.0")),
    Case("driver-from-distro", {"driver": {"source": DriverSource.DISTRO}}, {},
         ("R595", "failure mode 4")),
    Case("gpu-host-arch", {**B200, "gpu": "gb200"}, {**B200, "gpu": "gb200", "arch": Arch.ARM64},
         ("GB200 Grace Blackwell", "arm64", "amd64")),
    Case("secure-boot-signing-key", {"target": {"secure_boot": True}},
         {"target": {"secure_boot": True, "signing_key": SigningKeySource(certificate="k.der", key="k.key")}},
         ("open module", "DKMS", "failure mode 5", "per-build", "key_env")),
    Case("secure-boot-per-build-key",
         {"target": {"secure_boot": True, "signing_key": SigningKeySource(per_build=True)}},
         {"target": {"secure_boot": True, "signing_key": SigningKeySource(certificate="k.der", key_env="K")}},
         ("per-build", "enrolled again", "cannot sign a module rebuilt")),
    Case("cuda-without-driver", {"driverless": True}, {"driverless": True, "cuda_toolkit": None},
         ("cuda.toolkit 13.2", "without a driver", "leaves the host toolkit off", "GPU Operator",
          "cuda.toolkit: null")),
    Case("ctk-without-driver", {"driverless": True}, {"driverless": True, "container": {"toolkit": None}},
         ("container.toolkit 1.19.0", "without a driver", "GPU Operator", "container.toolkit: null")),
    Case("kernel-headers-with-driver", {"kernel_headers": False}, {"driverless": True, "kernel_headers": False},
         ("kernel_headers: false", "DKMS", "driver: none")),
    Case("distro-driver-unbuildable", {"os": OsName.DEBIAN_13, "driver": {"source": DriverSource.DISTRO}},
         {"os": OsName.DEBIAN_12, "driver": {"source": DriverSource.DISTRO}},
         ("debian-13", "550.163.01", "pci_resize_resource", "checked 2026-12", "[DEB13]", "driver: none")),
    Case("apptainer-install-unsupported", {"os": OsName.DEBIAN_12, "container": {"apptainer": "1.4.5"}},
         {"os": OsName.DEBIAN_13, "container": {"apptainer": "1.4.5"}},
         ("debian-12", "libc6 (>= 2.38)", "2.36", "DEBAPPT", "installs on debian-13", "container.apptainer: null")),
    Case("apptainer-install-unsupported", {"os": OsName.UBUNTU_2404, "container": {"apptainer": "1.4.5"}},
         {"os": OsName.UBUNTU_2404}, ("ubuntu-24.04", "PPA", "APPTPPA"), id="ubuntu"),
    Case("apptainer-version-unknown", {"os": OsName.DEBIAN_13, "container": {"apptainer": "1.4.4"}},
         {"os": OsName.DEBIAN_13, "container": {"apptainer": "1.4.5"}}, ("1.4.4", "1.4.5", "unstable", "DEBAPPT")),
    Case("branch-naming", {}, {}, ("R595", "'suffixed'", "expected 'pinning'"),
         kb=with_naming("595", "suffixed")),
    Case("branch-naming", {"cuda_toolkit": "13.0", "driver": {"branch": "580"}},
         {"cuda_toolkit": "13.0", "driver": {"branch": "580"}},
         ("R580", "'pinning'", "expected 'suffixed'"), kb=with_naming("580", "pinning"), id="r580"),
    Case("workload-cuda-major-above-driver", {**R535, "workloads": declared("13.0")},
         {**R535, "workloads": declared("12.2")},
         ("workload solver", "CUDA 13.0", "R535", "12.2", "cudaErrorInsufficientDriver", "failure mode 3")),
    Case("workload-cuda-major-above-driver", {**R535, "workloads": (CUDA13,)}, {"workloads": (CUDA13,)},
         ("workload cuda13", "CUDA 13.1", "admits R535", "NVIDIA's table", "[FWD, unconfirmed]"),
         resolved=(CUDA13_FACTS,), good_resolved=(CUDA13_FACTS,), id="image"),
    Case("workload-cuda-forward-compat", {**R535, "workloads": (CUDA13,)}, {**R535, "workloads": (CUDA13,)},
         ("CUDA 13.1", "R535", "12.2", "cuda-compat 13.x", "[FWD, unconfirmed]"),
         resolved=(CUDA13_FACTS,), good_resolved=(replace(CUDA13_FACTS, compat="no"),),
         compat=replace(load_compat(), base_branches={"13": ("535",)})),
    Case("workload-cuda-minor-above-driver", {"workloads": declared("13.5")}, {"workloads": declared("13.2")},
         ("workload solver", "CUDA 13.5", "R595", "13.2", "[MVC]")),
    Case("workload-cuda-unknown", {"workloads": (CUDA13,)},
         {"workloads": (replace(CUDA13, cuda="13.1"),)},
         ("workload cuda13", "cannot tell which CUDA it needs", "not resolved", 'cuda: "X.Y"'),
         resolved=(), good_resolved=()),
    Case("workload-require-cuda-unmet", {"driver": {"branch": "525"}, "cuda_toolkit": "12.0",
                                         "workloads": (CUDA13,)}, {**R535, "workloads": (CUDA13,)},
         ("workload cuda13", "cuda>=13.1", "R535, R550, R570, R575, R580", "R525", "CUDA 12.0", "[CTKS]"),
         resolved=(CUDA13_FACTS,), good_resolved=(CUDA13_FACTS,)),
]


def _id(case: Case) -> str:
    return f"{case.rule}-{case.id}" if case.id else case.rule


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_rule_fires_on_failing_profile(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    kb = case.kb(KB) if case.kb else KB
    if case.compat is not None:
        monkeypatch.setattr(gate_workloads, "load_compat", lambda: case.compat)
    found = [f for f in check(variant(**case.bad), kb, today=case.today, resolved_workloads=case.resolved)
             if f.rule == case.rule]
    assert found, f"{case.rule} did not fire"
    (f,) = found
    assert f.severity is RULES[case.rule][0]
    for needle in case.says:
        assert needle in f.message, f"{needle!r} not in {f.message!r}"
    assert "\n" not in f.message


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_rule_quiet_on_passing_profile(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    kb = case.good_kb(KB) if case.good_kb else KB
    if case.compat is not None:
        monkeypatch.setattr(gate_workloads, "load_compat", lambda: case.compat)
    found = check(variant(**case.good), kb, today=TODAY, resolved_workloads=case.good_resolved)
    assert case.rule not in rules(found)


def test_newest_feature_branch_is_not_warned_about_forever() -> None:
    """An NFB has no end-of-life date: without a successor it is simply current."""
    kb = without_branch("620")(KB)
    found = rules(check(variant(cuda_toolkit="13.3", driver={"branch": "615"}), kb, today=TODAY))
    assert not {"branch-eol-unknown", "branch-superseded", "branch-eol"} & found


def test_cdi_on_an_old_runtime_warns_without_refusing() -> None:
    """Debian 12's docker 20.10 cannot take CDI device requests, but the specs are still written
    and the nvidia runtime still injects GPUs: a warning, and the profile still passes."""
    found = [f for f in check(variant(os=OsName.DEBIAN_12), KB, today=TODAY) if f.rule == "cdi-runtime-too-old"]
    assert [f.severity for f in found] == [Severity.WARNING]


def test_cdi_spec_rule_stays_quiet_where_native_cdi_already_fails() -> None:
    found = rules(check(variant(os=OsName.DEBIAN_12), KB, today=TODAY))
    assert "cdi-runtime-too-old" in found and "cdi-spec-runtime-too-old" not in found


def test_containerd_config_v3_unknown_version_warns() -> None:
    found = check(variant(os=OsName.UBUNTU_2204, container={"runtime": Runtime.CONTAINERD,
                                                            "toolkit": "1.17.3", "cdi": False}),
                  KB, today=TODAY)
    (f,) = [f for f in found if f.rule == "runtime-version-unknown"]
    assert "containerd >= 2.0.0" in f.message and "1.17.4" in f.message


def test_every_rule_has_a_case() -> None:
    assert {c.rule for c in CASES} == set(RULES)


def test_baseline_is_clean() -> None:
    assert check(variant(), KB, today=TODAY) == []


def test_r580_runs_12_9_without_warning() -> None:
    """12.9 on R580 (ceiling 13.0) is backward compatibility, not minor-version compatibility."""
    found = check(variant(gpu="l40s", cuda_toolkit="12.9", driver=R580), KB, today=TODAY)
    assert not {"cuda-minor-above-driver", "cuda-major-above-driver"} & rules(found)


def test_major_rule_hides_the_ones_it_implies() -> None:
    found = rules(check(variant(cuda_toolkit="13.2", driver={"branch": "575"}), KB, today=TODAY))
    assert "cuda-major-above-driver" in found
    assert not {"driver-below-mvc-floor", "cuda-minor-above-driver"} & found


def test_errors_come_first() -> None:
    found = check(variant(cuda_toolkit="13.2", driver={"branch": "535", **PROP}), KB, today=TODAY)
    severities = [f.severity for f in found]
    assert Severity.ERROR in severities and Severity.WARNING in severities
    assert severities == sorted(severities, key=lambda s: s is not Severity.ERROR)


def test_has_errors_and_strict() -> None:
    warning = Finding("branch-eol", Severity.WARNING, "R535 reached end of life")
    error = Finding("ctk-unknown", Severity.ERROR, "1.19.7")
    assert not has_errors([])
    assert not has_errors([warning])
    assert has_errors([warning], strict=True)
    assert has_errors([warning, error])
    assert not has_errors([], strict=True)


def test_format_finding() -> None:
    f = Finding("cuda-major-above-driver", Severity.ERROR, "CUDA 13.2 needs ... [RN]")
    assert format_finding("h100-r595", f) == (
        "h100-r595: error[cuda-major-above-driver]: CUDA 13.2 needs ... [RN]")


def test_rules_table_is_documented() -> None:
    for rule, (severity, _layer, text) in RULES.items():
        assert rule == rule.lower() and " " not in rule
        assert isinstance(severity, Severity) and text and "\n" not in text


@pytest.mark.parametrize(("branch", "naming"), [("535", "suffixed"), ("580", "suffixed"),
                                                ("590", "pinning"), ("620", "pinning")])
def test_expected_naming(branch: str, naming: str) -> None:
    assert expected_naming(branch) == naming


def test_shipped_profiles_pass() -> None:
    profiles = load_all(kb=KB)
    assert [p.name for p in profiles] == profile_names()
    for p in profiles:
        found = check(p, KB, today=TODAY)
        assert not has_errors(found), [format_finding(p.name, f) for f in found]


def test_local_profile_warns_about_eol_and_distro() -> None:
    if "local-debian12-r535" not in profile_names():
        pytest.skip("profile local-debian12-r535 is not shipped")
    found = rules(check(_loaded("local-debian12-r535"), KB, today=TODAY))
    assert {"branch-eol", "driver-from-distro"} <= found


def test_every_rule_function_yields_only_rules_of_its_layer() -> None:
    """The RULES table says a rule's layer; the function that yields it runs under that layer."""
    for case in CASES:
        kb = case.kb(KB) if case.kb else KB
        profile = variant(**case.bad)
        ctx = _context(profile, kb, case.today)
        for layer, rule in _RULES:
            if layer == "driver" and profile.driver is None:
                continue
            for f in rule(ctx):
                assert RULES[f.rule].layer == layer, (f.rule, layer)


def test_layers_in_the_rules_table_are_the_plans() -> None:
    # "workloads" is what the profile lists, not an install layer (golden/gate_rules.py WORKLOADS).
    assert {info.layer for info in RULES.values()} <= {BASE, WORKLOADS, *(spec.name for spec in LAYERS)}
