"""The Packer wrapper, against the real Packer: validate, fmt, streamed builds, the manifest."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from golden import packer, render
from golden.aws.manifest import amis, parse_artifact_id
from golden.errors import GoldenError, Secret, StepFailed
from golden.kb import load as load_kb
from golden.packer import cli
from golden.plan import make_plan
from golden.profile import load_profile, profile_names
from golden.run import run
from tests.conftest import require_tool

NULL_SOURCE = 'source "null" "t" {\n  communicator = "none"\n}\n'


def template(tmp_path: Path, provisioners: str, *, post: str = "") -> Path:
    """A build directory with a null-source template (communicator none) and the given steps."""
    d = tmp_path / "build"
    d.mkdir(exist_ok=True)
    (d / "main.pkr.hcl").write_text(
        NULL_SOURCE + 'build {\n  sources = ["source.null.t"]\n' + provisioners + post + "}\n")
    return d


def shell_local(*commands: str) -> str:
    return ('  provisioner "shell-local" {\n    inline = ['
            + ", ".join(json.dumps(c) for c in commands) + "]\n  }\n")


MANIFEST = ('  post-processor "manifest" {\n'
            '    output     = "${path.root}/manifest.json"\n'
            '    strip_path = true\n'
            '    custom_data = {\n      build_id = var.build_id\n    }\n  }\n')
BUILD_ID_VAR = 'variable "build_id" {\n  type    = string\n  default = "none"\n}\n'


def collect() -> tuple[list[packer.Event], Callable[[packer.Event], None]]:
    events: list[packer.Event] = []
    return events, events.append


def test_version_is_the_installed_packer() -> None:
    require_tool("packer")
    ver = packer.version()
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", ver)
    assert f"v{ver}" in run([packer.binary(), "version"]).stdout   # the Packer golden chose
    assert packer.has_plugins("1.7.0") and packer.has_plugins("1.11.2")
    assert not packer.has_plugins("1.6.6")


@pytest.mark.parametrize("name", profile_names())
def test_shipped_profiles_validate_and_are_formatted(name: str, tmp_path: Path) -> None:
    require_tool("packer")
    out = tmp_path / name
    render.render(make_plan(load_profile(name), load_kb()), out)   # the checkout's scripts/
    packer.validate(out)
    packer.fmt_check(out)
    assert not (out / packer.LEGACY_FILE).exists()


def test_validate_names_the_original_file_and_line(tmp_path: Path) -> None:
    require_tool("packer")
    out = tmp_path / "out"
    render.render(make_plan(load_profile("h100-r595"), load_kb()), out)
    text = (out / "sources.pkr.hcl").read_text()
    lines = text.splitlines()
    bad = next(i for i, line in enumerate(lines) if "instance_type" in line)
    lines[bad] = '  instance_typo = "c6i.2xlarge"'
    (out / "sources.pkr.hcl").write_text("\n".join(lines) + "\n")
    with pytest.raises(StepFailed) as info:
        packer.validate(out)
    message = info.value.line()
    assert "instance_typo" in message
    if not packer.has_plugins():
        assert f"sources.pkr.hcl line {bad + 1}" in message
        assert packer.LEGACY_FILE not in message
    assert not (out / packer.LEGACY_FILE).exists()


def test_fmt_check_finds_unformatted_files(tmp_path: Path) -> None:
    require_tool("packer")
    out = tmp_path / "out"
    render.render(make_plan(load_profile("h100-r595"), load_kb()), out)
    text = (out / "variables.pkr.hcl").read_text()
    text = text.replace("  type        = string", "  type = string", 1)
    (out / "variables.pkr.hcl").write_text(text)
    with pytest.raises(StepFailed, match=r"variables\.pkr\.hcl"):
        packer.fmt_check(out)


def test_legacy_join_blanks_compat_blocks_and_keeps_lines(tmp_path: Path) -> None:
    a = tmp_path / "a.pkr.hcl"
    b = tmp_path / "b.pkr.hcl"
    a.write_text("x = 1\n")
    b.write_text(f"y = 2\n  {cli.COMPAT_BEGIN}\nz = 3\n  {cli.COMPAT_END}\nw = 4\n")
    joined = cli.join_legacy([a, b])
    assert joined.text.splitlines() == ["x = 1", "y = 2", "", "", "", "w = 4"]
    assert joined.relabel(f"on {packer.LEGACY_FILE} line 6:") == "on b.pkr.hcl line 5:"
    assert joined.relabel(f"on {packer.LEGACY_FILE} line 1:") == "on a.pkr.hcl line 1:"
    b.write_text(f"{cli.COMPAT_BEGIN}\nz = 3\n")
    with pytest.raises(GoldenError, match="without"):
        cli.join_legacy([b])


def test_build_streams_steps_and_names_the_failing_one(tmp_path: Path) -> None:
    require_tool("packer")
    d = template(tmp_path, shell_local("echo first, step")
                 + shell_local("echo second")
                 + shell_local("echo 'about to fail' >&2", "exit 7")
                 + shell_local("echo never"))
    events, on_event = collect()
    log = tmp_path / "logs" / "packer.log"
    with pytest.raises(StepFailed) as info:
        packer.build(d, only="null.t", variables={}, log_path=log, on_event=on_event)
    message = info.value.line()
    assert "in step 3 (local: inline shell)" in message
    assert "about to fail" in message and "exit status: 7" in message
    starts = [e for e in events if e.kind == "step-start"]
    ends = [e for e in events if e.kind == "step-end"]
    assert [e.step for e in starts] == [1, 2, 3]
    assert [(e.step, e.ok) for e in ends] == [(1, True), (2, True), (3, False)]
    assert all(e.seconds is not None and e.seconds >= 0 for e in ends)
    said = [e for e in events if e.kind == "message" and e.step == 1]
    assert any("first, step" in e.text for e in said)           # commas unescaped
    assert not any("never" in e.text for e in events)
    assert str(ends[0]).startswith("[1] local: inline shell: ok (")
    raw = log.read_text()
    assert raw.startswith("# packer build -machine-readable -only=null.t")
    assert ",ui,error," in raw and "%!(PACKER_COMMA)" in raw       # Packer's lines, unaltered
    assert not (d / packer.LEGACY_FILE).exists()


def test_build_passes_variables_and_returns_the_run(tmp_path: Path) -> None:
    require_tool("packer")
    d = template(tmp_path, shell_local("echo id=${var.build_id}"), post=MANIFEST)
    (d / "variables.pkr.hcl").write_text(BUILD_ID_VAR)
    events, on_event = collect()
    result = packer.build(d, only="null.t", variables={"build_id": "b-42"},
                          log_path=tmp_path / "p.log", on_event=on_event)
    assert any(e.kind == "message" and "id=b-42" in e.text for e in events)
    assert [name for name, _ in result.steps] == ["local: inline shell", "post-processor manifest"]
    assert len(result.builds) == 1 and result.run_uuid == result.builds[0].packer_run_uuid
    assert result.builds[0].custom_data == {"build_id": "b-42"}
    assert result.builds[0].artifact_id == "Null"
    assert any(e.kind == "artifact" and e.text == "Null" for e in events)


def test_read_manifest_keeps_only_the_last_run(tmp_path: Path) -> None:
    """Two real runs into one manifest.json; Packer's own last_run_uuid picks the second."""
    require_tool("packer")
    d = template(tmp_path, shell_local("true"), post=MANIFEST)
    (d / "variables.pkr.hcl").write_text(BUILD_ID_VAR)
    runs = []
    for build_id in ("first", "second"):
        runs.append(packer.build(d, only="null.t", variables={"build_id": build_id},
                                 log_path=tmp_path / f"{build_id}.log", on_event=lambda e: None))
    data = json.loads((d / "manifest.json").read_text())
    assert len(data["builds"]) == 2 and runs[0].run_uuid != runs[1].run_uuid
    builds = packer.read_manifest(d / "manifest.json")
    assert [b.packer_run_uuid for b in builds] == [data["last_run_uuid"]] == [runs[1].run_uuid]
    (b,) = builds
    assert (b.name, b.builder_type, b.custom_data) == ("t", "null", {"build_id": "second"})
    assert b.artifact_id == data["builds"][1]["artifact_id"]
    assert parse_artifact_id(b.artifact_id) == {}                 # a null build has no AMI


def test_read_manifest_and_the_amis_of_its_last_run(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"builds": [
        {"name": "image", "builder_type": "amazon-ebs", "build_time": 1, "files": None,
         "artifact_id": "us-east-1:ami-0aa,us-west-2:ami-0bb", "packer_run_uuid": "old",
         "custom_data": {}},
        {"name": "image", "builder_type": "amazon-ebs", "build_time": 2, "files": None,
         "artifact_id": "us-east-1:ami-1aa,us-west-2:ami-1bb", "packer_run_uuid": "new",
         "custom_data": {"profile": "h100-r595"}}], "last_run_uuid": "new"}))
    (b,) = packer.read_manifest(path)
    assert b.artifact_id == "us-east-1:ami-1aa,us-west-2:ami-1bb"
    assert parse_artifact_id(b.artifact_id) == {"us-east-1": "ami-1aa", "us-west-2": "ami-1bb"}
    assert amis(path) == {"us-east-1": "ami-1aa", "us-west-2": "ami-1bb"}
    assert b.custom_data == {"profile": "h100-r595"} and b.build_time == 2
    assert parse_artifact_id("Null") == {}
    assert parse_artifact_id("us-east-1:ami-1,oops") == {}
    path.write_text("{not json")
    with pytest.raises(GoldenError, match="not valid JSON"):
        packer.read_manifest(path)
    with pytest.raises(GoldenError, match="no manifest"):
        packer.read_manifest(tmp_path / "missing.json")


def test_interrupt_stops_packer_and_waits_for_it(tmp_path: Path) -> None:
    """A Ctrl-C (here raised by the event callback) reaches Packer, which cancels and exits."""
    require_tool("packer")
    d = template(tmp_path, shell_local("echo started", "sleep 120", "echo finished"))

    def on_event(e: packer.Event) -> None:
        if e.kind == "message" and "started" in e.text:
            raise KeyboardInterrupt

    log = tmp_path / "p.log"
    with pytest.raises(KeyboardInterrupt):
        packer.build(d, only="null.t", variables={}, log_path=log, on_event=on_event)
    # No timing: the provisioner's last line is the proof that its sleep was cut short.
    text = log.read_text()
    assert "Cancelling build after receiving interrupt" in text
    assert "finished" not in text.replace("Build 'null.t' finished", "")
    assert not (d / packer.LEGACY_FILE).exists()


def test_amazon_bakes_need_the_plugin(tmp_path: Path) -> None:
    require_tool("packer")
    if packer.has_plugins():
        pytest.skip("this Packer runs the amazon plugin")
    with pytest.raises(StepFailed, match="IMDSv2"):
        packer.build(tmp_path, only="amazon-ebs.image", variables={}, log_path=tmp_path / "l",
                     on_event=lambda e: None)


def test_missing_render_is_a_clear_error(tmp_path: Path) -> None:
    require_tool("packer")
    with pytest.raises(GoldenError, match="render"):
        packer.validate(tmp_path / "nope")
    with pytest.raises(GoldenError, match="render"):
        packer.fmt_check(tmp_path)


FAKE_PACKER = """#!/bin/sh
# A stand-in for Packer >= 1.7 (none is installable here): records its argv and
# which files the directory holds, and answers `version`.
echo "$*|$(ls -A | tr '\\n' ' ')" >> "$FAKE_PACKER_LOG"
case "$1" in
    version) echo "Packer v1.11.2" ;;
    build) echo "1,,ui,say,Build 'null.t' finished after 1 second." ;;
esac
"""


def fake_packer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put FAKE_PACKER first on the PATH; return the file it records its calls in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "packer").write_text(FAKE_PACKER)
    (bin_dir / "packer").chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PACKER_LOG", str(calls))
    # golden.run passes only its own list of variables; let this one through too.
    monkeypatch.setattr(cli, "PACKER_ENV", {**cli.PACKER_ENV, "FAKE_PACKER_LOG": str(calls)})
    return calls


def test_packer_with_plugins_gets_init_and_the_directory(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_packer(tmp_path, monkeypatch)
    out = tmp_path / "out"
    render.render(make_plan(load_profile("h100-r595"), load_kb()), out)
    (out / packer.LEGACY_FILE).write_text("stale\n")       # left by a killed 1.6.6 run
    assert packer.version() == "1.11.2" and packer.has_plugins()
    packer.validate(out)
    packer.build(out, only="amazon-ebs.image", variables={"build_id": "b1"},
                 log_path=tmp_path / "log", on_event=lambda e: None)
    lines = calls.read_text().splitlines()
    argv = [line.split("|")[0] for line in lines if not line.startswith("version|")]
    assert argv == ["init .", "validate .", "init .",
                    "build -machine-readable -only=amazon-ebs.image -var build_id=b1 ."]
    for line in lines:
        if line.startswith("version|"):
            continue
        seen = line.split("|")[1].split()
        assert "plugins.pkr.hcl" in seen and packer.LEGACY_FILE not in seen


def test_a_secret_variable_reaches_packer_but_not_the_log(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_packer(tmp_path, monkeypatch)
    d = template(tmp_path, shell_local("true"))
    log = tmp_path / "p.log"
    packer.build(d, only="null.t", variables={"build_id": "b1", "token": Secret("hunter2")},
                 log_path=log, on_event=lambda e: None)
    assert "build -machine-readable -only=null.t -var build_id=b1 -var token=hunter2 .|" in calls.read_text()
    header = log.read_text().splitlines()[0]
    assert header.endswith("-var build_id=b1 -var '***' .") and "hunter2" not in log.read_text()
