"""The build plan's knowledge-base driven parts: driver-versioned extras (IMEX) and the
CUDA repository's key file per OS, and 80-fabric-manager.sh installing the extras.

GB200/GB300 compute trays have no NVSwitch, so no fabric manager, but need
nvidia-imex at exactly the driver version (named nvidia-imex-<branch> for R550
to R575) [GDC]; Debian 13's CUDA repository is signed by 8793F200, not 3bf863cc.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from golden.kb import load
from golden.plan import BuildPlan, make_plan
from golden.profile import Arch, OsName, Profile, load_profile
from tests.conftest import require_tool
from tests.unit.script_harness import BUILD_ID, UBUNTU_KERNEL, Image, failed, ok

KB = load()


def gb200(branch: str = "595", version: str | None = None, **top: object) -> Profile:
    p = load_profile("b200-r595")
    assert p.driver is not None
    return replace(p, gpu="gb200", arch=Arch.ARM64, fabric_manager=None,
                   driver=replace(p.driver, branch=branch, version=version), **top)  # type: ignore[arg-type]


def extras(plan: BuildPlan) -> dict[str, tuple[str | None, bool]]:
    return {x.name: (x.pin, x.hold) for x in plan.driver_extra_packages}


def test_gb200_installs_imex_without_fabric_manager() -> None:
    plan = make_plan(gb200(), KB)
    assert plan.fabric_manager_packages == ()
    assert extras(plan) == {"nvidia-imex": ("595.*", True)}
    env = plan.env()
    assert env["GOLDEN_DRIVER_EXTRA_PACKAGES"] == "nvidia-imex"
    assert env["GOLDEN_FABRIC_MANAGER_PACKAGES"] == ""
    assert "nvidia-imex=595.*" in env["GOLDEN_PINS"].split()
    assert "nvidia-imex" in env["GOLDEN_HOLDS"].split()
    want = plan.expectations()
    assert want["driver_extras"] == ["nvidia-imex"]
    assert {"name": "nvidia-imex", "group": "driver-extra", "version": None, "pattern": "595.*",
            "upstream": None, "hold": True} in want["packages"]


def test_imex_is_pinned_to_an_exact_driver_version() -> None:
    plan = make_plan(gb200(version="595.58.03"), KB)
    (imex,) = plan.driver_extra_packages
    assert (imex.pattern, imex.upstream) == ("595.58.03-*", "595.58.03")


@pytest.mark.parametrize(("branch", "name"), [("570", "nvidia-imex-570"), ("575", "nvidia-imex-575"),
                                              ("580", "nvidia-imex"), ("620", "nvidia-imex")])
def test_imex_package_name_follows_the_branch(branch: str, name: str) -> None:
    assert extras(make_plan(gb200(branch), KB)) == {name: (f"{branch}.*", True)}


def test_gpus_without_imex_get_no_extras() -> None:
    plan = make_plan(load_profile("b200-r595"), KB)
    assert plan.driver_extra_packages == ()
    # nvlsm goes with the fabric manager and keeps its own version.
    fm = {x.name: x.pin for x in plan.fabric_manager_packages}
    assert fm == {"nvidia-fabricmanager": "595.*", "nvlsm": None, "infiniband-diags": None}


def test_a_driver_versioned_package_among_the_fabric_manager_extras_is_pinned() -> None:
    kb = replace(KB, packages={**KB.packages, "fabric_manager": {
        **KB.packages["fabric_manager"], "extras": {"nvlsm": ["nvlsm", "libnvidia-nscq"]}}})
    plan = make_plan(load_profile("b200-r595"), kb)
    fm = {x.name: (x.pin, x.hold) for x in plan.fabric_manager_packages}
    assert fm["libnvidia-nscq"] == ("595.*", True) and fm["nvlsm"] == (None, False)


@pytest.mark.parametrize(("os_name", "key"), [(OsName.DEBIAN_13, "debian13/x86_64/8793F200.pub"),
                                              (OsName.DEBIAN_12, "debian12/x86_64/3bf863cc.pub"),
                                              (OsName.UBUNTU_2404, "ubuntu2404/x86_64/3bf863cc.pub")])
def test_cuda_repository_key_file_per_os(os_name: OsName, key: str) -> None:
    profile = replace(load_profile("h100-r595"), os=os_name)
    env = make_plan(profile, KB).env()
    assert env["GOLDEN_CUDA_REPO_KEY_URL"].endswith("/" + key)
    assert env["GOLDEN_CUDA_REPO_FINGERPRINT"] == KB.systems[os_name.value].cuda_key_fingerprint


def test_debian13_key_file_matches_its_fingerprint() -> None:
    osi = KB.systems["debian-13"]
    assert osi.cuda_key_fingerprint.endswith(osi.cuda_key_file.removesuffix(".pub").upper())
    for other in ("debian-12", "ubuntu-22.04", "ubuntu-24.04"):
        s = KB.systems[other]
        assert s.cuda_key_fingerprint.endswith(s.cuda_key_file.removesuffix(".pub").upper())


# -- 80-fabric-manager.sh installs the extras ---------------------------------------


def gb200_image(image: Image, imex_version: str) -> dict[str, str]:
    rows = [
        ("nvidia-driver-pinning-595", "nvidia-driver-pinning", "595-2ubuntu1"),
        ("nvidia-open", "nvidia-graphics-drivers-595", "595.58.03-1ubuntu1"),
        ("nvidia-imex", "nvidia-imex", imex_version),
    ]
    image.packages([{"name": n, "source": s, "version": v} for n, s, v in rows])
    image.modules({UBUNTU_KERNEL: {"nvidia": "595.58.03"}})
    env = make_plan(gb200(version="595.58.03"), KB).env()
    env["GOLDEN_BUILD_ID"] = BUILD_ID
    return env


def test_script_installs_imex_without_fabric_manager(tmp_path: Path) -> None:
    image = Image(tmp_path)
    env = gb200_image(image, "595.58.03-1")
    result = ok(image.run("80-fabric-manager.sh", env))
    assert "nvidia-imex 595.58.03-1 matches the driver 595.58.03" in result.stderr
    assert "no fabric manager in this profile (no NVSwitch)" in result.stderr
    installs = [c for c in image.commands() if c.startswith("apt-get ") and " install" in c]
    assert installs and all("nvidia-imex" in c and "fabricmanager" not in c for c in installs)


def test_script_refuses_imex_of_another_driver_version(tmp_path: Path) -> None:
    image = Image(tmp_path)
    env = gb200_image(image, "595.71.05-1")
    err = failed(image.run("80-fabric-manager.sh", env))
    assert "nvidia-imex 595.71.05-1 does not match the driver 595.58.03" in err


def test_script_still_fabric_manager_first_on_nvswitch_boards(tmp_path: Path) -> None:
    require_tool("systemctl")
    image = Image(tmp_path)
    image.packages([{"name": "nvidia-fabricmanager", "source": "nvidia-fabric-manager",
                     "version": "595.58.03-1"}])
    image.file("/usr/lib/systemd/system/nvidia-fabricmanager.service",
               "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    b200 = load_profile("b200-r595")
    assert b200.driver is not None
    env = make_plan(replace(b200, driver=replace(b200.driver, version="595.58.03")), KB).env()
    assert env["GOLDEN_DRIVER_EXTRA_PACKAGES"] == ""
    result = ok(image.run("80-fabric-manager.sh", env))
    assert "nvidia-fabricmanager 595.58.03-1 matches the driver 595.58.03" in result.stderr
