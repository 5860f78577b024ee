"""Images for the GPU Operator (``driver: none``): the profile key, the driverless layer, the
gate's rules and information line, and the knowledge base's fact about Debian 13's own module."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from golden import commands, contract, gate, gate_driverless, hostprobes, versions
from golden.errors import ProfileError
from golden.gate_rules import RULES, Severity
from golden.kb import load
from golden.layers import NOUVEAU_BLACKLIST, NVIDIA_PACKAGES
from golden.plan import make_plan
from golden.profile import DriverSource, OsName, load_profile, profile_names
from tests.conftest import WriteProfile
from tests.unit.test_plan_layers import DRIVERLESS

KB = load()
SHIPPED = "local-debian13-driverless"
KERNEL = "6.12.117+deb13-cloud-amd64"


def _load(write_profile: WriteProfile, profiles_dir: Path, **change: Any) -> Any:
    write_profile("x", {**DRIVERLESS, **change})
    return load_profile("x", root=profiles_dir, kb=KB)


def _error(write_profile: WriteProfile, profiles_dir: Path, **change: Any) -> str:
    with pytest.raises(ProfileError) as err:
        _load(write_profile, profiles_dir, **change)
    return err.value.line()


# -- the profile ---------------------------------------------------------------------------------

def test_driver_none_is_null(write_profile: WriteProfile, profiles_dir: Path) -> None:
    assert _load(write_profile, profiles_dir, driver="none").driver is None
    assert _load(write_profile, profiles_dir, driver=None).driver is None


def test_driver_none_removes_a_driver_that_extends_gave(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("child", {"extends": "local-debian12-r535", "driver": "none"})
    assert load_profile("child", root=profiles_dir, kb=KB).driver is None


@pytest.mark.parametrize("value", ["None", "nvidia", "off", ""])
def test_any_other_driver_string_is_one_error_line(write_profile: WriteProfile, profiles_dir: Path,
                                                   value: str) -> None:
    line = _error(write_profile, profiles_dir, driver=value)
    assert "\n" not in line and "driver" in line and "none or null" in line and repr(value) in line


def test_kernel_headers_defaults_to_true_and_takes_a_boolean(write_profile: WriteProfile,
                                                             profiles_dir: Path) -> None:
    assert _load(write_profile, profiles_dir).kernel_headers is True
    assert _load(write_profile, profiles_dir, kernel_headers=False).kernel_headers is False
    assert "kernel_headers" in _error(write_profile, profiles_dir, kernel_headers="no")


def test_debian_13_kernel_abis_are_accepted() -> None:
    for abi in (KERNEL, "6.1.0-50-cloud-amd64", "6.8.0-1021-aws", "6.12.48+deb13-arm64"):
        assert versions.KERNEL.fullmatch(abi), abi
    for bad in ("6.12.117+deb13", "6.12.117+ubuntu-aws", "6.12-cloud-amd64"):
        assert not versions.KERNEL.fullmatch(bad), bad


# -- the layer -----------------------------------------------------------------------------------

def test_the_driverless_layer_is_there_exactly_without_a_driver() -> None:
    for name in profile_names():
        profile = load_profile(name, kb=KB)
        plan = make_plan(profile, KB)
        assert ("driverless" in plan.layer_names) == (profile.driver is None), name
        assert plan.expectations()["driverless"] is None or profile.driver is None


def test_the_shipped_driverless_profile_plans_headers_containerd_and_nothing_of_nvidias() -> None:
    plan = make_plan(load_profile(SHIPPED, kb=KB), KB)
    assert plan.layer_names == ("kernel", "driverless", "runtime", "apptainer", "data-disks")
    assert [(p.name, p.hold) for p in plan.packages] == [
        (f"linux-image-{KERNEL}", True), (f"linux-headers-{KERNEL}", True), ("containerd", False),
        ("apptainer", True), ("mdadm", False)]
    assert plan.repositories == ()
    exp = plan.expectations()
    assert exp["driverless"] == {"kernel_headers": True, "blacklist": NOUVEAU_BLACKLIST,
                                 "forbidden_packages": list(NVIDIA_PACKAGES)}
    assert exp["kernel"] == KERNEL and exp["container"]["runtime"] == "containerd"
    assert exp["container"]["toolkit"] is None and exp["cuda"]["toolkit"] is None
    env = plan.env()
    assert contract.check(env) == env and env["GOLDEN_KERNEL_HEADERS"] == "true"


def test_kernel_headers_false_leaves_the_headers_out(write_profile: WriteProfile, profiles_dir: Path) -> None:
    plan = make_plan(_load(write_profile, profiles_dir, kernel_headers=False), KB)
    assert [p.name for p in plan.kernel_packages] == ["linux-image-6.1.0-50-cloud-amd64"]
    assert plan.env()["GOLDEN_KERNEL_HEADERS"] == "false"
    assert "linux-headers" not in plan.env()["GOLDEN_HOLDS"]
    assert plan.expectations()["driverless"]["kernel_headers"] is False


# -- the gate ------------------------------------------------------------------------------------

def test_host_driver_rules_are_skipped_for_the_shipped_profile() -> None:
    p = load_profile(SHIPPED, kb=KB)
    findings = gate.check(p, KB)
    assert findings == []
    skipped = {s.rule: s.layer for s in gate.skipped(p, KB)}
    assert {r for r, info in RULES.items() if info.layer == "driver"} <= set(skipped)
    assert skipped["distro-driver-unbuildable"] == "driver"


@pytest.mark.parametrize("change, rule", [
    ({"cuda": {"toolkit": "12.8"}}, "cuda-without-driver"),
    ({"container": {"runtime": "containerd", "toolkit": "1.19.0"}}, "ctk-without-driver"),
])
def test_toolkits_without_a_driver_are_warnings(write_profile: WriteProfile, profiles_dir: Path,
                                                change: dict[str, Any], rule: str) -> None:
    findings = gate.check(_load(write_profile, profiles_dir, **change), KB)
    assert [(f.rule, f.severity) for f in findings] == [(rule, Severity.WARNING)]
    assert "GPU Operator" in findings[0].message


def test_debian_13_with_debians_own_driver_is_refused() -> None:
    p = load_profile("local-debian12-r535", kb=KB)
    assert p.driver is not None and p.driver.source is DriverSource.DISTRO
    findings = gate.check(replace(p, os=OsName.DEBIAN_13, kernel=KERNEL), KB)
    (f,) = [f for f in findings if f.rule == "distro-driver-unbuildable"]
    assert f.severity is Severity.ERROR
    assert "550.163.01" in f.message and "pci_resize_resource" in f.message and "[DEB13]" in f.message
    # NVIDIA's own packages for Debian 13 are not this fact's.
    nvidia = replace(p, os=OsName.DEBIAN_13, kernel=KERNEL, driver=replace(p.driver, source=DriverSource.NVIDIA))
    assert "distro-driver-unbuildable" not in {f.rule for f in gate.check(nvidia, KB)}


def test_the_fact_carries_its_source() -> None:
    (fact,) = gate_driverless.build_failures(KB)
    assert (fact["os"], fact["driver_source"], fact["version"]) == ("debian-13", "distro", "550.163.01")
    assert fact["confidence"] == "nvidia-repo" and "checked 2026-12 by building it" in KB.sources[fact["source"]]


@pytest.mark.parametrize("gpu, says", [
    ("b200", ("R570+", ">= 570.133.20", "open kernel module (required)", "fabric manager", "B200")),
    ("l40s", ("R535+", ">= 535.104.05", "open kernel module (recommended)", "L40S")),
    ("v100", ("up to R580", "not R595", "proprietary kernel module")),
    ("rtx-pro-4500", ("R595+", "open kernel module (required)")),
])
def test_operator_note_names_the_branch_the_gpu_needs(gpu: str, says: tuple[str, ...]) -> None:
    p = replace(load_profile(SHIPPED, kb=KB), gpu=gpu)
    note = gate_driverless.operator_note(p, KB)
    assert note is not None and "\n" not in note
    for needle in says:
        assert needle in note, (needle, note)
    assert (">= " in note) == (gpu != "rtx-pro-4500" and gpu != "v100")
    assert ("fabric manager" in note) == KB.gpus[gpu].nvswitch


def test_operator_note_only_without_a_driver() -> None:
    assert gate_driverless.operator_note(load_profile("h100-r595", kb=KB), KB) is None


def test_check_prints_the_operator_line_and_passes_strict() -> None:
    lines = commands.check(SHIPPED, all_=False, strict=True).splitlines()
    (info,) = [x for x in lines if "info[" in x]
    assert info.startswith(f"{SHIPPED}: info[operator-driver-branch]: the GPU Operator must bring driver R525+")
    assert f"{SHIPPED}: skipped[open-module-required]: no driver layer" in lines
    assert lines[-1] == f"{SHIPPED}: ok"


# -- the probes ----------------------------------------------------------------------------------

def test_module_files_lsmod_and_modprobe_options() -> None:
    found = hostprobes.parse_module_files(f"/lib/modules/{KERNEL}/a/nvidia.ko\n/usr/lib/modules/{KERNEL}/a/nvidia.ko\n")
    assert found == [f"{KERNEL}/a/nvidia.ko"]
    assert hostprobes.only_missing_trees("find: '/usr/lib/modules/': No such file or directory\n")
    assert not hostprobes.only_missing_trees("find: '/lib/modules/x': Permission denied\n")
    assert hostprobes.parse_lsmod("Module  Size  Used by\nnouveau 1 0\next4 2 1\n") == ["ext4", "nouveau"]
    assert hostprobes.parse_lsmod("") == []
    config = hostprobes.parse_modprobe_config("options nouveau modeset=0\noptions nouveau debug=1\n"
                                              "blacklist nouveau\n")
    assert config.options == {"nouveau": ("modeset=0", "debug=1")} and "nouveau" in config.blacklist
