"""The profile loader: extends, strict checks and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden.errors import ProfileError
from golden.profile import (
    Flavor,
    Runtime,
    load_all,
    load_profile,
    merged_data,
    profile_names,
)
from golden.profile_target import TargetKind, ssm_reserved
from tests.conftest import WriteProfile, minimal_profile


def error_of(name: str, root: Path) -> str:
    with pytest.raises(ProfileError) as info:
        load_profile(name, root=root)
    return info.value.line()


def test_shipped_profiles_load() -> None:
    loaded = {p.name: p for p in load_all()}
    assert set(loaded) == {"h100-r595", "h100-r580-lts", "b200-r595", "l40s-r580", "local-debian12-r535",
                           "local-debian12-r535-cuda", "local-debian13-driverless", "local-debian12-r535-secureboot"}
    h100 = loaded["h100-r595"]
    assert h100.driver is not None
    assert (h100.driver.branch, h100.driver.flavor, h100.cuda_toolkit) == ("595", Flavor.OPEN, "13.2")
    assert h100.container.runtime is Runtime.DOCKER and h100.container.toolkit == "1.19.0"
    assert h100.target.kind is TargetKind.AMAZON_EBS and h100.os.value == "ubuntu-24.04"
    assert loaded["b200-r595"].cuda_toolkit is None
    assert loaded["local-debian12-r535"].kernel == "6.1.0-50-cloud-amd64"


def test_profile_names_exclude_base_layers() -> None:
    assert all(not n.startswith("base") for n in profile_names())


def test_extends_deep_merges_and_child_wins(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("child", minimal_profile(target={"root_volume_gb": 200}))
    p = load_profile("child", root=profiles_dir)
    assert p.target.root_volume_gb == 200          # child wins
    assert p.target.region == "us-east-1"           # inherited from base/ubuntu-24.04-aws
    assert p.driver is not None and p.driver.flavor is Flavor.OPEN  # inherited from base/common
    assert merged_data("child", profiles_dir)["target"]["kind"] == "amazon-ebs"


def test_unknown_key_names_file_key_and_allowed(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("bad", minimal_profile(driver={"branch": "595", "flavour": "open"}))
    line = error_of("bad", profiles_dir)
    assert line.startswith("profiles/bad.yaml: driver.flavour: unknown key; allowed keys here: branch, flavor")


def test_unknown_top_level_key(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("bad", minimal_profile(gpus="h100-sxm"))
    assert error_of("bad", profiles_dir).startswith("profiles/bad.yaml: gpus: unknown key")


def test_wrong_type_is_named(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("bad", minimal_profile(driver={"branch": 595}))
    line = error_of("bad", profiles_dir)
    assert line == ("profiles/bad.yaml: driver.branch: "
                    "must be a quoted string (three digits, e.g. \"595\"), not a number 595 "
                    "(quote it: \"595\")")


def test_value_outside_allowed_set(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("bad", minimal_profile(container={"runtime": "podman", "toolkit": "1.19.0"}))
    assert error_of("bad", profiles_dir) == (
        "profiles/bad.yaml: container.runtime: one of docker | containerd | none; got 'podman'")


def test_unknown_gpu_lists_catalogue(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("bad", minimal_profile(gpu="h800"))
    line = error_of("bad", profiles_dir)
    assert line.startswith("profiles/bad.yaml: gpu: a GPU of the catalogue, one of ") and "b200" in line


@pytest.mark.parametrize(
    ("section", "key", "value", "pattern"),
    [
        ("driver", "branch", "59", "three digits"),
        ("driver", "version", "595.58", None),
        ("driver", "version", "595.58.03.1", "a driver version"),
        ("cuda", "toolkit", "13", "CUDA toolkit"),
        ("cuda", "toolkit", "13.2.1", "CUDA toolkit"),
        ("container", "toolkit", "1.19", "an exact version"),
    ],
)
def test_malformed_versions(write_profile: WriteProfile, profiles_dir: Path, section: str, key: str,
                            value: str, pattern: str | None) -> None:
    base = minimal_profile()
    merged = dict(base[section]) if isinstance(base[section], dict) else {}  # type: ignore[call-overload]
    merged[key] = value
    write_profile("v", minimal_profile(**{section: merged}))
    if pattern is None:  # a valid form: loads
        load_profile("v", root=profiles_dir)
        return
    line = error_of("v", profiles_dir)
    assert line.startswith(f"profiles/v.yaml: {section}.{key}: ") and pattern in line and repr(value) in line


def test_unknown_branch(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("bad", minimal_profile(driver={"branch": "999"}))
    assert "a known driver branch" in error_of("bad", profiles_dir)


def test_kernel_pattern(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("ok", minimal_profile(kernel="6.8.0-1021-aws"))
    assert load_profile("ok", root=profiles_dir).kernel == "6.8.0-1021-aws"
    write_profile("bad", minimal_profile(kernel="6.8.0; reboot"))
    assert error_of("bad", profiles_dir).startswith("profiles/bad.yaml: kernel: a kernel ABI")


def test_error_in_base_layer_names_the_base_file(profiles_dir: Path, write_profile: WriteProfile) -> None:
    write_profile("base/broken", {"extends": "base/common", "os": "ubuntu-24.04", "persistence": "yes",
                                  "target": {"kind": "local"}})
    write_profile("child", minimal_profile(extends="base/broken"))
    assert error_of("child", profiles_dir) == "profiles/base/broken.yaml: persistence: true or false; got 'yes'"


def test_extends_cycle_is_detected(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("base/a", {"extends": "base/b"})
    write_profile("base/b", {"extends": "base/a"})
    write_profile("loop", minimal_profile(extends="base/a"))
    line = error_of("loop", profiles_dir)
    assert "extends cycle: loop -> base/a -> base/b -> base/a" in line


def test_extends_missing_parent(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("orphan", minimal_profile(extends="base/nope"))
    assert error_of("orphan", profiles_dir) == "profiles/orphan.yaml: extends: no profile 'base/nope' under profiles/"


def test_invalid_yaml_names_the_line(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("broken", "description: x\ndriver: [unclosed\n")
    line = error_of("broken", profiles_dir)
    assert line.startswith("profiles/broken.yaml: line ") and "not valid YAML" in line


def test_missing_profile(profiles_dir: Path) -> None:
    assert error_of("nope", profiles_dir) == "profiles/nope.yaml: no such profile"


def test_hostile_profile_name_is_refused(profiles_dir: Path) -> None:
    assert error_of("../etc/passwd", profiles_dir).startswith("--profile: a profile name")


def test_missing_required_section(write_profile: WriteProfile, profiles_dir: Path) -> None:
    data = minimal_profile()
    del data["container"]
    write_profile("bad", data)
    # base/common sets container.cdi, so the section exists but its runtime does not.
    assert error_of("bad", profiles_dir) == (
        "profiles/bad.yaml: container.runtime: required, one of docker | containerd | none")
    write_profile("nobase", {"description": "x", "os": "debian-12", "gpu": "l4", "driver": {"branch": "580"},
                             "target": {"kind": "local"}})
    assert error_of("nobase", profiles_dir) == "profiles/nobase.yaml: container: required mapping is missing"


def test_repo_mirror_fingerprint_is_normalised(write_profile: WriteProfile, profiles_dir: Path) -> None:
    fpr = "eb69 3b30 35cd 5710 e231 e123 a4b4 6996 3bf8 63cc"
    write_profile("m", minimal_profile(repos={"cuda": {"url": "http://127.0.0.1:8080/cuda",
                                                       "key_fingerprint": fpr}}))
    repo = load_profile("m", root=profiles_dir).repos.cuda
    assert repo is not None and repo.key_fingerprint == "EB693B3035CD5710E231E123A4B469963BF863CC"


def test_aws_source_image_needs_exactly_one_kind(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("a", minimal_profile(target={"source_image": {"name_filter": "ubuntu/images/*"}}))
    assert "exactly one of ssm_parameter or name_filter" in error_of("a", profiles_dir)
    write_profile("b", minimal_profile(target={"source_image": {"ssm_parameter": None,
                                                                "name_filter": "ubuntu/images/*"}}))
    assert error_of("b", profiles_dir) == (
        "profiles/b.yaml: target.source_image.owner: required with name_filter: the AMI owner account")


def test_ssm_prefix_under_aws_is_refused(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("a", minimal_profile(target={"ssm_parameter_prefix": "/aws/golden"}))
    assert "reserved by AWS" in error_of("a", profiles_dir)


def test_local_target_rejects_aws_keys(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("l", minimal_profile(target={"kind": "local", "region": "us-east-1"}))
    # The base layer's amazon-ebs keys merge in; a local target must not carry them.
    assert "unknown key; allowed keys here: kind, boot_test, secure_boot" in error_of("l", profiles_dir)


def test_secure_boot_is_a_flag_of_every_target(write_profile: WriteProfile, profiles_dir: Path) -> None:
    assert load_profile(write_profile("off", minimal_profile()), root=profiles_dir).target.secure_boot is False
    write_profile("on", minimal_profile(target={"secure_boot": True}))
    on = load_profile("on", root=profiles_dir)
    assert on.target.secure_boot is True
    from golden.kb import load
    from golden.plan import make_plan

    assert make_plan(on, load()).expectations()["secure_boot"] is True
    write_profile("bad", minimal_profile(target={"secure_boot": "yes"}))
    assert error_of("bad", profiles_dir).startswith("profiles/bad.yaml: target.secure_boot: ")


def test_duplicate_key_is_an_error_not_a_silent_override(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("d", 'extends: h100-r595\ndriver:\n  branch: "595"\ndriver:\n  branch: "580"\n')
    assert error_of("d", profiles_dir) == "profiles/d.yaml: line 4: duplicate key 'driver' (first on line 2)"


def test_anchors_and_aliases_are_refused(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("a", "extends: h100-r595\nx: &x {branch: '595'}\ndriver: *x\n")
    assert "line 2: YAML anchors and aliases" in error_of("a", profiles_dir)


def test_extends_depth_is_limited(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("c0", "extends: h100-r595\n")
    for i in range(1, 40):
        write_profile(f"c{i}", f"extends: c{i - 1}\n")
    assert "extends chain deeper than 32 files (from c39)" in error_of("c39", profiles_dir)
    driver = load_profile("c25", root=profiles_dir).driver
    assert driver is not None and driver.branch == "595"


def test_a_link_out_of_profiles_is_refused(profiles_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.yaml").write_text((profiles_dir / "h100-r595.yaml").read_text())
    (profiles_dir / "x.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    assert "outside profiles/" in error_of("x", profiles_dir)
    (profiles_dir / "y.yaml").symlink_to("h100-r595.yaml")  # a link inside profiles/ is fine
    assert load_profile("y", root=profiles_dir).gpu == "h100-sxm"


@pytest.mark.parametrize(("url", "ok"), [("http://m.example:8080/ubuntu", True), ("http://m.example:0/u", False),
                                         ("http://m.example:65536/u", False)])
def test_mirror_port(write_profile: WriteProfile, profiles_dir: Path, url: str, ok: bool) -> None:
    write_profile("m", minimal_profile(repos={"os": {"url": url}}))
    if ok:
        assert load_profile("m", root=profiles_dir).repos.os is not None
    else:
        assert "repos.os.url: a port from 1 to 65535" in error_of("m", profiles_dir)


@pytest.mark.parametrize(("name", "reserved"), [("/golden", False), ("/aws", True), ("/AWS/x", True),
                                                ("/ssm", True), ("/Ssmx/y", True), ("/my-aws", False)])
def test_ssm_reserved_follows_aws_rules(name: str, reserved: bool) -> None:
    assert ssm_reserved(name) is reserved


def test_a_boolean_for_an_enum_says_quote_it(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("b", minimal_profile(container={"runtime": "docker", "toolkit": 1.19}))
    assert 'quote it: "1.19"' in error_of("b", profiles_dir)


def test_credentials_never_appear_in_the_message(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("s", minimal_profile(repos={"os": {"url": "https://u:hunter2@m.example/x"}}))
    line = error_of("s", profiles_dir)
    assert "hunter2" not in line and "u:***@m.example" in line
