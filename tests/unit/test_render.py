"""Rendering: deterministic, atomic, escaped, and accepted by Packer and cloud-init."""

from __future__ import annotations

import dataclasses
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hcl2.api import loads as _hcl2_loads

from golden import ROOT, packer, render, targets
from golden.errors import GoldenError, ProfileError
from golden.kb import load as load_kb
from golden.plan import BuildPlan, make_plan
from golden.profile import load_profile, profile_names
from golden.run import run
from tests.conftest import WriteProfile, minimal_profile, require_tool

STEP_SCRIPTS = ("10-apt-pins.sh", "20-repos.sh", "30-kernel.sh", "40-driver.sh", "45-reboot.sh",
                "50-cuda.sh", "90-release.sh", "99-cleanup.sh")


def load_hcl(text: str) -> dict[str, Any]:
    """python-hcl2's reading of an HCL file (it keeps ``$${`` and ``%%{`` as written)."""
    data: dict[str, Any] = _hcl2_loads(text)
    return data


def plan_of(name: str, root: Path | None = None) -> BuildPlan:
    profile = load_profile(name, root=root) if root is not None else load_profile(name)
    return make_plan(profile, load_kb())


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """scripts/ with step scripts (written out of order), a helper and a non-step file."""
    d = tmp_path / "scripts"
    (d / "lib").mkdir(parents=True)
    for name in reversed(STEP_SCRIPTS):
        (d / name).write_text(f"#!/usr/bin/env bash\nset -euo pipefail\necho {name}\n")
        (d / name).chmod(0o755)
    (d / "lib" / "common.sh").write_text("golden_log() { echo \"$*\"; }\n")
    (d / "golden-gpu-check.service").write_text("[Unit]\nDescription=golden GPU check\n")
    (d / "notes.txt").write_text("not a step\n")
    return d


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def parsed(out: Path) -> dict[str, Any]:
    """Every rendered *.pkr.hcl parsed by python-hcl2, merged by file name."""
    return {p.name: load_hcl(p.read_text(encoding="utf-8"))
            for p in sorted(out.glob("*.pkr.hcl"))}


def provisioners(out: Path) -> list[tuple[str, dict[str, Any]]]:
    build = load_hcl((out / "build.pkr.hcl").read_text(encoding="utf-8"))["build"][0]
    return [(kind, body) for p in build["provisioner"] for kind, body in p.items()]


def interpolations(text: str) -> Iterator[str]:
    """The ``${...}`` that HCL would evaluate in ``text`` (``$${`` is a literal)."""
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            i += 3
        elif text.startswith("${", i):
            end = text.index("}", i)
            yield text[i + 2:end]
            i = end + 1
        else:
            i += 1


def test_render_writes_the_contract_files(tmp_path: Path, scripts: Path) -> None:
    out = tmp_path / "build" / "h100-r595"
    files = render.render(plan_of("h100-r595"), out, scripts_dir=scripts)
    names = {str(f.relative_to(out)) for f in files}
    assert {"plugins.pkr.hcl", "variables.pkr.hcl", "sources.pkr.hcl", "build.pkr.hcl",
            "cloud-init/user-data", "cloud-init/meta-data", "cloud-init/first-boot.cfg",
            "expectations.json", "scripts/lib/common.sh", "scripts/40-driver.sh"} <= names
    assert all(f.is_file() and f.is_relative_to(out) for f in files)
    assert (out / "scripts/40-driver.sh").stat().st_mode & stat.S_IXUSR
    expectations = json.loads((out / "expectations.json").read_text())
    assert expectations == plan_of("h100-r595").expectations()
    assert (out / "expectations.json").read_text().endswith("}\n")
    # Nothing left beside the output: the temporary trees were renamed or removed.
    assert sorted(p.name for p in out.parent.iterdir()) == ["h100-r595"]


@pytest.mark.parametrize("name", profile_names())
def test_render_is_deterministic(name: str, tmp_path: Path, scripts: Path) -> None:
    a = tmp_path / "a" / name
    b = tmp_path / "b" / name
    render.render(plan_of(name), a, scripts_dir=scripts)
    render.render(plan_of(name), b, scripts_dir=scripts)
    first = tree(a)
    assert first == tree(b)
    for rel, content in first.items():
        if rel.endswith(".pkr.hcl"):
            text = content.decode()
            assert str(tmp_path) not in text and str(ROOT) not in text, rel
            assert "/home/" not in text and "/root/" not in text, rel


def test_render_copies_whatever_scripts_holds_by_default(tmp_path: Path) -> None:
    out = tmp_path / "x"
    render.render(plan_of("h100-r595"), out)
    source = ROOT / "scripts"
    want = sorted(str(p.relative_to(source)) for p in source.rglob("*")
                  if p.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                             for part in p.relative_to(source).parts))
    # ... and the advert golden/advertise.py renders beside them (90-release reads it).
    assert sorted(str(p.relative_to(out / "scripts")) for p in (out / "scripts").rglob("*")
                  if p.is_file()) == sorted([*want, "workloads.json"])


def test_provisioners_follow_the_scripts_in_numeric_order(tmp_path: Path, scripts: Path) -> None:
    (scripts / "7-bad-name.sh").write_text("echo never\n")          # not NN-name.sh
    (scripts / "100-too-long.sh").write_text("echo never\n")
    out = tmp_path / "out"
    render.render(plan_of("b200-r595"), out, scripts_dir=scripts)
    steps = provisioners(out)
    ran = [Path(body["script"]).name for kind, body in steps
           if kind == "shell" and "script" in body]
    assert ran == list(STEP_SCRIPTS)
    for kind, body in steps:
        if kind == "shell" and "script" in body:
            assert body["script"].startswith("${path.root}/scripts/")
            assert body["environment_vars"] == "${local.script_env}"
            assert body["execute_command"] == "${local.execute_command}"

    # Staging comes first: wait for cloud-init, then upload cloud-init/ and scripts/.
    stage = [
        ("file", {"source": "${path.root}/cloud-init/", "destination": "/tmp/golden/cloud-init/"}),
        ("file", {"source": "${path.root}/scripts/", "destination": "/tmp/golden/scripts/"}),
    ]
    assert steps[0][0] == "shell"
    assert "mkdir -p /tmp/golden/scripts /tmp/golden/cloud-init" in steps[0][1]["inline"]
    assert steps[1:3] == stage

    # The reboot script expects the disconnect; the step after it waits, then re-stages.
    i = next(i for i, (_, b) in enumerate(steps) if b.get("script", "").endswith("45-reboot.sh"))
    assert steps[i][1]["expect_disconnect"] is True
    assert steps[i + 1][1]["pause_before"] == "${var.reboot_pause}"
    assert steps[i + 1][1]["inline"] == steps[0][1]["inline"]
    assert steps[i + 2:i + 4] == stage
    assert steps[i + 4][1]["script"].endswith("50-cuda.sh")
    assert sum(1 for _, b in steps if "pause_before" in b) == 1

    # After the scripts: verification (one step, for the one source), the release download, the manifest.
    (verify_step,) = [b for k, b in steps if k == "shell-local"]
    assert "only" not in verify_step
    command = verify_step["inline"][0]
    assert "-m golden.verify" in command and "--phase bake" in command
    assert '"$GOLDEN_BUILD_DIR/expectations.json"' in command
    assert '"$GOLDEN_BUILD_DIR/verify-report.json"' in command
    host = "GOLDEN_VERIFY_HOST=ssh://${build.User}@${build.Host}:${build.Port}"
    assert host in verify_step["environment_vars"]
    assert "GOLDEN_SSH_PRIVATE_KEY=${build.SSHPrivateKey}" in verify_step["environment_vars"]
    assert "--ssh-key" not in command
    download = ("file", {"direction": "download", "source": "/etc/golden/release.json",
                         "destination": "${path.root}/release.json"})
    # Cleanup runs last, after verification and the download: the checks need
    # what it removes (apt's lists for `apt-cache policy`).
    cleanup = [i for i, (_, b) in enumerate(steps) if b.get("script", "").endswith("-cleanup.sh")]
    verify = [i for i, (k, _) in enumerate(steps) if k == "shell-local"]
    if cleanup:
        assert steps[cleanup[0] - 1] == download and max(verify) < cleanup[0] == len(steps) - 1
    else:
        assert steps[-1] == download
    build = load_hcl((out / "build.pkr.hcl").read_text())["build"][0]
    assert build["sources"] == ["source.amazon-ebs.image"]
    manifest = build["post-processor"][0]["manifest"]
    assert manifest["output"] == "${path.root}/manifest.json"
    assert manifest["custom_data"] == {"build_id": "${var.build_id}",
                                       "git_commit": "${var.git_commit}", "profile": "b200-r595"}


def test_no_scripts_means_no_steps(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    render.render(plan_of("h100-r595"), out, scripts_dir=empty)
    kinds = [k for k, _ in provisioners(out)]
    assert kinds == ["shell", "file", "shell-local", "file"]   # cloud-init/ staged
    assert [p.name for p in (out / "scripts").iterdir()] == ["workloads.json"]   # only the advert


def test_script_environment_is_the_plan_env_plus_build_id(tmp_path: Path, scripts: Path) -> None:
    plan = plan_of("local-debian12-r535")
    out = tmp_path / "out"
    render.render(plan, out, scripts_dir=scripts)
    env = load_hcl((out / "build.pkr.hcl").read_text())["locals"][0]["script_env"]
    want = [f"{k}={v}" for k, v in sorted(plan.env().items())]
    want += ["GOLDEN_BUILD_ID=${var.build_id}", "GOLDEN_STAGE=/tmp/golden"]
    assert env == want
    command = load_hcl((out / "build.pkr.hcl").read_text())["locals"][0]["execute_command"]
    assert "{{ .Vars }}" in command and "sudo env" in command and '"$(id -u)" -eq 0' in command


def test_amazon_source(tmp_path: Path, scripts: Path) -> None:
    plan = plan_of("h100-r580-lts")           # ubuntu-22.04, ssm parameter (unresolved)
    out = tmp_path / "out"
    render.render(plan, out, scripts_dir=scripts)
    src = load_hcl((out / "sources.pkr.hcl").read_text())["source"]
    ebs = next(s["amazon-ebs"]["image"] for s in src if "amazon-ebs" in s)
    t = plan.profile.target
    assert (ebs["region"], ebs["instance_type"], ebs["ssh_username"]) == (
        t.region, t.build_instance_type, "ubuntu")
    assert ebs["source_ami"] == "${var.source_ami}"
    ami_filter = ebs["dynamic"][0]["source_ami_filter"]
    assert ami_filter["for_each"] == '${var.source_ami == "" ? [1] : []}'
    content = ami_filter["content"][0]
    assert content["owners"] == ["099720109477"]
    assert content["filters"]["name"] == "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
    assert content["most_recent"] is True
    assert ebs["ami_name"] == f"golden-{plan.profile.name}-${{var.build_id}}"
    assert ebs["ami_regions"] == list(t.ami_regions)
    assert ebs["encrypt_boot"] is True
    disk = ebs["launch_block_device_mappings"][0]
    assert disk == {"device_name": "/dev/sda1", "volume_size": t.root_volume_gb,
                    "volume_type": "gp3", "iops": 3000, "throughput": 125, "encrypted": True,
                    "delete_on_termination": True}
    assert ebs["metadata_options"] == [{"http_endpoint": "enabled", "http_tokens": "required",
                                        "http_put_response_hop_limit": 1}]
    assert ebs["imds_support"] == "v2.0"
    assert ebs["temporary_security_group_source_cidrs"] == ["${var.builder_cidr}"]
    assert ebs["user_data_file"] == "${path.root}/cloud-init/user-data"
    tags = ebs["tags"]
    assert tags == ebs["snapshot_tags"]
    assert tags["golden:profile"] == plan.profile.name
    assert tags["golden:driver-branch"] == "580" and tags["golden:cuda"] == "13.0"
    assert tags["golden:container-toolkit"] == "1.19.0"
    assert tags["golden:build-id"] == "${var.build_id}"
    assert tags["golden:git-commit"] == "${var.git_commit}"
    assert ebs["run_tags"]["golden:build-id"] == "${var.build_id}"
    assert [list(s) for s in src] == [["amazon-ebs"]]          # only the chosen target's source


def test_local_source_alone_and_its_key_file(tmp_path: Path, scripts: Path) -> None:
    out = tmp_path / "out"
    render.render(plan_of("local-debian12-r535"), out, scripts_dir=scripts)
    src = load_hcl((out / "sources.pkr.hcl").read_text())["source"]
    assert [list(s) for s in src] == [["null"]]
    local = src[0]["null"]["local"]
    assert local["communicator"] == "ssh"
    assert local["ssh_private_key_file"] == "${var.ssh_private_key_file}"
    assert local["ssh_host"] == "${var.ssh_host}" and local["ssh_port"] == "${var.ssh_port}"
    assert load_hcl((out / "build.pkr.hcl").read_text())["build"][0]["sources"] == ["source.null.local"]
    (verify_step,) = [b for k, b in provisioners(out) if k == "shell-local"]
    assert verify_step["inline"][0].endswith('--ssh-key "$GOLDEN_SSH_KEY_FILE"')
    assert "GOLDEN_SSH_KEY_FILE=${var.ssh_private_key_file}" in verify_step["environment_vars"]
    assert not any("SSHPrivateKey" in e for e in verify_step["environment_vars"])


def test_target_given_overrides_the_profiles(tmp_path: Path, scripts: Path) -> None:
    """`invoke build --target local` on an EC2 profile renders the null source, not the EC2 one."""
    out = tmp_path / "out"
    render.render(plan_of("h100-r595"), out, scripts_dir=scripts, target=targets.get("local"))
    assert [list(s) for s in load_hcl((out / "sources.pkr.hcl").read_text())["source"]] == [["null"]]


def test_debian_and_explicit_name_filter(write_profile: WriteProfile, profiles_dir: Path,
                                         tmp_path: Path, scripts: Path) -> None:
    write_profile("deb", minimal_profile(
        extends="base/common", os="debian-12", gpu="l40s", driver={"branch": "580"},
        cuda={"toolkit": None}, container={"runtime": "docker", "toolkit": None},
        target={"kind": "amazon-ebs"}))
    write_profile("own", minimal_profile(target={"source_image": {
        "ssm_parameter": None, "name_filter": "my-base-2026*", "owner": "123456789012"}}))
    render.render(plan_of("deb", profiles_dir), tmp_path / "deb", scripts_dir=scripts)
    render.render(plan_of("own", profiles_dir), tmp_path / "own", scripts_dir=scripts)

    def ebs(d: Path) -> dict[str, Any]:
        src = load_hcl((d / "sources.pkr.hcl").read_text())["source"]
        result: dict[str, Any] = next(s["amazon-ebs"]["image"] for s in src if "amazon-ebs" in s)
        return result

    deb = ebs(tmp_path / "deb")
    assert deb["ssh_username"] == "admin"
    assert deb["launch_block_device_mappings"][0]["device_name"] == "/dev/xvda"
    content = deb["dynamic"][0]["source_ami_filter"]["content"][0]
    assert content["owners"] == ["136693071363"]
    assert content["filters"]["name"] == "debian-12-amd64-*"
    own = ebs(tmp_path / "own")["dynamic"][0]["source_ami_filter"]["content"][0]
    assert own["owners"] == ["123456789012"] and own["filters"]["name"] == "my-base-2026*"


def test_plugins_file_pins_exact_versions(tmp_path: Path, scripts: Path) -> None:
    out = tmp_path / "out"
    render.render(plan_of("h100-r595"), out, scripts_dir=scripts)
    data = load_hcl((out / "plugins.pkr.hcl").read_text())
    assert set(data) == {"packer"}
    required = data["packer"][0]["required_plugins"][0]
    want = packer.settings()["plugins"]
    assert set(required) == set(want)
    for name, spec in want.items():
        assert required[name] == {"version": f"= {spec['version']}", "source": spec["address"]}
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", spec["version"])


def test_variables_have_defaults(tmp_path: Path, scripts: Path) -> None:
    out = tmp_path / "out"
    render.render(plan_of("h100-r595"), out, scripts_dir=scripts)
    variables = {k: v for item in load_hcl((out / "variables.pkr.hcl").read_text())["variable"]
                 for k, v in item.items()}
    assert {"build_id", "git_commit", "source_ami", "builder_cidr", "golden_python", "reboot_pause",
            "ssh_host", "ssh_port", "ssh_username", "ssh_private_key_file"} <= set(variables)
    assert all("default" in v for v in variables.values())
    assert variables["reboot_pause"]["default"] == "30s"
    assert variables["source_ami"]["default"] == ""


def test_failed_render_keeps_the_previous_output(tmp_path: Path, scripts: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    render.render(plan_of("h100-r595"), out, scripts_dir=scripts)
    before = tree(out)
    broken = tmp_path / "templates"
    (broken / "packer").mkdir(parents=True)
    (broken / "cloud-init").mkdir()
    for template, _ in render.OUTPUTS:
        (broken / template).write_text("{{ no_such_value }}\n")
    monkeypatch.setattr(render, "TEMPLATES", broken)
    with pytest.raises(GoldenError, match="no_such_value"):
        render.render(plan_of("b200-r595"), out, scripts_dir=scripts)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scripts", "templates"]


# --------------------------------------------------------------------------
# Escaping.

HOSTILE = ['"', '${env("HOME")}', "$(id)", ";", "\n", "ünïcødé ✓", "%{ if true }x%{ endif }",
           "a\\b", "$${x}", "`id`", "'quote'", "\t", "x # y", "x: y"]


def test_hcl_escape_round_trips_through_packer(tmp_path: Path) -> None:
    """Packer itself is the oracle: `packer console` prints what HCL makes of each string."""
    require_tool("packer")
    values = [*HOSTILE, "plain", "\u2028", "\x01", "$", "%", "end$", "$${${y}}"]
    lines = [f'variable "v{i}" {{\n  type    = string\n  default = {render.hcl_string(v)}\n}}\n'
             for i, v in enumerate(values)]
    lines += ['source "null" "x" {\n  communicator = "none"\n}\n',
              'build {\n  sources = ["source.null.x"]\n}\n']
    (tmp_path / "v.pkr.hcl").write_text("".join(lines))
    expr = "jsonencode([" + ", ".join(f"var.v{i}" for i in range(len(values))) + "])"
    proc = run(["packer", "console", "."], cwd=tmp_path, input=expr + "\n")
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == values


def test_hcl_escape_refuses_go_templates() -> None:
    with pytest.raises(GoldenError, match="template"):
        render.hcl_escape("{{ .Vars }}")


def test_yaml_scalar_round_trips() -> None:
    for value in [*HOSTILE, "no", "yes", "null", "~", "1e3", "- x", "&a", "*a", "!tag", "#c"]:
        text = render.yaml_scalar(value)
        assert "\n" not in text
        assert yaml.safe_load(f"k: {text}\n") == {"k": value}


#: Every string field of a profile, with a value the loader accepts.
VALID: dict[tuple[str, ...], str] = {
    ("description",): "ok", ("kernel",): "6.8.0-1021-aws", ("gpu",): "h100-sxm",
    ("os",): "ubuntu-24.04", ("arch",): "amd64", ("driver", "branch"): "595",
    ("driver", "version"): "595.58.03", ("driver", "flavor"): "open",
    ("driver", "source"): "nvidia", ("cuda", "toolkit"): "13.2",
    ("container", "runtime"): "docker", ("container", "toolkit"): "1.19.0",
    ("repos", "os", "url"): "http://mirror.example/u",
    ("repos", "os", "key_url"): "http://mirror.example/k",
    ("repos", "os", "key_fingerprint"): "A" * 40, ("repos", "cuda", "url"): "http://mirror.example/c",
    ("repos", "cuda", "key_fingerprint"): "B" * 40,
    ("repos", "container_toolkit", "url"): "http://mirror.example/t",
    ("repos", "container_toolkit", "key_url"): "http://mirror.example/tk",
    ("target", "region"): "us-west-2", ("target", "build_instance_type"): "c6i.xlarge",
    ("target", "ssm_parameter_prefix"): "/golden",
    ("target", "source_image", "name_filter"): "base-*",
    ("target", "source_image", "owner"): "123456789012",
    ("target", "ami_regions"): "us-west-2", ("target", "share_with_accounts"): "123456789012",
}
#: Fields that never reach the Packer templates (the publish step uses them).
NOT_IN_HCL = {("repos", "os", "key_url"), ("repos", "os", "key_fingerprint"),
              ("target", "ssm_parameter_prefix"), ("target", "share_with_accounts")}
HOSTILE_VALUES = ['"', '${env("HOME")}', "$(id)", ";", "\n", "ünïcødé", "ok; rm -rf (x)",
                  "Ünïcødé (test); 'q'", "%{ if true }x%{ endif }", "{{ .Vars }}", "`id`"]


def _with_value(path: tuple[str, ...], value: str) -> dict[str, Any]:
    data: dict[str, Any] = minimal_profile(repos={
        "os": {"url": "http://mirror.example/ubuntu"},
        "cuda": {"url": "http://mirror.example/cuda"},
        "container_toolkit": {"url": "http://mirror.example/ctk"}})
    if path[:2] == ("target", "source_image"):
        data["target"] = {"source_image": {"ssm_parameter": None, "name_filter": "base-*",
                                           "owner": "123456789012"}}
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = [value] if path[-1] in ("ami_regions", "share_with_accounts") else value
    return data


def _leaves(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize("path", list(VALID), ids=".".join)
def test_hostile_values_are_refused_or_inert(path: tuple[str, ...], write_profile: WriteProfile,
                                            profiles_dir: Path, tmp_path: Path,
                                            scripts: Path) -> None:
    rendered = 0
    for i, value in enumerate(HOSTILE_VALUES):
        name = f"hostile-{i}"
        write_profile(name, _with_value(path, value))
        try:
            plan = plan_of(name, profiles_dir)
        except ProfileError as exc:
            line = exc.line()
            assert line.startswith(f"profiles/{name}.yaml: ") or line.startswith("profiles/"), line
            assert exc.key is not None and exc.key.startswith(".".join(path)), line
            continue
        out = tmp_path / "out" / name
        render.render(plan, out, scripts_dir=scripts)
        rendered += 1
        texts = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.pkr.hcl")}
        for fname, text in texts.items():
            for expr in interpolations(text):
                assert re.match(r"(var|path|build|local)\.|var\.source_ami ==", expr), (fname, expr)
        # Whatever reached HCL reads back exactly (python-hcl2 keeps $${ and %%{ escaped).
        leaves = [s.replace("$${", "${").replace("%%{", "%{")
                  for data in parsed(out).values() for s in _leaves(data)]
        if path not in NOT_IN_HCL:
            assert any(value in leaf for leaf in leaves), (path, value)
        for cfg in ("user-data", "first-boot.cfg", "meta-data"):
            assert isinstance(yaml.safe_load((out / "cloud-init" / cfg).read_text()), dict)
    if path == ("description",):
        assert rendered >= 3      # ';', unicode and mixed text are valid descriptions


def test_loader_refuses_a_trailing_newline(write_profile: WriteProfile, profiles_dir: Path) -> None:
    accepted = []
    for i, (path, valid) in enumerate(VALID.items()):
        if path == ("description",):
            continue
        write_profile(f"nl-{i}", _with_value(path, valid + "\n"))
        try:
            load_profile(f"nl-{i}", root=profiles_dir)
        except ProfileError:
            continue
        accepted.append(".".join(path))
    assert accepted == []


def test_render_is_inert_whatever_the_profile_holds(tmp_path: Path, scripts: Path) -> None:
    """Values that got past the loader anyway (see above) still cannot reach Packer raw."""
    plan = plan_of("h100-r595")
    p = plan.profile
    nasty = 'x\n"${env("HOME")}" %{ if } $(id); `id` \\ ünï'
    target = dataclasses.replace(p.target, region="us-west-2\n" + nasty,
                                 ami_regions=("eu-west-1\n" + nasty,))
    assert p.driver is not None
    profile = dataclasses.replace(p, name="h100\n" + nasty, description=nasty, target=target,
                                  driver=dataclasses.replace(p.driver, branch="595\n" + nasty))
    out = tmp_path / "out"
    # The driver layer carries its own GOLDEN_DRIVER_* (made from the profile by make_plan).
    layers = tuple(dataclasses.replace(x, env={**x.env, "GOLDEN_DRIVER_BRANCH": "595\n" + nasty})
                   if x.name == "driver" else x for x in plan.layers)
    hostile = dataclasses.replace(plan, profile=profile, layers=layers)
    # The scripts' contract (golden/contract.py) refuses such a plan before anything is rendered...
    with pytest.raises(GoldenError, match="GOLDEN_PROFILE has an invalid value"):
        render.render(hostile, out, scripts_dir=scripts)
    # ...and were that check bypassed, the templates would still keep every value inert.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("golden.contract.check", lambda env: env)
        render.render(hostile, out, scripts_dir=scripts)
    for f in out.glob("*.pkr.hcl"):
        for expr in interpolations(f.read_text(encoding="utf-8")):
            assert re.match(r"(var|path|build|local)\.|var\.source_ami ==", expr), (f.name, expr)
    src = load_hcl((out / "sources.pkr.hcl").read_text(encoding="utf-8"))["source"]
    ebs = next(s["amazon-ebs"]["image"] for s in src if "amazon-ebs" in s)

    def back(s: str) -> str:   # python-hcl2 keeps the $${ and %%{ escapes as written
        return s.replace("$${", "${").replace("%%{", "%{")

    assert back(ebs["ami_description"]) == nasty
    assert back(ebs["region"]) == "us-west-2\n" + nasty
    assert [back(r) for r in ebs["ami_regions"]] == ["eu-west-1\n" + nasty]
    assert back(ebs["tags"]["golden:driver-branch"]) == "595\n" + nasty
    assert back(ebs["ami_name"]) == "golden-h100\n" + nasty + "-${var.build_id}"
    env = load_hcl((out / "build.pkr.hcl").read_text(encoding="utf-8"))["locals"][0]["script_env"]
    assert "GOLDEN_DRIVER_BRANCH=595\n" + nasty in [back(e) for e in env]
    meta = yaml.safe_load((out / "cloud-init/meta-data").read_text(encoding="utf-8"))
    assert meta["instance-id"] == "golden-h100\n" + nasty
    user_data = yaml.safe_load((out / "cloud-init/user-data").read_text(encoding="utf-8"))
    assert set(user_data) == {"bootcmd", "package_update", "package_upgrade",
                              "package_reboot_if_required"}


def test_hostile_description_passes_packer_validate(write_profile: WriteProfile, profiles_dir: Path,
                                                    tmp_path: Path, scripts: Path) -> None:
    require_tool("packer")
    value = "Ünïcødé (test); 'q' & more"
    write_profile("odd", minimal_profile(description=value))
    out = tmp_path / "odd"
    render.render(plan_of("odd", profiles_dir), out, scripts_dir=scripts)
    packer.validate(out)
    packer.fmt_check(out)
    sources = load_hcl((out / "sources.pkr.hcl").read_text())["source"]
    ebs = next(s["amazon-ebs"]["image"] for s in sources if "amazon-ebs" in s)
    assert ebs["ami_description"] == value


# --------------------------------------------------------------------------
# cloud-init.

def test_cloud_init_content(tmp_path: Path, scripts: Path) -> None:
    out = tmp_path / "out"
    render.render(plan_of("h100-r595"), out, scripts_dir=scripts)
    user_data = (out / "cloud-init/user-data").read_text()
    assert user_data.startswith("#cloud-config\n")
    data = yaml.safe_load(user_data)
    assert data["package_update"] is False and data["package_upgrade"] is False
    command = data["bootcmd"][0]
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "unattended-upgrades.service"):
        assert unit in command
    assert "mask --runtime --now" in command
    first = yaml.safe_load((out / "cloud-init/first-boot.cfg").read_text())
    assert first == {"package_update": False, "package_upgrade": False,
                     "package_reboot_if_required": False, "locale": "C.UTF-8"}
    meta = yaml.safe_load((out / "cloud-init/meta-data").read_text())
    assert meta == {"instance-id": "golden-h100-r595", "local-hostname": "golden-h100-r595"}


def test_first_boot_keeps_a_profile_mirror(write_profile: WriteProfile, profiles_dir: Path,
                                           tmp_path: Path, scripts: Path) -> None:
    write_profile("mirror", minimal_profile(repos={"os": {"url": "http://mirror.example/ubuntu"}}))
    out = tmp_path / "out"
    render.render(plan_of("mirror", profiles_dir), out, scripts_dir=scripts)
    first = yaml.safe_load((out / "cloud-init/first-boot.cfg").read_text())
    assert first["apt"] == {"preserve_sources_list": True}


@pytest.mark.parametrize("name", profile_names())
def test_cloud_init_schema(name: str, tmp_path: Path, scripts: Path) -> None:
    require_tool("cloud-init")
    out = tmp_path / name
    render.render(plan_of(name), out, scripts_dir=scripts)
    for cfg in ("user-data", "first-boot.cfg"):
        proc = run(["cloud-init", "schema", "--config-file", str(out / "cloud-init" / cfg)],
                   check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Valid cloud-config" in proc.stdout


def test_cloud_init_schema_check_catches_errors(tmp_path: Path) -> None:
    """The schema check above would notice a broken file (it is not vacuous)."""
    require_tool("cloud-init")
    bad = tmp_path / "bad.cfg"
    bad.write_text("#cloud-config\nbootcmd: 5\n")
    proc = run(["cloud-init", "schema", "--config-file", str(bad)], check=False)
    assert proc.returncode != 0


def test_tags_name_the_resolved_driver(tmp_path: Path, scripts: Path) -> None:
    profile = load_profile("h100-r595")
    plan = make_plan(profile, load_kb(), resolved={"nvidia-open": "595.58.03-1ubuntu1",
                                                   "nvidia-driver-pinning-595": "595.58.03-1"})
    out = tmp_path / "out"
    render.render(plan, out, scripts_dir=scripts)
    src = load_hcl((out / "sources.pkr.hcl").read_text())["source"]
    ebs = next(s["amazon-ebs"]["image"] for s in src if "amazon-ebs" in s)
    assert ebs["tags"]["golden:driver-version"] == "595.58.03-1ubuntu1"


def test_rerender_keeps_build_results_and_drops_stale_rendered_files(tmp_path: Path,
                                                                     scripts: Path) -> None:
    out = tmp_path / "out"
    render.render(plan_of("h100-r595"), out, scripts_dir=scripts)
    (out / "artifacts").mkdir()
    (out / "artifacts" / "rootfs.tar.zst").write_bytes(b"image")
    (out / "manifest.json").write_text("{}\n")
    (out / packer.LEGACY_FILE).write_text("left by a killed run\n")
    (scripts / "20-repos.sh").unlink()
    render.render(plan_of("b200-r595"), out, scripts_dir=scripts)
    assert (out / "artifacts" / "rootfs.tar.zst").read_bytes() == b"image"
    assert (out / "manifest.json").read_text() == "{}\n"
    assert not (out / packer.LEGACY_FILE).exists()
    assert not (out / "scripts" / "20-repos.sh").exists()
    assert '"b200-r595"' in (out / "build.pkr.hcl").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scripts"]
