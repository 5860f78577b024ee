"""The plan as layers: the registry, the folds, and a profile without a driver.

The driverless profile is the shape of profiles/local-debian12-r535.yaml with
``driver: null`` (base/common gives every profile a driver section, so "no
driver" is said explicitly): it loads, passes the gate with the driver's rules
reported as skipped, and plans without a driver layer or anything that needs one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import commands, contract, gate, packer, render, targets
from golden.gate_rules import RULES
from golden.kb import load
from golden.layers import Inputs
from golden.plan import BASE, EXPECTATIONS_SCHEMA, LAYERS, make_plan
from golden.profile import Arch, load_profile, profile_names
from tests.conftest import WriteProfile

KB = load()

DRIVERLESS: dict[str, Any] = {
    "description": "Debian 12 local bake without a driver: Docker only",
    "extends": "base/common",
    "os": "debian-12",
    "kernel": "6.1.0-50-cloud-amd64",
    "gpu": "l40s",
    "driver": None,
    "cuda": {"toolkit": None},
    "container": {"runtime": "docker", "toolkit": None},
    "target": {"kind": "local", "boot_test": True},
}


@pytest.fixture
def driverless(write_profile: WriteProfile, profiles_dir: Path) -> Path:
    write_profile("local-nodriver", DRIVERLESS)
    return profiles_dir


def test_layer_registry_names_are_unique_and_match_what_each_function_makes() -> None:
    names = [spec.name for spec in LAYERS]
    assert len(names) == len(set(names)) and BASE not in names
    for name in profile_names():
        profile = load_profile(name, kb=KB)
        plan = make_plan(profile, KB)
        made = [(spec, spec.make(Inputs(profile, KB, {}))) for spec in LAYERS]
        assert [layer.name for spec, layer in made if layer] == [spec.name for spec, layer in made if layer]
        assert plan.layer_names == tuple(spec.name for spec, layer in made if layer)   # registry order
        for spec, layer in made:
            if layer is None:
                continue
            # An absent layer leaves the checks the same keys as a present one, and the scripts
            # the same variables, or none at all (golden/contract.py: a layer's come all or none).
            assert set(spec.absent_env) in (set(layer.env), set())
            assert set(spec.absent_expect) == set(layer.expect)


def test_packages_env_and_expectations_are_folds_over_the_layers() -> None:
    plan = make_plan(load_profile("b200-r595", kb=KB), KB)
    assert plan.packages == tuple(p for layer in plan.layers for p in layer.packages)
    assert plan.fabric_manager_packages == plan.layer_packages("fabric-manager")
    exp = plan.expectations()
    assert exp["schema"] == EXPECTATIONS_SCHEMA
    # data-disks: on by default on EC2 for p6-b200 (instance-store NVMe, golden/data/gpus.yaml).
    assert exp["layers"] == ["kernel", "driver", "runtime", "data-disks", "container-toolkit", "fabric-manager",
                             "persistence"]
    assert exp["fabric_manager"]["enabled"] is True and exp["driver"]["module"] == plan.module_name
    env = plan.env()
    for layer in plan.layers:
        assert {k: env[k] for k in layer.env} == dict(layer.env)
    # The driver layer's source-package pins follow every package's own pin.
    assert env["GOLDEN_PINS"].split()[-1].startswith("src:")


def test_expectations_are_fresh_copies() -> None:
    plan = make_plan(load_profile("h100-r595", kb=KB), KB)
    first = plan.expectations()
    first["driver"]["sources"].append("changed")
    assert "changed" not in plan.expectations()["driver"]["sources"]


def test_a_profile_without_a_driver_loads(driverless: Path) -> None:
    p = load_profile("local-nodriver", root=driverless, kb=KB)
    assert p.driver is None and not p.wants_fabric_manager(KB)


def test_a_profile_without_a_driver_passes_the_gate_with_driver_rules_skipped(driverless: Path) -> None:
    p = load_profile("local-nodriver", root=driverless, kb=KB)
    findings = gate.check(p, KB)
    assert not gate.has_errors(findings, strict=True), findings
    skipped = {s.rule: s.reason for s in gate.skipped(p, KB)}
    driver_rules = {r for r, info in RULES.items() if info.layer == "driver"}
    assert driver_rules and {r: "no driver layer" for r in driver_rules}.items() <= skipped.items()
    assert "gpu-host-arch" not in skipped and "cuda-without-driver" not in skipped
    assert gate.format_skip("local-nodriver", gate.Skip("branch-eol", "driver")) == (
        "local-nodriver: skipped[branch-eol]: no driver layer")


def test_a_profile_with_a_driver_skips_only_the_layers_it_lacks() -> None:
    p = load_profile("local-debian12-r535", kb=KB)     # no container toolkit
    assert {s.layer for s in gate.skipped(p, KB)} == {"container-toolkit"}
    assert gate.skipped(load_profile("h100-r595", kb=KB), KB) == []


def test_cuda_and_ctk_without_a_driver_are_warned_about_and_left_off(write_profile: WriteProfile,
                                                                     profiles_dir: Path) -> None:
    """The GPU Operator brings them: a warning, and the plan has neither layer nor repository."""
    write_profile("cuda-nodriver", {**DRIVERLESS, "cuda": {"toolkit": "12.8"},
                                    "container": {"runtime": "containerd", "toolkit": "1.19.0"}})
    profile = load_profile("cuda-nodriver", root=profiles_dir, kb=KB)
    findings = gate.check(profile, KB)
    assert not gate.has_errors(findings)
    assert {f.rule for f in findings if f.severity is gate.Severity.WARNING} >= {"cuda-without-driver",
                                                                                  "ctk-without-driver"}
    plan = make_plan(profile, KB)
    assert plan.layer_names == ("kernel", "driverless", "runtime") and plan.repositories == ()
    env = plan.env()
    assert env["GOLDEN_CUDA_PACKAGES"] == env["GOLDEN_CTK_PACKAGES"] == env["GOLDEN_CTK_VERSION"] == ""
    assert plan.expectations()["container"]["toolkit"] is None and plan.ctk_version is None
    tags = dict(render._tags(plan))
    assert tags["golden:cuda"] == tags["golden:container-toolkit"] == "none"


def test_a_profile_without_a_driver_plans_no_driver_layer(driverless: Path) -> None:
    plan = make_plan(load_profile("local-nodriver", root=driverless, kb=KB), KB)
    assert plan.layer_names == ("kernel", "driverless", "runtime")
    assert plan.driver_packages == () and plan.fabric_manager_packages == () and plan.persistence_packages == ()
    assert plan.module_name is None and plan.driver_pattern is None and plan.driver_sources == ()
    assert {p.group for p in plan.packages} == {"kernel", "runtime"}
    exp = plan.expectations()
    assert exp["layers"] == ["kernel", "driverless", "runtime"] and exp["driver"] is None
    assert exp["proprietary_packages"] == [] and exp["persistence"] is False
    assert exp["fabric_manager"] == {"enabled": False, "packages": []}
    env = plan.env()
    assert not {"GOLDEN_DRIVER_PACKAGES", "GOLDEN_DRIVER_BRANCH", "GOLDEN_MODULE_NAME"} & set(env)
    assert env["GOLDEN_DRIVER_EXTRA_PACKAGES"] == ""            # the fabric-manager layer's, absent
    assert contract.check(env) == env
    assert env["GOLDEN_PERSISTENCE"] == "false" and "src:" not in env["GOLDEN_PINS"]
    assert env["GOLDEN_RUNTIME_PACKAGES"] and env["GOLDEN_KERNEL_PACKAGES"]
    # Without a driver from NVIDIA and without CUDA, no NVIDIA repository either.
    assert [r.name for r in plan.repositories if r.name == "cuda"] == []


def test_driver_null_removes_a_driver_that_extends_gave(write_profile: WriteProfile, profiles_dir: Path) -> None:
    data = yaml.safe_load((profiles_dir / "local-debian12-r535.yaml").read_text())
    write_profile("child", {"extends": "local-debian12-r535", "description": data["description"],
                            "driver": None})
    assert load_profile("child", root=profiles_dir, kb=KB).driver is None


def test_the_registry_has_the_layers_the_scripts_contract_names() -> None:
    assert [BASE, *(spec.name for spec in LAYERS)] == [layer.value for layer in contract.Layer]


def test_extras_without_a_fabric_manager_are_still_the_fabric_manager_layer() -> None:
    """GB200 trays have no NVSwitch but run nvidia-imex: 80-fabric-manager.sh must still run."""
    b200 = load_profile("b200-r595", kb=KB)
    assert b200.driver is not None
    plan = make_plan(replace(b200, gpu="gb200", arch=Arch.ARM64, fabric_manager=None), KB)
    assert "fabric-manager" in plan.layer_names
    assert plan.fabric_manager_packages == () and plan.driver_extra_packages
    exp = plan.expectations()
    assert exp["fabric_manager"] == {"enabled": False, "packages": []} and exp["driver_extras"]


class _Packer:
    def describe(self) -> str:
        return "Packer (a stand-in)"


def test_profiles_and_describe_show_an_image_without_a_driver(
        driverless: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "PROFILES", driverless)
    row = next(line for line in commands.profiles().splitlines() if line.startswith("local-nodriver "))
    assert row.split()[:4] == ["local-nodriver", "l40s", "-", "-"]
    plan = make_plan(load_profile("local-nodriver", root=driverless, kb=KB), KB)
    out = tmp_path / "out"
    render.render(plan, out)
    monkeypatch.setattr(packer, "choice", _Packer)
    text = commands.describe(plan, targets.get("local"), out)
    assert "  driver    none (an image without the NVIDIA driver)" in text.splitlines()


def test_check_says_which_rules_an_image_without_a_driver_skips(
        driverless: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "load_profile",
                        lambda name, kb=None: load_profile(name, root=driverless, kb=kb))
    lines = commands.check("local-nodriver", all_=False, strict=False).splitlines()
    assert "local-nodriver: skipped[branch-eol]: no driver layer" in lines
    assert lines[-1].startswith("local-nodriver: ok")
