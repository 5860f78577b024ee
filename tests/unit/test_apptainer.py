"""Apptainer beside the runtime: the profile key, the layer, the gate's refusal, and the fault boots' knob."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from golden import contract, gate
from golden.boottest.reboot import REBOOTS_ENV, reboots_from_env
from golden.errors import GoldenError, ProfileError
from golden.kb import load
from golden.layers import APPTAINER_USER, NVLIBLIST
from golden.plan import make_plan
from golden.profile import OsName, load_profile
from tests.conftest import WriteProfile, minimal_profile

KB = load()
SHIPPED = "local-debian13-driverless"


def error_of(name: str, root: Path) -> str:
    with pytest.raises(ProfileError) as info:
        load_profile(name, root=root)
    return info.value.line()


@pytest.mark.parametrize("value", ["1.4", "1.4.5-2", "v1.4.5", " 1.4.5", "latest"])
def test_a_malformed_release_is_one_line_naming_the_key(write_profile: WriteProfile, profiles_dir: Path,
                                                         value: str) -> None:
    write_profile("a", minimal_profile(container={"runtime": "docker", "toolkit": "1.19.0", "apptainer": value}))
    line = error_of("a", profiles_dir)
    assert line.startswith("profiles/a.yaml: container.apptainer: ") and "\n" not in line
    assert 'an Apptainer release such as "1.4.5"' in line


def test_an_unquoted_release_says_quote_it(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("a", minimal_profile(container={"runtime": "docker", "toolkit": "1.19.0", "apptainer": 1.4}))
    assert "container.apptainer: must be a quoted string" in error_of("a", profiles_dir)


@pytest.mark.parametrize("value", [None, "absent"])
def test_null_or_absent_is_no_apptainer(write_profile: WriteProfile, profiles_dir: Path, value: str | None) -> None:
    container: dict[str, object] = {"runtime": "docker", "toolkit": "1.19.0"}
    if value != "absent":
        container["apptainer"] = value
    write_profile("a", minimal_profile(container=container))
    profile = load_profile("a", root=profiles_dir)
    assert profile.container.apptainer is None
    assert make_plan(profile, KB).layer("apptainer") is None


def test_the_shipped_profile_plans_apptainer_pinned_and_held() -> None:
    plan = make_plan(load_profile(SHIPPED), KB)
    layer = plan.layer("apptainer")
    assert layer is not None
    (pkg,) = layer.packages
    assert (pkg.name, pkg.pattern, pkg.upstream, pkg.hold) == ("apptainer", "1.4.5-*", "1.4.5", True)
    env = plan.env()
    assert contract.check(env) == env
    assert env["GOLDEN_APPTAINER_SUITE"] == "unstable" and env["GOLDEN_APPTAINER_USER"] == APPTAINER_USER
    assert "apptainer=1.4.5-*" in env["GOLDEN_PINS"].split() and "apptainer" in env["GOLDEN_HOLDS"].split()
    # Driverless: --nv has nothing of the host's to bind, Debian's list stays.
    assert plan.expectations()["apptainer"] == {
        "version": "1.4.5", "package": "apptainer", "user": APPTAINER_USER, "suite": "unstable",
        "nvliblist": NVLIBLIST, "nv": False, "libraries": []}
    assert gate.check(load_profile(SHIPPED), KB) == []


def test_with_a_driver_the_nv_check_gets_the_drivers_libraries() -> None:
    base = load_profile("local-debian12-r535")
    profile = replace(base, os=OsName.DEBIAN_13, container=replace(base.container, apptainer="1.4.5"))
    expect = make_plan(profile, KB).expectations()["apptainer"]
    assert expect["nv"] is True and "libcuda.so.1" in expect["libraries"]


def test_debian_12_is_refused_for_its_libc_and_gets_no_layer() -> None:
    base = load_profile(SHIPPED)
    profile = replace(base, os=OsName.DEBIAN_12)
    assert make_plan(profile, KB).layer("apptainer") is None
    (f,) = [f for f in gate.check(profile, KB) if f.rule.startswith("apptainer-")]
    assert f.rule == "apptainer-install-unsupported" and f.severity == "error"
    assert "libc6 (>= 2.38)" in f.message and "2.36" in f.message


def test_an_unknown_release_is_refused() -> None:
    base = load_profile(SHIPPED)
    profile = replace(base, container=replace(base.container, apptainer="1.3.0"))
    assert make_plan(profile, KB).layer("apptainer") is None
    assert [f.rule for f in gate.check(profile, KB)] == ["apptainer-version-unknown"]


@pytest.mark.parametrize(("text", "counts"), [("", ()), ("1,0", (1, 0)), (" 2 , 1,0 ", (2, 1, 0)), ("0", (0,))])
def test_reboots_from_env(monkeypatch: pytest.MonkeyPatch, text: str, counts: tuple[int, ...]) -> None:
    monkeypatch.setenv(REBOOTS_ENV, text)
    assert reboots_from_env() == counts


@pytest.mark.parametrize("text", ["one", "1,,0", "-1", "9", "1;0"])
def test_reboots_from_env_refuses_anything_else(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(REBOOTS_ENV, text)
    with pytest.raises(GoldenError, match="NVMe disk counts 0 to 8"):
        reboots_from_env()
